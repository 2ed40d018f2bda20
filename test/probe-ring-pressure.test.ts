// A probe that cannot keep up (stopped with SIGSTOP: its ring buffer fills) sheds its observed
// keep-alive HTTP/1.1 connections whole, at a request boundary, for ring pressure, instead of
// losing their bytes at random once the ring is full; once it drains, they are observed again
// from a request on. Real probe (kernel eBPF), nats-server, node:http under h2load. What is
// asserted is what the probe published and counted, never how fast; waits are bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ProbeService, RawBatchSchema, ConnKind } from "@wirescope/wire";
import { createClient, connectNats, subscribeBatches, silentLogger } from "@wirescope/runtime";
import { startNats, freePort, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, serverChild, spawnProbe } from "./probe-support.js";

const run = promisify(execFile);

const SERVER = `
import http from "node:http";
const body = Buffer.alloc(512, "x");
const srv = http.createServer((req, res) => res.end(body));
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

test("a filling ring sheds observed keep-alive connections at a request boundary, counted, and they are observed again once it drains", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats();
  t.after(() => nats.stop());
  const { port } = await serverChild(t, "ring-pressure-server", SERVER);
  const grpcPort = await freePort();
  // a small ring, shedding over half full; the level fixed at 1: only the ring's pressure sheds
  const probe = await spawnProbe(`nats://127.0.0.1:${nats.port}`, grpcPort, tempDir("wirescope-ring-pressure-"), [
    "--allow-port", String(port), "--ringbuf-bytes", String(256 * 1024), "--shed-ringbuf-pct", "50", "--sample-fraction", "1",
  ]);
  t.after(() => probe.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const counters = async () => (await ctl.status({}, { timeoutMs: 5000 })).counters as Record<string, number>;
  await waitFor(async () => (await counters().catch(() => ({}) as Record<string, number>)).programs_attached > 0, { timeoutMs: 30_000, intervalMs: 250, what: "the probe attached" });

  // what the probe published, per connection key: its opens and closes in order
  const nc = await connectNats({ url: `nats://127.0.0.1:${nats.port}` }, silentLogger(), { retry: false, name: "ring-pressure-test" });
  t.after(() => nc.close());
  const steps = new Map<bigint, string[]>();
  const sub = subscribeBatches(nc, "wirescope.raw.>", RawBatchSchema, {
    onBatch: (m) => {
      for (const c of m.conns) {
        const s = steps.get(c.connKey) ?? [];
        steps.set(c.connKey, s);
        s.push(c.kind === ConnKind.OPEN ? "open" : c.shed ? `shed ${c.shed}` : "close");
      }
    },
  });
  t.after(() => sub.drain());
  await nc.flush();

  // 8 keep-alive connections at 50 requests/s each for 9 s; the probe stopped for 2 s in between
  const load = run("h2load", ["--h1", "-c", "8", "--rps", "50", "-D", "9", `http://127.0.0.1:${port}/load`], { timeout: 60_000 });
  await new Promise((r) => setTimeout(r, 2500));
  process.kill(probe.pid, "SIGSTOP");
  await new Promise((r) => setTimeout(r, 2000));
  process.kill(probe.pid, "SIGCONT");
  const { stdout } = await load;
  assert.match(stdout, /requests: \d+ total, \d+ started, (\d+) done, \1 succeeded/, stdout);

  let c: Record<string, number> = {};
  await waitFor(async () => ((c = await counters())["shed_connections.ringbuf_pressure"] ?? 0) > 0, { timeoutMs: 30_000, intervalMs: 500, what: "ring-pressure sheds counted" });
  t.diagnostic(`counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => /shed|drops|ringbuf/.test(k))))}`);
  assert.equal(c["drops.kernel.ringbuf_full"] ?? 0, 0, "nothing lost at random: the ring never overflowed");
  // a connection observed, shed for the ring at a boundary, then observed again (a new open)
  await waitFor(() => [...steps.values()].some((s) => s.join(",").includes("open,shed ringbuf_pressure,open")), { timeoutMs: 30_000, intervalMs: 500, what: `a connection shed for the ring and observed again: ${[...steps.values()].map((s) => s.join(",")).join(" | ")}` });
});
