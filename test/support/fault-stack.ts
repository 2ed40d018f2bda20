// The fault suite's test bed: a `wirescope up` stack on free ports (one nats-server or a cluster),
// its probe tracing only the workload's port, a steady HTTP workload counted at the server, and
// the counters that say what the pipeline lost and why.
//
//   workload (node:http, keep-alive) ──▶ probe ──▶ nats ──▶ parser ──▶ nats (JetStream) ──▶ aggregator ──▶ influxd
//   served at the server ───────────────────────────── compared with ─────────────── sum(requests) in `red`
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { observedRequests, recordedRequests, tempDir, upNatsUser, waitFor } from "./servers.js";
import { portPicker, stackPorts, stackArgs, privateRun, type StackPorts } from "./stack.js";
import { REPO_ROOT } from "./repo.js";

const run = promisify(execFile);

export interface StatusRow {
  component: string;
  instance: string;
  address: string;
  health: string;
  counters: Record<string, number>;
  info: Record<string, string>;
  restarts?: number;
}

export interface UpStack {
  dataDir: string;
  ports: StackPorts;
  /** Client URL of each nats-server, in up's order (nats-server-1 …). */
  natsUrls: string[];
  influxUrl: string;
  /** Everything up printed so far. */
  output(): string;
  /** The current pid of a child by up's name (nats-server-2, influxd, parser…), following restarts. */
  pid(name: string): number;
  /** How many times up restarted a child. */
  restarts(name: string): number;
  /** `wirescope status --json`. */
  status(): Promise<StatusRow[]>;
  /** Counters of a component, summed over its instances. */
  counters(component: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/**
 * Starts `wirescope up --no-demo` on free ports in a private /run (the probe's single-instance
 * lock is this stack's own), with its probe limited to `tracePort`, and waits for `ready`.
 */
export async function startUpStack(opts: { tracePort: number; extraTracePorts?: number[]; natsCluster?: number; aggregators?: number; parsers?: number; extra?: string[] }): Promise<UpStack> {
  const dataDir = tempDir("wirescope-faults-");
  const pick = portPicker();
  const ports = await stackPorts(opts.aggregators ?? 1, opts.parsers ?? 1, pick);
  const n = opts.natsCluster ?? 1;
  const natsPorts = [ports.nats];
  for (let i = 1; i < n; i++) natsPorts.push(await pick());
  const natsUrls = natsPorts.map((p) => `nats://127.0.0.1:${p}`);
  const args = [
    ...stackArgs(dataDir, ports),
    "--nats-url", natsUrls.join(","),
    ...(n > 1 ? ["--nats-cluster", String(n)] : []),
    ...((opts.aggregators ?? 1) > 1 ? ["--aggregators", String(opts.aggregators)] : []),
    ...((opts.parsers ?? 1) > 1 ? ["--parsers", String(opts.parsers)] : []),
    "--probe-metrics-port", "0", "--parser-metrics-port", "0", "--aggregator-metrics-port", "0",
    "--no-install", "--no-build", "--no-demo",
    // The suite counts loss exactly (sent − recorded = counted): no sampling because the faults
    // leave the machine without spare CPU (that budget has its own test, probe-pipeline-budget).
    "--pipeline-cpu-budget", "0",
    "--probe-args", [opts.tracePort, ...(opts.extraTracePorts ?? [])].map((p) => `--allow-port ${p}`).join(" "),
    ...(opts.extra ?? []),
  ];
  const up = spawn(...privateRun([process.execPath, "bin/wirescope.js", "up", ...args]), {
    cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  // Last resort if the test process ends abruptly: up's children run in their own process
  // groups, so each pid up reported is killed too, not only up's group.
  const every = () => [...out.matchAll(/^(?:nats-server(?:-\d)?|influxd|probe|parser(?:-\d)?|aggregator(?:-\d)?)\s+(\d+)\s/gm), ...out.matchAll(/restarted \S+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  let stopped = false;
  const killAll = () => {
    for (const pid of [-up.pid!, ...every()]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-up.pid!, "SIGINT");
    } catch {
      // gone
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000).unref())]);
    // up stops its children before it exits 0; otherwise (hung, crashed) they are killed here
    if (up.exitCode !== 0) killAll();
    // WIRESCOPE_FAULT_LOGS=dir keeps every process's log of the run (the data dir goes at exit)
    const keep = process.env.WIRESCOPE_FAULT_LOGS;
    if (keep) fs.cpSync(path.join(dataDir, "logs"), path.join(keep, path.basename(dataDir)), { recursive: true });
  };
  process.once("exit", () => {
    if (!stopped) killAll();
  });
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 240_000, intervalMs: 200, what: "`ready` from up" });
    if (up.exitCode !== null) throw new Error(`up exited early:\n${out}`);
    if (/capture is OFF/.test(out)) throw new Error(`the probe is not capturing:\n${out}`);
  } catch (e) {
    await stop();
    throw e;
  }
  const influxUrl = `http://127.0.0.1:${ports.influx}`;
  const pid = (name: string) => {
    let p = 0;
    for (const m of out.matchAll(new RegExp(`^${name}\\s+(\\d+)\\s`, "gm"))) p = Number(m[1]);
    for (const m of out.matchAll(new RegExp(`restarted ${name} \\(pid (\\d+)\\)`, "g"))) p = Number(m[1]);
    return p;
  };
  const status = async () => {
    const r = await run(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "10000", "--data-dir", dataDir, "--nats-url", natsUrls.join(","), "--influx-url", influxUrl], { cwd: REPO_ROOT, timeout: 60_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "[]" }));
    return JSON.parse(r.stdout) as StatusRow[];
  };
  return {
    dataDir,
    ports,
    natsUrls,
    influxUrl,
    output: () => out,
    pid,
    restarts: (name) => [...out.matchAll(new RegExp(`restarted ${name} \\(pid \\d+\\)`, "g"))].length,
    status,
    counters: async (component) => {
      // summed over every instance (several parser replicas)
      const sum: Record<string, number> = {};
      for (const r of await status()) if (r.component === component) for (const [k, v] of Object.entries(r.counters)) sum[k] = (sum[k] ?? 0) + v;
      return sum;
    },
    stop,
  };
}

