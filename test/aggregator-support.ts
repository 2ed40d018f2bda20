// Helpers for the aggregator's integration tests: run `wirescope aggregator` as a real process,
// publish RecordBatches to the real JetStream stream, read results back with InfluxQL.
import path from "node:path";
import { before, after } from "node:test";
import fs from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import { RecordBatchSchema, Role, AggregatorService, type Record as WRecord } from "@wirescope/wire";
import { createClient, recordPartitionOf } from "@wirescope/runtime";
import { spawnTracked, freePort, waitFor, influxQuery, tempDir, startNats, startInflux, type TestServer, WIRESCOPE_BIN } from "./support/index.js";
import type { ManagedProcess } from "@wirescope/runtime";
import { makeRecord } from "@wirescope/aggregator/test-support/records";


export interface AggregatorProc {
  proc: ManagedProcess;
  grpc: string;
  logFile: string;
  status(): Promise<Record<string, number>>;
  /** The Status response's info (members, owned partitions, services, ...). */
  info(): Promise<Record<string, string>>;
  /** The Status response's `ready` (SERVING) and the reasons when not (in its warnings). */
  ready(): Promise<{ ready: boolean; warnings: string[] }>;
  kill9(): void;
  stop(): Promise<void>;
}

/** Starts `wirescope aggregator` against the given servers; resolves once its consumer is bound. */
export async function startAggregator(natsUrl: string, influxUrl: string, db: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<AggregatorProc> {
  const port = await freePort();
  const dir = tempDir("wirescope-agg-");
  const logFile = path.join(dir, "aggregator.log");
  const proc = await spawnTracked("aggregator", process.execPath, [WIRESCOPE_BIN, "aggregator", "--nats-url", natsUrl, "--influx-url", influxUrl, "--influx-db", db, "--grpc-port", String(port), "--log-format", "json", ...extra], { logFile, env: env && { ...process.env, ...env } });
  const grpc = `127.0.0.1:${port}`;
  const client = createClient(AggregatorService, grpc);
  const status = async () => {
    const r = (await client.status({}, { timeoutMs: 3000 })) as { counters: Record<string, number>; ready: boolean };
    return r.counters;
  };
  const info = async () => ((await client.status({}, { timeoutMs: 3000 })) as { info: Record<string, string> }).info;
  const ready = async () => {
    const r = (await client.status({}, { timeoutMs: 3000 })) as { ready: boolean; warnings: string[] };
    return { ready: r.ready, warnings: r.warnings };
  };
  try {
    await waitFor(
      async () => {
        if (proc.hasExited) throw new Error(`aggregator exited early: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-2000) : "(no log)"}`);
        try {
          const c = await status();
          return "records_in" in c;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "aggregator ready" },
    );
  } catch (e) {
    // Not left running after the test that started it gave up on it.
    client.close();
    await proc.stop();
    throw e;
  }
  return {
    proc,
    grpc,
    logFile,
    status,
    info,
    ready,
    kill9: () => process.kill(proc.pid, "SIGKILL"),
    stop: async () => {
      client.close();
      await proc.stop();
    },
  };
}

/**
 * Publishes records as the parsers do: each on the records partition of the service whose series
 * it feeds (@wirescope/runtime recordPartitionOf), in batches of at most `perBatch` per partition.
 */
export async function publishPartitioned(nc: NatsConnection, records: WRecord[], perBatch = 200, partitions = 64): Promise<number> {
  const by = new Map<number, WRecord[]>();
  for (const r of records) {
    const p = recordPartitionOf(r.role === Role.CLIENT, r.client?.service ?? "", r.server?.service ?? "", partitions);
    let l = by.get(p);
    if (!l) by.set(p, (l = []));
    l.push(r);
  }
  // Partitions side by side, as several parsers publish: a slow machine stretches the whole less.
  const counts = await Promise.all([...by].map(([p, recs]) => publishRecords(nc, recs, perBatch, p)));
  return counts.reduce((a, b) => a + b, 0);
}

/** Publishes records as RecordBatches (JetStream publish, acknowledged by the stream). */
export async function publishRecords(nc: NatsConnection, records: WRecord[], perBatch = 200, partition = 0): Promise<number> {
  const js = jetstream(nc);
  let n = 0;
  for (let i = 0; i < records.length; i += perBatch) {
    const b = create(RecordBatchSchema, { node: "test", parserId: "test", partition, batchSeq: BigInt(n), records: records.slice(i, i + perBatch) });
    await js.publish(`wirescope.records.${partition}`, toBinary(RecordBatchSchema, b));
    n++;
  }
  return n;
}

/**
 * A suite's stops (servers, aggregators), pushed as they start and run after its tests in reverse
 * order; one that fails does not keep the others from running. Call inside `describe`.
 */
export function suiteCleanup(): (() => Promise<unknown>)[] {
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });
  return cleanup;
}

