// Raw batches published while no parser subscribes are counted by the probe (docs/probe.md,
// "Unheard batches"): the real probe (`wirescope probe`, real eBPF) on a real nats-server with
// no subscriber to wirescope.raw.>, a node:http server answering curl's keep-alive requests. The
// server answers each batch's reply subject with a 503 no-responders status: the probe counts
// every request those batches held (requests_unheard), exactly. Once something subscribes,
// nothing more is counted, every request reaches it, and so do the unheard counts (RawBatch.drops).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import { RawBatchSchema } from "@wirescope/wire";
import { startNats, waitFor } from "./support/index.js";
import { bpfAvailable, serverChild, servingProbe } from "./probe-support.js";

const run = promisify(execFile);

const SERVER = `
import http from "node:http";
const srv = http.createServer((req, res) => res.end("ok"));
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

test("probe: raw batches nobody subscribes to are counted with the requests they held (no-responders status); none once a parser listens", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats();
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const { port } = await serverChild(t, "unheard-server", SERVER);
  const { ctl } = await servingProbe(t, url, ["--allow-port", String(port)]);
  const counters = async () => (await ctl.status({})).counters;
  // the probe attached: a request it sees (a probe that sees nothing yet publishes nothing)
  const requests = async (n: number, tag: string) => {
    const urls = Array.from({ length: n }, (_, i) => `http://127.0.0.1:${port}/${tag}/${i}`);
    for (let i = 0; i < urls.length; i += 50) await run("curl", ["-s", "-o", "/dev/null", ...urls.slice(i, i + 50)]);
  };
  await waitFor(async () => (await requests(1, "warm"), ((await counters())["requests_unheard"] ?? 0) >= 1), { timeoutMs: 30_000, intervalMs: 500, what: "a first request counted unheard" });
  // settled: the warm-up's later requests counted too
  let before = await counters();
  for (let stable = 0; stable < 3; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await counters();
    stable = now["requests_unheard"] === before["requests_unheard"] ? stable + 1 : 0;
    before = now;
  }

  // nobody listens: every request counted, in batches the server said nobody heard
  await requests(300, "unheard");
  await waitFor(async () => ((await counters())["requests_unheard"] ?? 0) - (before["requests_unheard"] ?? 0) >= 300, { timeoutMs: 20_000, intervalMs: 200, what: "300 requests counted unheard" });
  await new Promise((r) => setTimeout(r, 1500)); // nothing more comes
  const mid = await counters();
  t.diagnostic(`unheard: ${mid["raw_batches_unheard"]} batches, ${mid["requests_unheard"]} requests (${before["requests_unheard"]} before)`);
  assert.equal(mid["requests_unheard"]! - before["requests_unheard"]!, 300, "exactly the requests served");
  assert.ok(mid["raw_batches_unheard"]! > before["raw_batches_unheard"]!);

  // a subscriber: the batches are heard, nothing more counted, every request in them
  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  let served = 0;
  const reported: Record<string, number> = {};
  nc.subscribe("wirescope.raw.>", {
    callback: (_e, m) => {
      const b = fromBinary(RawBatchSchema, m.data);
      served += b.served;
      for (const [k, v] of Object.entries(b.drops)) reported[k] = (reported[k] ?? 0) + Number(v);
    },
  });
  await nc.flush();
  await requests(300, "heard");
  await waitFor(() => served >= 300, { timeoutMs: 20_000, intervalMs: 200, what: `300 requests heard (${served})` });
  await new Promise((r) => setTimeout(r, 1500));
  const after = await counters();
  assert.equal(served, 300);
  assert.equal(after["requests_unheard"], mid["requests_unheard"], "nothing counted unheard once heard");
  assert.equal(after["raw_batches_unheard"], mid["raw_batches_unheard"]);
  // the counts reach the first listener in RawBatch.drops (a parser counts them as probe_drops.*
  // and writes them to InfluxDB with its losses), those that unheard batches carried too
  assert.deepEqual([reported["raw_batches_unheard"], reported["requests_unheard"]], [after["raw_batches_unheard"], after["requests_unheard"]], `reported in the raw batches: ${JSON.stringify(reported)}`);
});
