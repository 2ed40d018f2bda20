// The pure core of `wirescope top`: InfluxQL result rows in, service / endpoint / edge rows out.
// No I/O here (the queries are built here, run by query.ts), so it is tested with plain data.
//
// Percentiles of a service or endpoint that spans several series or windows cannot be merged from
// the per-series p50/p99 fields (a quantile of quantiles is not a quantile). They come from the
// `latency_hist` buckets summed over those points instead (bucket counts add up exactly), with
// linear interpolation inside the bucket, and are marked as estimates. One series in one window
// keeps its exact DDSketch value.

/** One series of an InfluxQL result, flattened: tags plus column values. */
export type Row = Record<string, string | number | null>;

export type Role = "server" | "client";

export interface LatencyStats {
  p50: number | undefined;
  p99: number | undefined;
  /** True when the values are interpolated from histogram buckets, not exact. */
  estimated: boolean;
}

export interface ServiceRow extends LatencyStats {
  service: string;
  /**
   * The side these figures describe: server (requests it answered) or, for a service that only
   * calls others, client; `external` for a peer outside the traced processes (the service map's
   * external node), whose figures are those of the edges that reach it; `other-node` for a traced
   * service with no series on the node shown, an end of that node's edges (its figures those of
   * the edges, as for a peer).
   */
  role: Role | "external" | "other-node";
  requests: number;
  errors: number;
  rate: number;
  errorPct: number;
}

export interface EndpointRow extends LatencyStats {
  protocol: string;
  operation: string;
  resource: string;
  requests: number;
  errors: number;
  rate: number;
  errorPct: number;
}

export interface EdgeRow {
  client: string;
  server: string;
  protocol: string;
  requests: number;
  errors: number;
  rate: number;
  errorPct: number;
  p99: number | undefined;
}

export interface PipelineHealth {
  /** Sum over the range of every `drops_*` field by component (only non-zero ones). */
  drops: { component: string; reason: string; count: number }[];
  /** Whether any pipeline point exists in the range. */
  seen: boolean;
}

/** Quotes a string for an InfluxQL string literal. */
export function quote(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** What one refresh looks at: the drill-down's service, and one node ("" or absent: every node). */
export interface Scope {
  service?: string;
  node?: string;
}

/**
 * The queries of one refresh, for a range in seconds. `scope.service` adds the drill-down
 * queries; `scope.node` keeps the points of that node (the `node` tag of red, latency_hist and
 * edges: where the observed end runs). The pipeline's drops and the list of nodes (`nodes`, what
 * the node key cycles through) are of every node.
 */
export function buildQueries(rangeS: number, scope: Scope = {}): Record<string, string> {
  const all = `time > now() - ${Math.max(1, Math.round(rangeS))}s`;
  const t = scope.node ? `${all} AND "node" = ${quote(scope.node)}` : all;
  const q: Record<string, string> = {
    red: `SELECT sum("requests") AS "requests", sum("errors") AS "errors", count("p50_ms") AS "points", min("p50_ms") AS "p50lo", max("p50_ms") AS "p50hi", min("p99_ms") AS "p99lo", max("p99_ms") AS "p99hi" FROM "red" WHERE ${t} GROUP BY "service", "role"`,
    hist: `SELECT sum("count") AS "count" FROM "latency_hist" WHERE ${t} GROUP BY "service", "role", "le"`,
    edges: `SELECT sum("requests") AS "requests", sum("errors") AS "errors", max("p99_ms") AS "p99" FROM "edges" WHERE ${t} GROUP BY "client", "server", "protocol"`,
    pipeline: `SELECT sum(*) FROM "pipeline" WHERE ${all} GROUP BY "component"`,
    nodes: `SELECT sum("requests") AS "requests" FROM "red" WHERE ${all} GROUP BY "node"`,
    // the aggregator decides which ends are outside (map-nodes.ts): top reads its decision
    mapNodes: `SELECT last("kind") AS "kind" FROM "map_nodes" WHERE ${t} GROUP BY "service"`,
  };
  if (scope.service !== undefined) {
    const w = `${t} AND "service" = ${quote(scope.service)} AND "role" = 'server'`;
    q.endpoints = `SELECT sum("requests") AS "requests", sum("errors") AS "errors", count("p50_ms") AS "points", min("p50_ms") AS "p50lo", max("p50_ms") AS "p50hi", min("p99_ms") AS "p99lo", max("p99_ms") AS "p99hi" FROM "red" WHERE ${w} GROUP BY "protocol", "operation", "resource", "status_class"`;
    q.endpointHist = `SELECT sum("count") AS "count" FROM "latency_hist" WHERE ${w} GROUP BY "protocol", "operation", "resource", "le"`;
  }
  return q;
}

/** The response shape of InfluxDB's /query (1.x, and 2.x/3.x v1 compatibility). */
export interface InfluxQLResult {
  results?: { statement_id?: number; error?: string; series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[] }[];
  error?: string;
}

/** Flattens one statement's series into rows (tags + columns). Throws on an InfluxQL error. */
export function rowsOf(body: InfluxQLResult, statement = 0): Row[] {
  if (body.error) throw new Error(body.error);
  const r = body.results?.find((x, i) => (x.statement_id ?? i) === statement);
  if (!r) return [];
  if (r.error) throw new Error(r.error);
  const out: Row[] = [];
  for (const s of r.series ?? []) {
    for (const v of s.values) {
      const row: Row = { ...(s.tags ?? {}) };
      s.columns.forEach((c, i) => (row[c] = v[i] as string | number | null));
      out.push(row);
    }
  }
  return out;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/**
 * The q-quantile from cumulative bucket counts (`le` → count), linear inside the bucket; the
 * open `+Inf` bucket answers its lower bound (there is nothing to interpolate towards).
 */
export function histogramQuantile(buckets: Map<string, number>, q: number): number | undefined {
  const bounds = [...buckets.entries()]
    .map(([le, c]) => ({ le: le === "+Inf" ? Infinity : Number(le), c }))
    .filter((b) => !Number.isNaN(b.le))
    .sort((a, b) => a.le - b.le);
  if (!bounds.length) return undefined;
  const total = bounds[bounds.length - 1]!.c;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const b of bounds) {
    if (b.c >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.c - prevC;
      if (inBucket <= 0) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevC)) / inBucket;
    }
    prevLe = b.le === Infinity ? prevLe : b.le;
    prevC = b.c;
  }
  return prevLe;
}