export interface HttpApp {
  port: number;
  /** Responses the server finished (the truth the pipeline is compared with). */
  served(): number;
  /** Smallest request on the wire, in bytes (each keep-alive request's share of the socket's bytes). */
  requestBytes(): number;
  close(): Promise<void>;
}

/** The traced app: a node:http server on a free loopback port answering "ok", counting what it served. */
export async function startHttpApp(): Promise<HttpApp> {
  let served = 0;
  let minReq = Infinity;
  const lastRead = new WeakMap<net.Socket, number>();
  const server = http.createServer((req, res) => {
    const s = req.socket;
    const read = s.bytesRead - (lastRead.get(s) ?? 0);
    lastRead.set(s, s.bytesRead);
    if (read > 0 && read < minReq) minReq = read;
    res.on("finish", () => served++);
    res.end("ok");
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    served: () => served,
    requestBytes: () => minReq,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export interface HttpLoad {
  /** Requests the client saw fail (the traced app must be unaffected by the pipeline's faults). */
  failed(): number;
  /** Why they failed: error code → count. */
  errors(): Record<string, number>;
  /** Requests sent, and answers received in full. */
  issued(): number;
  answered(): number;
  /** Requests due by the clock but not sent: the in-flight cap was reached (the client fell behind). */
  skipped(): number;
  /** Stops sending, waits for the answers in flight, closes the connections. */
  stop(): Promise<void>;
}

/**
 * A keep-alive client sending `rate` GET requests of `path` per second over `conns` connections,
 * paced against the clock (a late timer catches up, at most 200 at once). At most 32 requests per
 * connection are in flight: a starved client skips what is due beyond that (counted) rather than
 * queue without bound, so its counts stay comparable with the server's.
 */
export function startHttpLoad(port: number, opts: { rate: number; conns: number; path: string }): HttpLoad {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.conns });
  let issued = 0;
  let due = 0;
  let skipped = 0;
  const maxInFlight = 32 * opts.conns;
  let failed = 0;
  let answered = 0;
  const errors: Record<string, number> = {};
  let inFlight = 0;
  const t0 = performance.now();
  const send = () => {
    issued++;
    inFlight++;
    http
      .get({ host: "127.0.0.1", port, path: opts.path, agent }, (res) => res.resume().on("end", () => {
        inFlight--;
        answered++;
      }))
      .on("error", (e: NodeJS.ErrnoException) => {
        failed++;
        errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1;
        inFlight--;
      });
  };
  const timer = setInterval(() => {
    const now = Math.floor(((performance.now() - t0) / 1000) * opts.rate) - due;
    const n = Math.min(now, 200);
    const room = Math.max(0, Math.min(n, maxInFlight - inFlight));
    for (let i = 0; i < room; i++) send();
    skipped += n - room;
    due += n;
  }, 10);
  return {
    failed: () => failed,
    errors: () => errors,
    issued: () => issued,
    answered: () => answered,
    skipped: () => skipped,
    async stop() {
      clearInterval(timer);
      await waitFor(() => inFlight === 0, { timeoutMs: 30_000, intervalMs: 50, what: "the workload's requests in flight" }).catch(() => undefined);
      agent.destroy();
    },
  };
}

/**
 * Waits until InfluxDB holds `expected` observed requests of `path` (observedRequests: what the
 * probe saw, not the estimate of sampled connections), or their number has not moved for
 * `settleMs` (windows are written some seconds after they close), bounded by `timeoutMs`.
 */
export async function settledObserved(influxUrl: string, urlPath: string, expected: number, settleMs = 30_000, timeoutMs = 180_000): Promise<number> {
  const start = Date.now();
  let last = -1;
  let since = Date.now();
  for (;;) {
    const n = await observedRequests(influxUrl, "server", { resource: urlPath }).catch(() => last);
    if (n === expected) return n;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= settleMs || Date.now() - start >= timeoutMs) return n;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Waits until InfluxDB holds at least one request of `path` (the pipeline carries the workload). */
export async function waitFlowing(influxUrl: string, urlPath: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(async () => (await recordedRequests(influxUrl, "server", { resource: urlPath }).catch(() => 0)) > 0, { timeoutMs, intervalMs: 1000, what: `records of ${urlPath} in InfluxDB` });
}

/** The name of the nats-server leading `stream` (wirescope-N), asked as the aggregator's user. */
export async function streamLeader(stack: UpStack, stream = "WIRESCOPE_RECORDS"): Promise<string> {
  const nc = await connect({ servers: stack.natsUrls, ...upNatsUser(stack.dataDir, "aggregator") });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    return info.cluster?.leader ?? "";
  } finally {
    await nc.close();
  }
}

/** What the pipeline counted as lost, from the parser and aggregator counters. */
export interface LossCounters {
  rawBatchesMissed: number;
  /**
   * Requests served that the missed raw batches held (the probe's running count, RawBatch.served),
   * both reasons: reported, not used in the bound.
   */
  requestsMissed: number;
  /**
   * Of those, in batches missed across a partition move: the bound uses only these. A gap while a
   * parser owns the partition (`requests_missed.gap`) is in the server's gap bytes already, so
   * adding it would count those requests twice.
   */
  requestsMissedHandover: number;
  /** Connections a parser took up mid-stream or let go of at a partition move: two requests each may be cut at the hole's edges. */
  connsAtEdges: number;
  serverRequestGaps: number;
  serverRequestGapBytes: number;
  recordsDropped: number;
  publishRetries: number;
  probeDrops: number;
  aggregatorDrops: number;
  aggregatorSkippedWritten: number;
}

/** The sum of the counters whose name matches `re` (a family such as `records_dropped.<reason>`). */
export function sumOf(counters: Record<string, number>, re: RegExp): number {
  let n = 0;
  for (const [k, v] of Object.entries(counters)) if (re.test(k)) n += v;
  return n;
}

export function lossCounters(parser: Record<string, number>, aggregator: Record<string, number>): LossCounters {
  return {
    rawBatchesMissed: sumOf(parser, /^raw_batches_missed\./),
    requestsMissed: sumOf(parser, /^requests_missed\./),
    requestsMissedHandover: parser["requests_missed.handover"] ?? 0,
    connsAtEdges: (parser.conn_midstream ?? 0) + (parser["conn_dropped.moved"] ?? 0),
    serverRequestGaps: parser["gaps.server_request"] ?? 0,
    serverRequestGapBytes: parser["gap_bytes.server_request"] ?? 0,
    recordsDropped: sumOf(parser, /^records_dropped\./),
    publishRetries: parser.record_publish_retries ?? 0,
    probeDrops: sumOf(parser, /^probe_drops\./),
    aggregatorDrops: sumOf(aggregator, /^drops_/),
    // records of windows already written, read again after a restart or a handover: not lost
    aggregatorSkippedWritten: aggregator.skipped_written ?? 0,
  };
}

/**
 * The most requests the counted losses can hold: every whole request inside the gap bytes plus one
 * cut at each gap's edge; and across a partition move, where the new owner knows no gap, the
 * requests the missed raw batches held (counted by the probe: their answers start in them) plus,
 * for each connection taken up mid-stream or let go of, the two requests that straddle the ends
 * of its hole: one answered before it but not finished, one asked inside it and answered after.
 */
export function requestsInGaps(l: LossCounters, requestBytes: number): number {
  return Math.ceil(l.serverRequestGapBytes / requestBytes) + l.serverRequestGaps + l.requestsMissedHandover + 2 * l.connsAtEdges;
}

/** Requests served on connections the probe shed, server ends (its counters since it started). */
export async function probeShedRequests(stack: UpStack): Promise<number> {
  return sumOf(await stack.counters("probe"), /^shed_requests_server\./);
}

/** One row of docs/reliability.md's table, printed by each fault test. */
export function report(row: Record<string, string | number>): void {
  const line = `FAULT-RESULT ${JSON.stringify(row)}\n`;
  process.stdout.write(line);
  const file = process.env.WIRESCOPE_FAULT_RESULTS;
  if (file) fs.appendFileSync(file, line);
}

/** One fault of the suite: applied once the workload's records flow, under that steady workload. */
export interface FaultSpec {
  /** The row's name in docs/reliability.md. */
  fault: string;
  /** What the design promises for it, in words (the row's "expected" column). */
  expected: string;
  /** nats-servers (3 = a cluster). */
  natsCluster?: number;
  /** aggregator instances (`up --aggregators N`). */
  aggregators?: number;
  /** parser replicas (`up --parsers N`). */
  parsers?: number;
  /** More ports the probe traces (the hostile input's). */
  extraTracePorts?: number[];
  rate?: number;
  conns?: number;
  /**
   * Applies the fault and waits until the stack has recovered by itself. Returns the recovery
   * time and the requests the design allows to miss besides those in counted gaps (served while
   * no probe ran: nobody can see them). A fault that restarts the probe returns the requests it
   * had counted as shed before (`shedBefore`): its counters start again from 0.
   */
  act(stack: UpStack, app: HttpApp, urlPath: string): Promise<{ recoveryMs: number; unseen?: number; shedBefore?: number; note?: string }>;
  /** Further checks on the stack before it stops. */
  check?(stack: UpStack, r: FaultResult): Promise<void>;
}

export interface FaultResult {
  served: number;
  /** Requests observed at the server end (estimates of sampled connections left out). */
  recorded: number;
  /** Requests served on connections the probe shed (its CPU budget, a flood), server ends. */
  shed: number;
  loss: LossCounters;
  inGaps: number;
  unseen: number;
  recoveryMs: number;
  parser: Record<string, number>;
  aggregator: Record<string, number>;
}

/**
 * Runs one fault end to end and checks what every fault must satisfy: the traced app saw no
 * error; no record was dropped (parser) and nothing dropped by the aggregator; nothing counted
 * twice (observed + shed by the probe ≤ served); every missing request fits in the counted gaps
 * plus what no probe could see; exact (observed + shed = served) when nothing was counted lost;
 * every component healthy again.
 */
export async function runFault(spec: FaultSpec): Promise<FaultResult> {
  const rate = spec.rate ?? 1500;
  const app = await startHttpApp();
  const stack = await startUpStack({ tracePort: app.port, extraTracePorts: spec.extraTracePorts, natsCluster: spec.natsCluster, aggregators: spec.aggregators, parsers: spec.parsers });
  // letters only and short: the aggregator templates numbers and long tokens as {id}
  const urlPath = `/fault-${spec.fault.replace(/[^a-z]+/gi, "").toLowerCase().slice(0, 12)}`;
  let load: HttpLoad | undefined;
  try {
    load = startHttpLoad(app.port, { rate, conns: spec.conns ?? 8, path: urlPath });
    await waitFlowing(stack.influxUrl, urlPath);
    const acted = await spec.act(stack, app, urlPath);
    await new Promise((r) => setTimeout(r, 10_000)); // steady traffic after the recovery
    await load.stop();
    const served = app.served();
    // Under its own CPU budget the probe may shed whole connections (sampling; the hostile input
    // drives it there): the requests served on them are counted in the kernel, read once a
    // second. So what was served is accounted for exactly as observed + shed + counted loss.
    // (Requests never answered, such as the hostile input's, are not counted as shed.)
    await new Promise((r) => setTimeout(r, 1500));
    const shed = (acted.shedBefore ?? 0) + (await probeShedRequests(stack));
    const recorded = await settledObserved(stack.influxUrl, urlPath, served - shed);
    const [parser, aggregator, probe] = [await stack.counters("parser"), await stack.counters("aggregator"), await stack.counters("probe")];
    const loss = lossCounters(parser, aggregator);
    const inGaps = requestsInGaps(loss, app.requestBytes());
    const r: FaultResult = { served, recorded, shed, loss, inGaps, unseen: acted.unseen ?? 0, recoveryMs: acted.recoveryMs, parser, aggregator };
    report({
      fault: spec.fault,
      expected: spec.expected,
      served,
      recorded,
      ...(shed ? { shed_by_probe: shed, estimated: await recordedRequests(stack.influxUrl, "server", { resource: urlPath }).catch(() => -1) } : {}),
      lost: served - shed - recorded,
      counted: `${inGaps} in ${loss.serverRequestGaps} gaps and ${loss.rawBatchesMissed} raw batches missed (${loss.requestsMissed} requests in them, ${loss.connsAtEdges} connections at their edges, 2 each)${r.unseen ? ` + ${r.unseen} unseen` : ""}`,
      records_dropped: loss.recordsDropped,
      aggregator_drops: loss.aggregatorDrops,
      ...(loss.aggregatorSkippedWritten ? { aggregator_skipped_written: loss.aggregatorSkippedWritten } : {}),
      app_errors: load.failed(),
      ...(load.failed() ? { app_error_codes: JSON.stringify(load.errors()) } : {}),
      issued: load.issued(),
      answered: load.answered(),
      ...(load.skipped() ? { skipped: load.skipped() } : {}),
      client_recorded: await recordedRequests(stack.influxUrl, "client", { resource: urlPath }).catch(() => -1),
      parser_records: parser["records.http1"] ?? 0,
      aggregator_records_in: aggregator.records_in ?? 0,
      probe_shed: sumOf(probe, /^shed_connections\./),
      recovery_ms: acted.recoveryMs,
      ...(acted.note ? { note: acted.note } : {}),
    });
    const all = JSON.stringify({ loss, parser, aggregator });
    assert.equal(load.failed(), 0, "the traced app is unaffected");
    assert.equal(loss.recordsDropped, 0, `no record dropped: ${all}`);
    assert.equal(loss.aggregatorDrops, 0, `the aggregator dropped nothing: ${all}`);
    assert.ok(recorded + shed <= served, `nothing counted twice: ${recorded} recorded and ${shed} shed of ${served} served`);
    assert.ok(served - shed - recorded <= inGaps + r.unseen, `every request missing (${served - shed - recorded}, besides ${shed} shed) fits in the counted gaps (${inGaps}) and the unseen (${r.unseen}): ${all}`);
    if (loss.rawBatchesMissed === 0 && loss.serverRequestGaps === 0 && r.unseen === 0) assert.equal(recorded + shed, served, `nothing counted lost: exact (${recorded} recorded + ${shed} shed)`);
    await waitFor(async () => (await stack.status()).every((row) => ["SERVING", "DISABLED", "RUNNING"].includes(row.health)), { timeoutMs: 60_000, intervalMs: 1000, what: "every component healthy" });
    await spec.check?.(stack, r);
    return r;
  } finally {
    await load?.stop();
    await stack.stop();
    await app.close();
  }
}
