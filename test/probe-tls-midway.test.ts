// A TLS connection the probe first sees mid-way (opened before it started): where a process moves
// the ciphertext with no TLS library call around it (here a plain TCP relay between a python ssl
// client and server), the first bytes the probe sees are TLS records, and nothing but the
// library's plaintext can be decoded. With holdInferredCipher (the probe service's setting) that
// ciphertext is held back and counted; the ends that call libssl give their plaintext as usual.
// Without it (`wirescope capture`'s setting) the ciphertext goes out as it travels: the same run
// shows what the hold keeps from the decoders.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { spawn } from "node:child_process";
import { EMPTY_FILTER } from "@wirescope/probe";
import { bpfAvailable, CollectingProbe } from "./probe-support.js";
import { selfSigned } from "./tls-support.js";
import { tempDir, waitFor } from "./support/index.js";

// one process: a TLS echo server, a plain relay in front of it, and a TLS client through the
// relay whose handshake and first exchange happen before the probe starts; then one exchange per
// stdin line. Only the client and server threads call libssl; the relay's sockets carry ciphertext.
const PROGRAM = `
import socket, ssl, sys, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
relay = socket.socket(); relay.bind(("127.0.0.1", 0)); relay.listen()
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(sys.argv[1], sys.argv[2])
def serve():
    s = sctx.wrap_socket(srv.accept()[0], server_side=True)
    while True:
        d = s.recv(65536)
        if not d: break
        s.sendall(b"echo " + d)
def pump(a, b):
    while True:
        d = a.recv(65536)
        if not d: break
        b.sendall(d)
    b.shutdown(socket.SHUT_WR)
def relay_one():
    down = relay.accept()[0]
    up = socket.create_connection(srv.getsockname())
    threading.Thread(target=pump, args=(down, up), daemon=True).start()
    pump(up, down)
threading.Thread(target=serve, daemon=True).start()
threading.Thread(target=relay_one, daemon=True).start()
cctx = ssl.create_default_context(); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
c = cctx.wrap_socket(socket.create_connection(relay.getsockname()))
c.sendall(b"before"); c.recv(100)
print("READY", srv.getsockname()[1], relay.getsockname()[1], flush=True)
for line in sys.stdin:
    c.sendall(line.strip().encode())
    print("GOT", c.recv(100).decode(), flush=True)
`;

interface Run {
  relay: { open: boolean; inferred: boolean; payloads: Buffer[] }[];
  clientPlain: string;
  serverPlain: string;
  held: { conns: number; bytes: number };
}

/** Starts the program, then a probe of its pid, then 3 exchanges; what the probe saw of each socket. */
async function runOnce(dir: string, tls: { cert: string; key: string }, holdInferredCipher: boolean): Promise<Run> {
  const file = path.join(dir, "midway.py");
  fs.writeFileSync(file, PROGRAM);
  const py = spawn("python3", [file, tls.cert, tls.key], { stdio: ["pipe", "pipe", "inherit"] });
  const lines: string[] = [];
  readline.createInterface({ input: py.stdout! }).on("line", (l) => lines.push(l));
  let probe: CollectingProbe | undefined;
  try {
    await waitFor(() => lines.some((l) => l.startsWith("READY")), { timeoutMs: 20_000, what: "the TLS connection through the relay" });
    const [, srvPort, relayPort] = lines.find((l) => l.startsWith("READY"))!.split(" ").map(Number);
    probe = new CollectingProbe({ tls: true, holdInferredCipher, filter: { ...EMPTY_FILTER, allowPids: [py.pid!] } });
    for (let i = 1; i <= 3; i++) py.stdin!.write(`ping-${i}\n`);
    await waitFor(() => lines.filter((l) => l.startsWith("GOT")).length === 3, { timeoutMs: 20_000, what: "3 echoes" });
    const text = (pred: (o: { localPort: number; remotePort: number; tls: boolean }) => boolean, dir: 1 | 2) =>
      probe!.find((o) => pred(o)).map(([, v]) => Buffer.concat(v.data[dir].map((d) => d.payload)).toString("latin1")).join("");
    // wait until both libssl ends' plaintext of the last exchange is in
    await waitFor(() => text((o) => o.remotePort === relayPort && o.tls, 2).includes("echo ping-3") && text((o) => o.localPort === srvPort && o.tls, 2).includes("ping-3"), { timeoutMs: 20_000, what: "the plaintext of both ends" });
    // the relay's own sockets: its accepted one (local port relayPort) and its connection to the server
    const relay = probe.find((o) => o.localPort === relayPort || (o.remotePort === srvPort && o.tgid === py.pid)).map(([, v]) => ({
      open: !!v.open, inferred: !!v.open?.inferred, payloads: [...v.data[1], ...v.data[2]].map((d) => Buffer.from(d.payload)),
    }));
    const t = probe.source.stats().tls ?? {};
    return {
      relay,
      clientPlain: text((o) => o.remotePort === relayPort && o.tls, 1),
      serverPlain: text((o) => o.localPort === srvPort && o.tls, 1),
      held: { conns: t.cipher_held_conns ?? 0, bytes: t.cipher_held_bytes ?? 0 },
    };
  } finally {
    await probe?.stop();
    py.kill();
  }
}

test("probe TLS: a connection first seen mid-way whose bytes are TLS records (a plain relay of a TLS stream) is held back, not sent as cleartext; the libssl ends give their plaintext", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-midway-");
  const tls = selfSigned(dir);

  const held = await runOnce(dir, tls, true);
  t.diagnostic(`held: relay ${JSON.stringify(held.relay.map((r) => [r.inferred, r.payloads.length]))}, counters ${JSON.stringify(held.held)}`);
  assert.equal(held.relay.length, 2, "both relay sockets seen");
  assert.ok(held.relay.every((r) => r.inferred), "seen mid-way");
  assert.deepEqual(held.relay.map((r) => r.payloads.length), [0, 0], "no byte of the relayed ciphertext sent");
  assert.ok(held.held.conns >= 2 && held.held.bytes > 0, "held back and counted");
  // the ends that call libssl: their plaintext after the probe started, from their TLS open
  assert.equal(held.clientPlain, "ping-1ping-2ping-3");
  assert.equal(held.serverPlain, "echo ping-1echo ping-2echo ping-3");

  // the same without the hold: the relay's bytes go out, and they are TLS records
  const sent = await runOnce(dir, tls, false);
  t.diagnostic(`not held: relay ${JSON.stringify(sent.relay.map((r) => [r.inferred, r.payloads.length]))}`);
  const first = sent.relay.flatMap((r) => r.payloads).filter((p) => p.length);
  assert.ok(first.length > 0, "without the hold the relay's bytes are sent");
  assert.ok(first.some((p) => p[0] === 0x17 && p[1] === 0x03), "and they are ciphertext (TLS application data records)");
  assert.deepEqual(sent.held, { conns: 0, bytes: 0 });
});
