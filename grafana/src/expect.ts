// What a panel needs from its query's result, read from the query and the panel itself, so a
// test can check every panel against real data: the columns its SELECT names, the tags it groups
// by or names series with, and the fields its data links and transformations refer to.
import type { Panel, Target } from "./model.js";

export interface ExpectedShape {
  /** Columns every series of the result must have (besides `time`). */
  columns: string[];
  /** Tags every series must carry (GROUP BY tags; in table format InfluxDB returns them as tags too). */
  tags: string[];
}

/** Splits on commas outside parentheses and quotes. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = "";
  let cur = "";
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'" || c === "/") {
      // a regex /.../ only appears as a function argument here: treat it like a quote
      if (c !== "/" || depth > 0) quote = c;
    } else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(cur.trim());
      cur = "";
      continue;
    }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** Names of the functions called at the top level of an expression, in order. */
function topLevelFunctions(expr: string): string[] {
  const out: string[] = [];
  let depth = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    if (c === "(") {
      if (depth === 0) {
        const name = /(\w+)\s*$/.exec(expr.slice(0, i));
        if (name) out.push(name[1]!.toLowerCase());
      }
      depth++;
    } else if (c === ")") depth--;
  }
  return out;
}

/**
 * The columns and tags a query's result has, from its text: `AS "x"` aliases, plain `"field"`
 * selections, function names (`sum(...)` → `sum`); functions of a field regex (`sum(/^drops_/)`)
 * make columns named at run time and are left out. GROUP BY tags other than time().
 */
export function expectedShape(query: string): ExpectedShape {
  const m = /^\s*SELECT\s+(.*?)\s+FROM\s/is.exec(query);
  const columns: string[] = [];
  if (m) {
    for (const item of splitTop(m[1]!)) {
      const alias = /\s+AS\s+"([^"]+)"\s*$/i.exec(item);
      if (alias) columns.push(alias[1]!);
      else if (/^"[^"]+"$/.test(item)) columns.push(item.slice(1, -1));
      else if (!/\(\s*\//.test(item)) {
        // InfluxDB names an expression by its functions joined with "_": sum(a) / sum(b) → sum_sum.
        const fns = topLevelFunctions(item);
        if (fns.length) columns.push(fns.join("_"));
      }
    }
  }
  const tags: string[] = [];
  const g = /\bGROUP BY\s+(.*?)(?:\s+fill\(\w+\)|\s+ORDER BY|\s+LIMIT|\s*$)/is.exec(query);
  if (g) for (const part of splitTop(g[1]!)) if (/^"[^"]+"$/.test(part)) tags.push(part.slice(1, -1));
  return { columns, tags };
}

/** `$tag_x` in a target's alias: the series must carry tag x. */
export function aliasTags(t: Target): string[] {
  return [...(t.alias ?? "").matchAll(/\$tag_(\w+)/g)].map((x) => x[1]!);
}

/**
 * Field names a panel refers to outside its queries: `${__data.fields.x}` and `${__field.labels.x}`
 * in data links, column names in link overrides, and renamed or sorted fields of transformations.
 * Each must be a column or tag of some target's result, or the link or transformation does nothing.
 */
export function referencedFields(p: Panel): string[] {
  const out = new Set<string>();
  const links = [...(p.fieldConfig.defaults.links ?? []), ...p.fieldConfig.overrides.flatMap((o) => o.properties.filter((x) => x.id === "links").flatMap((x) => x.value as { url: string }[]))];
  for (const l of links) for (const m of l.url.matchAll(/\$\{__(?:data\.fields|field\.labels)\.(\w+)[}:]/g)) out.add(m[1]!);
  for (const o of p.fieldConfig.overrides) if (o.matcher.id === "byName") out.add(o.matcher.options);
  for (const t of p.transformations ?? []) {
    const opts = t.options as { renameByName?: Record<string, string>; sort?: { field: string }[]; conversions?: { targetField: string }[] };
    for (const k of Object.keys(opts.renameByName ?? {})) out.add(k);
    for (const s of opts.sort ?? []) out.add(s.field);
    for (const c of opts.conversions ?? []) out.add(c.targetField);
  }
  out.delete("Time");
  return [...out];
}
