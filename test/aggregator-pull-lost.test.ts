// Missed heartbeats on the aggregator's consumer, told apart (issue #9: under load a pull was
// lost between nats.js and a healthy nats-server, nothing was delivered for 7 s, and every window
// was then held 30 s as for a server failure, so dashboards lagged 30 s with nothing wrong; and in
// the seconds before the miss was noticed, windows could close by the idle wall clock and turn the
// delayed records into late ones). A proxy between the aggregator and a real nats-server makes
// the two faults:
//   - its pull requests dropped, everything else passing: the server answers when asked, with the
//     same leaders, having stored batches meanwhile, so the silence was a lost pull
//     (`delivery_stalls.pull_lost`) and windows are not held 30 s;
//   - everything it sends held up (a network that stalls one way): the server does not answer in
//     time, a stall (`delivery_stalls.heartbeats_missed`), windows held 30 s as before.
// In both, every record published meanwhile is written once and nothing is dropped: no window
// closes by the wall clock until the server has said it had nothing more since its last record.
// Waits are on conditions, bounded and generous; the one bound on time is the 30 s hold itself:
// while it lasts no window can be written, so a window written sooner shows there was none.
import { sumOf } from "./support/fault-stack.js";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import type { NatsConnection } from "@nats-io/nats-core";
import { createLogger, ensureRecordsStream } from "@wirescope/runtime";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { waitFor } from "./support/index.js";
import { type ProxyMode, startNatsProxy } from "./support/nats-proxy.js";
import { recordPartitionOf } from "@wirescope/runtime";
import { ownedIn, publishLive, startAggregator, startBackends, publishRecords, rows, suiteCleanup, type AggregatorProc } from "./aggregator-support.js";

