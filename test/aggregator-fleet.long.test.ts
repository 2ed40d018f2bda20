// Aggregator scale-out with real processes: several `wirescope aggregator` instances share the
// records partitions by rendezvous over their membership KV; each series is seen by one of them.
// Three instances write exactly the points one instance writes, and kill -9 of one hands its
// partitions to the others with nothing lost and nothing counted twice.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Role, type Record as WRecord } from "@wirescope/wire";
import { recordPartitionOf } from "@wirescope/runtime";
import { windowStart } from "@wirescope/aggregator";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { waitFor } from "./support/index.js";
import { ownedIn, startAggregator, startBackends, publishPartitioned, rows, pastWindow, suiteCleanup, type AggregatorProc } from "./aggregator-support.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const P = 64;

const owned = (info: Record<string, string>) => ownedIn(info.partitions_owned);

/** "3: a,b,c" → the services. */
function services(info: Record<string, string>): string[] {
  const i = (info.services ?? "").indexOf(": ");
  return i < 0 ? [] : info.services!.slice(i + 2).split(",");
}

/** Waits until the instances agree on `n` members and split the partitions among them. */
async function agreed(fleet: AggregatorProc[], n: number): Promise<Record<string, string>[]> {
  let infos: Record<string, string>[] = [];
  await waitFor(
    async () => {
      infos = await Promise.all(fleet.map((a) => a.info()));
      if (!infos.every((i) => (i.members ?? "").split(",").length === n)) return false;
      const all = infos.flatMap(owned);
      return all.length === P && new Set(all).size === P;
    },
    { timeoutMs: 20_000, intervalMs: 200, what: `${n} aggregators sharing ${P} partitions` },
  );
  return infos;
}

async function settled(fleet: AggregatorProc[]): Promise<void> {
  await waitFor(
    async () => {
      for (const a of fleet) {
        const c = await a.status();
        if (c.held_batches !== 0 || c.open_windows !== 0 || c.pending_lines !== 0) return false;
      }
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "aggregators settled" },
  );
}

/** Points of a measurement keyed by time and tags. */
async function points(url: string, db: string, measurement: string): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const r of await rows(url, db, `SELECT * FROM ${measurement} GROUP BY *`)) {
    const tags = Object.entries(r)
      .filter(([k, v]) => typeof v === "string" && k !== "time" && k !== "id")
      .sort(([a], [b]) => a.localeCompare(b));
    out.set(`${r.time} ${JSON.stringify(tags)}`, r);
  }
  return out;
}

