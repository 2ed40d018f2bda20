// HTTP/1.1 bodies are not published, and every request is still decoded: a node:http server with
// 64 KiB response bodies (one chunk, Content-Length, and 16 chunks of 4 KiB in one corked write:
// a call holding many chunk-size lines, which the kernel must copy whole) under h2load, both ends traced by the real
// probe (`wirescope probe`, real eBPF), real nats-server, real parser (`wirescope parser` with the
// HTTP/1.1 WASM decoder). Every request gives a complete record on each end with the right body
// size, and the bytes published per request stay under 4 KiB.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import { Role, ProbeService } from "@wirescope/wire";
import { createClient } from "@wirescope/runtime";
import { startNats, freePort, tempDir } from "./support/index.js";
import { bpfAvailable, runChild, spawnProbe } from "./probe-support.js";
import { startParser, settleRecords, parserStatus } from "./parser-support.js";

const run = promisify(execFile);
const BODY = 64 * 1024;

const SERVER = `
import http from "node:http";
const body = Buffer.alloc(${BODY}, "x");
const srv = http.createServer((req, res) => {
  if (req.url.startsWith("/cl")) res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  else res.writeHead(200, { "content-type": "text/plain" }); // chunked
  if (req.url.startsWith("/chunks")) {
    // 16 chunks of 4 KiB in one write: a call holds many chunk-size lines
    res.cork();
    for (let i = 0; i < 16; i++) res.write(body.subarray(i * 4096, (i + 1) * 4096));
    res.uncork();
    res.end();
  } else res.end(body);
});
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

test("probe: 64 KiB HTTP/1.1 bodies are stated as gaps, every request is recorded on both ends, <= 4 KiB published per request", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const server = await runChild("bodies-server", SERVER);
  t.after(() => server.kill());
  const port = Number((await server.waitLine(/^PORT (\d+)/))[1]);

  const dir = tempDir("wirescope-probe-bodies-");
  const grpcPort = await freePort();
  const probe = await spawnProbe(url, grpcPort, dir, ["--allow-port", String(port)]);
  t.after(() => probe.stop());
  const parser = await startParser(url);
  t.after(() => parser.proc.stop());

  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  let published = 0;
  const sub = nc.subscribe("wirescope.raw.>", {
    callback: (_e, m) => {
      published += m.data.length;
    },
  });
  t.after(() => sub.unsubscribe());
  // the probe is attached once a first connection shows up
  const deadline = Date.now() + 30_000;
  while (published === 0) {
    if (Date.now() > deadline || probe.hasExited) throw new Error(`the probe did not publish: ${probe.tail()}`);
    await fetch(`http://127.0.0.1:${port}/warmup`).then((r) => r.arrayBuffer());
    await new Promise((r) => setTimeout(r, 200));
  }
  await nc.flush();
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const dropCounters = async () => Object.fromEntries(Object.entries((await ctl.status({})).counters).filter(([k]) => /drop/.test(k)));
  // events of the warm-up that came before the probe's NATS connection are counted drops: not ours
  const dropsBefore = await dropCounters();

  const perPath = 400;
  const before = published;
  for (const p of ["/chunked", "/cl", "/chunks"]) {
    // 4 keep-alive connections, 100 requests each at 50 requests/s per connection: a steady load
    // (unpaced, the 128 KiB that each request moves through the ring with both ends traced can
    // outrun the ring buffer on a busy 2-core machine; that loss is counted, and checked below)
    const { stdout } = await run("h2load", ["--h1", "-c", "4", "--rps", "50", "-n", String(perPath), `http://127.0.0.1:${port}${p}`], { timeout: 60_000 });
    assert.match(stdout, new RegExp(`requests: ${perPath} total, ${perPath} started, ${perPath} done, ${perPath} succeeded`), stdout);
  }
  const requests = 3 * perPath;
  const records = (await settleRecords(nc, 2000, 60_000))
    .map((s) => s.record)
    .filter((r) => r.protocol === "http1" && (r.resource === "/chunked" || r.resource === "/cl" || r.resource === "/chunks"));
  await nc.flush();
  const bytes = published - before;

  const dropsAfter = await dropCounters();
  assert.deepEqual(Object.entries(dropsAfter).filter(([k, v]) => v > (dropsBefore[k] ?? 0)), [], "nothing lost on the way");
  for (const role of [Role.SERVER, Role.CLIENT]) {
    const mine = records.filter((r) => r.role === role);
    assert.equal(mine.length, requests, `${Role[role]} records: every request`);
    for (const r of mine) {
      assert.equal(r.incomplete, false);
      assert.equal(r.status, 200n);
      assert.equal(Number(r.responseBytes), BODY, "the body size is known from the stated gaps");
    }
  }
  const st = await parserStatus(parser);
  const desyncs = Object.entries(st.counters).filter(([k, v]) => /desync|resync|^plugin_(errors|drops|bytes_dropped)\./.test(k) && v > 0);
  assert.deepEqual(desyncs, [], "the decoder never lost its place");
  const perRequest = bytes / requests;
  t.diagnostic(`published ${Math.round(perRequest)} bytes per request with both ends traced (${BODY}-byte bodies)`);
  assert.ok(perRequest <= 4096, `published ${Math.round(perRequest)} bytes per request (both ends), aim <= 4096`);
  assert.ok(perRequest < BODY / 8, "bodies were not published");
});
