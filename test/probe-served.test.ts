// End to end: the kernel marks each call that starts an answer at a server end, and the probe
// states per partition how many requests its messages held (RawBatch.served, served_before), so
// a parser that misses messages knows how many requests they held (docs/reliability.md). Real
// eBPF, a real `wirescope probe` publishing to a real nats-server, a node:http server and a
// keep-alive client in child processes: the sum of served over every message is exactly the
// requests served, whatever the answers' shapes (one write, many writes, a large request body
// read in many reads).
import { spawn } from "node:child_process";
import { type TestContext, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { RawBatchReader } from "@wirescope/wire";
import { startNats, waitFor } from "./support/index.js";
import { bpfAvailable, runChild, serverChild, servingProbe } from "./probe-support.js";

const SERVER = `
import http from "node:http";
const big = Buffer.alloc(256 * 1024, 120);
const srv = http.createServer((req, res) => {
  let n = 0;
  req.on("data", (d) => (n += d.length));
  req.on("end", () => {
    if (req.url === "/big") {
      // an answer in many writes: one request served
      res.writeHead(200, { "content-length": big.length });
      for (let i = 0; i < 8; i++) res.write(big.subarray(i * 32768, (i + 1) * 32768));
      res.end();
    } else res.end("got " + n);
  });
});
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// args: port, requests per connection, connections; each connection's requests one after another
const CLIENT = `
import http from "node:http";
const [port, per, conns] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
const one = (path, body) => new Promise((resolve, reject) => {
  const req = http.request({ host: "127.0.0.1", port, path, method: body ? "POST" : "GET", agent }, (res) => {
    res.on("data", () => {});
    res.on("end", resolve);
  });
  req.on("error", reject);
  req.end(body);
});
const post = Buffer.alloc(200 * 1024, 65);
let done = 0;
await Promise.all(Array.from({ length: conns }, async (_, c) => {
  for (let i = 0; i < per; i++) {
    await one(i % 10 === 3 ? "/big" : "/x", i % 10 === 7 ? post : undefined);
    done++;
  }
}));
agent.destroy();
console.log("DONE " + done);
`;

/**
 * Traces the server on `port` with a real probe publishing to a real nats-server, runs the
 * keep-alive client (`per` requests on each of `conns` connections) and counts, over every
 * message, the requests served, running-count mismatches and the bytes its answers stated as gaps.
 */
async function countServed(t: TestContext, port: number, per: number, conns: number) {
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  await servingProbe(t, url, ["--allow-port", String(port), "--batch-ms", "10"]);

  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const rd = new RawBatchReader();
  // per probe/partition: served counted, and the running count each message states
  const seen = { done: 0, served: 0, mismatches: 0, unreadable: 0, gapBytes: 0 };
  const running = new Map<string, number>();
  nc.subscribe("wirescope.raw.*", {
    callback: (_e, m) => {
      if (!rd.read(m.data)) return void seen.unreadable++;
      const key = `${rd.probeId}/${rd.partition}`;
      if ((running.get(key) ?? 0) !== rd.servedBefore) seen.mismatches++;
      running.set(key, rd.servedBefore + rd.served);
      seen.served += rd.served;
      for (let i = 0; i < rd.dataCount; i++) if (rd.direction[i] === 1 && rd.payloadEnd[i] === rd.payloadStart[i]) seen.gapBytes += rd.originalLength[i]!;
    },
  });
  await nc.flush();

  const client = await runChild("served-client", CLIENT, [String(port), String(per), String(conns)]);
  t.after(() => client.kill());
  seen.done = Number((await client.waitLine(/^DONE (\d+)/, 60_000))[1]);
  assert.equal(seen.done, per * conns);
  await waitFor(() => seen.served >= seen.done, { timeoutMs: 15_000, intervalMs: 50, what: `served ${seen.served} of ${seen.done}` });
  // a late message would only add: wait a moment more, then the count is exact
  await new Promise((r) => setTimeout(r, 500));
  return seen;
}

test("probe: RawBatch.served counts every request served at observed server ends, once each, in any shape", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { port } = await serverChild(t, "served-server", SERVER);
  const seen = await countServed(t, port, 60, 4);
  assert.equal(seen.served, seen.done, "every request served counted once (an answer in many writes, a body in many reads)");
  assert.equal(seen.unreadable, 0);
  assert.equal(seen.mismatches, 0, "each message's served_before is what the earlier messages of its partition held");
});

// A server that answers with sendfile(2) alone: each answer (status line, headers and body) is a
// file of its own, sent with os.sendfile. Its bytes are a sized gap (they come from a file), and
// the call is still a turn of the conversation: the answer is counted served, and the request
// after it decided again.
const SENDFILE_SERVER = `
import os, socket, sys, tempfile, threading
body = b"x" * 3000
f = tempfile.TemporaryFile()
f.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\n\\r\\n" % len(body) + body)
f.flush()
size = f.tell()
def serve(c):
    buf = b""
    with c:
        while True:
            while b"\\r\\n\\r\\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[buf.index(b"\\r\\n\\r\\n") + 4:]
            sent = 0
            while sent < size:
                sent += os.sendfile(c.fileno(), f.fileno(), sent, size - sent)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print("PORT %d" % s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

test("probe: an answer sent with sendfile alone is counted served", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const server = spawn("python3", ["-c", SENDFILE_SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill());
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    server.stdout!.on("data", (d: Buffer) => {
      const m = /PORT (\d+)/.exec((out += d));
      if (m) resolve(Number(m[1]));
    });
    server.once("exit", (code) => reject(new Error(`sendfile server exited (${code})`)));
  });
  const seen = await countServed(t, port, 40, 3);
  assert.equal(seen.served, seen.done, "every answer sent with sendfile counted served, once");
  assert.equal(seen.mismatches, 0);
  assert.ok(seen.gapBytes >= seen.done * 3000, `the answers are stated as gaps of their size (${seen.gapBytes} bytes)`);
});
