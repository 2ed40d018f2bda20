// Parsers and aggregators on one nats-server and on a 3-server NATS cluster (streams and buckets
// in 3 replicas), side by side in one run: records/s, CPU µs per record of every component
// (parsers, aggregators, nats-servers, influxd; from /proc/<pid>/stat), and what the cluster adds
// per record over the single server at the same parser/aggregator count. Every row checks that
// InfluxDB holds exactly the records fed in (`red`, sum of requests), and reports any drop counter
// that moved.
//
// Load: real HTTP/1.1 traffic (h2load against node:http, recorded through a loopback relay),
// replayed as the probe's RawBatches on the parsers' input subjects (no kernel involved), copied
// under fresh connection keys and one service name per copy so that the records spread over the
// aggregators' partitions. Each copy's timestamps are moved to the time it is published. Publishing is paced by
// the parsers' own progress (their progress entries in KV wirescope-parser-progress), a bounded window
// of batches in flight, so that input is never dropped for being offered too fast.
//
//   RawBatch ─▶ nats (core) ─▶ parser ×N ─▶ nats (JetStream, R1 or R3) ─▶ aggregator ×N ─▶ influxd
//
// records/s: from the first batch published until the aggregators have taken in every record.
// CPU: from the same start until InfluxDB holds every record (windows of 1 s, grace 10 s).
// In the cluster, each server's CPU is reported too, with the records stream's leader named.
// The rows run single / cluster alternately at each count, on servers started once.
//
// Usage (built; nats-server, influxd, h2load installed; free ports, no lock needed):
//   npm run bench -- cluster [--counts 1,2,3] [--copies 16]
//   or: node test/dist/cluster.bench.js [same flags]; WIRESCOPE_BENCH_COUNTS=1,3 works too.
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { REPO_ROOT, recordedRequests, runBench, startInflux, startNats, startNatsCluster, waitFor } from "./support/index.js";
import { cpuTicks } from "./probe-support.js";
import { captureThroughRelay, natsClient, parserStatus, startParser, toRawBatches, waitForFleet, type Conversation, type ParserProc } from "./parser-support.js";
import { startAggregator, type AggregatorProc } from "./aggregator-support.js";

const run = promisify(execFile);
const P = 64; // raw partitions (the parsers' default)
const WINDOW = 64; // batches in flight
const HZ = 100; // /proc/<pid>/stat clock ticks per second
// Short windows end the row soon after its load; the grace is up's average slack (10 s windows,
// 5 s grace: a record may arrive 5 to 15 s after its time), so that a record counted late here
// would be on average too under `up`.
const WINDOW_MS = 1000;
const GRACE_MS = 10_000;
const COMPONENTS = ["parser", "aggregator", "nats", "influxd"] as const;
type Component = (typeof COMPONENTS)[number];

const T0 = Date.now();
const progress = (line: string) => {
  const s = Math.round((Date.now() - T0) / 1000);
  console.log(`[${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}] ${line}`);
};
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "–");

function options(argv: string[]): { counts: number[]; copies: number } {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split(/=(.*)/s, 2);
    if (!k.startsWith("--")) throw new Error(`unexpected argument "${argv[i]}"`);
    flags.set(k.slice(2), inline ?? argv[++i]);
  }
  const get = (name: string, def: string) => flags.get(name) ?? process.env[`WIRESCOPE_BENCH_${name.toUpperCase()}`] ?? def;
  for (const k of flags.keys()) if (!["counts", "copies"].includes(k)) throw new Error(`unknown flag --${k} (--counts, --copies)`);
  const counts = get("counts", "1,2,3").split(",").map(Number);
  const copies = Number(get("copies", "16"));
  if (!counts.every((n) => n >= 1 && n <= 8 && Number.isInteger(n)) || !(copies >= 1)) throw new Error("--counts: 1 to 8 each; --copies: at least 1");
  return { counts, copies };
}

