// A small typed subset of Grafana's dashboard JSON model (schemaVersion 39), enough for our
// panels, and helpers that build it. Every query is raw InfluxQL so it runs on 1.x, 2.x (v1
// compatibility API) and 3.x alike.

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

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: GridPos;
  datasource: typeof DS;
  targets: Target[];
  fieldConfig: { defaults: Record<string, unknown>; overrides: unknown[] };
  options: Record<string, unknown>;
  transformations?: { id: string; options: Record<string, unknown> }[];
  /** Minimum query interval: our points are 10 s windows, a finer GROUP BY time() only adds holes. */
  interval?: string;
}

export interface Variable {
  name: string;
  label?: string;
  type: "datasource" | "query" | "textbox" | "custom" | "interval";
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
  links: unknown[];
  annotations: { list: unknown[] };
}

export function target(query: string, format: Target["resultFormat"] = "time_series", refId = "A", alias?: string): Target {
  return { refId, datasource: DS, rawQuery: true, query, resultFormat: format, ...(alias ? { alias } : {}) };
}

/** A panel; ids and grid positions are assigned by `dashboard()`. */
export function panel(type: string, title: string, targets: Target[], opts: Partial<Omit<Panel, "type" | "title" | "targets">> & { w?: number; h?: number } = {}): Panel {
  const { w = 12, h = 8, ...rest } = opts;
  return {
    id: 0,
    type,
    title,
    gridPos: { x: 0, y: 0, w, h },
    datasource: DS,
    targets,
    fieldConfig: { defaults: {}, overrides: [] },
    options: {},
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
  return {
    name,
    label: opts.label ?? key,
    type: "query",
    datasource: DS,
    query: `SHOW TAG VALUES FROM "${measurement}" WITH KEY = "${key}"${where}`,
    multi: opts.multi ?? true,
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
    links: [{ type: "dashboards", tags: ["wirescope"], asDropdown: true, title: "Wirescope" }],
    annotations: { list: [] },
  };
}

/** `tag =~ /^$var$/`: matches every selected value (Grafana expands multi-values to (a|b)). */
export const match = (tag: string, variable = tag) => `"${tag}" =~ /^$${variable}$/`;

export const unit = (u: string, extra: Record<string, unknown> = {}) => ({ defaults: { unit: u, ...extra }, overrides: [] });
