// Runs every query of every Grafana dashboard the way Grafana would (variables resolved in order
// from their own queries, $timeFilter and $__interval substituted) against a real InfluxDB, and
// checks each result has the columns and tags its panel uses, non-empty.
import assert from "node:assert/strict";
import { allDashboards, alertGroups, interpolate, expectedShape, aliasTags, referencedFields, type Dashboard, type Variable } from "@wirescope/grafana";

export interface Series {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}
export interface QueryResult {
  series?: Series[];
  error?: string;
}
/** Runs one InfluxQL statement, returns its first result. */
export type InfluxRun = (q: string) => Promise<QueryResult>;

/** One InfluxQL statement through /query (GET, like Grafana's default httpMode), optional Basic auth. */
export function influxRunner(url: string, db: string, authorization = ""): InfluxRun {
  return async (q) => {
    const res = await fetch(`${url}/query?${new URLSearchParams({ q, db, epoch: "ms" })}`, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(15_000) });
    const body = (await res.json()) as { results?: QueryResult[]; error?: string };
    if (!res.ok || body.error) return { error: `HTTP ${res.status}: ${body.error ?? ""}` };
    return body.results![0]!;
  };
}

export const rowCount = (r: QueryResult) => (r.series ?? []).reduce((a, s) => a + s.values.length, 0);

/** Rows of a result as objects (tags and columns). */
export function resultRows(r: QueryResult): Record<string, unknown>[] {
  return (r.series ?? []).flatMap((s) => s.values.map((v) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) })));
}

export interface CheckOptions {
  fromMs: number;
  toMs: number;
  intervalMs?: number;
  /** Values for textbox variables (trace_id) and preferred values of single-value variables. */
  values: Record<string, string>;
}

export interface CheckedQuery {
  dashboard: string;
  panel: string;
  refId: string;
  query: string;
  result: QueryResult;
}

/** Variable values as Grafana picks them: All for multi/All variables, else the given or first value. */
async function resolveVariables(d: Dashboard, run: InfluxRun, o: CheckOptions): Promise<Record<string, string | string[]>> {
  const vars: Record<string, string | string[]> = {};
  const ctx = () => ({ fromMs: o.fromMs, toMs: o.toMs, intervalMs: o.intervalMs ?? 10_000, vars });
  for (const v of d.templating.list as Variable[]) {
    if (v.type === "datasource") continue;
    if (v.type === "textbox") {
      const value = o.values[v.name];
      assert.ok(value !== undefined, `${d.uid}: no value for the textbox $${v.name}`);
      vars[v.name] = value;
      continue;
    }
    assert.equal(v.type, "query", `${d.uid} $${v.name}`);
    const q = interpolate(v.query as string, ctx());
    const r = await run(q);
    assert.equal(r.error, undefined, `${d.uid} $${v.name}: ${r.error}\n${q}`);
    // Grafana takes the second column of each row (after `key` or `time`), or the only one.
    const values = (r.series ?? []).flatMap((s) => s.values.map((row) => String(row[1] ?? row[0])));
    assert.ok(values.length > 0, `${d.uid} $${v.name} has values: ${q}`);
    if (v.multi === false) {
      const want = o.values[v.name];
      assert.ok(want === undefined || values.includes(want), `${d.uid} $${v.name}: ${want} among ${values.join(", ")}`);
      vars[v.name] = want ?? values[0]!;
    } else vars[v.name] = "$__all";
  }
  return vars;
}

/**
 * Every variable and panel query of every dashboard: runs, no error, rows, the columns and tags
 * the query names, and every field the panel's links and transformations use. Returns each result.
 */
export async function checkDashboards(run: InfluxRun, o: CheckOptions): Promise<CheckedQuery[]> {
  const out: CheckedQuery[] = [];
  for (const d of Object.values(allDashboards())) {
    const vars = await resolveVariables(d, run, o);
    for (const p of d.panels) {
      const names = new Set<string>();
      for (const t of p.targets) {
        const q = interpolate(t.query, { fromMs: o.fromMs, toMs: o.toMs, intervalMs: o.intervalMs ?? 10_000, vars });
        const where = `${d.uid} / ${p.title} / ${t.refId}`;
        const r = await run(q);
        assert.equal(r.error, undefined, `${where}: ${r.error}\n${q}`);
        assert.ok(rowCount(r) > 0, `${where} returned no rows:\n${q}`);
        const want = expectedShape(t.query);
        const tags = [...want.tags, ...aliasTags(t)];
        for (const s of r.series!) {
          for (const c of want.columns) assert.ok(s.columns.includes(c), `${where}: column ${c} missing (has ${s.columns.join(", ")})\n${q}`);
          for (const k of tags) assert.ok(s.tags && k in s.tags, `${where}: tag ${k} missing (has ${Object.keys(s.tags ?? {}).join(", ")})\n${q}`);
          for (const c of s.columns) names.add(c);
          for (const k of Object.keys(s.tags ?? {})) names.add(k);
        }
        out.push({ dashboard: d.uid, panel: p.title, refId: t.refId, query: q, result: r });
      }
      for (const f of referencedFields(p)) assert.ok(names.has(f), `${d.uid} / ${p.title}: links or transformations use ${f}, which no query returns (${[...names].join(", ")})`);
    }
  }
  return out;
}

/**
 * Every InfluxQL query of the default alert rules over its own relative time range ending at
 * `nowMs`: runs, returns series, and each series carries the tags the rule groups by and names
 * in its annotations (`{{ $labels.service }}`).
 */
export async function checkAlertQueries(run: InfluxRun, nowMs: number): Promise<CheckedQuery[]> {
  const out: CheckedQuery[] = [];
  for (const g of alertGroups()) {
    for (const r of g.rules) {
      const labels = [...Object.values(r.annotations).join(" ").matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!);
      for (const q of r.data) {
        if (q.datasourceUid === "__expr__") continue;
        const range = q.relativeTimeRange!;
        const text = interpolate(String(q.model.query), { fromMs: nowMs - range.from * 1000, toMs: nowMs - range.to * 1000, intervalMs: Number(q.model.intervalMs), vars: {} });
        const where = `alert ${r.uid} / ${q.refId}`;
        const res = await run(text);
        assert.equal(res.error, undefined, `${where}: ${res.error}\n${text}`);
        assert.ok(rowCount(res) > 0, `${where} returned no rows:\n${text}`);
        for (const s of res.series!) for (const k of [...expectedShape(text).tags, ...labels]) assert.ok(s.tags && k in s.tags, `${where}: tag ${k} missing\n${text}`);
        out.push({ dashboard: g.name, panel: r.title, refId: q.refId, query: text, result: res });
      }
    }
  }
  return out;
}
