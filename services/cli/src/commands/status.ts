// `wirescope status`: asks every service over gRPC and prints one row per process.
//
// Services are found in the NATS KV bucket `wirescope-services` (every replica, any port), or on
// the default control ports when the registry cannot be read, plus any --address given;
// nats-server and InfluxDB get a row too. Every expected component gets a row: one that is not
// found is DOWN, with the reason `wirescope up` recorded (<data-dir>/up.state.json) when it runs
// the stack, and the restarts up counted are shown beside each process it supervises.
import { loadConfig, OPTIONS, optionsHelp, COMPONENTS, DEFAULT_GRPC_PORTS, type Component, type Config, type NatsOptions } from "@wirescope/runtime/config";
import { flagsHelp, parseFlags, type FlagSpec, withEnv } from "@wirescope/runtime/flags";
import type { Announcement } from "@wirescope/runtime/registry";
import { redactUrl } from "@wirescope/runtime/redact";
import { errorMessage } from "@wirescope/runtime/errors";
import { hostPort } from "@wirescope/wire";
import { UsageError, type Command } from "../command.js";
import { readUpState, upAlive, natsWithStack, stackNatsServers } from "../stack-state.js";
import type { ChildState } from "../supervisor.js";

export interface StatusRow {
  component: string;
  instance: string;
  address: string;
  health: string;
  uptimeMs?: number;
  counters: Record<string, number>;
  info: Record<string, string>;
  warnings: string[];
  error?: string;
  /** Times `wirescope up` restarted this process (absent when up does not run it). */
  restarts?: number;
  /** up's word for it: running, restarting, down, disabled. */
  supervisor?: string;
}

/** status's own flags (after the shared ones): --help, the completions and its parser read this table. */
export const STATUS_FLAGS: readonly FlagSpec[] = withEnv("status", [
  { flag: "json", description: "print JSON: one object per process" },
  { flag: "address", repeatable: true, value: "HOST:PORT", description: "also ask this control address (repeatable)" },
  { flag: "timeout", value: "MS", default: "2000", description: "per-call deadline" },
]);