/** Groups histogram rows by the key of `keyOf`, summing counts per `le`. */
function histByKey(rows: Row[], keyOf: (r: Row) => string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    const k = keyOf(r);
    let b = out.get(k);
    if (!b) out.set(k, (b = new Map()));
    const le = String(r.le ?? "");
    b.set(le, (b.get(le) ?? 0) + num(r.count));
  }
  return out;
}

/**
 * Latency of one aggregate of several points (series × windows). A quantile of a union of sets
 * lies between the smallest and the largest of the parts' quantiles, so the points' own p50/p99
 * bracket the answer exactly; inside that bracket the summed histogram places it. When the
 * bracket is a single value (one point, or identical points) the value is exact.
 */
function latency(r: Row, hist: Map<string, number> | undefined): LatencyStats {
  const one = (q: number, lo: unknown, hi: unknown): [number | undefined, boolean] => {
    if (typeof lo !== "number" || typeof hi !== "number") return [undefined, true];
    if (lo === hi) return [lo, false];
    const h = hist ? histogramQuantile(hist, q) : undefined;
    return [Math.min(hi, Math.max(lo, h ?? (lo + hi) / 2)), true];
  };
  const [p50, e50] = one(0.5, r.p50lo, r.p50hi);
  const [p99, e99] = one(0.99, r.p99lo, r.p99hi);
  return { p50, p99, estimated: e50 || e99 };
}

/** Requests, errors and what follows from them over the range. */
function counts(r: Row, rangeS: number) {
  const requests = num(r.requests);
  const errors = num(r.errors);
  return { requests, errors, rate: requests / rangeS, errorPct: requests > 0 ? (100 * errors) / requests : 0 };
}

/**
 * One row per service: its server side when it answered requests in the range, else its client
 * side (a service that only calls others, such as a load generator or a cron job).
 */
export function serviceRows(red: Row[], hist: Row[], rangeS: number): ServiceRow[] {
  const h = histByKey(hist, (r) => `${r.service}\u0000${r.role}`);
  const byService = new Map<string, ServiceRow>();
  for (const r of red) {
    const service = String(r.service ?? "");
    const role: Role = r.role === "client" ? "client" : "server";
    if (byService.get(service)?.role === "server") continue;
    byService.set(service, { service, role, ...counts(r, rangeS), ...latency(r, h.get(`${service}\u0000${role}`)) });
  }
  return [...byService.values()];
}

/** Endpoints of one service (its server side). */
export function endpointRows(endpoints: Row[], hist: Row[], rangeS: number): EndpointRow[] {
  const key = (r: Row) => `${r.protocol}\u0000${r.operation}\u0000${r.resource}`;
  const h = histByKey(hist, key);
  // Status classes are separate series of one endpoint: add them up, widen the brackets.
  const merged = new Map<string, Row>();
  const lo = (a: unknown, b: unknown) => (typeof a !== "number" ? b : typeof b !== "number" ? a : Math.min(a, b));
  const hi = (a: unknown, b: unknown) => (typeof a !== "number" ? b : typeof b !== "number" ? a : Math.max(a, b));
  for (const r of endpoints) {
    const k = key(r);
    const m = merged.get(k);
    if (!m) merged.set(k, { ...r });
    else {
      m.requests = num(m.requests) + num(r.requests);
      m.errors = num(m.errors) + num(r.errors);
      m.p50lo = lo(m.p50lo, r.p50lo) as number;
      m.p99lo = lo(m.p99lo, r.p99lo) as number;
      m.p50hi = hi(m.p50hi, r.p50hi) as number;
      m.p99hi = hi(m.p99hi, r.p99hi) as number;
    }
  }
  return [...merged.entries()].map(([k, m]) => ({
    protocol: String(m.protocol ?? ""),
    operation: String(m.operation ?? ""),
    resource: String(m.resource ?? ""),
    ...counts(m, rangeS),
    ...latency(m, h.get(k)),
  }));
}

