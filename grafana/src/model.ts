// A small typed subset of Grafana's dashboard JSON model (schemaVersion 39), enough for our
// panels, and helpers that build it. Every query is raw InfluxQL so it runs on 1.x, 2.x (v1
// compatibility API) and 3.x alike. Panel options start from the defaults of Grafana's own
// schema (@grafana/grafana-foundation-sdk), so every option a plugin requires is there; the
// result is validated against that schema in schema.test.ts.
import { defaultDashboardLink } from "@grafana/grafana-foundation-sdk/dashboard";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import * as table from "@grafana/grafana-foundation-sdk/table";
import * as heatmap from "@grafana/grafana-foundation-sdk/heatmap";
import * as barchart from "@grafana/grafana-foundation-sdk/barchart";
import * as nodegraph from "@grafana/grafana-foundation-sdk/nodegraph";

/** Grafana's default options of each panel plugin we use (the schema's defaults). */
const DEFAULT_OPTIONS: Record<string, () => object> = {
  timeseries: () => ({ ...timeseries.defaultOptions(), legend: { displayMode: "list", placement: "bottom", showLegend: true, calcs: [] }, tooltip: { mode: "multi", sort: "desc" } }),
  table: table.defaultOptions,
  heatmap: heatmap.defaultOptions,
  barchart: barchart.defaultOptions,
  nodeGraph: nodegraph.defaultOptions,
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
/** `over` on top of `base`, objects merged key by key. */
function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? merge(out[k] as Obj, v) : v;
  return out;
}

export const DATASOURCE_UID = "wirescope-influxdb";
/** Panels reference the datasource through the dashboard's `datasource` variable. */
export const DS = { type: "influxdb", uid: "${datasource}" } as const;

export interface Target {
  refId: string;
  datasource: typeof DS;
  rawQuery: true;
  query: string;
  resultFormat: "time_series" | "table";
  alias?: string;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * A data link: a URL with Grafana's variables (`${__data.fields.x}`, `${__field.labels.x}`,
 * `${var}`). Grafana reads title, url and targetBlank; the schema types field links as dashboard
 * links, so the other properties are there with their defaults.
 */
export interface DataLink {
  title: string;
  url: string;
  targetBlank: boolean;
  type: "link";
  icon: string;
  tooltip: string;
  tags: string[];
  asDropdown: boolean;
  includeVars: boolean;
  keepTime: boolean;
}

function link(title: string, url: string): DataLink {
  const { placement: _placement, ...d } = defaultDashboardLink();
  return { ...d, type: "link", title, url };
}

export interface FieldOverride {
  matcher: { id: "byName"; options: string };
  properties: { id: string; value: unknown }[];
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: GridPos;
  datasource: typeof DS;
  targets: Target[];
  fieldConfig: { defaults: Record<string, unknown> & { links?: DataLink[] }; overrides: FieldOverride[] };
  options: Record<string, unknown>;
  transformations?: { id: string; options: Record<string, unknown> }[];
  /** Minimum query interval: our points are 10 s windows, a finer GROUP BY time() only adds holes. */
  interval?: string;
}

export interface Variable {
  name: string;
  label?: string;
  type: "datasource" | "query" | "textbox" | "custom" | "interval" | "constant";
  query: string | Record<string, unknown>;
  datasource?: typeof DS;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
  current?: Record<string, unknown>;
  refresh?: number;
  sort?: number;
  hide?: number;
  options?: unknown[];
  regex?: string;
  definition?: string;
}

export interface Dashboard {
  uid: string;
  title: string;
  tags: string[];
  timezone: "browser";
  schemaVersion: 39;
  version: 1;
  editable: true;
  refresh: string;
  time: { from: string; to: string };
  templating: { list: Variable[] };
  panels: Panel[];
  links: (Omit<DataLink, "type"> & { type: "link" | "dashboards" })[];
  annotations: { list: unknown[] };
}

export function target(query: string, format: Target["resultFormat"] = "time_series", refId = "A", alias?: string): Target {
  return { refId, datasource: DS, rawQuery: true, query, resultFormat: format, ...(alias ? { alias } : {}) };
}

/** A panel; ids and grid positions are assigned by `dashboard()`. */
export function panel(type: string, title: string, targets: Target[], opts: Partial<Omit<Panel, "type" | "title" | "targets">> & { w?: number; h?: number } = {}): Panel {
  const { w = 12, h = 8, options = {}, ...rest } = opts;
  const defaults = DEFAULT_OPTIONS[type];
  return {
    id: 0,
    type,
    title,
    gridPos: { x: 0, y: 0, w, h },
    datasource: DS,
    targets,
    fieldConfig: { defaults: {}, overrides: [] },
    options: defaults ? merge(defaults() as Obj, options) : options,
    interval: "10s",
    ...rest,
  };
}

