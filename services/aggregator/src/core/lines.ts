// Line protocol for the InfluxDB schema in DESIGN.md (red, latency_hist, edges, spans, pipeline)
// and map_nodes (the service map's nodes, docs/aggregator.md).
// Points of a window carry the window start as their timestamp and only deterministic tags, so
// writing a window twice overwrites the same points instead of adding new ones.
import type { ClosedWindow, RedSeries, EdgeSeries } from "./aggregator.js";
import type { SpanRec } from "./spans.js";
import { cumulative, LE_TAGS } from "./histogram.js";
import { spanAttributes, serviceTagsJson } from "./span-attributes.js";
import type { LatencyStats } from "./stats.js";
import { mapNodes, type MapNode } from "./map-nodes.js";

/** Escapes a tag key or value; empty values become "-" (line protocol has no empty tags). */
export function escTag(v: string): string {
  if (v.length === 0) return "-";
  let needs = false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 44 || c === 61 || c === 32 || c === 92 || c < 32) {
      needs = true;
      break;
    }
  }
  if (!needs) return v;
  return v.replace(/[\u0000-\u001f]/g, " ").replace(/\\+$/, "/").replace(/([,= ])/g, "\\$1");
}

/** A string field value, quoted. */
export function escStr(v: string): string {
  // One scan tells which of the three rewrites have anything to do (JSON values, e.g. the `tags`
  // field, have quotes and backslashes but no raw control characters): none of them adds what a
  // later one rewrites, so skipping those with nothing to match gives the same text.
  let quotes = false;
  let controls = false;
  let newlines = false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 34 || c === 92) quotes = true;
    else if (c === 10) newlines = true;
    else if (c < 32) controls = true;
  }
  if (quotes) v = v.replace(/[\\"]/g, "\\$&");
  if (controls) v = v.replace(/[\u0000-\u0009\u000b-\u001f]/g, " ");
  if (newlines) v = v.replace(/\n/g, "\\n");
  return '"' + v + '"';
}

/** A float field that InfluxDB accepts (no NaN/Infinity). */
export function num(v: number): string {
  if (!Number.isFinite(v)) return "0";
  // Fixed to µs precision keeps the same text for the same value (deterministic rewrite).
  const n = Math.round(v * 1000);
  // String(n / 1000) is the decimal n / 1000 itself while a double's spacing there is below
  // 0.001 (under 2^43: no shorter decimal reads back as the same double), written here from the
  // integer and a table of fractions: the general double-to-string conversion cost more than the
  // rest of a span's line (start_ms is ~1.8e12 with three decimals).
  if (n >= 0 && n < NUM_EXACT_BELOW) {
    const int = Math.floor(n / 1000);
    return String(int) + FRACTIONS[n - int * 1000]!;
  }
  return String(n / 1000);
}

/** Numbers below this (× 1000) are written by `num` from their integer part and FRACTIONS. */
const NUM_EXACT_BELOW = 2 ** 43 * 1000;
/** ".001" … ".999" without trailing zeros, "" for 0. */
const FRACTIONS: string[] = Array.from({ length: 1000 }, (_, f) => (f === 0 ? "" : `.${String(f).padStart(3, "0").replace(/0+$/, "")}`));

const msToNs = (ms: number) => `${ms}000000`;

function redTags(s: RedSeries): string {
  // Sorted by key, as InfluxDB stores them.
  return `namespace=${escTag(s.namespace)},node=${escTag(s.node)},operation=${escTag(s.operation)},protocol=${escTag(s.protocol)},resource=${escTag(s.resource)},role=${s.role},service=${escTag(s.service)},status_class=${escTag(s.statusClass)}`;
}

export function redLines(s: RedSeries, start: number, out: string[]): void {
  const st = s.stats;
  const tags = redTags(s);
  const ts = msToNs(start);
  out.push(
    `red,${tags} ${counted(st)},p50_ms=${num(st.quantile(0.5))},p90_ms=${num(st.quantile(0.9))},p99_ms=${num(st.quantile(0.99))},max_ms=${num(st.maxMs)} ${ts}`,
  );
  const cum = cumulative(st.buckets);
  // Tags sorted by key: le < namespace.
  // `count` is cumulative (the contract); `bucket` is this bucket alone, what a heatmap draws.
  // Sampled: scaled like requests (the cumulative counts, then the buckets as their differences).
  const k = st.sampled ? st.estimated / st.requests : 1;
  let below = 0;
  for (let i = 0; i < LE_TAGS.length; i++) {
    const c = k === 1 ? cum[i]! : Math.round(cum[i]! * k);
    out.push(`latency_hist,le=${LE_TAGS[i]},${tags} count=${c}i,bucket=${k === 1 ? st.buckets[i]! : c - below}i ${ts}`);
    below = c;
  }
}

/**
 * requests, errors and duration_sum_ms as sent: what was observed, or when some records stood for
 * several requests (sampled connections), their weights added up, rounded; with the observed
 * fraction of the series and whether it was sampled, and when sampled, the requests observed
 * (`observed_requests`: with the probe's `shed_requests_*` counters, what was sent is accounted
 * for exactly, not only estimated). Percentiles and max are of what was observed.
 */
function counted(st: LatencyStats): string {
  if (!st.sampled) return `requests=${st.requests}i,errors=${st.errors}i,duration_sum_ms=${num(st.sumMs)},observed_fraction=1,sampled=false`;
  return `requests=${Math.round(st.estimated)}i,errors=${Math.round(st.estimatedErrors)}i,duration_sum_ms=${num(st.estimatedSumMs)},observed_fraction=${num(st.observedFraction)},sampled=true,observed_requests=${st.requests}i`;
}

export function edgeLine(e: EdgeSeries, start: number): string {
  const st = e.stats;
  // `id` is a field (not a tag: no new series) because Grafana's Node Graph needs an edge id.
  return `edges,client=${escTag(e.client)},namespace=${escTag(e.namespace)},node=${escTag(e.node)},protocol=${escTag(e.protocol)},server=${escTag(e.server)} id=${escStr(`${e.client}->${e.server}/${e.protocol}`)},${counted(st)},p99_ms=${num(st.quantile(0.99))} ${msToNs(start)}`;
}

/** A `map_nodes` point: a node of the service map (map-nodes.ts). */
export function mapNodeLine(n: MapNode, start: number): string {
  const counts = n.requests === undefined ? "" : `,requests=${n.requests}i,p99_ms=${num(n.p99Ms ?? 0)}`;
  return `map_nodes,namespace=${escTag(n.namespace)},node=${escTag(n.node)},service=${escTag(n.service)} kind=${escStr(n.kind)}${counts} ${msToNs(start)}`;
}

/** |offset| below this many ns is exact as a double. */
const EXACT_NS = 2n ** 53n;

/**
 * Timestamps already given to spans, per series (kind, namespace, node, protocol, service), over the last windows. Spans
 * with the same tags and timestamp would overwrite each other in InfluxDB, also across windows
 * (windows go by end time, a long span can start in the same microsecond as a short one).
 * A timestamp is kept as a number, its ns offset from the first one seen (exact within 104
 * days; further ones as text), in one map per series naming the window that took it, and in that
 * window's list for forgetting it: about 60 bytes a kept span, where its tags and time as one
 * string in a set per window cost about 150 (at 20,000 requests/s, 32 windows hold ~1.3 million),
 * and one lookup, not one per window.
 */
export class SpanClock {
  /** Series tags → timestamp key → the number of the window that took it. */
  private readonly taken = new Map<string, Map<number | string, number>>();
  /** Per window kept, oldest first: what it took (series and key, side by side). */
  private readonly windows: { seq: number; tags: string[]; keys: (number | string)[] }[] = [];
  private seq = 0;
  private base: bigint | undefined;
  constructor(private readonly keep = 32) {}

  /** Starts a window's timestamps; forgets those of the oldest window beyond `keep`. */
  next(): void {
    this.windows.push({ seq: ++this.seq, tags: [], keys: [] });
    if (this.windows.length <= this.keep) return;
    const old = this.windows.shift()!;
    for (let i = 0; i < old.tags.length; i++) {
      const m = this.taken.get(old.tags[i]!)!;
      m.delete(old.keys[i]!);
      if (m.size === 0) this.taken.delete(old.tags[i]!);
    }
  }

  private key(ts: bigint): number | string {
    this.base ??= ts;
    const d = ts - this.base;
    return d > -EXACT_NS && d < EXACT_NS ? Number(d) : ts.toString();
  }

  /** Whether a span of series `tags` took timestamp `ts` in the windows kept. */
  used(tags: string, ts: bigint): boolean {
    return this.taken.get(tags)?.has(this.key(ts)) ?? false;
  }

  /** Records `ts` as taken by series `tags` in the newest window (it must not be `used`). */
  take(tags: string, ts: bigint): void {
    if (!this.windows.length) this.next();
    const w = this.windows[this.windows.length - 1]!;
    const k = this.key(ts);
    let m = this.taken.get(tags);
    if (!m) this.taken.set(tags, (m = new Map()));
    m.set(k, w.seq);
    w.tags.push(tags);
    w.keys.push(k);
  }
}

/**
 * Span lines. The timestamp is the start truncated to the microsecond plus (span id mod 1000) ns,
 * moved to the next free nanosecond when taken (in (start, id) order): deterministic for a given
 * window and the windows before it.
 */
export function spanLines(spans: readonly SpanRec[], out: string[], clock: SpanClock = new SpanClock()): void {
  const sorted = [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  clock.next();
  for (const s of sorted) {
    const tags = `kind=${s.kind},namespace=${escTag(s.namespace)},node=${escTag(s.node)},protocol=${escTag(s.protocol)},service=${escTag(s.service)}`;
    let ts = (s.startNs / 1000n) * 1000n + BigInt(parseInt(s.id.slice(-4), 16) % 1000);
    while (clock.used(tags, ts)) ts++;
    clock.take(tags, ts);
    let f = `trace_id=${escStr(s.traceId)},span_id=${escStr(s.id)},parent_span_id=${escStr(s.parentId)},name=${escStr(s.operation ? `${s.operation} ${s.resource}` : s.resource)},duration_ms=${num(s.durationMs)},error=${s.error},operation=${escStr(s.operation)},resource=${escStr(s.resource)},peer_service=${escStr(s.peer)},linked_by=${escStr(s.linkedBy)}`;
    if (s.status !== undefined) f += `,status=${s.status}i`;
    if (s.clientAddress) f += `,client_address=${escStr(s.clientAddress)}`;
    if (s.clientPort) f += `,client_port=${s.clientPort}i`;
    if (s.serverAddress) f += `,server_address=${escStr(s.serverAddress)}`;
    if (s.serverPort) f += `,server_port=${s.serverPort}i`;
    if (s.requestBytes) f += `,request_bytes=${s.requestBytes}i`;
    if (s.responseBytes) f += `,response_bytes=${s.responseBytes}i`;
    if (s.incomplete) f += `,incomplete=true`;
    if (s.tls) f += `,tls=true`;
    // start_ms, tags and service_tags: what Grafana's trace view needs as columns (startTime, tags, serviceTags).
    f += `,start_ms=${num(s.startMs)},tags=${spanTagsField(s)},service_tags=${serviceTagsField(s)}`;
    out.push(`spans,${tags} ${f} ${ts}`);
  }
}

/**
 * The quoted `tags` field, escStr(spanTagsJson(s)), written piece by piece: escStr rewrites
 * character by character, so the pieces escaped alone make the same text, and a plain value (printable
 * ASCII without quote or backslash, most of them) is its own JSON and escaped text between \"…\"
 * (the whole JSON string and its escaped copy cost more than the rest of a span's line).
 */
export function spanTagsField(s: SpanRec): string {
  const a = spanAttributes(s);
  let f = '"[';
  for (let i = 0; i < a.length; i++) {
    const [k, v] = a[i]!;
    f += (i === 0 ? '{\\"key\\":' : ',{\\"key\\":') + jsonStrEscaped(k) + ',\\"value\\":' + (typeof v === "string" ? jsonStrEscaped(v) : JSON.stringify(v)) + "}";
  }
  return f + ']"';
}

/** escStr(JSON.stringify(v)) without its outer quotes. */
function jsonStrEscaped(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 34 || c === 92) return escStr(JSON.stringify(v)).slice(1, -1);
  }
  return '\\"' + v + '\\"';
}

