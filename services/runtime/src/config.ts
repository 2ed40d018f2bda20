// Configuration: defaults < WIRESCOPE_* environment < command-line flags.
// Every option has one row in FLAGS below; README.md's configuration table mirrors it.
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import type { LevelWithSilent } from "pino";
import { ConfigError } from "./errors.js";
import { LOG_LEVELS } from "./log-levels.js";
import { redactUrl } from "./redact.js";
import { readNatsCredentials } from "./nats-permissions.js";
import { readInfluxCredentials } from "./influx-auth.js";
import { flagsHelp, parseFlags, type FlagSpec } from "./flags.js";

export type Component = "probe" | "parser" | "aggregator";
export const COMPONENTS: readonly Component[] = ["probe", "parser", "aggregator"];

/** Default gRPC control port per component (on WIRESCOPE_GRPC_HOST, 127.0.0.1). */
export const DEFAULT_GRPC_PORTS: Readonly<Record<Component, number>> = { probe: 7701, parser: 7702, aggregator: 7703 };

/** Default Prometheus `/metrics` port per component (on WIRESCOPE_METRICS_HOST, 127.0.0.1). */
export const DEFAULT_METRICS_PORTS: Readonly<Record<Component, number>> = { probe: 9701, parser: 9702, aggregator: 9703 };

export interface NatsOptions {
  url: string;
  user?: string;
  password?: string;
  token?: string;
  /** Path to a .creds file (JWT + nkey seed). */
  credsFile?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /**
   * Copies JetStream keeps of what the services create (records stream, KV buckets, plugin
   * object store): 1 on a single server, 3 on a cluster so that losing one server loses nothing.
   */
  replicas?: number;
  /**
   * Subject prefix of this client's reply inboxes (requests, JetStream pulls, KV watches). Unset:
   * `inboxPrefixFor(user)`, i.e. `_INBOX.<user>` with a user, so that each user may be allowed its
   * own inboxes only (nats-permissions.ts), `_INBOX` without.
   */
  inboxPrefix?: string;
}

export interface InfluxOptions {
  url: string;
  database: string;
  token?: string;
  user?: string;
  password?: string;
}

export interface Config {
  nats: NatsOptions;
  influx: InfluxOptions;
  /** Number of raw/record partitions (P). */
  partitions: number;
  grpc: { host: string; port: number };
  /** Prometheus `/metrics` HTTP endpoint; port 0 = off. */
  metrics: { host: string; port: number };
  logLevel: LevelWithSilent;
  logFormat?: "json" | "pretty";
  /** Local state (nats store, influxd data, logs) for `wirescope up`. */
  dataDir: string;
  /** Node name put in batches; defaults to the host name. */
  node: string;
  /** Instance id; defaults to `<node>-<component>-<pid>`. */
  instance?: string;
}

export const DEFAULTS: Config = {
  nats: { url: "nats://127.0.0.1:4222", replicas: 1 },
  influx: { url: "http://127.0.0.1:8086", database: "wirescope" },
  partitions: 64,
  grpc: { host: "127.0.0.1", port: 0 },
  metrics: { host: "127.0.0.1", port: 0 },
  logLevel: "info",
  dataDir: ".wirescope",
  node: os.hostname(),
};