/** nats-server (JetStream), influxd and a client of the nats-server; `cleanup` stops them (run it in reverse). */
export async function startBackends(cleanup: (() => Promise<unknown>)[]): Promise<{ nats: TestServer; influx: TestServer; nc: NatsConnection }> {
  const nats = await startNats({ jetstream: true });
  cleanup.push(() => nats.stop());
  const influx = await startInflux();
  cleanup.push(() => influx.stop());
  const nc = await natsConnect(nats.url);
  cleanup.push(() => nc.close());
  return { nats, influx, nc };
}

export async function natsConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url, name: "aggregator-test" });
}

/** Rows of the first series of an InfluxQL result, as objects. */
export async function rows(url: string, db: string, q: string): Promise<Record<string, unknown>[]> {
  const body = (await influxQuery(url, q, db)) as { results: { series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[]; error?: string }[] };
  const r = body.results[0]!;
  if (r.error) throw new Error(`InfluxQL error: ${r.error} in ${q}`);
  const out: Record<string, unknown>[] = [];
  for (const s of r.series ?? []) for (const v of s.values) out.push({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) });
  return out;
}

/** Window-aligned ms a few windows in the past. */
export function pastWindow(windowMs: number, windowsAgo: number): number {
  return Math.floor(Date.now() / windowMs) * windowMs - windowsAgo * windowMs;
}

/** "22/64: 0-3,7" (status info `partitions_owned`) → the partitions. */
export function ownedIn(s: string | undefined): number[] {
  const m = /^\d+\/\d+(?:: (.*))?$/.exec(s ?? "");
  const out: number[] = [];
  for (const r of (m?.[1] ?? "").split(",").filter(Boolean)) {
    const [a, b] = r.split("-").map(Number);
    for (let p = a!; p <= (b ?? a)!; p++) out.push(p);
  }
  return out;
}

/** nats-server with JetStream, influxd and one `wirescope aggregator` (`args`) for a suite:
 *  started before its tests, stopped after them. Read the handles inside the tests. */
export function aggregatorSuite(db: string, args: string[]): { nats: TestServer; influx: TestServer; agg: AggregatorProc; nc: NatsConnection } {
  const s = {} as { nats: TestServer; influx: TestServer; agg: AggregatorProc; nc: NatsConnection };
  before(async () => {
    s.nats = await startNats({ jetstream: true });
    s.influx = await startInflux();
    s.agg = await startAggregator(s.nats.url, s.influx.url, db, args);
    s.nc = await natsConnect(s.nats.url);
  });
  after(async () => {
    await s.nc?.close();
    await s.agg?.stop();
    await s.influx?.stop();
    await s.nats?.stop();
  });
  return s;
}

/** Live records (starting now) of one service, a batch every `everyMs`; `stop` resolves with how many were sent. */
export function publishLive(nc: NatsConnection, service: string, everyMs = 200): { stop(): Promise<number> } {
  const server = { service, address: "10.4.0.2", port: 80, pid: 31 };
  const client = { service: "load", address: "10.4.0.1", port: 40000, pid: 32 };
  let done = false;
  const sending = (async () => {
    let sent = 0;
    while (!done) {
      const now = Date.now();
      await publishRecords(nc, Array.from({ length: 20 }, (_, i) => makeRecord({ startMs: now - 50 + i, durationMs: 2, resource: "/live", status: 200, server, client, connKey: BigInt(sent + i) })), 20, recordPartitionOf(false, "", service, 64));
      sent += 20;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return sent;
  })();
  return {
    stop: () => {
      done = true;
      return sending;
    },
  };
}
