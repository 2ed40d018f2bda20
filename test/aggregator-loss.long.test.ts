// Storage without loss, proven with real processes: kill -9 of the aggregator in the middle of a
// window, and influxd stopped for 30 s under load.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { startInfluxd, type RunningServer } from "@wirescope/cli/local-stack/index";
import { windowStart } from "@wirescope/aggregator";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { waitFor } from "./support/index.js";
import { startAggregator, startBackends, publishRecords, rows, suiteCleanup } from "./aggregator-support.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sent {
  requests: number;
  errors: number;
  sumMs: number;
}

/** Publishes live records (ending now) in batches every `everyMs`, totals per window. */
class LoadGen {
  readonly perWindow = new Map<number, Sent>();
  total: Sent = { requests: 0, errors: 0, sumMs: 0 };
  private stopped = false;
  private n = 0;
  done: Promise<void> = Promise.resolve();
  constructor(
    private readonly nc: NatsConnection,
    private readonly windowMs: number,
    private readonly perBatch: number,
    private readonly everyMs: number,
    private readonly service: string,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        const now = Date.now();
        const recs = [];
        for (let i = 0; i < this.perBatch; i++) {
          const d = 1 + ((this.n * 7919) % 40) + (i % 3) * 0.25;
          const err = this.n % 20 === 0;
          this.n++;
          recs.push(makeRecord({ startMs: now - d, durationMs: d, resource: "/work", status: err ? 500 : 200, server: { service: this.service, address: "10.2.0.1", port: 80, pid: 5 }, client: { service: "gen", address: "10.2.0.2", port: 50000 + (this.n % 1000), pid: 6 }, connKey: BigInt(this.n) }));
          const w = windowStart(now, this.windowMs);
          let s = this.perWindow.get(w);
          if (!s) this.perWindow.set(w, (s = { requests: 0, errors: 0, sumMs: 0 }));
          for (const t of [s, this.total]) {
            t.requests++;
            if (err) t.errors++;
            t.sumMs += Math.round(d * 1000) / 1000;
          }
        }
        await publishRecords(this.nc, recs, this.perBatch);
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

function rssMb(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) / 1024 : 0;
}

describe("aggregator without loss", { timeout: 240_000 }, () => {
  const cleanup = suiteCleanup();

  it("kill -9 in the middle of a window, restart: counts equal exactly what was sent", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "agg_kill";
    const WINDOW = 2000;
    const args = ["--window-ms", String(WINDOW), "--grace-ms", "1000", "--ack-wait-ms", "3000", "--span-sample-rate", "1", "--span-budget", "0"];
    const a = await startAggregator(nats.url, influx.url, db, args);
    cleanup.push(() => a.stop());

    const gen = new LoadGen(nc, WINDOW, 40, 40, "victim");
    gen.start();
    await sleep(4000);
    // Middle of a window: some windows flushed and acked, the current one open with batches held.
    while (Date.now() % WINDOW < WINDOW * 0.4 || Date.now() % WINDOW > WINDOW * 0.6) await sleep(20);
    const before = await a.status();
    assert.ok(before.held_batches! > 0, "batches were held (unacknowledged) when killed");
    assert.ok(before.windows_written! > 0, "some windows were already written");
    a.kill9();
    const sentAtKill = gen.total.requests;
    await waitFor(() => a.proc.hasExited, { timeoutMs: 5000, intervalMs: 50, what: "aggregator gone" });
    await sleep(1000);
    const b = await startAggregator(nats.url, influx.url, db, args);
    cleanup.push(() => b.stop());
    await sleep(5000);
    await gen.stop();
    const sent = gen.total;

    const totals = async () => (await rows(influx.url, db, `SELECT sum(requests), sum(errors), sum(duration_sum_ms) FROM red WHERE service = 'victim' AND role = 'server'`))[0];
    await waitFor(async () => (await totals())?.sum === sent.requests, { timeoutMs: 60_000, intervalMs: 500, what: `${sent.requests} requests in InfluxDB` });
    // Settled: held batches all acknowledged, nothing waiting; the totals do not move any more.
    await waitFor(async () => {
      const c = await b.status();
      return c.held_batches === 0 && c.open_windows === 0 && c.pending_lines === 0;
    }, { timeoutMs: 30_000, intervalMs: 250, what: "aggregator settled" });
    const t = (await totals())!;
    assert.equal(t.sum, sent.requests, "requests: no loss, no double count");
    assert.equal(t.sum_1, sent.errors, "errors");
    assert.ok(Math.abs((t.sum_2 as number) - sent.sumMs) < 1e-6 * sent.sumMs, `duration sum ${t.sum_2} vs ${sent.sumMs}`);
    // Per window, too.
    const perWindow = await rows(influx.url, db, `SELECT sum(requests) FROM red WHERE service = 'victim' AND role = 'server' GROUP BY time(${WINDOW}ms) fill(none)`);
    for (const r of perWindow) assert.equal(r.sum, gen.perWindow.get(Date.parse(r.time as string))?.requests, `window ${r.time}`);
    assert.equal(perWindow.length, gen.perWindow.size);
    // Spans: one per record (sample rate 1), none twice.
    const [spans] = await rows(influx.url, db, `SELECT count(duration_ms) FROM spans WHERE service = 'victim' AND kind = 'server'`);
    assert.equal(spans!.count, sent.requests);
    // The restarted instance really rebuilt windows from redelivered batches.
    const c = await b.status();
    assert.ok(c.records_in! > sent.requests - sentAtKill, `redelivered records seen (${c.records_in} > ${sent.requests - sentAtKill})`);
  });

  it("influxd stopped for 30 s under load: what fits the buffer arrives, the rest is counted as dropped, memory stays bounded", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "agg_outage";
    const WINDOW = 1000;
    // Two series per window (2xx and 5xx): 2 × (red + 16 latency_hist) + 1 edge + 2 map_nodes
    // (the service and its caller); no spans.
    const LINES_PER_WINDOW = 37;
    const BUFFER = 8 * LINES_PER_WINDOW;
    const a = await startAggregator(nats.url, influx.url, db, ["--window-ms", String(WINDOW), "--grace-ms", "300", "--no-spans", "--max-buffer-lines", String(BUFFER), "--pipeline-every-ms", "3600000"]);
    cleanup.push(() => a.stop());

    const gen = new LoadGen(nc, WINDOW, 100, 50, "load"); // ~2000 records/s
    gen.start();
    let maxRss = 0;
    let maxPending = 0;
    const sampler = setInterval(() => {
      try {
        maxRss = Math.max(maxRss, rssMb(a.proc.pid));
      } catch {
        /* exited */
      }
      a.status().then((c) => (maxPending = Math.max(maxPending, c.pending_lines ?? 0)), () => undefined);
    }, 250);
    try {
      await sleep(5000);
      const outageStart = Date.now();
      await influx.stop();
      await sleep(30_000);
      const restarted: RunningServer = await startInfluxd({ dir: influx.dir, port: influx.port, logFile: path.join(influx.dir, "influxd-2.log") });
      cleanup.push(() => restarted.stop());
      const outageEnd = Date.now();
      await sleep(6000);
      await gen.stop();
      await waitFor(async () => {
        const c = await a.status();
        return c.held_batches === 0 && c.open_windows === 0 && c.pending_lines === 0;
      }, { timeoutMs: 60_000, intervalMs: 250, what: "aggregator settled" });

      const c = await a.status();
      const got = new Map((await rows(influx.url.replace(String(influx.port), String(restarted.port)), db, `SELECT sum(requests) FROM red WHERE service = 'load' AND role = 'server' GROUP BY time(${WINDOW}ms) fill(none)`)).map((r) => [Date.parse(r.time as string), r.sum as number]));
      let missing = 0;
      let presentDuringOutage = 0;
      for (const [w, s] of gen.perWindow) {
        const g = got.get(w);
        if (g === undefined) {
          missing++;
          assert.ok(w >= outageStart - 3 * WINDOW && w <= outageEnd, `only windows closed during the outage may be missing (${new Date(w).toISOString()})`);
        } else {
          assert.equal(g, s.requests, `window ${new Date(w).toISOString()} complete, never partial (outage ${new Date(outageStart).toISOString()}..${new Date(outageEnd).toISOString()}; status ${JSON.stringify(c)})`);
          if (w > outageStart && w + WINDOW < outageEnd) presentDuringOutage++;
        }
      }
      assert.ok(missing > 0, "a 30 s outage does not fit an 8-window buffer: some windows were dropped");
      assert.equal(c.drops_influx_buffer, missing * LINES_PER_WINDOW, "every missing window is counted as dropped");
      assert.ok(presentDuringOutage >= Math.floor(BUFFER / LINES_PER_WINDOW) - 1, `the newest windows of the outage, within the buffer, arrived (${presentDuringOutage})`);
      assert.ok(maxPending <= BUFFER, `pending lines stayed within the buffer (${maxPending})`);
      assert.ok(maxRss < 300, `aggregator RSS stayed bounded (${maxRss.toFixed(0)} MB)`);
    } finally {
      clearInterval(sampler);
      await gen.stop();
    }
  });
});