export function datasourceVariable(): Variable {
  return { name: "datasource", label: "InfluxDB", type: "datasource", query: "influxdb", current: { text: "Wirescope InfluxDB", value: DATASOURCE_UID }, hide: 0 };
}

/** A variable listing the values of one tag (SHOW TAG VALUES), "All" = any value. */
export function tagVariable(name: string, measurement: string, key: string, opts: { multi?: boolean; where?: string; label?: string } = {}): Variable {
  const where = opts.where ? ` WHERE ${opts.where}` : "";
  return queryVariable(name, opts.label ?? key, `SHOW TAG VALUES FROM "${measurement}" WITH KEY = "${key}"${where}`, opts.multi);
}

/**
 * A variable from any InfluxQL query: Grafana takes the second column of each row (the value
 * after `time` of a SELECT, after `key` of SHOW TAG VALUES). "All" = any value.
 */
export function queryVariable(name: string, label: string, query: string, multi = true): Variable {
  return {
    name,
    label,
    type: "query",
    datasource: DS,
    query,
    definition: query,
    multi,
    includeAll: true,
    allValue: ".*",
    current: { text: "All", value: "$__all" },
    refresh: 2,
    sort: 1,
  };
}

export function textVariable(name: string, label: string): Variable {
  return { name, label, type: "textbox", query: "", current: { text: "", value: "" } };
}

/** Lays panels out left to right, top to bottom, numbering them. */
export function dashboard(uid: string, title: string, variables: Variable[], panels: Panel[], tags: string[] = []): Dashboard {
  let x = 0;
  let y = 0;
  let rowH = 0;
  panels.forEach((p, i) => {
    p.id = i + 1;
    if (x + p.gridPos.w > 24) {
      x = 0;
      y += rowH;
      rowH = 0;
    }
    p.gridPos = { ...p.gridPos, x, y };
    x += p.gridPos.w;
    rowH = Math.max(rowH, p.gridPos.h);
  });
  return {
    uid,
    title,
    tags: ["wirescope", ...tags],
    timezone: "browser",
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: "10s",
    time: { from: "now-1h", to: "now" },
    templating: { list: [datasourceVariable(), ...variables] },
    panels,
    links: [{ ...link("Wirescope", ""), type: "dashboards", tags: ["wirescope"], asDropdown: true, keepTime: true, includeVars: false }],
    annotations: { list: [] },
  };
}

/** `tag =~ /^$var$/`: matches every selected value (Grafana expands multi-values to (a|b)). */
export const match = (tag: string, variable = tag) => `"${tag}" =~ /^$${variable}$/`;

/** Where the observed services run: node and Kubernetes namespace (`-` outside Kubernetes). */
export const placement = () => `${match("node")} AND ${match("namespace")}`;

/** The node and namespace variables (tags of red, latency_hist, edges and spans; listed from red). */
export function placementVariables(): Variable[] {
  return [tagVariable("node", "red", "node"), tagVariable("namespace", "red", "namespace", { where: match("node") })];
}

/** Dashboard uids, for links between them. */
export const UID = {
  red: "wirescope-red",
  operations: "wirescope-operations",
  latency: "wirescope-latency",
  serviceMap: "wirescope-service-map",
  traces: "wirescope-traces",
  pipeline: "wirescope-pipeline",
} as const;

/**
 * A link to another dashboard keeping the time range. `vars` maps its variables to values
 * (Grafana syntax: `${__data.fields.service:percentencode}`, `${__field.labels.service:percentencode}`);
 * `keep` names variables of this dashboard passed on as they are (`${node:queryparam}`, every
 * selected value).
 */
export function dashboardLink(title: string, uid: string, vars: Record<string, string>, keep: string[] = []): DataLink {
  const q = [...Object.entries(vars).map(([k, v]) => `var-${k}=${v}`), ...keep.map((k) => `\${${k}:queryparam}`)];
  return link(title, `/d/${uid}?${[...q, "${__url_time_range}"].join("&")}`);
}

/** A field override that puts data links on one column of a table. */
export function columnLinks(column: string, links: DataLink[]): FieldOverride {
  return { matcher: { id: "byName", options: column }, properties: [{ id: "links", value: links }] };
}

export const unit = (u: string, extra: Record<string, unknown> = {}) => ({ defaults: { unit: u, ...extra }, overrides: [] });
