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
import { id128, unitFromHex, tupleHash, hex16 } from "./hash.js";

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

/**
 * The span of one record, built from its window's columns when the window closes (and for the
 * linkable spans of the open windows): shared strings, times as small integers relative to the
 * window (µs), no 4-tuple string, and the derived fields of `SpanRec` as getters.
 */
export class Span implements SpanRec {
  id: string;
  parent: SpanRec | null = null;
  parentId = "";
  traceId = "";
  linkedBy: "" | "tcp" | "header" | "thread" | "trace" = "";
  state: 0 | 1 | 2 = 0;
  final = false;
  constructor(
    readonly baseId: string,
    readonly kind: SpanKind,
    readonly service: string,
    readonly peer: string,
    readonly protocol: string,
    readonly operation: string,
    readonly resource: string,
    readonly window: number,
    /** Start in µs, relative to the window start (`startNs` truncated to the µs). */
    private readonly relUs: number,
    /** `startNs` mod 1000. */
    private readonly subUs: number,
    /** Duration in µs (`durationNs` truncated to the µs). */
    private readonly durUs: number,
    readonly status: number | undefined,
    readonly error: boolean,
    readonly node: string,
    readonly pid: number,
    readonly tid: number,
    /** Hash of the 4-tuple (a Map key), -1 when unknown. */
    readonly tupleKey: number,
    readonly hTrace: string,
    readonly hParent: string,
    readonly series: object,
    readonly clientAddress: string,
    readonly clientPort: number,
    readonly serverAddress: string,
    readonly serverPort: number,
    readonly requestBytes: number,
    readonly responseBytes: number,
    readonly incomplete: boolean,
  ) {
    this.id = baseId;
  }
  get startMs(): number {
    return (this.window * 1000 + this.relUs) / 1000;
  }
  get durationMs(): number {
    return this.durUs / 1000;
  }
  get endMs(): number {
    return this.startMs + this.durationMs;
  }
  get startNs(): bigint {
    return BigInt(this.window * 1000 + this.relUs) * 1000n + BigInt(this.subUs);
  }
  get tuple(): string {
    return this.tupleKey < 0 ? "" : `${this.clientAddress}:${this.clientPort}>${this.serverAddress}:${this.serverPort}`;
  }
}

/** Numbers of one span in `SpanColumns.num` (doubles stored unboxed, off the garbage-collected heap). */
const N_ID_A = 0, N_ID_B = 1, N_REL_US = 2, N_SUB_US = 3, N_DUR_US = 4, N_STATUS = 5, N_PID = 6, N_TID = 7, N_TUPLE = 8, N_CPORT = 9, N_SPORT = 10, N_REQ = 11, N_RESP = 12, N_FLAGS = 13;
/** Strings of one span: their numbers in the window's string table, at `N_STR + S_*`. */
const S_SERVICE = 0, S_PEER = 1, S_PROTOCOL = 2, S_OPERATION = 3, S_RESOURCE = 4, S_NODE = 5, S_HTRACE = 6, S_HPARENT = 7, S_CADDR = 8, S_SADDR = 9;
const N_STR = 14;
/** The span's RED series: its number in the window's series table. */
const N_SERIES = 24;
const NUMS = 25;
const F_CLIENT = 1, F_ERROR = 2, F_INCOMPLETE = 4;

/**
 * Link lookups the spans being resolved make: client spans by 4-tuple hash (for server spans),
 * server spans by node and pid (for client spans). Each key is queued once.
 */
export class LinkKeys {
  readonly tuples = new Set<number>();
  readonly procs = new Map<string, Set<number>>();
  readonly tupleQueue: number[] = [];
  readonly procQueue: { node: string; pid: number }[] = [];

  addTuple(k: number): void {
    if (this.tuples.has(k)) return;
    this.tuples.add(k);
    this.tupleQueue.push(k);
  }

  addProc(node: string, pid: number): void {
    let pids = this.procs.get(node);
    if (!pids) this.procs.set(node, (pids = new Set()));
    if (pids.has(pid)) return;
    pids.add(pid);
    this.procQueue.push({ node, pid });
  }
}

/** Positions of an open window's spans by the key a lookup finds them under. */
interface ByLinkKey {
  clients: Map<number, number[]>;
  servers: Map<string, Map<number, number[]>>;
}

