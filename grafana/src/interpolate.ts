// Grafana's InfluxQL interpolation, as far as our dashboards use it, so queries can be run
// against a real InfluxDB in tests: $timeFilter, $__interval, $__interval_ms and template
// variables inside /^...$/ regexes (values regex-escaped, several values as (a|b), All as .*).

export interface InterpolateContext {
  fromMs: number;
  toMs: number;
  intervalMs: number;
  /** Variable values; an array means several selected; "$__all" means All. */
  vars: Record<string, string | string[]>;
}

const escapeRegex = (s: string) => s.replace(/[\\^$*+?.()|[\]{}/]/g, "\\$&");

export function interpolate(query: string, ctx: InterpolateContext): string {
  let q = query.replace(/\$timeFilter/g, `time >= ${ctx.fromMs}ms and time <= ${ctx.toMs}ms`);
  q = q.replace(/\$__interval_ms/g, String(ctx.intervalMs));
  q = q.replace(/\$__interval/g, `${ctx.intervalMs}ms`);
  // Inside regex literals: escaped values.
  q = q.replace(/\/\^\$(\w+)\$\//g, (_m, name: string) => {
    const v = ctx.vars[name];
    if (v === undefined) throw new Error(`interpolate: no value for $${name}`);
    if (v === "$__all") return "/^.*$/";
    const list = Array.isArray(v) ? v : [v];
    return list.length === 1 ? `/^${escapeRegex(list[0]!)}$/` : `/^(${list.map(escapeRegex).join("|")})$/`;
  });
  // Plain occurrences (inside quotes): the raw value, single quotes escaped.
  q = q.replace(/\$(\w+)/g, (_m, name: string) => {
    const v = ctx.vars[name];
    if (v === undefined) throw new Error(`interpolate: no value for $${name}`);
    return (Array.isArray(v) ? v[0] ?? "" : v).replace(/'/g, "\\'");
  });
  return q;
}