/** The quoted `service_tags` field by service and node: the same few for every span. */
const serviceTagsCache = new Map<string, Map<string, string>>();
let serviceTagsCached = 0;

function serviceTagsField(s: SpanRec): string {
  let byNode = serviceTagsCache.get(s.service);
  if (!byNode) serviceTagsCache.set(s.service, (byNode = new Map()));
  let f = byNode.get(s.node);
  if (f === undefined) {
    if (++serviceTagsCached > 10_000) {
      serviceTagsCache.clear();
      serviceTagsCached = 0;
      serviceTagsCache.set(s.service, byNode);
    }
    f = escStr(serviceTagsJson(s));
    byNode.set(s.node, f);
  }
  return f;
}

/** Every line of a closed window. */
export function windowLines(w: ClosedWindow, clock?: SpanClock): string[] {
  const out: string[] = [];
  for (const s of w.red) redLines(s, w.start, out);
  for (const e of w.edges) out.push(edgeLine(e, w.start));
  for (const n of mapNodes(w.red, w.edges)) out.push(mapNodeLine(n, w.start));
  spanLines(w.spans, out, clock);
  return out;
}

/** One `pipeline` point: counters as integer fields, gauges as floats. */
export function pipelineLine(component: string, instance: string, ints: Record<string, number>, floats: Record<string, number>, tsMs: number): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(ints)) parts.push(`${escTag(k)}=${Math.trunc(v)}i`);
  for (const [k, v] of Object.entries(floats)) parts.push(`${escTag(k)}=${num(v)}`);
  return `pipeline,component=${escTag(component)},instance=${escTag(instance)} ${parts.join(",")} ${msToNs(Math.trunc(tsMs))}`;
}

/**
 * A parser's losses of one membership entry as a `pipeline` point (component=parser): each counter
 * `a.b` that grew as the field `drops_a_b`, dated `tsNs` (the entry's: every aggregator writes
 * the same point). Undefined when no value is a positive integer.
 */
export function parserLossesLine(instance: string, losses: Record<string, number>, tsNs: bigint): string | undefined {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(losses)) if (Number.isSafeInteger(v) && v > 0) parts.push(`${escTag(`drops_${k.replace(/\./g, "_")}`)}=${v}i`);
  if (!parts.length) return undefined;
  return `pipeline,component=parser,instance=${escTag(instance)} ${parts.join(",")} ${tsNs}`;
}