/** What a record contributes to its span, as `SpanColumns.push` takes it. */
export interface SpanInput {
  idA: number;
  idB: number;
  kind: SpanKind;
  service: string;
  peer: string;
  protocol: string;
  operation: string;
  resource: string;
  relUs: number;
  subUs: number;
  durUs: number;
  status: number | undefined;
  error: boolean;
  node: string;
  pid: number;
  tid: number;
  tupleKey: number;
  hTrace: string;
  hParent: string;
  series: object;
  clientAddress: string;
  clientPort: number;
  serverAddress: string;
  serverPort: number;
  requestBytes: number;
  responseBytes: number;
  incomplete: boolean;
}

/**
 * The spans of one open window, column-wise: a record adds numbers to one Float64Array (its
 * strings and series as numbers in tables of the window, each distinct value once) instead of a
 * span object that would live (and be traced by the garbage collector) until the window closes;
 * no array of references grows with the spans. `Span` objects are built when the window's links
 * are resolved; linking state never outlives one close, so building them again is equivalent.
 */
/**
 * Column buffers of closed windows, taken by new ones: windows are alike in size, so after the
 * first few no buffer is grown or freshly allocated (fresh pages cost a fault each).
 */
const spare: Float64Array[] = [];
const SPARE_MAX = 4;

export class SpanColumns {
  private num = spare.pop() ?? new Float64Array(NUMS * 256);
  private count = 0;
  private readonly strs: string[] = [];
  private readonly strIds = new Map<string, number>();
  private readonly lastStr: (string | undefined)[] = new Array<string | undefined>(N_SERIES - N_STR).fill(undefined);
  private readonly lastId = new Float64Array(N_SERIES - N_STR);
  private readonly seriesList: object[] = [];
  private readonly seriesIds = new Map<object, number>();
  constructor(readonly window: number) {}

  get length(): number {
    return this.count;
  }

  /** The string number of `v` in field `f`; consecutive spans mostly repeat a field's value. */
  private sid(f: number, v: string): number {
    if (this.lastStr[f] === v) return this.lastId[f]!;
    let id = this.strIds.get(v);
    if (id === undefined) {
      id = this.strs.length;
      this.strs.push(v);
      this.strIds.set(v, id);
    }
    this.lastStr[f] = v;
    this.lastId[f] = id;
    return id;
  }

  private str(i: number, field: number): string {
    return this.strs[this.num[i * NUMS + N_STR + field]!]!;
  }

  push(x: SpanInput): void {
    const o = this.count * NUMS;
    if (o + NUMS > this.num.length) {
      const grown = new Float64Array(Math.max(NUMS * 256, this.num.length * 2));
      grown.set(this.num);
      this.num = grown;
    }
    const n = this.num;
    n[o + N_ID_A] = x.idA;
    n[o + N_ID_B] = x.idB;
    n[o + N_REL_US] = x.relUs;
    n[o + N_SUB_US] = x.subUs;
    n[o + N_DUR_US] = x.durUs;
    n[o + N_STATUS] = x.status === undefined ? NaN : x.status;
    n[o + N_PID] = x.pid;
    n[o + N_TID] = x.tid;
    n[o + N_TUPLE] = x.tupleKey;
    n[o + N_CPORT] = x.clientPort;
    n[o + N_SPORT] = x.serverPort;
    n[o + N_REQ] = x.requestBytes;
    n[o + N_RESP] = x.responseBytes;
    n[o + N_FLAGS] = (x.kind === "client" ? F_CLIENT : 0) | (x.error ? F_ERROR : 0) | (x.incomplete ? F_INCOMPLETE : 0);
    const q = o + N_STR;
    n[q + S_SERVICE] = this.sid(S_SERVICE, x.service);
    n[q + S_PEER] = this.sid(S_PEER, x.peer);
    n[q + S_PROTOCOL] = this.sid(S_PROTOCOL, x.protocol);
    n[q + S_OPERATION] = this.sid(S_OPERATION, x.operation);
    n[q + S_RESOURCE] = this.sid(S_RESOURCE, x.resource);
    n[q + S_NODE] = this.sid(S_NODE, x.node);
    n[q + S_HTRACE] = this.sid(S_HTRACE, x.hTrace);
    n[q + S_HPARENT] = this.sid(S_HPARENT, x.hParent);
    n[q + S_CADDR] = this.sid(S_CADDR, x.clientAddress);
    n[q + S_SADDR] = this.sid(S_SADDR, x.serverAddress);
    let sr = this.seriesIds.get(x.series);
    if (sr === undefined) {
      sr = this.seriesList.length;
      this.seriesList.push(x.series);
      this.seriesIds.set(x.series, sr);
    }
    n[o + N_SERIES] = sr;
    this.count++;
  }

  /** Adds the link keys of every span to `need` (this is the closing window: all are resolved). */
  keysInto(need: LinkKeys): void {
    for (let i = 0; i < this.count; i++) this.keyOf(i, need);
  }