/** HTTP/1.1 keep-alive traffic of h2load against node:http, and the requests the server answered. */
async function httpTraffic(): Promise<{ convs: Conversation[]; handled: number }> {
  let handled = 0;
  const srv = http.createServer((_req, res) => {
    handled++;
    res.setHeader("content-type", "application/json");
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    const convs = await captureThroughRelay(port, "bench-http", async (relay) => {
      await run("h2load", ["--h1", "-n", "1500", "-c", "15", `http://127.0.0.1:${relay}/api/items?id=1`], { timeout: 60_000 });
    });
    return { convs, handled };
  } finally {
    srv.close();
  }
}

interface Setup {
  name: "single" | "cluster";
  urls: string[];
  replicas: number;
  natsPids: number[];
  /** Server names, in the order of natsPids (the records stream's leader is named by them). */
  natsNames: string[];
}

interface Row {
  setup: Setup["name"];
  n: number;
  expected: number;
  recorded: number;
  seconds: number;
  us: Record<Component, number>;
  sum: number;
  /** CPU (cores) each component used idle just before the load. */
  idle: Record<Component, number>;
  /** Seconds from the first batch published until InfluxDB held every record. */
  total: number;
  drops: string[];
  /** Each nats-server's CPU µs per record, and whether it led the records stream (from before
   *  the load to after it: a leader that moved meanwhile is named `moved`). */
  natsServers: { name: string; us: number; role: "leader" | "follower" | "moved" | "single" }[];
}

/** The parsers' acknowledged progress of `probeId` (batches), from their KV progress entries. */
async function watchProgress(nc: NatsConnection, probeId: string): Promise<{ done(): number; stop(): void }> {
  const seen = new Map<string, number>();
  let done = 0;
  const watch = await (await new Kvm(nc).create("wirescope-parser-progress")).watch({ key: ">" });
  void (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      for (const [k, v] of Object.entries(e.json<Record<string, number>>() ?? {})) {
        if (!k.startsWith(`${probeId}/`) || v <= (seen.get(k) ?? 0)) continue;
        done += v - (seen.get(k) ?? 0);
        seen.set(k, v);
      }
    }
  })();
  return { done: () => done, stop: () => watch.stop() };
}

const sumCounters = (all: Record<string, number>[], pick: (k: string) => boolean) => {
  const out = new Map<string, number>();
  for (const c of all) for (const [k, v] of Object.entries(c)) if (pick(k)) out.set(k, (out.get(k) ?? 0) + v);
  return out;
};
// spans_dropped: spans over the aggregator's per-window sample, not records (no OTLP endpoint here)
const isDrop = (k: string) => /drop|lost|late|gap/.test(k) && !/bytes|^spans_/.test(k);

