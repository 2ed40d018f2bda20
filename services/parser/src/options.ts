// The parser's own flags (the ones @wirescope/runtime's config did not take).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "@wirescope/runtime/errors";
import { parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { DEFAULT_CONN_TABLE_OPTIONS } from "./conn-table.js";
import { DEFAULT_MAX_DETECT_BYTES } from "./wasm-plugins.js";

export interface ParserOptions {
  /** Built-in plugins: *.wasm + *.json manifests. */
  builtinDir: string;
  /** Extra plugins watched on disk (single replica). */
  pluginDir?: string;
  /** NATS object store bucket holding fleet-wide plugins. */
  pluginBucket: string;
  membersBucket: string;
  /** KV bucket of each replica's committed raw progress (progress-nats.ts). */
  progressBucket: string;
  /** NATS KV bucket of Kafka topic id → name, shared by the replicas. */
  topicNamesBucket: string;
  heartbeatMs: number;
  ttlMs: number;
  flushMs: number;
  redactHeaders: string[];
  noRedact: string[];
  maxConns: number;
  maxConnPendingBytes: number;
  maxTotalPendingBytes: number;
  /** Bytes offered for detection before the plugin host gives a connection up (its engine's budget). */
  maxDetectBytes: number;
  idleMs: number;
  recordsStream: string;
  streamMaxBytes: number;
  streamMaxAgeMs: number;
  maxRawPending: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_BUILTIN_DIR = path.resolve(here, "../../../parsers-wasm/build");

export const DEFAULT_PARSER_OPTIONS: ParserOptions = {
  builtinDir: DEFAULT_BUILTIN_DIR,
  pluginBucket: "wirescope-plugins",
  membersBucket: "wirescope-parsers",
  progressBucket: "wirescope-parser-progress",
  topicNamesBucket: "wirescope-kafka-topics",
  heartbeatMs: 1000,
  ttlMs: 3000,
  flushMs: 20,
  redactHeaders: [],
  noRedact: [],
  ...DEFAULT_CONN_TABLE_OPTIONS,
  maxDetectBytes: DEFAULT_MAX_DETECT_BYTES,
  recordsStream: "WIRESCOPE_RECORDS",
  streamMaxBytes: 1024 * 1024 * 1024,
  streamMaxAgeMs: 60 * 60_000,
  maxRawPending: 20_000,
};

type Kind = "string" | "int" | "list";
const FLAGS: Record<string, [keyof ParserOptions, Kind, string]> = {
  "--builtin-dir": ["builtinDir", "string", "directory of built-in plugins (*.wasm + *.json)"],
  "--plugin-dir": ["pluginDir", "string", "directory watched for plugins (this replica only)"],
  "--plugin-bucket": ["pluginBucket", "string", "NATS object store bucket of fleet-wide plugins"],
  "--members-bucket": ["membersBucket", "string", "NATS KV bucket for parser membership"],
  "--progress-bucket": ["progressBucket", "string", "NATS KV bucket of each replica's committed raw progress (read by a successor at a takeover)"],
  "--topic-names-bucket": ["topicNamesBucket", "string", "NATS KV bucket of Kafka topic id -> name shared by the replicas"],
  "--heartbeat-ms": ["heartbeatMs", "int", "membership heartbeat period"],
  "--member-ttl-ms": ["ttlMs", "int", "a replica silent this long is dead"],
  "--flush-ms": ["flushMs", "int", "longest a record waits before publishing"],
  "--redact-header": ["redactHeaders", "list", "extra header names whose values are masked (comma list)"],
  "--no-redact": ["noRedact", "list", "protocols with redaction off, for debugging (comma list)"],
  "--max-conns": ["maxConns", "int", "connections tracked at once (when full, one silent for 10 s is evicted for a new one; else the new one is refused, counted)"],
  "--max-conn-pending-bytes": ["maxConnPendingBytes", "int", "bytes one connection holds waiting for a hole"],
  "--max-pending-bytes": ["maxTotalPendingBytes", "int", "bytes all connections hold waiting"],
  "--max-detect-bytes": ["maxDetectBytes", "int", "bytes offered to detection before giving up"],
  "--idle-ms": ["idleMs", "int", "idle connections are evicted after this"],
  "--records-stream": ["recordsStream", "string", "JetStream stream for records"],
  "--stream-max-bytes": ["streamMaxBytes", "int", "records stream size limit"],
  "--stream-max-age-ms": ["streamMaxAgeMs", "int", "records stream age limit"],
  "--max-raw-pending": ["maxRawPending", "int", "raw batches queued per partition before dropping"],
};

/** The parser's own flags, each with its variable (WIRESCOPE_PARSER_<FLAG>) and its default read from DEFAULT_PARSER_OPTIONS (one source). */
export const PARSER_FLAGS: readonly FlagSpec[] = withEnv(
  "parser",
  Object.entries(FLAGS).map(([f, [key, kind, description]]) => {
    const d = DEFAULT_PARSER_OPTIONS[key];
    return { flag: f.slice(2), value: kind === "int" ? "N" : kind === "list" ? "A,B" : key.endsWith("Dir") ? "DIR" : "NAME", repeatable: kind === "list", default: Array.isArray(d) ? "none" : d === undefined ? "none" : String(d), description };
  }),
);

/**
 * Parses the parser's flags, under their WIRESCOPE_PARSER_* variables from `env`.
 * @throws ConfigError naming the bad flag (or variable).
 */
export function parseParserArgs(args: readonly string[], env: NodeJS.ProcessEnv = {}): ParserOptions {
  const o: ParserOptions = { ...DEFAULT_PARSER_OPTIONS, redactHeaders: [], noRedact: [] };
  parseFlags(args, PARSER_FLAGS, { command: "parser", env }).each(({ flag, value: v }) => {
    const [key, kind] = FLAGS[flag]!;
    if (kind === "int") {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new ConfigError("flag", `${flag} must be a positive integer, got ${JSON.stringify(v)}`);
      (o as unknown as Record<string, unknown>)[key] = n;
    } else if (kind === "list") {
      (o[key] as string[]).push(...v.split(",").map((s) => s.trim()).filter(Boolean));
    } else (o as unknown as Record<string, unknown>)[key] = v;
  });
  if (o.ttlMs < 2 * o.heartbeatMs) throw new ConfigError("flag", `--member-ttl-ms (${o.ttlMs}) must be at least twice --heartbeat-ms (${o.heartbeatMs})`);
  return o;
}