  /** Adds the key span `i` looks up when resolved. */
  keyOf(i: number, need: LinkKeys): void {
    const o = i * NUMS;
    if (this.num[o + N_FLAGS]! & F_CLIENT) {
      const pid = this.num[o + N_PID]!;
      if (pid) need.addProc(this.str(i, S_NODE), pid);
    } else {
      const k = this.num[o + N_TUPLE]!;
      if (k >= 0) need.addTuple(k);
    }
  }

  /** Positions of the spans a lookup can return: client spans by 4-tuple hash, server spans by node and pid. */
  byLinkKey(): ByLinkKey {
    const out: ByLinkKey = { clients: new Map(), servers: new Map() };
    for (let i = 0; i < this.count; i++) {
      const o = i * NUMS;
      let l: number[] | undefined;
      if (this.num[o + N_FLAGS]! & F_CLIENT) {
        const k = this.num[o + N_TUPLE]!;
        if (k < 0) continue;
        l = out.clients.get(k);
        if (!l) out.clients.set(k, (l = []));
      } else {
        const pid = this.num[o + N_PID]!;
        if (!pid) continue;
        const node = this.str(i, S_NODE);
        let byPid = out.servers.get(node);
        if (!byPid) out.servers.set(node, (byPid = new Map()));
        l = byPid.get(pid);
        if (!l) byPid.set(pid, (l = []));
      }
      l.push(i);
    }
    return out;
  }

  /** Gives the column buffer to later windows; this window holds no spans afterwards. */
  release(): void {
    if (spare.length < SPARE_MAX && this.num.length > 0) spare.push(this.num);
    this.num = new Float64Array(0);
    this.count = 0;
  }

  /** The spans (those marked in `take` when given), in insertion order. */
  build(out: Span[], take?: Uint8Array): void {
    const n = this.num;
    const t = this.strs;
    for (let i = 0; i < this.count; i++) {
      if (take && !take[i]) continue;
      const o = i * NUMS;
      const q = o + N_STR;
      const flags = n[o + N_FLAGS]!;
      const status = n[o + N_STATUS]!;
      const a = n[o + N_ID_A]!;
      const b = n[o + N_ID_B]!;
      out.push(
        new Span(
          a === 0 && b === 0 ? "0000000000000001" : hex16(a, b),
          flags & F_CLIENT ? "client" : "server",
          t[n[q + S_SERVICE]!]!,
          t[n[q + S_PEER]!]!,
          t[n[q + S_PROTOCOL]!]!,
          t[n[q + S_OPERATION]!]!,
          t[n[q + S_RESOURCE]!]!,
          this.window,
          n[o + N_REL_US]!,
          n[o + N_SUB_US]!,
          n[o + N_DUR_US]!,
          Number.isNaN(status) ? undefined : status,
          (flags & F_ERROR) !== 0,
          t[n[q + S_NODE]!]!,
          n[o + N_PID]!,
          n[o + N_TID]!,
          n[o + N_TUPLE]!,
          t[n[q + S_HTRACE]!]!,
          t[n[q + S_HPARENT]!]!,
          this.seriesList[n[o + N_SERIES]!]!,
          t[n[q + S_CADDR]!]!,
          n[o + N_CPORT]!,
          t[n[q + S_SADDR]!]!,
          n[o + N_SPORT]!,
          n[o + N_REQ]!,
          n[o + N_RESP]!,
          (flags & F_INCOMPLETE) !== 0,
        ),
      );
    }
  }
}

/**
 * Marks the spans of the open windows that resolving the closing window's spans can reach: a
 * lookup's result is resolved too and makes its own lookups. Breadth-first over link keys, each
 * key and each span taken once: linear in the spans, however long the chains.
 */
export function reachableSpans(closing: SpanColumns, open: readonly SpanColumns[]): Uint8Array[] {
  const need = new LinkKeys();
  closing.keysInto(need);
  const take = open.map((w) => new Uint8Array(w.length));
  const index = open.map((w) => w.byLinkKey());
  const mark = (w: number, at: number[] | undefined) => {
    if (!at) return;
    const t = take[w]!;
    for (const i of at) {
      if (t[i]) continue;
      t[i] = 1;
      open[w]!.keyOf(i, need);
    }
  };
  for (let ti = 0, pi = 0; ti < need.tupleQueue.length || pi < need.procQueue.length; ) {
    if (ti < need.tupleQueue.length) {
      const k = need.tupleQueue[ti++]!;
      for (let w = 0; w < open.length; w++) mark(w, index[w]!.clients.get(k));
    } else {
      const { node, pid } = need.procQueue[pi++]!;
      for (let w = 0; w < open.length; w++) mark(w, index[w]!.servers.get(node)?.get(pid));
    }
  }
  return take;
}

