// The aggregator's own flags (those @wirescope/runtime's config did not take).
import { ConfigError } from "@wirescope/runtime/errors";
import { parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { NATS_NAMES } from "@wirescope/runtime/nats-permissions";
import { defaultCoreOptions, resolveCoreOptions, type CoreOptions } from "./core/options.js";
import { defaultWriterOptions, type WriterOptions } from "./influx/writer.js";
import { defaultOtlpOptions, tracesUrl, type OtlpOptions } from "./otlp/exporter.js";

export interface AggregatorOptions {
  core: CoreOptions;
  writer: WriterOptions;
  /** OTLP/HTTP span export (off unless an endpoint is given). */
  otlp: OtlpOptions;
  /** JetStream stream the parsers publish RecordBatch to. */
  stream: string;
  /** Name of the deployment's state: prefix of its watermark keys and of each instance's consumer. */
  durable: string;
  /** Subject filter of the consumer. */
  filter: string;
  /** JetStream ack wait: a held batch is refreshed (working) well before it expires. */
  ackWaitMs: number;
  /** Unacknowledged batches at most (the server stops delivering beyond it: backpressure). */
  maxAckPending: number;
  /** KV bucket holding the durable watermark. */
  stateBucket: string;
  /** KV bucket of the aggregator fleet's membership (who owns which records partitions). */
  membersBucket: string;
  /** Membership heartbeat period. */
  heartbeatMs: number;
  /** An instance silent this long is dead; its partitions move to the others. */
  ttlMs: number;
  /** KV bucket of the parsers' membership, whose heartbeats carry their watermarks. */
  parsersBucket: string;
  /** A parser's watermark holds windows open until it has been silent this long; 0 = not watched. */
  parserHoldMs: number;
  /** `pipeline` point period. */
  pipelineEveryMs: number;
  /** 2.x organisation. */
  influxOrg: string;
  /** Faults the integration tests switch on (`batch_throw`: see service.ts). */
  failpoints: string[];
}

export const defaultAggregatorOptions: AggregatorOptions = {
  core: defaultCoreOptions,
  writer: defaultWriterOptions,
  otlp: defaultOtlpOptions,
  stream: "WIRESCOPE_RECORDS",
  durable: "wirescope-aggregator",
  filter: "wirescope.records.>",
  ackWaitMs: 30_000,
  maxAckPending: 50_000,
  stateBucket: "wirescope-aggregator",
  membersBucket: "wirescope-aggregators",
  heartbeatMs: 1000,
  ttlMs: 3000,
  parsersBucket: NATS_NAMES.membersBucket,
  parserHoldMs: 20_000,
  pipelineEveryMs: 10_000,
  influxOrg: "",
  failpoints: [],
};

type Target = ["core" | "writer" | "otlp" | "top", string, "int" | "float" | "string" | "bool" | "list", string];
const FLAGS: Record<string, Target> = {
  "--window-ms": ["core", "windowMs", "int", "RED window length (aligned to the wall clock)"],
  "--grace-ms": ["core", "graceMs", "int", "how long after its end a window still takes records"],
  "--relative-accuracy": ["core", "relativeAccuracy", "float", "DDSketch relative accuracy of percentiles"],
  "--max-values-per-tag": ["core", "maxValuesPerTag", "int", "cardinality guard: distinct values per tag per service per window"],
  "--max-series-per-service": ["core", "maxSeriesPerService", "int", "memory guard: open series per service per window"],
  "--segment-threshold": ["core", "segmentThreshold", "int", "distinct values of one path segment before it collapses to *"],
  "--span-sample-rate": ["core", "spanSampleRate", "float", "fraction of ordinary traces kept (errors and slowest always kept)"],
  "--span-budget": ["core", "spanBudget", "int", "ordinary spans kept per second at most (errors and slowest always kept): past it the kept fraction of traces halves, consistently by trace id; 0 = no bound"],
  "--slowest-per-series": ["core", "slowestPerSeries", "int", "slowest spans kept per series and window"],
  "--max-buffered-spans": ["core", "maxBufferedSpans", "int", "spans held for linking at most"],
  "--no-spans": ["core", "spans", "bool", "do not write spans"],
  "--batch-size": ["writer", "batchSize", "int", "lines per InfluxDB write request"],
  "--max-buffer-lines": ["writer", "maxBufferLines", "int", "lines waiting for InfluxDB at most (then the oldest are dropped)"],
  "--max-retry-time-ms": ["writer", "maxRetryTimeMs", "int", "give up a write after this long"],
  "--stream": ["top", "stream", "string", "JetStream stream of RecordBatch"],
  "--durable": ["top", "durable", "string", "name of the deployment's state (watermark keys, consumer names)"],
  "--filter": ["top", "filter", "string", "consumer subject filter"],
  "--ack-wait-ms": ["top", "ackWaitMs", "int", "JetStream ack wait"],
  "--max-ack-pending": ["top", "maxAckPending", "int", "unacknowledged batches at most"],
  "--state-bucket": ["top", "stateBucket", "string", "KV bucket for the durable watermarks"],
  "--members-bucket": ["top", "membersBucket", "string", "NATS KV bucket for aggregator membership"],
  "--heartbeat-ms": ["top", "heartbeatMs", "int", "membership heartbeat period"],
  "--member-ttl-ms": ["top", "ttlMs", "int", "an instance silent this long is dead (its partitions move)"],
  "--parsers-bucket": ["top", "parsersBucket", "string", "NATS KV bucket of the parsers' membership (their heartbeats carry their watermarks)"],
  "--parser-hold-ms": ["top", "parserHoldMs", "int", "no window closes by the idle wall clock before the parsers heard from within this long have published its records (0 = parsers not watched)"],
  "--pipeline-every-ms": ["top", "pipelineEveryMs", "int", "period of the aggregator's own pipeline point"],
  "--influx-org": ["top", "influxOrg", "string", "InfluxDB 2.x organisation"],
  "--otlp-endpoint": ["otlp", "endpoint", "string", "export spans over OTLP/HTTP protobuf to this collector (http://host:4318)"],
  "--otlp-batch-size": ["otlp", "batchSize", "int", "spans per OTLP request at most"],
  "--otlp-queue-size": ["otlp", "queueSize", "int", "spans waiting for the collector at most (then dropped and counted)"],
  "--otlp-flush-ms": ["otlp", "flushMs", "int", "a partial OTLP batch is sent after this long"],
  "--otlp-max-tries": ["otlp", "maxTries", "int", "tries per OTLP batch before it is dropped and counted"],
  "--failpoints": ["top", "failpoints", "list", "faults for tests (batch_throw: a batch with the header Wirescope-Failpoint: throw fails its ingestion)"],
};

const DEFAULTS_BY_TARGET: Record<Target[0], object> = { core: defaultCoreOptions, writer: defaultWriterOptions, otlp: defaultOtlpOptions, top: defaultAggregatorOptions };

/**
 * Node flags the aggregator process is started with (`wirescope up`; the Kubernetes manifest sets
 * the same through NODE_OPTIONS). A young generation of 32 MiB semi-spaces instead of 16: a
 * window's close makes short-lived objects for every span at once (views, ids, lines) and the
 * batches keep arriving meanwhile; with the default, young collections ran several times per
 * close and promoted much of it (scavenging was ~10 % of the service's CPU in a perf profile of
 * the pipeline at 20,000 req/s). Live keep-alive stage at 20,000 req/s, alternating: 19.6 / 19.1
 * -> 16.6 / 15.8 µs CPU per record (docs/benchmarks.md).
 */
export const AGGREGATOR_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];

