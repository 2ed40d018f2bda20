// One node process: a TLS client and server (node:tls, OpenSSL inside the node executable) on
// loopback exchange 64-byte messages, `rounds` round trips after a warm-up. Prints the process's
// CPU seconds (user + system) for the rounds. Used by node-tls-call-cost.mjs; with "plain" the same
// loop over plain TCP (a node process that makes no TLS call).
import tls from "node:tls";
import net from "node:net";
import fs from "node:fs";

const [cert, key, roundsArg, mode] = process.argv.slice(2);
const rounds = Number(roundsArg);
const plain = mode === "plain";
const msg = Buffer.alloc(64, 120);
const server = plain
  ? net.createServer((s) => s.on("data", (d) => s.write(d)))
  : tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (s) => s.on("data", (d) => s.write(d)));
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const { port } = server.address();
const sock = plain ? net.connect(port, "127.0.0.1") : tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
await new Promise((r) => sock.once(plain ? "connect" : "secureConnect", r));
sock.setNoDelay(true);
const run = (n) => new Promise((done) => {
  let left = n;
  sock.on("data", function on() {
    if (--left === 0) return sock.off("data", on), done();
    sock.write(msg);
  });
  sock.write(msg);
});
await run(2000);
const t0 = process.cpuUsage();
await run(rounds);
const t = process.cpuUsage(t0);
console.log((t.user + t.system) / 1e6);
sock.destroy();
server.close();
