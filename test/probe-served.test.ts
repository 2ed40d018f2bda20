// End to end: the kernel marks each call that starts an answer at a server end, and the probe
// states per partition how many requests its messages held (RawBatch.served, served_before), so
// a parser that misses messages knows how many requests they held (docs/reliability.md). Real
// eBPF, a real `wirescope probe` publishing to a real nats-server, a node:http server and a
// keep-alive client in child processes: the sum of served over every message is exactly the
// requests served, whatever the answers' shapes (one write, many writes, a large request body
// read in many reads).
import { test } from "node:test";
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

test("probe: RawBatch.served counts every request served at observed server ends, once each, in any shape", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const { port } = await serverChild(t, "served-server", SERVER);
  await servingProbe(t, url, ["--allow-port", String(port), "--batch-ms", "10"]);

  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const rd = new RawBatchReader();
  // per probe/partition: served counted, and the running count each message states
  let served = 0;
  const running = new Map<string, number>();
  let mismatches = 0;
  let unreadable = 0;
  nc.subscribe("wirescope.raw.*", {
    callback: (_e, m) => {
      if (!rd.read(m.data)) return void unreadable++;
      const key = `${rd.probeId}/${rd.partition}`;
      if ((running.get(key) ?? 0) !== rd.servedBefore) mismatches++;
      running.set(key, rd.servedBefore + rd.served);
      served += rd.served;
    },
  });
  await nc.flush();

  const per = 60;
  const conns = 4;
  const client = await runChild("served-client", CLIENT, [String(port), String(per), String(conns)]);
  t.after(() => client.kill());
  const done = Number((await client.waitLine(/^DONE (\d+)/, 60_000))[1]);
  assert.equal(done, per * conns);
  await waitFor(() => served >= done, { timeoutMs: 15_000, intervalMs: 50, what: `served ${served} of ${done}` });
  // a late message would only add: wait a moment more, then the count is exact
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(served, done, "every request served counted once (an answer in many writes, a body in many reads)");
  assert.equal(unreadable, 0);
  assert.equal(mismatches, 0, "each message's served_before is what the earlier messages of its partition held");
});