describe("aggregator fleet", { timeout: 120_000 }, () => {
  const cleanup = suiteCleanup();

  it("three instances own disjoint partitions and write exactly the points one instance writes", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const WINDOW = 1000;
    // Published partition by partition, so not in event-time order: a grace longer than the
    // three windows' span keeps every window open until the wall clock closes them.
    const common = ["--window-ms", String(WINDOW), "--grace-ms", "8000", "--span-sample-rate", "1", "--span-budget", "0", "--pipeline-every-ms", "3600000"];
    // Two fleets read the same stream independently: three instances, and one.
    const starts = [0, 1, 2].map(() => startAggregator(nats.url, influx.url, "fleet", [...common, "--durable", "fleet", "--members-bucket", "fleet-members"]));
    starts.push(startAggregator(nats.url, influx.url, "single", [...common, "--durable", "single", "--members-bucket", "single-members"]));
    const procs = await Promise.all(starts);
    for (const a of procs) cleanup.push(() => a.stop());
    const fleet = procs.slice(0, 3);
    const single = procs[3]!;
    const infos = await agreed(fleet, 3);
    for (const i of infos) assert.ok(owned(i).length > 0, `every instance owns partitions: ${i.partitions_owned}`);
    assert.equal(owned((await agreed([single], 1))[0]!).length, P);

    // 12 services called by 12 client services, in both roles, over three past windows.
    const sent = new Map<string, number>();
    const records: WRecord[] = [];
    const w0 = pastWindow(WINDOW, 6);
    for (let i = 0; i < 3600; i++) {
      const s = i % 12;
      const role = i % 3 === 0 ? "client" : "server";
      const d = 1 + ((i * 7919) % 997) / 10;
      const start = w0 + (i % 3) * WINDOW + ((i * 31) % (WINDOW - 120));
      records.push(
        makeRecord({
          startMs: start,
          durationMs: d,
          role,
          resource: `/r${i % 4}`,
          status: i % 13 === 0 ? 500 : 200,
          server: { service: `svc-${s}:80`, address: `10.1.0.${s}`, port: 80, pid: 100 + s },
          client: { service: `caller-${(s + 5) % 12}`, address: `10.2.0.${s}`, port: 40000 + (i % 500), pid: 200 + s },
          connKey: BigInt(i % 500),
          tid: 1 + (i % 7),
        }),
      );
      const svc = role === "client" ? `caller-${(s + 5) % 12}` : `svc-${s}:80`;
      sent.set(svc, (sent.get(svc) ?? 0) + 1);
    }
    await publishPartitioned(nc, records, 100, P);

    const total = async (db: string) => ((await rows(influx.url, db, "SELECT sum(requests) FROM red"))[0]?.sum as number | undefined) ?? 0;
    await waitFor(async () => (await total("fleet")) === records.length && (await total("single")) === records.length, { timeoutMs: 30_000, intervalMs: 250, what: `${records.length} requests in both databases` });
    await settled(procs);

    // Exact per service and role, and every point of the fleet equal to the single instance's.
    for (const r of await rows(influx.url, "fleet", "SELECT sum(requests) FROM red GROUP BY service")) assert.equal(r.sum, sent.get(r.service as string), `requests of ${r.service}`);
    for (const m of ["red", "latency_hist", "edges"]) {
      const a = await points(influx.url, "fleet", m);
      const b = await points(influx.url, "single", m);
      assert.ok(a.size > 0, `${m} written`);
      assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${m}: the same series and windows`);
      for (const [k, pa] of a) {
        const pb = b.get(k)!;
        for (const f of Object.keys(pa)) {
          if (typeof pa[f] === "number" && f.startsWith("duration_sum")) assert.ok(Math.abs((pa[f] as number) - (pb[f] as number)) <= 1e-9 * Math.abs(pb[f] as number), `${m} ${k} ${f}`);
          else assert.deepEqual(pa[f], pb[f], `${m} ${k} ${f}: percentiles and counts exact`);
        }
      }
    }
    const spans = async (db: string) => (await rows(influx.url, db, "SELECT count(duration_ms) FROM spans"))[0]?.count;
    assert.equal(await spans("fleet"), records.length, "one span per record, none twice");
    assert.equal(await spans("single"), records.length);

    // Each instance read its own partitions' batches and passed over the others'; each service
    // was counted by one instance, and status says which.
    // Only an instance owning a partition that carried records must have read a batch: which
    // partitions the 24 services hash to, and how the instances divide them, is not fixed.
    const used = new Set(records.map((r) => recordPartitionOf(r.role === Role.CLIENT, r.client?.service ?? "", r.server?.service ?? "", P)));
    const ownedNow = (await Promise.all(fleet.map((a) => a.info()))).map((i) => new Set(owned(i)));
    const counters = await Promise.all(fleet.map((a) => a.status()));
    counters.forEach((c, k) => {
      const mine = [...used].filter((p) => ownedNow[k]!.has(p)).length;
      assert.equal(c.batches_in! > 0, mine > 0, `instance ${k} owns ${mine} of the ${used.size} partitions with records: ${JSON.stringify(c)}`);
      assert.equal(c.batches_foreign! > 0, mine < used.size, `instance ${k} passes over the others' batches: ${JSON.stringify(c)}`);
    });
    const seen = (await Promise.all(fleet.map((a) => a.info()))).map(services);
    const all = seen.flat();
    assert.deepEqual([...all].sort(), [...sent.keys()].sort(), "each service listed by exactly one instance");
    assert.ok(seen.filter((s) => s.length > 0).length >= 2, `the services are spread over the instances: ${JSON.stringify(seen)}`);
  });

  it("kill -9 of one instance mid-window: its partitions move, totals exact per window", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "fleet_kill";
    const WINDOW = 2000;
    const args = ["--window-ms", String(WINDOW), "--grace-ms", "1000", "--ack-wait-ms", "3000", "--no-spans", "--heartbeat-ms", "300", "--member-ttl-ms", "1200", "--durable", "kill", "--members-bucket", "kill-members"];
    const fleet = await Promise.all([0, 1, 2].map(() => startAggregator(nats.url, influx.url, db, args)));
    for (const a of fleet) cleanup.push(() => a.stop());
    await agreed(fleet, 3);

    // Live load: 16 services, records ending now, every 50 ms; sent counted per service and window.
    const perWindow = new Map<string, number>();
    let total = 0;
    let stop = false;
    let n = 0;
    const gen = (async () => {
      while (!stop) {
        const now = Date.now();
        const recs: WRecord[] = [];
        for (let i = 0; i < 48; i++, n++) {
          const s = n % 16;
          const d = 1 + ((n * 7919) % 40);
          recs.push(makeRecord({ startMs: now - d, durationMs: d, resource: "/work", server: { service: `api-${s}:80`, address: "10.3.0.1", port: 80 + s, pid: 5 }, client: { service: "gen", address: "10.3.0.2", port: 50000 + (n % 1000), pid: 6 }, connKey: BigInt(n % 1000) }));
          const k = `api-${s}:80 ${windowStart(now, WINDOW)}`;
          perWindow.set(k, (perWindow.get(k) ?? 0) + 1);
          total++;
        }
        await publishPartitioned(nc, recs, 48, P);
        await sleep(50);
      }
    })();
    try {
      await sleep(5000);
      // The victim: an instance that counts some services, killed in the middle of a window.
      const infos = await Promise.all(fleet.map((a) => a.info()));
      const vi = infos.findIndex((i) => services(i).length > 0);
      const victim = fleet[vi]!;
      const victimServices = services(infos[vi]!);
      while (Date.now() % WINDOW < WINDOW * 0.4 || Date.now() % WINDOW > WINDOW * 0.6) await sleep(20);
      const before = await victim.status();
      assert.ok(before.held_batches! > 0 && before.windows_written! > 0, `killed with windows written and batches held: ${JSON.stringify(before)}`);
      victim.kill9();
      await waitFor(() => victim.proc.hasExited, { timeoutMs: 5000, intervalMs: 50, what: "victim gone" });
      const survivors = fleet.filter((a) => a !== victim);
      const after = await agreed(survivors, 2);
      await sleep(4000);
      stop = true;
      await gen;

      const sum = async () => ((await rows(influx.url, db, "SELECT sum(requests) FROM red"))[0]?.sum as number | undefined) ?? 0;
      await waitFor(async () => (await sum()) === total, { timeoutMs: 30_000, intervalMs: 250, what: `${total} requests in InfluxDB` });
      await settled(survivors);
      assert.equal(await sum(), total, "no loss, no double count");
      const got = await rows(influx.url, db, `SELECT sum(requests) FROM red GROUP BY time(${WINDOW}ms), service fill(none)`);
      assert.equal(got.length, perWindow.size, "every window of every service");
      for (const r of got) assert.equal(r.sum, perWindow.get(`${r.service} ${Date.parse(r.time as string)}`), `${r.service} at ${r.time}`);
      // The victim's services are now counted by the survivors, as their status says.
      const now = (await Promise.all(survivors.map((a) => a.info()))).flatMap(services);
      for (const s of victimServices) assert.ok(now.includes(s), `${s} taken over (${JSON.stringify(after.map((i) => i.partitions_owned))})`);
      const c = await Promise.all(survivors.map((a) => a.status()));
      assert.equal(c.reduce((k, x) => k + x.drops_late! + x.drops_decode!, 0), 0, "nothing dropped as late");
    } finally {
      stop = true;
      await gen;
    }
  });
});
