// `wirescope top`'s views as plain text lines (pure: state and data in, lines out). The command
// adds the terminal handling; tests render and read these lines directly.
import {
  SORT_KEYS,
  matches,
  sortServices,
  type EdgeRow,
  type EndpointRow,
  type PipelineHealth,
  type ServiceRow,
  type SortKey,
} from "./model.js";

export type View = "services" | "service" | "edges";

export interface TopState {
  view: View;
  /** The service shown by the "service" view. */
  service: string;
  sort: SortKey;
  filter: string;
  /** The node whose points are shown ("": every node). */
  node: string;
  /** Typing a filter after `/` (Enter applies it, Esc cancels). */
  editing: boolean;
  draft: string;
  /** Selected row of the list in the current view. */
  selected: number;
}

export function initialState(sort: SortKey = "rate"): TopState {
  return { view: "services", service: "", sort, filter: "", node: "", editing: false, draft: "", selected: 0 };
}

export interface TopData {
  services: ServiceRow[];
  edges: EdgeRow[];
  endpoints: EndpointRow[];
  /** Nodes with requests in the range (of every node, whatever the node shown). */
  nodes: string[];
  /** Peers outside the traced processes (the service map's external nodes, `map_nodes`), sorted. */
  external: string[];
  pipeline: PipelineHealth;
  /** Wall-clock time of the refresh, and its error when it failed (the previous data stays). */
  at: Date;
  error?: string;
}

export interface Frame {
  source: string;
  rangeS: number;
  width: number;
  height: number;
}

export function fmtRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

export function fmtMs(v: number | undefined, estimated = false): string {
  if (v === undefined || !Number.isFinite(v)) return "-";
  const s = v >= 1000 ? `${(v / 1000).toFixed(2)}s` : v >= 100 ? `${v.toFixed(0)}ms` : v >= 10 ? `${v.toFixed(1)}ms` : `${v.toFixed(2)}ms`;
  return estimated ? `~${s}` : s;
}

const fmtPct = (p: number) => `${p.toFixed(p >= 10 || p === 0 ? 1 : 2)}%`;

/** Aligned columns; the last column takes what is left and is cut to the width. */
function table(head: string[], rows: string[][], width: number, right: Set<number>): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
      .slice(0, width);
  return [line(head), ...rows.map(line)];
}

/** The rows of the current view after filtering and sorting (what the selection indexes). */
export function visibleServices(s: TopState, d: TopData): ServiceRow[] {
  return sortServices(
    d.services.filter((r) => matches(s.filter, r.service)),
    s.sort,
    (r) => r.service,
  );
}

export function visibleEdges(s: TopState, d: TopData): EdgeRow[] {
  return sortServices(
    d.edges.filter((e) => matches(s.filter, e.client, e.server, e.protocol)),
    s.sort,
    (e) => `${e.client}\u0000${e.server}`,
  );
}

export function visibleEndpoints(s: TopState, d: TopData): EndpointRow[] {
  return sortServices(
    d.endpoints.filter((e) => matches(s.filter, e.operation, e.resource, e.protocol)),
    s.sort,
    (e) => `${e.operation} ${e.resource}`,
  );
}

/** How many selectable rows the current view has. */
export function rowCount(s: TopState, d: TopData): number {
  return s.view === "services" ? visibleServices(s, d).length : s.view === "edges" ? visibleEdges(s, d).length : visibleEndpoints(s, d).length;
}

const mark = (on: boolean) => (on ? ">" : " ");

/** What marks an external peer wherever a name is shown, and the line that says so. */
export const EXTERNAL_MARK = "*";
export const EXTERNAL_LEGEND = `${EXTERNAL_MARK} external: not a traced process (named by its address; the service map's external node)`;

/** A name as shown: marked when it is an external peer. */
function namer(d: TopData): (name: string) => string {
  if (!d.external.length) return (n) => n;
  const ext = new Set(d.external);
  return (n) => (ext.has(n) ? n + EXTERNAL_MARK : n);
}

/** The legend line when any of `names` is external. */
function legend(d: TopData, names: Iterable<string>): string[] {
  if (!d.external.length) return [];
  const ext = new Set(d.external);
  for (const n of names) if (ext.has(n)) return ["", EXTERNAL_LEGEND];
  return [];
}