const WINDOW = 1000;
const GRACE = 3000;
/** The aggregator's hold after a stall (STALL_HOLD_MS in services/aggregator/src/service.ts). */
const STALL_HOLD_MS = 30_000;
// Membership entries are KV writes through the proxy too: a long TTL keeps a held-up instance
// owning its partitions, so that the faults here are the consumer's alone.
const ARGS = ["--window-ms", String(WINDOW), "--grace-ms", String(GRACE), "--pipeline-every-ms", "1000", "--member-ttl-ms", "120000"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Server-side requests of a service in InfluxDB. */
const requestsIn = (influxUrl: string, db: string) => async (service: string) =>
  ((await rows(influxUrl, db, `SELECT sum(requests) FROM red WHERE service = '${service}' AND role = 'server'`))[0]?.sum as number | undefined) ?? 0;

describe("aggregator: missed heartbeats told apart", { timeout: 240_000 }, () => {
  const cleanup = suiteCleanup();

  async function setup(db: string): Promise<{ nc: NatsConnection; agg: AggregatorProc; proxy: Awaited<ReturnType<typeof startNatsProxy>>; requests: (service: string) => Promise<number> }> {
    const { nats, influx, nc } = await startBackends(cleanup);
    await ensureRecordsStream(nc, { name: "WIRESCOPE_RECORDS" }, createLogger("aggregator", { level: "warn" }));
    const proxy = await startNatsProxy(nats.url);
    cleanup.push(() => proxy.close());
    const agg = await startAggregator(proxy.url, influx.url, db, ARGS);
    cleanup.push(() => agg.stop());
    const requests = requestsIn(influx.url, db);
    // Consuming through the proxy before the fault.
    const t0 = Date.now();
    await publishRecords(nc, Array.from({ length: 40 }, (_, i) => makeRecord({ startMs: t0 + i, durationMs: 2, resource: "/before", status: 200, server: { service: "before", address: "10.4.0.2", port: 80, pid: 31 }, client: { service: "load", address: "10.4.0.1", port: 40000, pid: 32 }, connKey: BigInt(i) })), 40);
    await waitFor(async () => (await requests("before")) === 40, { timeoutMs: 60_000, intervalMs: 250, what: "the records before the fault written" });
    return { nc, agg, proxy, requests };
  }

  /**
   * Live records of service "during" while the proxy is in `mode`, until the aggregator counts
   * `key`; then the proxy passes again and the records go on 3 s more (nats.js pulls again on the
   * next missed heartbeat). The status when `key` was counted, when, and the records sent.
   */
  async function underFault(s: Awaited<ReturnType<typeof setup>>, mode: ProxyMode, key: string, what: string): Promise<{ at: Record<string, number>; noticed: number; sent: number }> {
    const live = publishLive(s.nc, "during");
    s.proxy.mode = mode;
    // The totals and the gauges are refreshed together, every 250 ms, after the counters themselves.
    const at = await waitForCounter(s.agg, key, what);
    const noticed = Date.now();
    s.proxy.mode = "pass";
    await sleep(3000);
    return { at, noticed, sent: await live.stop() };
  }

  async function waitForCounter(agg: AggregatorProc, key: string, what: string): Promise<Record<string, number>> {
    let c: Record<string, number> = {};
    await waitFor(
      async () => {
        c = await agg.status();
        return (c[key] ?? 0) >= 1;
      },
      { timeoutMs: 60_000, intervalMs: 250, what },
    ).catch((e: unknown) => assert.fail(`${String(e)}: ${JSON.stringify(c)}`));
    return c;
  }

  async function allWritten(agg: AggregatorProc, requests: (service: string) => Promise<number>, sent: number, timeoutMs: number): Promise<void> {
    await waitFor(async () => (await requests("during")) === sent, { timeoutMs, intervalMs: 250, what: `${sent} records of the fault written` }).catch(async (e: unknown) =>
      assert.fail(`${String(e)}: ${await requests("during")} written; ${JSON.stringify(await agg.status())}\n${fs.readFileSync(agg.logFile, "utf8").slice(-3000)}`),
    );
  }

  it("pull requests lost on the way to a healthy server: counted as pull_lost, windows not held, nothing late", async () => {
    const f = await setup("agg_pull_lost");
    const { agg, proxy, requests } = f;
    const { at: atLoss, noticed, sent } = await underFault(f, "drop-pulls", "pulls_lost", "missed heartbeats taken for a lost pull");
    assert.equal(atLoss.windows_held_ms, 0, `windows not held when the lost pull was counted: ${JSON.stringify(atLoss)}`);
    await allWritten(agg, requests, sent, STALL_HOLD_MS + 30_000);
    const written = Date.now();
    const c = await agg.status();
    assert.ok(proxy.droppedPulls > 0, "pull requests were dropped");
    assert.ok(written - noticed < STALL_HOLD_MS, `written ${written - noticed} ms after the lost pull was counted: no 30 s hold (${JSON.stringify(c)})`);
    assert.equal(c["delivery_stalls.heartbeats_missed"] ?? 0, 0, "not taken for a stall");
    assert.ok(c.pulls_lost! >= 1 && c.delivery_stalls === 0, "the pipeline measurement's totals say the same");
    assert.equal(sumOf(c, /^drops_/), 0, `nothing dropped: ${JSON.stringify(c)}`);
    assert.equal(await requests("before"), 40, "nothing counted twice");
  });

  it("everything it sends held up: the server does not answer in time, a stall, windows held, nothing late", async () => {
    const f = await setup("agg_stall");
    const { agg, requests } = f;
    const { at: atStall, sent } = await underFault(f, "hold", "delivery_stalls", "missed heartbeats taken for a stall");
    assert.ok(atStall.windows_held_ms! > 0, `windows held when the stall was counted: ${JSON.stringify(atStall)}`);
    await allWritten(agg, requests, sent, STALL_HOLD_MS + 60_000);
    const c = await agg.status();
    assert.equal(c["delivery_stalls.pull_lost"] ?? 0, 0, "not taken for a lost pull, then or once the proxy passed again");
    assert.equal(c["delivery_stalls.heartbeats_missed"], 1, "one stall, counted once however many heartbeats it missed");
    assert.ok(c.delivery_stalls! >= 1 && c.pulls_lost === 0, "the pipeline measurement's totals say the same");
    assert.equal(sumOf(c, /^drops_/), 0, `nothing dropped: ${JSON.stringify(c)}`);
  });
  it("two instances: one's partitions quiet while the other's are busy, the quiet one still writes its windows", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "agg_quiet";
    await ensureRecordsStream(nc, { name: "WIRESCOPE_RECORDS" }, createLogger("aggregator", { level: "warn" }));
    const a = await startAggregator(nats.url, influx.url, db, ARGS);
    cleanup.push(() => a.stop());
    const b = await startAggregator(nats.url, influx.url, db, ARGS);
    cleanup.push(() => b.stop());
    let ownA: number[] = [];
    let ownB: number[] = [];
    await waitFor(
      async () => {
        ownA = ownedIn((await a.info()).partitions_owned);
        ownB = ownedIn((await b.info()).partitions_owned);
        return ownA.length > 0 && ownB.length > 0 && ownA.length + ownB.length === 64;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "two instances sharing the partitions" },
    );
    const named = (own: number[]) => Array.from({ length: 500 }, (_, i) => `svc${i}`).find((n) => own.includes(recordPartitionOf(false, "", n, 64)))!;
    const quiet = named(ownA);
    const busy = named(ownB);
    // Both consumers read every partition (each skips the others'), so the busy partition's
    // batches, published back to back (each acknowledged first: hundreds a second), fill every
    // pull of both before it idles or expires: no idle heartbeat and no unfilled pull for either
    // while it lasts. Without the batches' own idle report (nothing pending after them) the
    // quiet instance wrote 0 of 100 records in 20 s here.
    const busyLive = publishLive(nc, busy, 0);
    cleanup.push(() => busyLive.stop());
    await sleep(2000);
    const quietLive = publishLive(nc, quiet);
    await sleep(1000);
    const sent = await quietLive.stop();
    const requests = requestsIn(influx.url, db);
    let c: Record<string, number> = {};
    await waitFor(
      async () => {
        c = await a.status();
        return (await requests(quiet)) === sent;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${sent} records of the quiet instance written while the other's partition stays busy` },
    ).catch(async (e: unknown) => assert.fail(`${String(e)}: ${await requests(quiet)} written; ${JSON.stringify(c)}`));
    await busyLive.stop();
    assert.equal(sumOf(c, /^drops_/), 0, `nothing dropped: ${JSON.stringify(c)}`);
  });
});