/** Same connection (4-tuple) for two spans that both have one. */
const sameTuple = (a: SpanRec, b: SpanRec) =>
  a.clientPort === b.clientPort && a.serverPort === b.serverPort && a.clientAddress === b.clientAddress && a.serverAddress === b.serverAddress;

export interface LinkCounters {
  ambiguousTcp: number;
  ambiguousThread: number;
  /** Spans looked at by link lookups (index entries visited): the linking work, for tests and profiles. */
  visited: number;
}

/** The 4-tuple hash of a span, -1 when it has no complete 4-tuple. */
function tupleKeyOf(s: SpanRec): number {
  if (s instanceof Span) return s.tupleKey;
  return s.tuple ? tupleHash(s.clientAddress, s.clientPort, s.serverAddress, s.serverPort) : -1;
}

/**
 * Time bounds given to `Timeline.within` are widened by this much (ms) so that floating-point
 * rounding never hides a span the callers' exact tests would accept: times are epoch ms (~1.7e12,
 * one ulp ≈ 0.24 µs), spans have µs resolution.
 */
const SLACK_MS = 0.01;
/** Timelines this short are scanned as a list. */
const SMALL = 8;

/** Spans of one duration class of a timeline, sorted by start. */
interface DurationClass {
  /** Longest duration in the class: a span ending at or after t starts at or after t − maxDur. */
  maxDur: number;
  start: Float64Array;
  end: Float64Array;
  /** Positions in `Timeline.spans` (insertion order). */
  at: Int32Array;
}

/**
 * The spans of one key (a connection, a process, a thread of a process), searchable by time.
 * Sorted by start within duration classes (durations within a factor of two), each searched from
 * its longest duration: a lookup visits the spans that overlap the asked interval plus, per class,
 * those of similar length that ended just before (at most as many as ran at once), never the
 * whole history of a keep-alive connection. One long request does not widen the search for the
 * short ones, as a single bound by the longest duration of the list would.
 */
class Timeline {
  readonly spans: SpanRec[] = [];
  private classes: DurationClass[] | null = null;

  /**
   * Pushes to `out` the positions (in `spans`, unordered) of the spans that start at or before
   * `startMax` and end at or after `endMin` (callers widen both by SLACK_MS and apply their exact
   * test). Returns how many spans were visited.
   */
  within(startMax: number, endMin: number, out: number[]): number {
    const n = this.spans.length;
    if (n <= SMALL) {
      for (let i = 0; i < n; i++) {
        const s = this.spans[i]!;
        if (s.startMs <= startMax && s.endMs >= endMin) out.push(i);
      }
      return n;
    }
    let visited = 0;
    for (const c of this.classes ?? this.seal()) {
      const st = c.start;
      // First start >= endMin − maxDur (binary search).
      const from = endMin - c.maxDur - SLACK_MS;
      let lo = 0;
      let hi = st.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (st[mid]! < from) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < st.length && st[i]! <= startMax; i++) {
        visited++;
        if (c.end[i]! >= endMin) out.push(c.at[i]!);
      }
    }
    return visited;
  }

  private seal(): DurationClass[] {
    const n = this.spans.length;
    const start = new Float64Array(n);
    const end = new Float64Array(n);
    const cls = new Uint8Array(n);
    const counts = new Int32Array(33);
    for (let i = 0; i < n; i++) {
      const s = this.spans[i]!;
      start[i] = s.startMs;
      end[i] = s.endMs;
      const us = Math.min((end[i]! - start[i]!) * 1000, 0x7fffffff);
      cls[i] = us >= 1 ? 32 - Math.clz32(us) : 0;
      counts[cls[i]!]!++;
    }
    const classes: DurationClass[] = [];
    for (let k = 0; k < 33; k++) {
      if (!counts[k]) continue;
      const at: number[] = [];
      for (let i = 0; i < n; i++) if (cls[i] === k) at.push(i);
      at.sort((a, b) => start[a]! - start[b]! || a - b);
      const c: DurationClass = { maxDur: 0, start: new Float64Array(at.length), end: new Float64Array(at.length), at: Int32Array.from(at) };
      for (let j = 0; j < at.length; j++) {
        c.start[j] = start[at[j]!]!;
        c.end[j] = end[at[j]!]!;
        if (c.end[j]! - c.start[j]! > c.maxDur) c.maxDur = c.end[j]! - c.start[j]!;
      }
      classes.push(c);
    }
    return (this.classes = classes);
  }
}