/** Renders the whole screen: header, the view's table, callers/callees, footer, key help. */
export function render(s: TopState, d: TopData, f: Frame): string[] {
  const head = `wirescope top  ${f.source}  last ${f.rangeS}s  ${d.at.toISOString().slice(11, 19)}  sort: ${s.sort}  node: ${s.node || "all"}${s.filter ? `  filter: ${s.filter}` : ""}`;
  const out: string[] = [head.slice(0, f.width)];
  if (d.error) out.push(`! ${d.error}`.slice(0, f.width));
  out.push("");
  let body: string[];
  if (s.view === "services") body = servicesView(s, d, f);
  else if (s.view === "edges") body = edgesView(s, d, f);
  else body = serviceView(s, d, f);
  const foot = footer(s, d, f);
  const room = Math.max(3, f.height - out.length - foot.length);
  // Keep the selected row on screen: scroll the table part (its first line is the header).
  if (f.height > 0 && body.length > room) {
    const sel = s.selected + 1;
    const start = Math.min(Math.max(0, sel - room + 2), body.length - room);
    body = [body[0]!, ...body.slice(Math.max(1, start + 1), start + room)];
  }
  out.push(...body);
  while (out.length < f.height - foot.length) out.push("");
  out.push(...foot);
  return out;
}

function servicesView(s: TopState, d: TopData, f: Frame): string[] {
  const rows = visibleServices(s, d);
  if (!rows.length) {
    if (d.services.length) return ["(no service matches the filter)"];
    if (s.node) return [`(no requests recorded on node ${s.node} in this range; nodes with requests: ${d.nodes.join(", ") || "none"})`];
    return ["(no requests recorded in this range: is the pipeline running and is traffic flowing?)"];
  }
  const name = namer(d);
  return [
    ...table(
      [" SERVICE", "ROLE", "RATE/s", "ERR%", "P50", "P99", "REQUESTS"],
      rows.map((r, i) => [`${mark(i === s.selected)}${name(r.service)}`, r.role, fmtRate(r.rate), fmtPct(r.errorPct), fmtMs(r.p50, r.estimated), fmtMs(r.p99, r.estimated), String(r.requests)]),
      f.width,
      new Set([2, 3, 4, 5, 6]),
    ),
    ...legend(d, rows.map((r) => r.service)),
  ];
}

function edgesView(s: TopState, d: TopData, f: Frame): string[] {
  const rows = visibleEdges(s, d);
  if (!rows.length) return ["EDGES", d.edges.length ? "(no edge matches the filter)" : "(no edges in this range)"];
  const name = namer(d);
  return [
    "EDGES (client -> server)",
    ...table(
      [" CLIENT", "", "SERVER", "PROTO", "RATE/s", "ERR%", "P99", "REQUESTS"],
      rows.map((e, i) => [`${mark(i === s.selected)}${name(e.client)}`, "->", name(e.server), e.protocol, fmtRate(e.rate), fmtPct(e.errorPct), fmtMs(e.p99), String(e.requests)]),
      f.width,
      new Set([4, 5, 6, 7]),
    ),
    ...legend(d, rows.flatMap((e) => [e.client, e.server])),
  ];
}

function serviceView(s: TopState, d: TopData, f: Frame): string[] {
  const svc = d.services.find((r) => r.service === s.service);
  const out: string[] = [];
  out.push(
    svc?.role === "external"
      ? `PEER ${s.service}${EXTERNAL_MARK}  ${fmtRate(svc.rate)}/s  errors ${fmtPct(svc.errorPct)}  (not traced: figures of the edges that reach it)`
      : svc?.role === "other-node"
      ? `SERVICE ${s.service}  ${fmtRate(svc.rate)}/s  errors ${fmtPct(svc.errorPct)}  (traced on another node: figures of this node's edges that reach it)`
      : svc
      ? `SERVICE ${s.service}  ${fmtRate(svc.rate)}/s  errors ${fmtPct(svc.errorPct)}  p50 ${fmtMs(svc.p50, svc.estimated)}  p99 ${fmtMs(svc.p99, svc.estimated)}`
      : `SERVICE ${s.service}  (no requests in this range)`,
  );
  const eps = visibleEndpoints(s, d);
  out.push("ENDPOINTS");
  if (eps.length) {
    out.push(
      ...table(
        [" PROTO", "OPERATION", "RATE/s", "ERR%", "P50", "P99", "RESOURCE"],
        eps.map((e, i) => [`${mark(i === s.selected)}${e.protocol}`, e.operation, fmtRate(e.rate), fmtPct(e.errorPct), fmtMs(e.p50, e.estimated), fmtMs(e.p99, e.estimated), e.resource]),
        f.width,
        new Set([2, 3, 4, 5]),
      ),
    );
  } else out.push("  (none as a server)");
  const callers = d.edges.filter((e) => e.server === s.service);
  const callees = d.edges.filter((e) => e.client === s.service);
  const name = namer(d);
  const self = name(s.service);
  out.push("", "CALLERS");
  out.push(...(callers.length ? callers.map((e) => `  ${name(e.client)} -> ${self}  ${e.protocol}  ${fmtRate(e.rate)}/s  err ${fmtPct(e.errorPct)}`) : ["  (none)"]));
  out.push("CALLEES");
  out.push(...(callees.length ? callees.map((e) => `  ${self} -> ${name(e.server)}  ${e.protocol}  ${fmtRate(e.rate)}/s  err ${fmtPct(e.errorPct)}`) : ["  (none)"]));
  out.push(...legend(d, [s.service, ...callers.map((e) => e.client), ...callees.map((e) => e.server)]));
  return out.map((l) => l.slice(0, f.width));
}

