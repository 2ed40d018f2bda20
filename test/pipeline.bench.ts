// The whole pipeline, measured as a user runs it: `wirescope up` (real probe on this kernel,
// nats-server, parser, aggregator, influxd), real servers and real load generators, at a ladder
// of fixed rates up to the first loss and one step past it. For every row, side by side: CPU µs
// per record of each pipeline process and their sum, bytes the probe published per record and
// the parser's RecordBatch bytes per record, requests recorded in InfluxDB (`red`, both ends)
// against requests sent, the app's throughput and p99 against an untraced run of the same load
// just before, and the first loss counter that moved. Ends with a Markdown table for
// docs/benchmarks.md and, with the per-conn shape, the check that cost per record does not grow
// with requests per connection (PASS/FAIL, exit 1).
//
// Each row: untraced run -> `wirescope up` (fresh data dir) -> traced run -> wait until the
// aggregator's windows have closed and InfluxDB has the records -> CPU and counters -> stop.
// Uses up's fixed ports, so the whole run holds /tmp/wirescope-stack.lock.
//
// Usage (root; h2load, nats-server, influxd, mariadb installed; built):
//   npm run bench -- pipeline [flags], or node test/dist/pipeline.bench.js [flags]; --help
//   lists them (the table FLAGS), with their WIRESCOPE_BENCH_<FLAG> variables and defaults.
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import { execFileSync } from "node:child_process";
import { recordedRequests, runBench, tempDir } from "./support/index.js";
import { cpuTicks } from "./probe-support.js";
import { holdStackLock, startStack, recordedServices, isLossCounter, INFLUX_DB, INFLUX_URL, PIPELINE, STACK_LOCK, type Counters, type PipelineProcess, type Stack } from "./pipeline-support/stack.js";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime";
import { SHAPES, type Load, type LoadResult, type RunningShape, type Shape } from "./pipeline-support/shapes.js";

interface Options {
  shapes: string[];
  /** Rates of each shape's ladder (not per-conn's). */
  ladders: Record<string, number[]>;
  perConn: number[];
  perConnRate: number;
  seconds: number;
}

const ALL_SHAPES = Object.keys(SHAPES).join(",");

/** The bench's flags: --help prints them; each but --help has a WIRESCOPE_BENCH_<FLAG> variable too. */
const FLAGS: FlagSpec[] = [
  ...withEnv("bench", [
    { flag: "quick", description: "http1 at 5,000 req/s only" },
    { flag: "shapes", value: "LIST", default: ALL_SHAPES, description: "shapes to run" },
    { flag: "rates", value: "LIST", default: "http1 5000,20000, the others 5000", description: "req/s of each shape's ladder" },
    { flag: "conn-rates", value: "LIST", default: "1000", description: "new connections per second of the newconn shape" },
    { flag: "per-conn", value: "LIST", default: "10,100000", description: "requests per connection of the per-conn shape" },
    { flag: "per-conn-rate", value: "N", default: "5000", description: "req/s of the per-conn shape" },
    { flag: "seconds", value: "N", default: "4", description: "length of each run" },
  ]),
  { flag: "help", short: "h", description: "this text" },
];

const USAGE = `usage: npm run bench -- pipeline [flags]   (root; h2load, nats-server, influxd, mariadb installed; built)

The whole pipeline as \`wirescope up\` runs it, at a ladder of fixed rates per traffic shape: CPU µs
per record of each pipeline process, bytes published per record (the probe's raw batches and the
parser's RecordBatches), requests recorded against sent, the traced app against an untraced run,
and the first loss counter that moved.

${flagsHelp(FLAGS)}

LIST is comma-separated; 20k means 20000.`;