/** The nodes that recorded requests in the range, by name. */
export function nodeNames(rows: Row[]): string[] {
  const names = new Set<string>();
  for (const r of rows) if (typeof r.node === "string" && r.node && num(r.requests) > 0) names.add(r.node);
  return [...names].sort();
}

/** The names the service map calls external (`map_nodes` kind=external) in the range, sorted. */
export function externalNames(kinds: ReadonlyMap<string, string>): string[] {
  return [...kinds].filter(([, k]) => k === "external").map(([n]) => n).sort();
}

/** The service map's nodes in the range (`map_nodes`): name → kind (`service` or `external`). */
export function mapNodeKinds(mapNodes: Row[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of mapNodes) if (typeof r.service === "string") out.set(r.service, r.kind === "external" ? "external" : "service");
  return out;
}

/**
 * The service map's nodes that have no red series in scope, as rows of the services view, so that
 * it lists every node of the map: external peers, and (with `--node`) traced services of other
 * nodes that are an end of this node's edges. Such a row has no red series of its own: its
 * figures are those of the edges that reach it, as a server (what its callers saw) or else as a
 * client (what the servers it called answered). Latency stays unknown: the edges' p99 values of
 * several series do not merge into a p99. A name that has red series in scope is a service row
 * already and is left out.
 */
export function peerRows(kinds: ReadonlyMap<string, string>, edges: readonly EdgeRow[], services: readonly ServiceRow[]): ServiceRow[] {
  const traced = new Set(services.map((s) => s.service));
  const peers = new Set([...kinds.keys()].filter((n) => !traced.has(n)));
  // per peer: the sums as a server, then as a client (one pass over the edges)
  const sums = new Map<string, [number, number, number][]>();
  const add = (name: string, side: 0 | 1, e: EdgeRow) => {
    if (!peers.has(name)) return;
    let s = sums.get(name);
    if (!s) sums.set(name, (s = [[0, 0, 0], [0, 0, 0]]));
    const t = s[side]!;
    t[0] += e.requests;
    t[1] += e.errors;
    t[2] += e.rate;
  };
  for (const e of edges) {
    add(e.server, 0, e);
    add(e.client, 1, e);
  }
  return [...peers].sort().map((service) => {
    const s = sums.get(service);
    const [requests, errors, rate] = !s ? [0, 0, 0] : s[0]![0] > 0 ? s[0]! : s[1]!;
    const role = kinds.get(service) === "external" ? ("external" as const) : ("other-node" as const);
    return { service, role, requests, errors, rate, errorPct: requests > 0 ? (100 * errors) / requests : 0, p50: undefined, p99: undefined, estimated: false };
  });
}

export function edgeRows(edges: Row[], rangeS: number): EdgeRow[] {
  return edges.map((r) => ({
    client: String(r.client ?? ""),
    server: String(r.server ?? ""),
    protocol: String(r.protocol ?? ""),
    ...counts(r, rangeS),
    p99: r.p99 === null || r.p99 === undefined ? undefined : num(r.p99),
  }));
}

/**
 * Non-zero losses per component: the `drops_*` fields (`sum(*)` names its columns `sum_<field>`).
 * `spans_dropped` is sampling by design, not a loss, and is left out.
 */
export function pipelineHealth(rows: Row[]): PipelineHealth {
  const drops: PipelineHealth["drops"] = [];
  for (const r of rows) {
    for (const [col, v] of Object.entries(r)) {
      const m = /^sum_(drops_.+)$/.exec(col);
      if (m && num(v) > 0) drops.push({ component: String(r.component ?? "?"), reason: m[1]!, count: num(v) });
    }
  }
  drops.sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1));
  return { drops, seen: rows.length > 0 };
}

export type SortKey = "rate" | "errors" | "p50" | "p99" | "name";
export const SORT_KEYS: SortKey[] = ["rate", "errors", "p50", "p99", "name"];

/** Sorts service rows in place: by name ascending, everything else descending, ties by name. */
export function sortServices<T extends { service?: string; rate: number; errorPct: number; p50?: number; p99?: number }>(rows: T[], by: SortKey, name: (r: T) => string): T[] {
  const val = (r: T): number => (by === "rate" ? r.rate : by === "errors" ? r.errorPct : by === "p50" ? (r.p50 ?? -1) : by === "p99" ? (r.p99 ?? -1) : 0);
  return rows.sort((a, b) => (by === "name" ? 0 : val(b) - val(a)) || (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
}

/** Case-insensitive substring filter; an empty filter keeps everything. */
export function matches(filter: string, ...fields: string[]): boolean {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return fields.some((x) => x.toLowerCase().includes(f));
}
