// Span linking. One span per record; links, in order of strength:
//   1. the two ends of one TCP connection (same 4-tuple, the server's request inside the client's
//      call): the client span is the server span's parent;
//   2. W3C traceparent / B3 carried in the request: the server span's parent is the caller's
//      span id; a client span that carries a header *is* the span named in it (the caller wrote
//      its own id there), unless the process merely relayed the header it received;
//   3. in-process: a client call made on the thread that handles exactly one server request at
//      that time is that request's child (with a header trace id: the one server request of the
//      same process carrying the same trace id).
// A TCP pair beats a header because a relayed header names the wrong span; both agree otherwise.
// Ambiguity never yields a link: it is counted instead.
import { id128, unitFromHex } from "./hash.js";

export type SpanKind = "server" | "client";

export interface SpanRec {
  /** Own span id (16 hex). For a client span carrying a header, replaced by it at link time. */
  id: string;
  /** Deterministic id from the record's identity (node, connection, role, start, thread). */
  readonly baseId: string;
  readonly kind: SpanKind;
  readonly service: string;
  readonly peer: string;
  readonly protocol: string;
  readonly operation: string;
  readonly resource: string;
  readonly startNs: bigint;
  readonly startMs: number;
  readonly endMs: number;
  readonly durationMs: number;
  readonly status: number | undefined;
  readonly error: boolean;
  readonly node: string;
  readonly pid: number;
  readonly tid: number;
  /** "clientaddr:port>serveraddr:port", "" when unknown. */
  readonly tuple: string;
  /** Trace id (32 hex) and parent span id (16 hex) from the request's headers, "" when absent. */
  readonly hTrace: string;
  readonly hParent: string;
  /** The RED series this span counted in (identity only: the slowest are kept per series). */
  readonly series: object;
  readonly window: number;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly incomplete: boolean;
  // Link results.
  parent: SpanRec | null;
  parentId: string;
  traceId: string;
  linkedBy: "" | "tcp" | "header" | "thread" | "trace";
  state: 0 | 1 | 2; // 0 unresolved, 1 resolving (cycle guard), 2 resolved
  final: boolean;
}

export interface LinkCounters {
  ambiguousTcp: number;
  ambiguousThread: number;
}

/** Indexes over the spans that can take part in links (the closing window and the open ones). */
export class SpanIndex {
  private readonly clients = new Map<string, SpanRec[]>();
  private readonly servers = new Map<string, SpanRec[]>();

  constructor(spans: Iterable<SpanRec>, private readonly skewMs: number, private readonly counters: LinkCounters) {
    for (const s of spans) {
      if (!s.final) {
        s.state = 0;
        s.parent = null;
        s.parentId = "";
        s.traceId = "";
        s.linkedBy = "";
        s.id = s.baseId;
      }
      if (s.kind === "client") {
        if (!s.tuple) continue;
        let l = this.clients.get(s.tuple);
        if (!l) this.clients.set(s.tuple, (l = []));
        l.push(s);
      } else {
        if (!s.pid) continue;
        const k = `${s.node}|${s.pid}`;
        let l = this.servers.get(k);
        if (!l) this.servers.set(k, (l = []));
        l.push(s);
      }
    }
  }

  /** Resolves parent, own id and trace id of `s` (and, recursively, of its ancestors). */
  resolve(s: SpanRec): void {
    if (s.state !== 0) return;
    s.state = 1;
    if (s.kind === "server") {
      const pair = this.tcpPair(s);
      if (pair && pair.state !== 1) {
        this.resolve(pair);
        s.parent = pair;
        s.parentId = pair.id;
        s.linkedBy = "tcp";
      } else if (s.hParent) {
        s.parentId = s.hParent;
        s.linkedBy = "header";
      }
      s.traceId = s.hTrace || s.parent?.traceId || "";
    } else {
      const ip = this.inProcessParent(s);
      if (ip) {
        s.parent = ip;
        s.parentId = ip.id;
        s.linkedBy = s.hTrace ? "trace" : "thread";
        // A relayed header names the upstream caller's span, not this one.
        if (s.hParent && ip.hParent !== s.hParent) s.id = s.hParent;
      } else if (s.hParent) {
        s.id = s.hParent;
      }
      s.traceId = s.hTrace || s.parent?.traceId || "";
    }
    if (!s.traceId) s.traceId = id128(s.id);
    s.state = 2;
  }