function parseOptions(argv: string[]): Options | "help" {
  const flags = parseFlags(argv, FLAGS, { env: process.env });
  if (flags.has("help")) return "help";
  // a flag's default is its row's, except where it depends on the shape (rates, --quick)
  const list = (name: string, def = FLAGS.find((f) => f.flag === name)!.default!) => (flags.get(name) ?? def).split(",").filter(Boolean);
  const nums = (name: string, def?: string) =>
    list(name, def).map((v) => {
      const n = Number(v.replace(/k$/i, "000"));
      if (!(n > 0)) throw new Error(`--${name}: "${v}" is not a positive number`);
      return n;
    });
  const quick = flags.has("quick");
  const o: Options = {
    shapes: list("shapes", quick ? "http1" : undefined),
    // short by default: http1 at a lossless rate and one past it, the others at one rate
    ladders: Object.fromEntries(
      Object.keys(SHAPES).map((s) => [s, s === "newconn" ? nums("conn-rates") : nums("rates", quick || s !== "http1" ? "5000" : "5000,20000")]),
    ),
    perConn: nums("per-conn"),
    perConnRate: nums("per-conn-rate")[0],
    seconds: nums("seconds")[0],
  };
  for (const s of o.shapes) if (!SHAPES[s]) throw new Error(`unknown shape "${s}" (${Object.keys(SHAPES).join(", ")})`);
  return o;
}

interface Row {
  shape: string;
  label: string;
  load: Load;
  untraced: LoadResult;
  traced: LoadResult;
  /** Requests the server handled during the traced run, when it can tell. */
  handled?: number;
  recServer: number;
  recClient: number;
  /** CPU µs per record (2 records per request: client and server end). */
  us: Record<PipelineProcess, number>;
  sum: number;
  bytesPerRecord: number;
  /** RecordBatch bytes the parser published per record (JetStream-acknowledged). */
  recordBytesPerRecord: number;
  /** CPU µs per request of the app's server process, untraced and traced. */
  appUs: [number, number];
  /** Records the aggregator took in beyond this run's own (other processes on the machine). */
  otherRecords: number;
  /** Loss counters that moved, in the order they first did: [component/name, delta]. */
  drops: [string, number][];
  /** Every request recorded exactly once at each end. */
  exact: boolean;
  /** The pipeline was still working when the wait for records gave up. */
  stillBusy: boolean;
  /** Exact, and no loss counter moved (the issue's definition of lossless). */
  lossless: boolean;
  seconds: number;
}

const HZ = 100; // /proc/<pid>/stat clock ticks per second (CLK_TCK on Linux)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "–");
const T0 = Date.now();
/** Progress line, stamped with the time since the start ("[m:ss]"). */
const progress = (line: string) => {
  const s = Math.round((Date.now() - T0) / 1000);
  console.log(`[${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}] ${line}`);
};
const say = (line: string) => console.log(line);
const WINDOW_MS = 10_000; // the aggregator's defaults under `up`: 10 s windows, 5 s grace
const GRACE_MS = 5_000;
const WAIT_MS = 30_000; // longest wait for the records once the windows have closed

/**
 * `wirescope up`, tried up to 3 times: the probe's single-instance lock (/run/wirescope-probe.lock)
 * may be held for a while by a test's stack on free ports, which does not take the stack lock.
 */
async function startStackRetrying(dir: string, tag: string): Promise<Stack> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStack(dir);
    } catch (e) {
      if (attempt === 3) throw e;
      progress(`${tag} wirescope up failed (${(e as Error).message.split("\n")[0]}); trying again in 15 s`);
      fs.rmSync(dir, { recursive: true, force: true });
      await sleep(15_000);
    }
  }
}