/** Parses status's own flags (`--flag value` or `--flag=value`). */
export function parseStatusArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): { json: boolean; extra: string[]; timeoutMs: number } {
  const p = parseFlags(args, STATUS_FLAGS, { command: "status", env });
  const json = p.has("json");
  const extra = p.all("address");
  const timeoutMs = Number(p.get("timeout") ?? 2000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError("--timeout: expected a positive number of ms");
  return { json, extra, timeoutMs };
}

const USAGE = `usage: wirescope status [--json] [--address host:port]... [--timeout ms] [options]

Asks every Wirescope service for its health and counters and prints a table (or JSON with --json).
Services are found in the NATS KV bucket wirescope-services (every replica announces itself
there); when that cannot be read, on the default control ports (probe ${DEFAULT_GRPC_PORTS.probe}, parser ${DEFAULT_GRPC_PORTS.parser},
aggregator ${DEFAULT_GRPC_PORTS.aggregator} on --grpc-host). --address adds more.
Every expected component (nats, influxdb, probe, parser, aggregator) has a row; one that is not
found is DOWN, with the reason when \`wirescope up\` (on --data-dir) runs the stack, and the
RESTARTS column counts how often up started each process again.
Processes up runs that have no health service (the demo shop) show as RUNNING or DOWN.
Exit code 0 when every component is SERVING (RUNNING, or disabled on purpose), 1 otherwise.

options:
${flagsHelp(STATUS_FLAGS)}
${optionsHelp()}`;

/** Gathers one row per process; never throws for an unreachable service (it gets a row). */
export async function collectStatus(config: Config, extra: string[], timeoutMs: number): Promise<StatusRow[]> {
  const rows: StatusRow[] = [];
  const targets = new Map<string, Component | undefined>();
  for (const a of extra) targets.set(a, undefined);
  let announced = 0;

  // nats-server itself (each member of up's cluster), and the registry it holds.
  const up = readUpState(config.dataDir);
  const supervised = up && upAlive(up) ? up.children : [];
  const members = stackNatsServers(config.dataDir);
  const nats = natsWithStack(config.nats, config.dataDir);
  if (members.length > 1) {
    for (const url of members) rows.push((await natsServerRow({ ...nats, url }, timeoutMs, false)).row);
    // The registry through the whole cluster: any member that answers holds it.
    const { row, announced: found } = await natsServerRow(nats, timeoutMs, true);
    for (const a of found) targets.set(a.address, a.component);
    announced = found.length;
    if (row.error) rows[rows.length - members.length].warnings.push(`the service registry could not be read: ${row.error}`);
  } else {
    const { row, announced: found } = await natsServerRow(nats, timeoutMs, true);
    rows.push(row);
    // An announced address wins over a guessed default for the same port.
    for (const a of found) targets.set(a.address, a.component);
    announced = found.length;
  }

  const influxRow: StatusRow = { component: "influxdb", instance: "", address: redactUrl(config.influx.url), health: "UNREACHABLE", counters: {}, info: {}, warnings: [] };
  rows.push(influxRow);
  try {
    const res = await fetch(new URL("/ping", config.influx.url), { signal: AbortSignal.timeout(timeoutMs) });
    influxRow.health = res.status === 204 || res.ok ? "SERVING" : `HTTP ${res.status}`;
    influxRow.instance = `influxdb ${res.headers.get("x-influxdb-version") ?? ""}`.trim();
  } catch (e) {
    influxRow.error = errorMessage(e);
  }

  // What `wirescope up` runs on this data dir is asked directly too (the registry may not list a
  // service yet, e.g. right after nats-server was restarted).
  for (const c of supervised) {
    const a = bareAddress(c.address);
    if (c.pid && (COMPONENTS as readonly string[]).includes(c.component) && !targets.has(a)) targets.set(a, c.component as Component);
  }

  // Without a registry to read (NATS down, or nothing announced yet), try the default ports;
  // these are guesses, so a port nobody listens on gets no row.
  const guesses = new Set<string>();
  if (announced === 0) {
    for (const c of COMPONENTS) {
      const a = hostPort(config.grpc.host, DEFAULT_GRPC_PORTS[c]);
      if (!targets.has(a)) {
        targets.set(a, c);
        guesses.add(a);
      }
    }
  }

  const found = await Promise.all(
    [...targets].map(async ([address, component]) => {
      const row = await askService(address, component, timeoutMs);
      return row.health === "UNREACHABLE" && guesses.has(address) ? undefined : row;
    }),
  );
  const order = (c: string) => (COMPONENTS as readonly string[]).indexOf(c) >>> 0;
  const services = found.filter((r): r is StatusRow => r !== undefined);
  services.sort((a, b) => order(a.component) - order(b.component) || (a.instance < b.instance ? -1 : 1));
  return withExpected([...rows, ...services], supervised);
}

/** The row of the nats-server(s) at `nats.url`, and the services announced there when asked. */
async function natsServerRow(nats: NatsOptions, timeoutMs: number, readRegistry: boolean): Promise<{ row: StatusRow; announced: Announcement[] }> {
  const row: StatusRow = { component: "nats", instance: "", address: redactUrl(nats.url), health: "UNREACHABLE", counters: {}, info: {}, warnings: [] };
  let announced: Announcement[] = [];
  const { connectNats, listAnnounced, silentLogger } = await import("../clients.js");
  try {
    const nc = await withTimeout(connectNats(nats, silentLogger(), { retry: false, name: "wirescope-status" }), timeoutMs, "connect to NATS");
    try {
      row.health = "SERVING";
      row.instance = `nats-server ${nc.info?.version ?? ""}`.trim();
      row.info = { server_name: nc.info?.server_name ?? "", jetstream: String(Boolean(nc.info?.jetstream)) };
      if (nc.info?.cluster) row.info.cluster = nc.info.cluster;
      if (!nc.info?.jetstream) row.warnings.push("JetStream is off: services cannot announce themselves");
      if (readRegistry) announced = await withTimeout(listAnnounced(nc), timeoutMs, "read the service registry");
    } finally {
      await nc.close();
    }
  } catch (e) {
    row.error = errorMessage(e);
  }
  return { row, announced };
}

/** "grpc://127.0.0.1:7702" → "127.0.0.1:7702"; "http://h:8086 (db x)" → "h:8086". */
const bareAddress = (a: string) => a.replace(/^[a-z]+:\/\//, "").replace(/\s.*$/, "");

/**
 * Adds what `wirescope up` knows to the rows: restart counts, and a DOWN (or DISABLED) row for
 * every expected component that answered nowhere, so a probe that failed is listed, not absent.
 */
export function withExpected(rows: StatusRow[], supervised: ChildState[]): StatusRow[] {
  const out = [...rows];
  const bare = bareAddress;
  for (const c of supervised) {
    // nats: the row of that server when status lists each member of a cluster, else the one row
    const natsRows = out.filter((r) => r.component === "nats");
    const row =
      c.component === "nats"
        ? (natsRows.find((r) => bare(r.address) === bare(c.address)) ?? (natsRows.length === 1 ? natsRows[0] : undefined))
        : out.find((r) => r.component === c.component && (r.component === "influxdb" || bare(r.address) === bare(c.address)));
    if (row) {
      row.restarts = c.restarts;
      row.supervisor = c.state;
      if (c.state !== "running" && c.reason) row.warnings.push(`up: ${c.state}: ${c.reason}`);
      continue;
    }
    // a process status does not ask (the demo shop): up's word for it is all there is
    const asked = c.component === "nats" || c.component === "influxdb" || (COMPONENTS as readonly string[]).includes(c.component);
    if (!asked && c.state === "running") {
      out.push({ component: c.component, instance: c.name, address: bare(c.address), health: "RUNNING", counters: {}, info: { pid: String(c.pid ?? "") }, warnings: [], restarts: c.restarts, supervisor: c.state });
      continue;
    }
    out.push({
      component: c.component,
      instance: "",
      address: bare(c.address),
      health: c.state === "disabled" ? "DISABLED" : "DOWN",
      counters: {},
      info: {},
      warnings: [],
      restarts: c.restarts,
      supervisor: c.state,
      error: c.state === "disabled" ? c.reason : `${c.state === "running" ? "not answering" : c.state}${c.reason ? `: ${c.reason}` : ""}`,
    });
  }
  for (const c of COMPONENTS) {
    if (out.some((r) => r.component === c)) continue;
    out.push({ component: c, instance: "", address: "-", health: "DOWN", counters: {}, info: {}, warnings: [], error: "no instance announced itself and none answers on the default port" });
  }
  const order = (c: string) => ["nats", "influxdb", ...COMPONENTS].indexOf(c) >>> 0;
  return out.sort((a, b) => order(a.component) - order(b.component));
}

/** One row for the service at `address`; health "UNREACHABLE" when it does not answer. */
async function askService(address: string, hint: Component | undefined, timeoutMs: number): Promise<StatusRow> {
  const { checkHealth, createClient, servingStatusName, ServingStatus, COMPONENT_SERVICES } = await import("../clients.js");
  const health = await checkHealth(address, "", timeoutMs);
  const row: StatusRow = { component: hint ?? "?", instance: "", address, health: servingStatusName(health.status), counters: {}, info: {}, warnings: [] };
  if (health.status === ServingStatus.UNKNOWN && health.error) return { ...row, health: "UNREACHABLE", error: health.error };
  // The component is whichever wirescope service answers Status.
  for (const c of hint ? [hint] : COMPONENTS) {
    const client = createClient(COMPONENT_SERVICES[c], address);
    try {
      const s = await client.status({}, { timeoutMs });
      row.component = s.component || c;
      row.instance = s.instance;
      row.uptimeMs = Number(s.uptimeMs);
      row.counters = s.counters;
      row.info = s.info;
      row.warnings = s.warnings;
      break;
    } catch (e) {
      row.error = errorMessage(e);
    } finally {
      client.close();
    }
  }
  if (row.instance) delete row.error;
  return row;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out after ${ms} ms trying to ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

/** "3d 4h", "5m 2s", "800ms". */
export function formatUptime(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 1000) return `${ms}ms`;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/**
 * The counters worth a glance, best first: non-zero losses and errors, then throughput, then the
 * rest; zeros last. `--json` shows them all.
 */
export function keyCounters(counters: Record<string, number>, max: number): [string, number][] {
  const rank = ([k, v]: [string, number]) =>
    (v === 0 ? 10 : 0) + (/drop|error|trap|fail|lost|reject/.test(k) ? 0 : /_in$|_out$|received|published|records|batches|events/.test(k) ? 1 : 2);
  return Object.entries(counters)
    .sort((a, b) => rank(a) - rank(b) || (a[0] < b[0] ? -1 : 1))
    .slice(0, max);
}

/**
 * What an instance of a fleet owns: its partitions (a parser replica's raw partitions, an
 * aggregator's records partitions: "owns=22/64:0-3,7", the list cut at 60 characters; `--json`
 * has it whole), and the services an aggregator counts.
 */
function ownership(info: Record<string, string>): string[] {
  const out: string[] = [];
  if (info.partitions_owned) {
    const o = info.partitions_owned.replace(": ", ":");
    out.push(`owns=${o.length > 60 ? o.slice(0, 59) + "…" : o}`);
  }
  if (info.services) {
    const s = info.services;
    out.push(`services=${s.length > 60 ? s.slice(0, 59) + "…" : s}`.replace(/: /, ":"));
  }
  return out;
}

/** Renders rows as an aligned text table; counters shortened to the key few. */
export function formatTable(rows: StatusRow[], maxCounters = 5): string {
  const head = ["COMPONENT", "INSTANCE", "ADDRESS", "HEALTH", "UPTIME", "RESTARTS", "KEY COUNTERS / NOTES"];
  const body = rows.map((r) => {
    const total = Object.keys(r.counters).length;
    const counters = keyCounters(r.counters, maxCounters).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`);
    const more = total > maxCounters ? [`(+${total - maxCounters})`] : [];
    const notes = [...ownership(r.info), ...counters, ...more, ...r.warnings.map((w) => `! ${w}`), ...(r.error ? [`error: ${r.error}`] : [])].join(" ");
    return [r.component, r.instance || "-", r.address, r.health, formatUptime(r.uptimeMs), r.restarts === undefined ? "-" : String(r.restarts), notes];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd()).join("\n") + "\n";
}

const status: Command = {
  name: "status",
  summary: "health, uptime and counters of every running service",
  usage: USAGE,
  flags: [...OPTIONS, ...STATUS_FLAGS],
  async run(argv) {
    const { config, rest } = loadConfig({ argv, command: "status" });
    const { json, extra, timeoutMs } = parseStatusArgs(rest);
    const rows = await collectStatus(config, extra, timeoutMs);
    process.stdout.write(json ? JSON.stringify(rows, null, 2) + "\n" : formatTable(rows));
    const services = rows.filter((r) => r.component !== "nats" && r.component !== "influxdb" && r.health !== "DOWN" && r.health !== "DISABLED");
    if (!services.length && !json) process.stderr.write("wirescope status: no service found (is `wirescope up` running?)\n");
    return services.length > 0 && rows.every((r) => ["SERVING", "DISABLED", "RUNNING"].includes(r.health)) ? 0 : 1;
  },
};

export default status;