/**
 * The aggregator's own flags, each with its variable (WIRESCOPE_AGGREGATOR_<FLAG>; the failpoints'
 * WIRESCOPE_FAILPOINTS) and its default read from the option objects (one source).
 */
export const AGGREGATOR_FLAGS: readonly FlagSpec[] = withEnv(
  "aggregator",
  Object.entries(FLAGS).map(([f, [where, key, kind, description]]) => {
    const d = (DEFAULTS_BY_TARGET[where] as Record<string, unknown>)[key];
    if (kind === "bool") return { flag: f.slice(2), description };
    if (kind === "list") return { flag: f.slice(2), value: "A,B", repeatable: true, env: "WIRESCOPE_FAILPOINTS", default: "none", description };
    return { flag: f.slice(2), value: kind === "int" ? "N" : kind === "float" ? "X" : key === "endpoint" ? "URL" : "NAME", default: d === "" ? "none" : String(d), description };
  }),
);

/**
 * Parses the aggregator's flags, under their variables from `env`.
 * @throws ConfigError naming the bad flag (or variable).
 */
export function parseAggregatorArgs(args: readonly string[], env: NodeJS.ProcessEnv = {}): AggregatorOptions {
  const core: Record<string, unknown> = {};
  const writer: Record<string, unknown> = { ...defaultWriterOptions };
  const otlp: Record<string, unknown> = { ...defaultOtlpOptions };
  const top: Record<string, unknown> = { ...defaultAggregatorOptions, failpoints: [] };
  parseFlags(args, AGGREGATOR_FLAGS, { command: "aggregator", env }).each(({ flag, value: raw }) => {
    const [where, key, kind] = FLAGS[flag]!;
    let val: unknown = raw;
    if (kind === "int" || kind === "float") {
      const n = Number(raw);
      if (!Number.isFinite(n) || (kind === "int" && !Number.isInteger(n))) throw new ConfigError("bad_value", `${flag} expects a number, got ${JSON.stringify(raw)}`);
      val = n;
    } else if (kind === "bool") val = false; // the one switch, --no-spans
    else if (kind === "list") val = [...(top[key] as string[]), ...raw.split(",").map((s) => s.trim()).filter(Boolean)];
    (where === "core" ? core : where === "writer" ? writer : where === "otlp" ? otlp : top)[key] = val;
  });
  let coreOpts: CoreOptions;
  try {
    coreOpts = resolveCoreOptions(core as Partial<CoreOptions>);
  } catch (e) {
    throw new ConfigError("bad_value", (e as Error).message);
  }
  const out = { ...(top as unknown as AggregatorOptions), core: coreOpts, writer: writer as unknown as WriterOptions, otlp: otlp as unknown as OtlpOptions };
  if (out.otlp.endpoint) {
    try {
      if (!/^https?:$/.test(new URL(tracesUrl(out.otlp.endpoint)).protocol)) throw new Error("not http(s)");
    } catch {
      throw new ConfigError("bad_value", `--otlp-endpoint expects an http(s) URL, got ${JSON.stringify(out.otlp.endpoint)}`);
    }
  }
  for (const k of ["batchSize", "queueSize", "flushMs", "maxTries"] as const) if (!(out.otlp[k] >= 1)) throw new ConfigError("bad_value", `--otlp-${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} must be at least 1`);
  if (out.ackWaitMs < 1000) throw new ConfigError("bad_value", "--ack-wait-ms must be at least 1000");
  if (out.ttlMs < 2 * out.heartbeatMs) throw new ConfigError("bad_value", `--member-ttl-ms (${out.ttlMs}) must be at least twice --heartbeat-ms (${out.heartbeatMs})`);
  if (out.maxAckPending < 1) throw new ConfigError("bad_value", "--max-ack-pending must be positive");
  return out;
}