/** Server spans of one process: all of them (lookups by trace id) and by thread. */
interface ProcessSpans {
  all: Timeline;
  byTid: Map<number, Timeline>;
}

/**
 * Indexes over the spans that can take part in links (the closing window and the open ones):
 * client spans by connection, server spans by process and thread, each ordered by time, so that
 * a lookup costs about the requests that overlap it, not every request of the connection or the
 * process (keep-alive connections carry thousands).
 */
export class SpanIndex {
  /** Client spans by 4-tuple hash (a hash bucket: compared field by field). */
  private readonly clients = new Map<number, Timeline>();
  /** Server spans by node, then pid. */
  private readonly servers = new Map<string, Map<number, ProcessSpans>>();
  /** Scratch for `Timeline.within` (copied out before any span is resolved). */
  private readonly found: number[] = [];

  constructor(spans: Iterable<SpanRec>, private readonly skewMs: number, protected readonly counters: LinkCounters) {
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
        const k = tupleKeyOf(s);
        if (k < 0) continue;
        let l = this.clients.get(k);
        if (!l) this.clients.set(k, (l = new Timeline()));
        l.spans.push(s);
      } else {
        if (!s.pid) continue;
        let byPid = this.servers.get(s.node);
        if (!byPid) this.servers.set(s.node, (byPid = new Map()));
        let p = byPid.get(s.pid);
        if (!p) byPid.set(s.pid, (p = { all: new Timeline(), byTid: new Map() }));
        p.all.spans.push(s);
        let t = p.byTid.get(s.tid);
        if (!t) p.byTid.set(s.tid, (t = new Timeline()));
        t.spans.push(s);
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
    for (let pass = 0; pass < 2; pass++) {
      const cands = this.pairCandidates(s, pass === 0 ? 0 : this.skewMs);
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
    if (c.hTrace) {
      let found: SpanRec | null = null;
      let n = 0;
      for (const sv of this.containing(c)) {
        if (sv.state === 1) continue;
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
    for (const sv of this.overlappingOnThread(c)) {
      overlapping++;
      if (sv.startMs <= c.startMs && c.endMs <= sv.endMs) found = sv;
    }
    if (overlapping === 1 && found && found.state !== 1) {
      this.resolve(found);
      return found;
    }
    if (overlapping > 1) this.counters.ambiguousThread++;
    return null;
  }

  // The three lookups. Each returns a fresh array (callers resolve spans while iterating it).

  /** Client spans of the server span's connection and protocol whose call contains it (± skew). */
  protected pairCandidates(s: SpanRec, skew: number): SpanRec[] {
    const cands: SpanRec[] = [];
    const k = tupleKeyOf(s);
    const l = k < 0 ? undefined : this.clients.get(k);
    if (!l) return cands;
    const at = this.found;
    at.length = 0;
    this.counters.visited += l.within(s.startMs + skew + SLACK_MS, s.endMs - skew - SLACK_MS, at);
    for (const i of at) {
      const c = l.spans[i]!;
      if (c.protocol === s.protocol && sameTuple(c, s) && c.startMs - skew <= s.startMs && s.endMs <= c.endMs + skew) cands.push(c);
    }
    return cands;
  }

  /** Server spans of the client span's process that contain it, in insertion order. */
  protected containing(c: SpanRec): SpanRec[] {
    const p = this.servers.get(c.node)?.get(c.pid);
    if (!p) return [];
    const at = this.found;
    at.length = 0;
    this.counters.visited += p.all.within(c.startMs + SLACK_MS, c.endMs - SLACK_MS, at);
    // Resolving a candidate can resolve others: the caller takes them in insertion order, as a
    // list would be walked, so that cycles (possible through equal times or clock skew) break alike.
    const order = Int32Array.from(at).sort();
    const out: SpanRec[] = [];
    for (const i of order) {
      const sv = p.all.spans[i]!;
      if (sv.startMs <= c.startMs && c.endMs <= sv.endMs) out.push(sv);
    }
    return out;
  }

  /** Server spans of the client span's process and thread that overlap it. */
  protected overlappingOnThread(c: SpanRec): SpanRec[] {
    const l = this.servers.get(c.node)?.get(c.pid)?.byTid.get(c.tid);
    if (!l) return [];
    const at = this.found;
    at.length = 0;
    this.counters.visited += l.within(c.endMs + SLACK_MS, c.startMs - SLACK_MS, at);
    const out: SpanRec[] = [];
    for (const i of at) {
      const sv = l.spans[i]!;
      if (sv.startMs < c.endMs && sv.endMs > c.startMs) out.push(sv);
    }
    return out;
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