/** One configurable option: its flag, its environment variable, and how to apply a value. */
export interface OptionSpec extends FlagSpec {
  flag: string;
  /** Placeholder of the value in `--help` (every shared option takes one). */
  value: string;
  env?: string;
  description: string;
  default: string;
  /** Redacted in logs and `status`. */
  secret?: boolean;
  /** The value names a file, which must exist (checked before `apply`). */
  file?: true;
  apply(c: Config, value: string): void;
}

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError("bad_value", `${name}: expected an integer in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

function url(name: string, v: string, schemes: string[]): string {
  // nats accepts a comma-separated server list.
  for (const part of v.split(",")) {
    let u: URL;
    try {
      u = new URL(part.trim());
    } catch {
      throw new ConfigError("bad_value", `${name}: not a URL: "${part}"`);
    }
    if (!schemes.includes(u.protocol.replace(/:$/, ""))) {
      throw new ConfigError("bad_value", `${name}: scheme must be one of ${schemes.join(", ")}, got "${u.protocol}"`);
    }
  }
  return v;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: "nats-url", value: "URL", env: "WIRESCOPE_NATS_URL", default: DEFAULTS.nats.url, description: "NATS server URL(s), comma-separated", apply: (c, v) => (c.nats.url = url("nats-url", v, ["nats", "tls", "ws", "wss"])) },
  { flag: "nats-replicas", value: "N", env: "WIRESCOPE_NATS_REPLICAS", default: "1", description: "JetStream replicas of the streams, KV buckets and object store the services create (1, 3 or 5; 3 on a 3-server cluster)", apply: (c, v) => (c.nats.replicas = Number(oneOf("nats-replicas", v, ["1", "3", "5"] as const))) },
  { flag: "nats-user", value: "USER", env: "WIRESCOPE_NATS_USER", default: "", description: "NATS user", apply: (c, v) => (c.nats.user = v) },
  { flag: "nats-password", value: "PASSWORD", env: "WIRESCOPE_NATS_PASSWORD", default: "", description: "NATS password", secret: true, apply: (c, v) => (c.nats.password = v) },
  { flag: "nats-inbox-prefix", value: "PREFIX", env: "WIRESCOPE_NATS_INBOX_PREFIX", default: "_INBOX.<user>, or _INBOX without a user", description: "subject prefix of this client's reply inboxes (requests, JetStream pulls, KV watches); `up`'s nats-server lets each user subscribe to its own only", apply: (c, v) => (c.nats.inboxPrefix = subjectPrefix("nats-inbox-prefix", v)) },
  { flag: "nats-token", value: "TOKEN", env: "WIRESCOPE_NATS_TOKEN", default: "", description: "NATS token", secret: true, apply: (c, v) => (c.nats.token = v) },
  { flag: "nats-creds", value: "FILE", file: true, env: "WIRESCOPE_NATS_CREDS", default: "", description: "NATS .creds file (JWT + nkey)", apply: (c, v) => (c.nats.credsFile = v) },
  { flag: "nats-tls-ca", value: "FILE", file: true, env: "WIRESCOPE_NATS_TLS_CA", default: "", description: "CA bundle to verify the NATS server", apply: (c, v) => ((c.nats.tls ??= {}).ca = v) },
  { flag: "nats-tls-cert", value: "FILE", file: true, env: "WIRESCOPE_NATS_TLS_CERT", default: "", description: "client certificate for NATS mTLS", apply: (c, v) => ((c.nats.tls ??= {}).cert = v) },
  { flag: "nats-tls-key", value: "FILE", file: true, env: "WIRESCOPE_NATS_TLS_KEY", default: "", description: "client key for NATS mTLS", apply: (c, v) => ((c.nats.tls ??= {}).key = v) },
  { flag: "influx-url", value: "URL", env: "WIRESCOPE_INFLUX_URL", default: DEFAULTS.influx.url, description: "InfluxDB HTTP URL", apply: (c, v) => (c.influx.url = url("influx-url", v, ["http", "https"])) },
  { flag: "influx-db", value: "NAME", env: "WIRESCOPE_INFLUX_DB", default: DEFAULTS.influx.database, description: "InfluxDB database (1.x) or bucket (2.x/3.x)", apply: (c, v) => (c.influx.database = nonEmpty("influx-db", v)) },
  { flag: "influx-token", value: "TOKEN", env: "WIRESCOPE_INFLUX_TOKEN", default: "", description: "InfluxDB token (2.x/3.x)", secret: true, apply: (c, v) => (c.influx.token = v) },
  { flag: "influx-user", value: "USER", env: "WIRESCOPE_INFLUX_USER", default: "", description: "InfluxDB user (1.x)", apply: (c, v) => (c.influx.user = v) },
  { flag: "influx-password", value: "PASSWORD", env: "WIRESCOPE_INFLUX_PASSWORD", default: "", description: "InfluxDB password (1.x)", secret: true, apply: (c, v) => (c.influx.password = v) },
  { flag: "partitions", value: "N", env: "WIRESCOPE_PARTITIONS", default: String(DEFAULTS.partitions), description: "number of partitions P", apply: (c, v) => (c.partitions = int("partitions", v, 1, 65536)) },
  { flag: "grpc-host", value: "HOST", env: "WIRESCOPE_GRPC_HOST", default: DEFAULTS.grpc.host, description: "address the gRPC control port binds", apply: (c, v) => (c.grpc.host = nonEmpty("grpc-host", v)) },
  { flag: "grpc-port", value: "PORT", env: "WIRESCOPE_GRPC_PORT", default: "probe 7701, parser 7702, aggregator 7703", description: "gRPC control port (0 = ephemeral)", apply: (c, v) => (c.grpc.port = int("grpc-port", v, 0, 65535)) },
  { flag: "metrics-host", value: "HOST", env: "WIRESCOPE_METRICS_HOST", default: DEFAULTS.metrics.host, description: "address the Prometheus /metrics port binds", apply: (c, v) => (c.metrics.host = nonEmpty("metrics-host", v)) },
  { flag: "metrics-port", value: "PORT", env: "WIRESCOPE_METRICS_PORT", default: "probe 9701, parser 9702, aggregator 9703", description: "Prometheus /metrics port (0 = off)", apply: (c, v) => (c.metrics.port = int("metrics-port", v, 0, 65535)) },
  { flag: "log-level", value: "LEVEL", env: "WIRESCOPE_LOG_LEVEL", default: DEFAULTS.logLevel, description: LOG_LEVELS.join("|"), apply: (c, v) => (c.logLevel = oneOf("log-level", v, LOG_LEVELS)) },
  { flag: "log-format", value: "FORMAT", env: "WIRESCOPE_LOG_FORMAT", default: "pretty on a TTY, else json", description: "json|pretty", apply: (c, v) => (c.logFormat = oneOf("log-format", v, ["json", "pretty"] as const)) },
  { flag: "data-dir", value: "DIR", env: "WIRESCOPE_DATA_DIR", default: DEFAULTS.dataDir, description: "local state for `up` (nats, influxdb, logs)", apply: (c, v) => (c.dataDir = nonEmpty("data-dir", v)) },
  { flag: "node", value: "NAME", env: "WIRESCOPE_NODE", default: "host name", description: "node name written into batches", apply: (c, v) => (c.node = nonEmpty("node", v)) },
  { flag: "instance", value: "ID", env: "WIRESCOPE_INSTANCE", default: "<node>-<component>-<pid>", description: "instance id shown by status", apply: (c, v) => (c.instance = nonEmpty("instance", v)) },
];

/** A NATS subject of literal tokens (no wildcards, no empty token): a prefix for inboxes. */
function subjectPrefix(name: string, v: string): string {
  if (!/^[^.*>\s]+(\.[^.*>\s]+)*$/.test(v)) throw new ConfigError("bad_value", `${name}: not a subject of literal tokens (no spaces, wildcards or empty tokens): "${v}"`);
  return v;
}

function nonEmpty(name: string, v: string): string {
  if (!v.trim()) throw new ConfigError("bad_value", `${name}: must not be empty`);
  return v;
}

function oneOf<T extends string>(name: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError("bad_value", `${name}: expected one of ${allowed.join("|")}, got "${v}"`);
  return v as T;
}

export interface LoadConfigInput {
  component?: Component;
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Programmatic overrides, applied after flags (tests). */
  overrides?: Partial<Config>;
  /**
   * With no NATS (InfluxDB) credentials given, use the user `wirescope up` generated in the data
   * dir (NATS: the component's own, or the CLI's) when that file is readable (default true).
   */
  natsAuthFromDataDir?: boolean;
  /**
   * Shared flags the command gives its own meaning (`top --node` picks the node to show, it writes
   * no batches): left in `rest` for it, and their environment variables not read.
   */
  own?: readonly string[];
  /** The command, named in errors (`see wirescope <command> --help`); default: the component. */
  command?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Arguments not recognised here, in order: the caller's to interpret. */
  rest: string[];
}

/**
 * Merges defaults, `WIRESCOPE_*` environment and `--flag value` / `--flag=value` arguments.
 * Unknown arguments are returned in `rest`, so a command can add its own flags.
 * @throws ConfigError with a one-line message naming the option.
 */
export function loadConfig(input: LoadConfigInput = {}): LoadedConfig {
  const env = input.env ?? process.env;
  const config: Config = structuredClone(DEFAULTS);
  if (input.component) {
    config.grpc.port = DEFAULT_GRPC_PORTS[input.component];
    config.metrics.port = DEFAULT_METRICS_PORTS[input.component];
  }
  const own = new Set(input.own ?? []);
  const specs = own.size ? OPTIONS.filter((o) => !own.has(o.flag)) : OPTIONS;
  // unlisted arguments are the command's own: left in `rest` for its parser
  const parsed = parseFlags(input.argv ?? [], specs, { command: input.command ?? input.component, env, passUnknown: true });
  parsed.each((g) => {
    const spec = g.spec as OptionSpec;
    if (spec.file && !fs.existsSync(g.value)) throw new ConfigError("missing_file", `${spec.flag}: file not found: ${g.value}`);
    spec.apply(config, g.value);
  });
  const rest = parsed.rest;
  if (input.overrides) mergeInto(config, input.overrides);
  if (config.nats.tls && (config.nats.tls.cert === undefined) !== (config.nats.tls.key === undefined)) {
    throw new ConfigError("bad_value", "nats TLS: --nats-tls-cert and --nats-tls-key go together");
  }
  config.dataDir = path.resolve(config.dataDir);
  const n = config.nats;
  if (input.natsAuthFromDataDir !== false && !n.user && !n.password && !n.token && !n.credsFile) {
    const own = readNatsCredentials(config.dataDir)?.[input.component ?? "cli"];
    if (own) Object.assign(n, { user: own.user, password: own.password });
  }
  const i = config.influx;
  if (input.natsAuthFromDataDir !== false && !i.user && !i.password && !i.token) {
    // the aggregator writes; every command reads (`top`): neither is given the admin
    const own = readInfluxCredentials(config.dataDir, input.component === "aggregator" ? "writer" : "reader");
    if (own) Object.assign(i, { user: own.user, password: own.password });
  }
  return { config, rest };
}

function mergeInto(target: Record<string, unknown> | Config, src: Record<string, unknown> | Partial<Config>): void {
  const t = target as Record<string, unknown>;
  for (const [k, v] of Object.entries(src)) {
    if (v && typeof v === "object" && !Array.isArray(v) && t[k] && typeof t[k] === "object") {
      mergeInto(t[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else if (v !== undefined) {
      t[k] = v;
    }
  }
}

/** A copy of the config safe to log or show: secrets replaced by "***". */
export function redactConfig(c: Config): Config {
  const r = structuredClone(c);
  if (r.nats.password) r.nats.password = "***";
  if (r.nats.token) r.nats.token = "***";
  if (r.influx.password) r.influx.password = "***";
  if (r.influx.token) r.influx.token = "***";
  r.nats.url = redactUrl(r.nats.url);
  r.influx.url = redactUrl(r.influx.url);
  return r;
}


/** Help text for the shared options, one per line, but those in `except` (a command's own: LoadConfigInput.own). */
export function optionsHelp(except: readonly string[] = []): string {
  return flagsHelp(except.length ? OPTIONS.filter((o) => !except.includes(o.flag)) : OPTIONS);
}