async function runRow(setup: Setup, n: number, convs: Conversation[], perCopy: number, copies: number, influxUrl: string, influxPid: number, rowIndex: number): Promise<Row> {
  const tag = `[${setup.name} ${n}/${n}]`;
  const url = setup.urls.join(",");
  const db = `bench_${setup.name}_${n}_${rowIndex}`;
  // (the parsers log at info: startParser waits for their "partitions rebalanced")
  const common = ["--nats-replicas", String(setup.replicas), "--metrics-port", "0"];
  const nc = await natsClient(url);
  let parsers: ParserProc[] = [];
  let aggs: AggregatorProc[] = [];
  try {
    // the records stream emptied: this row's aggregators (a durable of their own) read only its records
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge("WIRESCOPE_RECORDS").catch(() => undefined);
    const recordsLeader = async () => (await jsm.streams.info("WIRESCOPE_RECORDS").catch(() => undefined))?.cluster?.leader ?? "";
    const builtins = ["--builtin-dir", path.join(REPO_ROOT, "parsers-wasm/build")];
    parsers = await Promise.all(Array.from({ length: n }, (_, i) => startParser(url, [...builtins, ...common], `parser-${setup.name}-${n}-${i}`)));
    await waitForFleet(parsers, P, 60_000);
    const durable = `bench-${rowIndex}`;
    aggs = await Promise.all(Array.from({ length: n }, () => startAggregator(url, influxUrl, db, ["--window-ms", String(WINDOW_MS), "--grace-ms", String(GRACE_MS), "--durable", durable, "--log-level", "warn", ...common])));
    await waitFor(async () => (await Promise.all(aggs.map((a) => a.info()))).every((i) => (i.members ?? "").split(",").length === n), { timeoutMs: 60_000, intervalMs: 500, what: `${n} aggregators see each other` });
    await new Promise((r) => setTimeout(r, 1000)); // partitions settle after the rebalance

    // what the components use idle (heartbeats, RAFT, KV refreshes), over 3 s before the load
    const pids: Record<Component, number[]> = { parser: parsers.map((p) => p.proc.pid), aggregator: aggs.map((a) => a.proc.pid), nats: setup.natsPids, influxd: [influxPid] };
    const ticks = () => Object.fromEntries(COMPONENTS.map((c) => [c, pids[c].reduce((s, pid) => s + cpuTicks(pid), 0)])) as Record<Component, number>;
    const i0 = ticks();
    await new Promise((r) => setTimeout(r, 3000));
    const i1 = ticks();
    const idle = Object.fromEntries(COMPONENTS.map((c) => [c, (i1[c] - i0[c]) / HZ / 3])) as Record<Component, number>;

    // this row's load: `copies` copies of the traffic, each its own service, each stamped as it
    // is published (so that no window closes on records still on their way, whatever the pace)
    const probeId = `bench-${setup.name}-${rowIndex}-${process.pid}`;
    const start = convs.reduce((m, c) => (c.startNs < m ? c.startNs : m), convs[0].startNs);
    const seqs = new Map<number, number>();
    const copy = (k: number) => {
      const shift = BigInt(Date.now()) * 1_000_000n - start;
      const stamped = convs.map((c) => ({ ...c, serverProcess: `bench-svc-${k}`, startNs: c.startNs + shift, endNs: c.endNs + shift, chunks: c.chunks.map((ch) => ({ ...ch, tsNs: ch.tsNs + shift })) }));
      return toRawBatches(stamped, { partitions: P, firstKey: (BigInt(rowIndex + 1) << 32n) + BigInt(k * convs.length), probeId, node: "bench-node", seqStart: seqs }).batches;
    };
    const expected = perCopy * copies;
    const watcher = await watchProgress(nc, probeId);
    const drops0 = sumCounters([...(await Promise.all(parsers.map(async (p) => (await parserStatus(p)).counters))), ...(await Promise.all(aggs.map((a) => a.status())))], isDrop);

    const leader0 = await recordsLeader();
    const eachNats = () => setup.natsPids.map((pid) => cpuTicks(pid));
    const n0 = eachNats();
    const c0 = ticks();
    const t0 = performance.now();
    let sent = 0;
    for (let k = 0; k < copies; k++) {
      for (const b of copy(k)) {
        while (sent - watcher.done() >= WINDOW) {
          await nc.flush();
          await new Promise((r) => setTimeout(r, 2));
        }
        nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
        sent++;
      }
    }
    await nc.flush();
    watcher.stop();
    const aggregated = async () => (await Promise.all(aggs.map((a) => a.status()))).reduce((s, c) => s + (c.records_in ?? 0), 0);
    await waitFor(async () => (await aggregated()) >= expected, { timeoutMs: 120_000, intervalMs: 100, what: "the aggregators to take in every record" }).catch(() => undefined);
    const seconds = (performance.now() - t0) / 1000;
    progress(`${tag} ${fmt(await aggregated())} of ${fmt(expected)} records taken in by the aggregators in ${seconds.toFixed(1)} s; waiting for InfluxDB`);
    let recorded = 0;
    await waitFor(
      async () => {
        recorded = await recordedRequests(influxUrl, "server", {}, db);
        return recorded >= expected;
      },
      { timeoutMs: WINDOW_MS + GRACE_MS + 30_000, intervalMs: 1000, what: "every record in InfluxDB" },
    ).catch(() => undefined);
    const c1 = ticks();
    const n1 = eachNats();
    const leader1 = await recordsLeader();
    const total = (performance.now() - t0) / 1000;
    const us = Object.fromEntries(COMPONENTS.map((c) => [c, (((c1[c] - c0[c]) / HZ) * 1e6) / expected])) as Record<Component, number>;
    const drops1 = sumCounters([...(await Promise.all(parsers.map(async (p) => (await parserStatus(p)).counters))), ...(await Promise.all(aggs.map((a) => a.status())))], isDrop);
    const drops = [...drops1].filter(([k, v]) => v > (drops0.get(k) ?? 0)).map(([k, v]) => `${k} ${fmt(v - (drops0.get(k) ?? 0))}`);
    const natsServers = setup.natsNames.map((name, i) => ({
      name,
      us: (((n1[i]! - n0[i]!) / HZ) * 1e6) / expected,
      role: setup.replicas === 1 ? ("single" as const) : leader0 !== leader1 ? ("moved" as const) : name === leader0 ? ("leader" as const) : ("follower" as const),
    }));
    const row: Row = { setup: setup.name, n, expected, recorded, seconds, us, sum: COMPONENTS.reduce((s, c) => s + us[c], 0), idle, total, drops, natsServers };
    progress(`${tag} ${fmt(expected / seconds)} records/s; recorded ${fmt(recorded)} of ${fmt(expected)}${recorded === expected ? " (exact)" : ""}; CPU µs/record ${COMPONENTS.map((c) => `${c} ${fmt(us[c], 1)}`).join(", ")}, sum ${fmt(row.sum, 1)} over ${total.toFixed(1)} s; idle before: ${COMPONENTS.map((c) => `${c} ${fmt(idle[c] * 100, 1)}%`).join(", ")} of a core; ${drops.length ? `drops: ${drops.join(", ")}` : "no drop counter moved"}`);
    return row;
  } finally {
    await Promise.all([...parsers.map((p) => p.proc.stop()), ...aggs.map((a) => a.stop())]);
    await nc.close();
  }
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  const load0 = os.loadavg();
  const head = `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Linux ${os.release()}, Node ${process.version}; load average ${load0.map((l) => l.toFixed(1)).join(" ")} (1, 5, 15 min) at the start`;
  console.log(head);
  const { convs, handled } = await httpTraffic();
  progress(`load: ${convs.length} HTTP/1.1 connections, ${handled} requests answered, × ${o.copies} copies = ${fmt(handled * o.copies)} records per row (${o.copies} services)`);
  const influx = await startInflux();
  const single = await startNats({ jetstream: true });
  const cluster = await startNatsCluster(3);
  const setups: Setup[] = [
    { name: "single", urls: [single.url], replicas: 1, natsPids: [single.pid], natsNames: ["single"] },
    { name: "cluster", urls: cluster.urls, replicas: 3, natsPids: cluster.servers.map((s) => s.pid), natsNames: cluster.names },
  ];
  const rows: Row[] = [];
  try {
    let i = 0;
    for (const n of o.counts) for (const s of setups) rows.push(await runRow(s, n, convs, handled, o.copies, influx.url, influx.pid, i++));
  } finally {
    await Promise.all([cluster.stop(), single.stop(), influx.stop()]);
  }

  console.log(`\n${head}; ${os.loadavg()[0].toFixed(1)} at the end (1 min)\n`);
  console.log("| NATS | parsers / aggregators | records | recorded in InfluxDB | records/s | parser | aggregator | nats-server(s) | influxd | **sum** µs/record | seconds to InfluxDB | nats-server(s) idle, % of a core | drops |");
  console.log("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const r of rows) {
    console.log(
      `| ${r.setup === "single" ? "1 server, R1" : "3-server cluster, R3"} | ${r.n} / ${r.n} | ${fmt(r.expected)} | ${fmt(r.recorded)}${r.recorded === r.expected ? " (exact)" : r.recorded < r.expected ? " (LOST)" : " (MORE than fed in)"} | ${fmt(r.expected / r.seconds)} | ` +
        `${COMPONENTS.map((c) => fmt(r.us[c], 1)).join(" | ")} | **${fmt(r.sum, 1)}** | ${r.total.toFixed(1)} | ${fmt(r.idle.nats * 100, 1)} | ${r.drops.length ? r.drops.join(", ") : "none"} |`,
    );
  }
  console.log("\ncluster over single server, same counts, measured side by side:\n");
  console.log("| parsers / aggregators | nats-server(s) µs/record | parser | aggregator | **sum** µs/record | records/s |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const n of o.counts) {
    const [s, c] = [rows.find((r) => r.setup === "single" && r.n === n), rows.find((r) => r.setup === "cluster" && r.n === n)];
    if (!s || !c) continue;
    const d = (k: Component) => `${c.us[k] - s.us[k] >= 0 ? "+" : ""}${fmt(c.us[k] - s.us[k], 1)}`;
    console.log(`| ${n} / ${n} | ${d("nats")} | ${d("parser")} | ${d("aggregator")} | **${c.sum - s.sum >= 0 ? "+" : ""}${fmt(c.sum - s.sum, 1)}** (×${(c.sum / s.sum).toFixed(2)}) | ${fmt(s.expected / s.seconds)} → ${fmt(c.expected / c.seconds)} |`);
  }
  console.log("\nnats-server CPU per record in the cluster, by role in the records stream (its leader stores every batch and sends it to both followers):\n");
  console.log("| parsers / aggregators | records stream leader µs/record | each follower µs/record | leader's share of the cluster |");
  console.log("|---|---:|---:|---:|");
  for (const r of rows.filter((x) => x.setup === "cluster")) {
    const lead = r.natsServers.find((s) => s.role === "leader");
    const rest = r.natsServers.filter((s) => s.role === "follower");
    const all = r.natsServers.reduce((a, s) => a + s.us, 0);
    if (!lead) console.log(`| ${r.n} / ${r.n} | leader moved during the row (${r.natsServers.map((s) => `${s.name} ${fmt(s.us, 1)}`).join(", ")}) | | |`);
    else console.log(`| ${r.n} / ${r.n} | ${fmt(lead.us, 1)} (${lead.name}) | ${rest.map((s) => fmt(s.us, 1)).join(", ")} | ${((lead.us / all) * 100).toFixed(0)} % |`);
  }
  const lost = rows.filter((r) => r.recorded !== r.expected);
  if (lost.length) console.error(`\nrecorded ≠ fed in: ${lost.map((r) => `${r.setup} ${r.n}/${r.n} (${fmt(r.recorded)} of ${fmt(r.expected)})`).join(", ")}`);
  return lost.length ? 1 : 0;
}

runBench(main);
