// Prometheus `/metrics` for pipeline health: the Status RPC's counters, gauges and info under
// Prometheus names, plus prom-client's default process metrics. One mapping for every component.
//
// Nothing runs on the hot path: a scrape reads `Counters.snapshot()` and renders it. The mapping
// from a status counter name (`base[.key]`, see counters.ts) to a series:
//
//   gauge (written with `set`)      base.key        -> wirescope_<base>{key}
//   drop counter                    X_dropped.R     -> wirescope_drops_total{what="X", reason="R"}
//                                   X_drops_R       -> wirescope_drops_total{what="X", reason="R"}
//                                   bytes_dropped.R -> wirescope_dropped_bytes_total{reason="R"}
//   any other counter               base.key        -> wirescope_<base>_total{key}
//   the plugin host's counters      host.<name>     -> as above, with source="plugin_host"
//
// Every series also carries component and instance. `wirescope_service_info` (value 1) carries
// version and the status info (node, pid, grpc, ...) as labels; `wirescope_ready` is 1 while the
// Health service says SERVING; `wirescope_warnings` counts the warnings `status` shows.
import http from "node:http";
import { Registry, collectDefaultMetrics, type Metric } from "prom-client";
import type { Counters } from "./counters.js";
import { errorMessage } from "./errors.js";
import { listenOn } from "./process.js";
import { hostPort } from "@wirescope/wire/identity";

export interface MetricsSource {
  component: string;
  instance: string;
  version: string;
  counters: Counters;
  info: ReadonlyMap<string, string>;
  /** Health SERVING. */
  ready(): boolean;
  warnings(): number;
  uptimeSeconds(): number;
}

/** One Prometheus series a status counter maps to. */
export interface SeriesName {
  family: string;
  type: "counter" | "gauge";
  labels: Record<string, string>;
}

const DROP = /^(.*?)_?(?:drops|dropped)(?:_(.+))?$/;

function metricName(s: string): string {
  const n = s.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(n) ? `_${n}` : n;
}

/** The series a status counter `name` is exported as (`gauge`: it was written with `set`). */
export function seriesFor(name: string, gauge: boolean): SeriesName {
  const labels: Record<string, string> = {};
  if (name.startsWith("host.")) {
    labels.source = "plugin_host";
    name = name.slice(5);
  }
  const dot = name.indexOf(".");
  const base = dot < 0 ? name : name.slice(0, dot);
  const sub = dot < 0 ? undefined : name.slice(dot + 1);
  if (gauge) return { family: `wirescope_${metricName(base)}`, type: "gauge", labels: sub === undefined ? labels : { ...labels, key: sub } };
  const m = DROP.exec(base);
  if (m) {
    const reason = [m[2], sub].filter((x) => x !== undefined).join(".");
    if (m[1] === "bytes" || m[1].endsWith("_bytes")) {
      const what = m[1].replace(/_?bytes$/, "");
      return { family: "wirescope_dropped_bytes_total", type: "counter", labels: { ...labels, ...(what ? { what } : {}), reason } };
    }
    return { family: "wirescope_drops_total", type: "counter", labels: { ...labels, what: m[1], reason } };
  }
  return { family: `wirescope_${metricName(base)}_total`, type: "counter", labels: sub === undefined ? labels : { ...labels, key: sub } };
}

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  values: { labels: Record<string, string | number>; value: number }[];
}

/** Renders the source's current values as metric families (called at scrape time only). */
export function collect(src: MetricsSource): Family[] {
  const own = { component: src.component, instance: src.instance };
  const families = new Map<string, Family>();
  const put = (family: string, type: "counter" | "gauge", help: string, labels: Record<string, string>, value: number) => {
    let f = families.get(family);
    if (!f) families.set(family, (f = { name: family, help, type, values: [] }));
    f.values.push({ labels: { ...own, ...labels }, value });
  };
  for (const [name, value] of Object.entries(src.counters.snapshot())) {
    const s = seriesFor(name, src.counters.isGauge(name));
    put(s.family, s.type, s.family.endsWith("drops_total") || s.family.endsWith("dropped_bytes_total") ? "pipeline drops by what was dropped and why (status counters *_dropped.*, *_drops_*)" : `status counter ${name.replace(/\..*$/, "")}`, s.labels, value);
  }
  const info: Record<string, string> = { version: src.version };
  for (const [k, v] of src.info) info[metricName(k)] = v;
  put("wirescope_service_info", "gauge", "constant 1; the service's status info as labels", info, 1);
  put("wirescope_ready", "gauge", "1 while the Health service reports SERVING", {}, src.ready() ? 1 : 0);
  put("wirescope_warnings", "gauge", "warnings shown by `wirescope status`", {}, src.warnings());
  put("wirescope_uptime_seconds", "gauge", "seconds since the service started", {}, src.uptimeSeconds());
  return [...families.values()];
}

/**
 * How often prom-client's event-loop delay histogram (`nodejs_eventloop_lag_*`) samples the loop, in
 * ms. Its default, 10 ms, is a libuv timer that wakes every service 100 times a second, idle or
 * not: ~8 ms of CPU a second per process on the 2-core VM, more than an idle probe or parser does
 * otherwise. Once a second, a block of the loop shows in the histogram when a sample falls in it
 * (a block of 1 s or more always does); `nodejs_eventloop_lag_seconds` (measured at each scrape)
 * is unchanged.
 */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** A prom-client registry holding the default process metrics and the source's families. */
export function metricsRegistry(src: MetricsSource): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, labels: { component: src.component, instance: src.instance }, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const seen = new Map<string, { latest?: Family }>();
  const register = async (): Promise<void> => {
    const now = collect(src);
    for (const entry of seen.values()) entry.latest = undefined;
    for (const f of now) {
      let entry = seen.get(f.name);
      if (!entry) {
        const e: { latest?: Family } = {};
        entry = e;
        seen.set(f.name, e);
        const metric = { name: f.name, help: f.help, type: f.type, get: async () => e.latest ?? { ...f, values: [] } };
        registry.registerMetric(metric as unknown as Metric);
      }
      entry.latest = f;
    }
  };
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    await register();
    return metrics();
  };
  return registry;
}

export interface MetricsServer {
  /** "host:port" bound. */
  address: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` on host:port (port > 0). Rejects when the port cannot be bound. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${errorMessage(e)}\n`),
    );
  });
  const a = await listenOn(server, port, host);
  return {
    address: hostPort(a.address, a.port),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