  /**
   * The one client span on the same connection whose call contains this server request. Exact
   * containment first (one clock: both ends on one node); only when nothing contains it, the
   * allowed clock skew between two nodes. Several candidates (HTTP/2 multiplexing) are narrowed
   * by the trace id both ends saw, then by operation and resource; still several: no link.
   */
  private tcpPair(s: SpanRec): SpanRec | null {
    if (!s.tuple) return null;
    const l = this.clients.get(s.tuple);
    if (!l) return null;
    for (const skew of [0, this.skewMs]) {
      const cands = l.filter((c) => c.protocol === s.protocol && c.startMs - skew <= s.startMs && s.endMs <= c.endMs + skew);
      if (cands.length === 1) return cands[0]!;
      if (cands.length > 1) {
        // Both ends saw the same request headers: the same trace id tells concurrent streams apart.
        if (s.hTrace) {
          const traced = cands.filter((c) => c.hTrace === s.hTrace);
          if (traced.length === 1) return traced[0]!;
        }
        const same = cands.filter((c) => c.operation === s.operation && c.resource === s.resource);
        if (same.length === 1) return same[0]!;
        this.counters.ambiguousTcp++;
        return null;
      }
    }
    return null;
  }

  /** The server request of the same process this client call was made for, when unambiguous. */
  private inProcessParent(c: SpanRec): SpanRec | null {
    if (!c.pid) return null;
    const l = this.servers.get(`${c.node}|${c.pid}`);
    if (!l) return null;
    if (c.hTrace) {
      let found: SpanRec | null = null;
      let n = 0;
      for (const sv of l) {
        if (sv.state === 1) continue;
        if (!(sv.startMs <= c.startMs && c.endMs <= sv.endMs)) continue;
        this.resolve(sv);
        if (sv.traceId !== c.hTrace) continue;
        n++;
        found = sv;
      }
      if (n === 1) return found;
      if (n > 1) this.counters.ambiguousThread++;
      return null;
    }
    let found: SpanRec | null = null;
    let overlapping = 0;
    for (const sv of l) {
      if (sv.tid !== c.tid) continue;
      if (sv.startMs < c.endMs && sv.endMs > c.startMs) {
        overlapping++;
        if (sv.startMs <= c.startMs && c.endMs <= sv.endMs) found = sv;
      }
    }
    if (overlapping === 1 && found && found.state !== 1) {
      this.resolve(found);
      return found;
    }
    if (overlapping > 1) this.counters.ambiguousThread++;
    return null;
  }
}

/**
 * Volume control for the spans of one window: every error, the `slowest` slowest per series,
 * and the rest when their trace id falls under `rate` (decided per trace, so sampled traces stay
 * whole). Deterministic.
 */
export function sampleSpans(spans: SpanRec[], rate: number, slowest: number): { kept: SpanRec[]; dropped: number } {
  const keep = new Set<SpanRec>();
  // Per series, the `slowest` slowest spans (ties by id), by insertion into a short sorted list.
  const top = new Map<object, SpanRec[]>();
  const before = (a: SpanRec, b: SpanRec) => a.durationMs > b.durationMs || (a.durationMs === b.durationMs && a.id < b.id);
  for (const s of spans) {
    if (s.error || unitFromHex(s.traceId) < rate) keep.add(s);
    if (slowest <= 0) continue;
    let l = top.get(s.series);
    if (!l) top.set(s.series, (l = []));
    if (l.length < slowest || before(s, l[l.length - 1]!)) {
      let i = l.length;
      while (i > 0 && before(s, l[i - 1]!)) i--;
      l.splice(i, 0, s);
      if (l.length > slowest) l.pop();
    }
  }
  for (const l of top.values()) for (const s of l) keep.add(s);
  const kept = spans.filter((s) => keep.has(s));
  return { kept, dropped: spans.length - kept.length };
}