/** One row: untraced run, then the same load with the whole pipeline running. */
async function runRow(shape: Shape, app: RunningShape, load: Load, label: string, work: string, baseline = load): Promise<Row> {
  const tag = `[${shape.name} ${label}]`;
  const a0 = cpuTicks(app.serverPid);
  const untraced = await app.load(baseline);
  const appUntraced = ((cpuTicks(app.serverPid) - a0) / HZ) * 1e6 / baseline.requests;
  progress(`${tag} untraced: ${fmt(untraced.rps)} req/s, p99 ${fmt(untraced.p99ms, 2)} ms${untraced.failed ? `, ${untraced.failed} failed` : ""}`);

  const dir = path.join(work, `${shape.name}-${label.replace(/\W+/g, "_")}`);
  const stack = await startStackRetrying(dir, tag);
  try {
    progress(`${tag} wirescope up ready: ${PIPELINE.map((p) => `${p} ${stack.pids[p]}`).join(", ")}`);
    // the first Status calls open this process's gRPC connections (traced like any other): done
    // before the settle time, so that their decoding is not counted in the run
    await stack.counters();
    await sleep(3000); // let the services settle after start-up
    const c0 = await stack.counters();
    const t0 = stack.ticks();
    const firstSeen = new Map<string, number>();
    const watch = (c: Counters) => {
      for (const [k, v] of c) if (isLossCounter(k) && v > (c0.get(k) ?? 0) && !firstSeen.has(k)) firstSeen.set(k, Date.now());
    };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        watch(await stack.counters());
        await sleep(1000);
      }
    })();
    const h0 = await app.handled();
    const a1 = cpuTicks(app.serverPid);
    const started = Date.now();
    const traced = await app.load(load);
    const ended = Date.now();
    const appTraced = ((cpuTicks(app.serverPid) - a1) / HZ) * 1e6 / load.requests;
    const h1 = await app.handled();
    progress(`${tag} traced:   ${fmt(traced.rps)} req/s, p99 ${fmt(traced.p99ms, 2)} ms${traced.failed ? `, ${traced.failed} failed` : ""}; waiting for the windows to close`);

    // every window holding this run's records is closed once wall time passes its end + grace
    const closeAt = Math.ceil(ended / WINDOW_MS) * WINDOW_MS + GRACE_MS + 2000;
    await sleep(closeAt - Date.now());
    const sent = traced.ok;
    // Then wait until the records are all in InfluxDB, or until nothing changes any more: counts
    // steady for 5 s while parser, aggregator and influxd together use under 20% of a core (an
    // aggregator still closing windows, or a backlog in JetStream, keeps them busy), or give up
    // WAIT_MS after the windows closed (the row then says how far it got).
    let rec: [number, number] = [-1, -1];
    let stableSince = Date.now();
    const busyTicks = () => {
      const t = stack.ticks();
      return t.parser + t.aggregator + t.influxd;
    };
    let busy = [busyTicks(), Date.now()];
    let stillBusy = false;
    const red = (service: string, role: "server" | "client") => recordedRequests(INFLUX_URL, role, { service, ...(app.operation ? { operation: app.operation } : {}) }, INFLUX_DB);
    for (const giveUp = Date.now() + WAIT_MS; ; ) {
      const now: [number, number] = [await red(app.serverService, "server"), await red(app.clientService, "client")];
      if (now[0] !== rec[0] || now[1] !== rec[1]) stableSince = Date.now();
      rec = now;
      const [b, t] = [busyTicks(), Date.now()];
      const cores = (b - busy[0]) / HZ / ((t - busy[1]) / 1000);
      busy = [b, t];
      if (rec[0] >= sent && rec[1] >= sent) break;
      if (Date.now() - stableSince >= 5000 && cores < 0.2) break;
      if (Date.now() > giveUp) {
        stillBusy = true;
        break;
      }
      progress(`${tag} recorded so far: server ${fmt(rec[0])}, client ${fmt(rec[1])} of ${fmt(sent)}; parser + aggregator + influxd busy ${fmt(cores * 100)}% of a core`);
      await sleep(2000);
    }
    await sleep(1000); // the last window's points are written: give influxd a moment to finish
    const t1 = stack.ticks();
    polling = false;
    await poller;
    const c1 = await stack.counters();
    watch(c1);
    if (rec[0] === 0 && rec[1] === 0) progress(`${tag} nothing recorded for ${app.serverService} / ${app.clientService}; services in InfluxDB: ${(await recordedServices()).join(", ")}`);

    const records = 2 * sent;
    const us = Object.fromEntries(PIPELINE.map((p) => [p, (((t1[p] - t0[p]) / HZ) * 1e6) / records])) as Record<PipelineProcess, number>;
    const delta = (k: string) => (c1.get(k) ?? 0) - (c0.get(k) ?? 0);
    const order = (k: string) => ["probe", "parser", "aggregator"].indexOf(k.split("/")[0]);
    const drops = [...c1.keys()]
      .filter((k) => isLossCounter(k) && delta(k) > 0)
      .sort((x, y) => (firstSeen.get(x) ?? Infinity) - (firstSeen.get(y) ?? Infinity) || order(x) - order(y))
      .map((k) => [k, delta(k)] as [string, number]);
    const row: Row = {
      shape: shape.name,
      label,
      load,
      untraced,
      traced,
      handled: h0 !== undefined && h1 !== undefined ? h1 - h0 : undefined,
      recServer: rec[0],
      recClient: rec[1],
      us,
      sum: PIPELINE.reduce((s, p) => s + us[p], 0),
      bytesPerRecord: delta("probe/nats_published_bytes") / records,
      recordBytesPerRecord: delta("parser/records_published_bytes") / Math.max(1, delta("parser/records_published")),
      appUs: [appUntraced, appTraced],
      otherRecords: Math.max(0, delta("aggregator/records_in") - rec[0] - rec[1]),
      drops,
      exact: rec[0] === sent && rec[1] === sent,
      stillBusy,
      lossless: rec[0] === sent && rec[1] === sent && drops.length === 0,
      seconds: (ended - started) / 1000,
    };
    progress(
      `${tag} ${stillBusy ? `gave up waiting ${WAIT_MS / 1000} s after the windows closed, the pipeline still busy; ` : ""}recorded server ${fmt(rec[0])} / client ${fmt(rec[1])} of ${fmt(sent)} sent${row.handled !== undefined && row.handled !== sent ? ` (server handled ${fmt(row.handled)})` : ""}; ` +
        `CPU µs/record ${PIPELINE.map((p) => `${p} ${fmt(us[p], 1)}`).join(", ")}, sum ${fmt(row.sum, 1)}; ${fmt(row.bytesPerRecord)} B published/record (raw), ${fmt(row.recordBytesPerRecord)} B/record of RecordBatch; ` +
        `other records in the pipeline ${fmt(row.otherRecords)}; ${drops.length ? `drops: ${drops.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}` : "no drop counter moved"}`,
    );
    return row;
  } finally {
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function machine(): string[] {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    } catch {
      return "?";
    }
  };
  return [
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`,
    `date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, commit ${git(["rev-parse", "--short", "HEAD"])}${git(["status", "--porcelain", "--untracked-files=no"]) ? " (modified)" : ""}`,
  ];
}

function table(rows: Row[]): string[] {
  const out = [
    "| shape | offered | requests | recorded server / client | probe | nats | parser | aggregator | influxd | **sum** µs/record | B published / record | RecordBatch B / record | req/s untraced → traced | p99 ms untraced → traced | app µs/req untraced → traced | other records | first drop |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---|",
  ];
  for (const r of rows) {
    const exact = r.exact ? " (exact)" : r.stillBusy ? ` (pipeline still busy ${WAIT_MS / 1000} s after the windows closed)` : "";
    out.push(
      `| ${r.shape} | ${r.label} | ${fmt(r.traced.ok)} | ${fmt(r.recServer)} / ${fmt(r.recClient)}${exact} | ` +
        PIPELINE.map((p) => fmt(r.us[p], 1)).join(" | ") +
        ` | **${fmt(r.sum, 1)}** | ${fmt(r.bytesPerRecord)} | ${fmt(r.recordBytesPerRecord)} | ${fmt(r.untraced.rps)} → ${fmt(r.traced.rps)} | ${fmt(r.untraced.p99ms, 2)} → ${fmt(r.traced.p99ms, 2)} | ` +
        `${fmt(r.appUs[0], 1)} → ${fmt(r.appUs[1], 1)} | ${fmt(r.otherRecords)} | ${r.drops.length ? `${r.drops[0][0]} (${fmt(r.drops[0][1])})` : "none"} |`,
    );
  }
  return out;
}

async function main(): Promise<number> {
  let o: Options | "help";
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`pipeline bench: ${e instanceof Error ? e.message : String(e)} (--help lists the flags)`);
    return 2;
  }
  if (o === "help") {
    console.log(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.log("skipped: the probe needs root");
    return 0;
  }
  const release = await holdStackLock(() => say(`waiting for ${STACK_LOCK} (another stack on the fixed ports is running)…`));
  const head = machine();
  const load0 = os.loadavg()[0];
  say(head.join("\n"));
  say(`wirescope up on its fixed ports (nats 4222, influxd 8086, gRPC 7701-7703), holding ${STACK_LOCK}`);
  const ladders = o.shapes.filter((s) => s !== "per-conn").map((s) => `${s} ${o.ladders[s].join(", ")} ${SHAPES[s].unit}`);
  say(`shapes ${o.shapes.join(", ")}; ladders: ${ladders.join("; ")}; per-conn ${o.perConn.join(", ")} requests per connection at ${o.perConnRate} req/s; ${o.seconds} s per run`);
  const work = tempDir("wirescope-pipeline-");
  const rows: Row[] = [];
  let failure: unknown;
  try {
    for (const name of o.shapes) {
      const shape = SHAPES[name];
      say(`\n${shape.name}: ${shape.what}`);
      const app = await shape.start();
      try {
        if (name === "per-conn") {
          // every traced run carries the largest R on one connection; the untraced runs are shorter
          const requests = Math.max(...o.perConn, o.perConnRate * o.seconds);
          for (const perConn of o.perConn) {
            const base = { rate: o.perConnRate, requests: Math.min(requests, o.perConnRate * o.seconds), perConn };
            rows.push(await runRow(shape, app, { rate: o.perConnRate, requests, perConn }, `${fmt(perConn)} per conn`, work, base));
          }
          continue;
        }
        await app.load({ rate: 1000, requests: 1000 }); // warm-up (JIT, connections), not counted
        let lossAt: number | undefined;
        for (const rate of o.ladders[name]) {
          const row = await runRow(shape, app, { rate, requests: Math.round(rate * o.seconds) }, `${fmt(rate)} ${shape.unit}`, work);
          rows.push(row);
          if (lossAt !== undefined) break; // one step past the first loss
          if (!row.lossless) lossAt = rate;
          if (row.untraced.rps < 0.9 * rate) {
            progress(`[${name}] the untraced app reached only ${fmt(row.untraced.rps)} of ${fmt(rate)} ${shape.unit}: higher rates are not offered on this machine`);
            break;
          }
        }
      } finally {
        await app.stop();
      }
    }
  } catch (e) {
    failure = e; // the rows measured so far are still reported
  }
  release();

  say(`\n${head.join("\n")}\nload average ${load0.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end (1 min)\n`);
  say(table(rows).join("\n"));
  say(
    "\nrecords = 2 per request (client and server end both traced); CPU from /proc (user + system) of each pipeline process from just before the traced run until its windows were written; " +
      "other records: taken in by the aggregator from other processes on the machine in the same interval (their cost is in the CPU figures).",
  );
  const pc = rows.filter((r) => r.shape === "per-conn");
  if (pc.length >= 2) {
    const [lo, hi] = [pc[0], pc[pc.length - 1]];
    const ratio = hi.sum / lo.sum;
    const ok = ratio >= 0.8 && ratio <= 1.2;
    say(
      `\nper-conn: ${lo.label} ${fmt(lo.sum, 1)} µs/record, ${hi.label} ${fmt(hi.sum, 1)} µs/record: ratio ${ratio.toFixed(2)} ` +
        `(aim 0.80–1.20)${lo.exact && hi.exact ? "" : "; a row lost records, so the figures are not comparable"}: ${ok && lo.exact && hi.exact ? "PASS" : "FAIL"}`,
    );
    if (!(ok && lo.exact && hi.exact)) return 1;
  }
  if (failure) {
    console.error(`\nthe benchmark stopped early: ${failure instanceof Error ? failure.stack : String(failure)}`);
    return 1;
  }
  return 0;
}

runBench(main);