function footer(s: TopState, d: TopData, f: Frame): string[] {
  const p = d.pipeline;
  const drops = !p.seen
    ? "pipeline: no self-metrics in this range"
    : p.drops.length
      ? `pipeline drops: ${p.drops.map((x) => `${x.component}.${x.reason}=${x.count}`).join(" ")}`
      : "pipeline: no drops";
  const keys = s.editing
    ? `filter: ${s.draft}_   (Enter apply, Esc cancel)`
    : s.view === "services"
      ? "up/down move  Enter open  e edges  s sort  / filter  n node  r refresh  q quit"
      : "up/down move  Esc back  e edges  s sort  / filter  n node  r refresh  q quit";
  return [drops.slice(0, f.width), keys.slice(0, f.width)];
}

/** The node after `node` in the cycle every node ("") → each node with data, by name → every node. */
export function nextNode(node: string, nodes: readonly string[]): string {
  const cycle = ["", ...nodes];
  return cycle[(cycle.indexOf(node) + 1) % cycle.length]!;
}

/** What a key press does: the new state, or "quit". Keys arrive as the terminal sends them. */
export function onKey(s: TopState, d: TopData, key: string): TopState | "quit" | "refresh" {
  if (key === "\u0003") return "quit";
  if (s.editing) {
    if (key === "\r" || key === "\n") return { ...s, editing: false, filter: s.draft, selected: 0 };
    if (key === "\u001b") return { ...s, editing: false, draft: s.filter };
    if (key === "\u007f" || key === "\b") return { ...s, draft: s.draft.slice(0, -1) };
    if (key.length === 1 && key >= " ") return { ...s, draft: s.draft + key };
    return s;
  }
  const n = rowCount(s, d);
  switch (key) {
    case "q":
      return "quit";
    case "r":
      return "refresh";
    case "\u001b[A":
    case "k":
      return { ...s, selected: Math.max(0, s.selected - 1) };
    case "\u001b[B":
    case "j":
      return { ...s, selected: Math.min(Math.max(0, n - 1), s.selected + 1) };
    case "s":
      return { ...s, sort: SORT_KEYS[(SORT_KEYS.indexOf(s.sort) + 1) % SORT_KEYS.length]! };
    case "/":
      return { ...s, editing: true, draft: s.filter };
    case "n":
      return { ...s, node: nextNode(s.node, d.nodes), selected: 0 };
    case "e":
      return { ...s, view: s.view === "edges" ? "services" : "edges", selected: 0 };
    case "\r":
    case "\n": {
      if (s.view === "services") {
        const row = visibleServices(s, d)[s.selected];
        return row ? { ...s, view: "service", service: row.service, selected: 0, filter: "" } : s;
      }
      if (s.view === "edges") {
        const e = visibleEdges(s, d)[s.selected];
        return e ? { ...s, view: "service", service: e.server, selected: 0, filter: "" } : s;
      }
      return s;
    }
    case "\u001b":
    case "\u007f":
    case "b":
    case "h":
      return s.view === "services" ? s : { ...s, view: "services", selected: 0 };
    default:
      return s;
  }
}
