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
import { id128Words, wordFromHex, hex16, hexWords } from "./hash.js";

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
  /** Kubernetes namespace of the span's process ("" outside Kubernetes). */
  readonly namespace: string;
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
  /** Seen in plaintext inside TLS (the record's `tls` attribute). */
  readonly tls: boolean;
  // Link results.
  parent: SpanRec | null;
  parentId: string;
  traceId: string;
  linkedBy: "" | "tcp" | "header" | "thread" | "trace";
  state: 0 | 1 | 2; // 0 unresolved, 1 resolving (cycle guard), 2 resolved
  final: boolean;
}

/**
 * One span is one row of two typed arrays (stored unboxed, off the garbage-collected heap):
 * doubles for the values that may exceed 32 bits, 32-bit words for the rest (124 bytes a span,
 * against 200 as 25 doubles: the buffer holds every span of the open windows, 600,000 at 40,000
 * records/s with 10 s windows and 5 s grace).
 */
const F_REL_US = 0, F_DUR_US = 1, F_STATUS = 2, F_REQ = 3, F_RESP = 4;
const NF = 5;
/** Words: ids, start's sub-µs ns (low 16 bits) and flags (high), pid, tid, 4-tuple hash + 1 (0: none),
 *  ports (client low, server high), the peer's pid while it has a bare name, then the strings
 *  (`U_STR + S_*`), then the series. */
const U_ID_A = 0, U_ID_B = 1, U_SUB_FLAGS = 2, U_PID = 3, U_TID = 4, U_TUPLE = 5, U_PORTS = 6, U_PEER_PID = 7, U_STR = 8;
/** Strings of one span: their numbers in the window's string table, at `U_STR + S_*`. */
const S_SERVICE = 0, S_PEER = 1, S_PROTOCOL = 2, S_OPERATION = 3, S_RESOURCE = 4, S_NODE = 5, S_HTRACE = 6, S_HPARENT = 7, S_CADDR = 8, S_SADDR = 9, S_NAMESPACE = 10, S_PEER_NODE = 11;
const N_STRS = 12;
/** The span's RED series: its number in the window's series table. */
const U_SERIES = U_STR + N_STRS;
const NU = U_SERIES + 1;
/** Memory a buffered span takes in its window's columns (strings and series are shared). */
export const SPAN_COLUMN_BYTES = NF * 8 + NU * 4;
const F_CLIENT = 1, F_ERROR = 2, F_INCOMPLETE = 4, F_TLS = 8;

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
  namespace: string;
  pid: number;
  tid: number;
  /** The peer's pid and node while the peer is named by its bare process name (0 and "" else):
   *  the name it takes when its process is found to listen (ListenNames). */
  peerPid: number;
  peerNode: string;
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
  tls: boolean;
}


/**
 * Column buffers of closed windows, taken by new ones: windows are alike in size, so after the
 * first few no buffer is grown or freshly allocated (fresh pages cost a fault each).
 */
const spare: { f64: Float64Array; u32: Uint32Array }[] = [];
const SPARE_MAX = 2;


/**
 * The spans of one open window, column-wise: a record adds a row to two typed arrays (its
 * strings and series as numbers in tables of the window, each distinct value once) instead of a
 * span object that would live (and be traced by the garbage collector) until the window closes;
 * no array of references grows with the spans. A window's close resolves links on these rows in
 * place (`SpanLinks`); linking state never outlives one close, so resolving again is equivalent.
 */
export class SpanColumns {
  /** @internal Read by `SpanLinks`. */
  f64: Float64Array;
  /** @internal Read by `SpanLinks`. */
  u32: Uint32Array;
  private count = 0;
  /** @internal Read by `SpanLinks`. */
  readonly strs: string[] = [];
  private readonly strIds = new Map<string, number>();
  private readonly lastStr: (string | undefined)[] = new Array<string | undefined>(N_STRS).fill(undefined);
  private readonly lastId = new Uint32Array(N_STRS);
  /** @internal Read by `SpanLinks`. */
  readonly seriesList: object[] = [];
  private readonly seriesIds = new Map<object, number>();
  /** `small`: a few rows (the carry of `SpanLinks.carryOut`), not a window's: no spare buffer taken. */
  constructor(readonly window: number, small = false) {
    const s = small ? undefined : spare.pop();
    this.f64 = s?.f64 ?? new Float64Array(NF * (small ? 16 : 256));
    this.u32 = s?.u32 ?? new Uint32Array(NU * (small ? 16 : 256));
  }

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

  /** String field `field` (S_*) of row `row`. */
  str(row: number, field: number): string {
    return this.strs[this.u32[row * NU + U_STR + field]!]!;
  }

  private grow(): void {
    if ((this.count + 1) * NU <= this.u32.length) return;
    const rows = Math.max(16, (this.u32.length / NU) * 2);
    const f = new Float64Array(rows * NF);
    f.set(this.f64);
    this.f64 = f;
    const u = new Uint32Array(rows * NU);
    u.set(this.u32);
    this.u32 = u;
  }

  /**
   * Appends row `row` of `src` (a window of the same start: its times are relative to it) with
   * `idA`/`idB` as its own id and `hTrace` as its trace id: a resolved span kept as what later
   * links read of it.
   */
  copyRow(src: SpanColumns, row: number, idA: number, idB: number, hTrace: string): void {
    this.grow();
    this.f64.set(src.f64.subarray(row * NF, row * NF + NF), this.count * NF);
    const p = this.count * NU;
    this.u32.set(src.u32.subarray(row * NU, row * NU + NU), p);
    this.u32[p + U_ID_A] = idA;
    this.u32[p + U_ID_B] = idB;
    for (let f = 0; f < N_STRS; f++) this.u32[p + U_STR + f] = this.sid(f, f === S_HTRACE ? hTrace : src.str(row, f));
    const series = src.seriesList[src.u32[row * NU + U_SERIES]!]!;
    let sr = this.seriesIds.get(series);
    if (sr === undefined) {
      sr = this.seriesList.length;
      this.seriesList.push(series);
      this.seriesIds.set(series, sr);
    }
    this.u32[p + U_SERIES] = sr;
    this.count++;
  }

  push(x: SpanInput): void {
    this.grow();
    const d = this.f64;
    const o = this.count * NF;
    d[o + F_REL_US] = x.relUs;
    d[o + F_DUR_US] = x.durUs;
    d[o + F_STATUS] = x.status === undefined ? NaN : x.status;
    d[o + F_REQ] = x.requestBytes;
    d[o + F_RESP] = x.responseBytes;
    const n = this.u32;
    const p = this.count * NU;
    n[p + U_ID_A] = x.idA;
    n[p + U_ID_B] = x.idB;
    const flags = (x.kind === "client" ? F_CLIENT : 0) | (x.error ? F_ERROR : 0) | (x.incomplete ? F_INCOMPLETE : 0) | (x.tls ? F_TLS : 0);
    n[p + U_SUB_FLAGS] = (x.subUs & 0xffff) | (flags << 16);
    n[p + U_PID] = x.pid;
    n[p + U_TID] = x.tid;
    n[p + U_TUPLE] = x.tupleKey < 0 ? 0 : x.tupleKey + 1;
    n[p + U_PORTS] = (x.clientPort & 0xffff) | ((x.serverPort & 0xffff) << 16);
    n[p + U_PEER_PID] = x.peerPid;
    const q = p + U_STR;
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
    n[q + S_NAMESPACE] = this.sid(S_NAMESPACE, x.namespace);
    n[q + S_PEER_NODE] = this.sid(S_PEER_NODE, x.peerNode);
    let sr = this.seriesIds.get(x.series);
    if (sr === undefined) {
      sr = this.seriesList.length;
      this.seriesList.push(x.series);
      this.seriesIds.set(x.series, sr);
    }
    n[p + U_SERIES] = sr;
    this.count++;
  }

  /** Adds the link keys of every span to `need` (this is the closing window: all are resolved). */
  keysInto(need: LinkKeys): void {
    for (let i = 0; i < this.count; i++) this.keyOf(i, need);
  }

  /** Adds the key span `i` looks up when resolved. */
  keyOf(i: number, need: LinkKeys): void {
    const p = i * NU;
    if (this.u32[p + U_SUB_FLAGS]! & (F_CLIENT << 16)) {
      const pid = this.u32[p + U_PID]!;
      if (pid) need.addProc(this.str(i, S_NODE), pid);
    } else {
      const k = this.u32[p + U_TUPLE]!;
      if (k > 0) need.addTuple(k - 1);
    }
  }

  /** Positions of the spans a lookup can return: client spans by 4-tuple hash, server spans by node and pid. */
  byLinkKey(): ByLinkKey {
    const out: ByLinkKey = { clients: new Map(), servers: new Map() };
    for (let i = 0; i < this.count; i++) {
      const p = i * NU;
      let l: number[] | undefined;
      if (this.u32[p + U_SUB_FLAGS]! & (F_CLIENT << 16)) {
        const k = this.u32[p + U_TUPLE]!;
        if (k === 0) continue;
        l = out.clients.get(k - 1);
        if (!l) out.clients.set(k - 1, (l = []));
      } else {
        const pid = this.u32[p + U_PID]!;
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

  /** Gives the column buffers to later windows; this window holds no spans afterwards (links
   *  loaded from it read garbage: detach what must outlive the close first). */
  release(): void {
    if (spare.length < SPARE_MAX && this.u32.length > 0) spare.push({ f64: this.f64, u32: this.u32 });
    this.f64 = new Float64Array(0);
    this.u32 = new Uint32Array(0);
    this.count = 0;
  }

  /** The fields of row `row` as a plain span record, unlinked (its own id the base id). */
  record(row: number): SpanRec {
    const u = this.u32;
    const d = this.f64;
    const p = row * NU;
    const q = row * NF;
    const a = u[p + U_ID_A]!;
    const b = u[p + U_ID_B]!;
    const baseId = a === 0 && b === 0 ? "0000000000000001" : hex16(a, b);
    const flags = u[p + U_SUB_FLAGS]! >>> 16;
    const startMs = (this.window * 1000 + d[q + F_REL_US]!) / 1000;
    const durationMs = d[q + F_DUR_US]! / 1000;
    const status = d[q + F_STATUS]!;
    const clientAddress = this.str(row, S_CADDR);
    const serverAddress = this.str(row, S_SADDR);
    const clientPort = u[p + U_PORTS]! & 0xffff;
    const serverPort = u[p + U_PORTS]! >>> 16;
    return {
      id: baseId, baseId, kind: flags & F_CLIENT ? "client" : "server", service: this.str(row, S_SERVICE), peer: this.str(row, S_PEER), protocol: this.str(row, S_PROTOCOL),
      operation: this.str(row, S_OPERATION), resource: this.str(row, S_RESOURCE), startNs: BigInt(this.window * 1000 + d[q + F_REL_US]!) * 1000n + BigInt(u[p + U_SUB_FLAGS]! & 0xffff),
      startMs, endMs: startMs + durationMs, durationMs, status: Number.isNaN(status) ? undefined : status, error: (flags & F_ERROR) !== 0,
      node: this.str(row, S_NODE), namespace: this.str(row, S_NAMESPACE), pid: u[p + U_PID]!, tid: u[p + U_TID]!,
      tuple: u[p + U_TUPLE] === 0 ? "" : `${clientAddress}:${clientPort}>${serverAddress}:${serverPort}`, hTrace: this.str(row, S_HTRACE), hParent: this.str(row, S_HPARENT),
      series: this.seriesList[u[p + U_SERIES]!]!, window: this.window, clientAddress, clientPort, serverAddress, serverPort,
      requestBytes: d[q + F_REQ]!, responseBytes: d[q + F_RESP]!, incomplete: (flags & F_INCOMPLETE) !== 0, tls: (flags & F_TLS) !== 0,
      parent: null, parentId: "", traceId: "", linkedBy: "", state: 0, final: false,
    };
  }

  /** The 4-tuple hash of row `row` (a Map key), -1 when it has no complete 4-tuple. */
  tupleKey(row: number): number {
    return this.u32[row * NU + U_TUPLE]! - 1;
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


/** Same connection (4-tuple) and protocol: the rows' words and string numbers on one window's
 *  columns, the strings across windows. */
function sameTuple(a: SpanColumns, ra: number, b: SpanColumns, rb: number): boolean {
  const pa = ra * NU;
  const pb = rb * NU;
  if (a.u32[pa + U_PORTS] !== b.u32[pb + U_PORTS]) return false;
  if (a === b) return a.u32[pa + U_STR + S_CADDR] === b.u32[pb + U_STR + S_CADDR] && a.u32[pa + U_STR + S_SADDR] === b.u32[pb + U_STR + S_SADDR];
  return a.str(ra, S_CADDR) === b.str(rb, S_CADDR) && a.str(ra, S_SADDR) === b.str(rb, S_SADDR);
}

function sameStr(a: SpanColumns, ra: number, b: SpanColumns, rb: number, f: number): boolean {
  if (a === b) return a.u32[ra * NU + U_STR + f] === b.u32[rb * NU + U_STR + f];
  return a.str(ra, f) === b.str(rb, f);
}

export interface LinkCounters {
  ambiguousTcp: number;
  ambiguousThread: number;
  /** Spans looked at by link lookups (index entries visited): the linking work, for tests and profiles. */
  visited: number;
  /** Spans placed in the time order of their connection, process or thread (`Timeline`) and the
   *  passes of the stable merge that ordered them: the indexing work, for tests. */
  indexed: number;
}

/**
 * Time bounds given to `Timeline.within` are widened by this much (ms) so that floating-point
 * rounding never hides a span the callers' exact tests would accept: times are epoch ms (~1.7e12,
 * one ulp ≈ 0.24 µs), spans have µs resolution.
 */
const SLACK_MS = 0.01;
/** Timelines this short are scanned as a list. */
const SMALL = 8;

/**
 * Slots found by a lookup, in a list reused from lookup to lookup: a plain array emptied by
 * `length = 0` gives its storage up, and the next lookup would allocate it again.
 */
export class SlotList {
  a = new Int32Array(16);
  n = 0;
  push(k: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(2 * this.n);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = k;
  }
}

/** The bounds a lookup hands to `Timeline.within` (doubles passed as arguments would be boxed). */
const BOUNDS = new Float64Array(2);
const START_MAX = 0, END_MIN = 1;

/** Spans of one duration class of a timeline, sorted by start. */
interface DurationClass {
  /** Longest duration in the class: a span ending at or after t starts at or after t − maxDur. */
  maxDur: number;
  start: Float64Array;
  end: Float64Array;
  /** Their slots (`SpanLinks`). */
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
  /** Slots of `SpanLinks`, ascending (the order they were loaded in). */
  readonly spans: number[] = [];
  private classes: DurationClass[] | null = null;

  /**
   * Pushes to `out` the slots (unordered) of the spans that start at or before BOUNDS[START_MAX]
   * and end at or after BOUNDS[END_MIN] (callers widen both by SLACK_MS and apply their exact
   * test); `start` and `end` by slot. Returns how many spans were visited.
   */
  within(start: Float64Array, end: Float64Array, out: SlotList, counters: LinkCounters): number {
    const startMax = BOUNDS[START_MAX]!;
    const endMin = BOUNDS[END_MIN]!;
    const n = this.spans.length;
    if (n <= SMALL) {
      for (let i = 0; i < n; i++) {
        const k = this.spans[i]!;
        if (start[k]! <= startMax && end[k]! >= endMin) out.push(k);
      }
      return n;
    }
    let visited = 0;
    for (const c of this.classes ?? this.seal(start, end, counters)) {
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

  private seal(start: Float64Array, end: Float64Array, counters: LinkCounters): DurationClass[] {
    const spans = this.spans;
    const n = spans.length;
    const cls = new Uint8Array(n);
    const counts = new Int32Array(33);
    for (let i = 0; i < n; i++) {
      const k = spans[i]!;
      const us = Math.min((end[k]! - start[k]!) * 1000, 0x7fffffff);
      cls[i] = us >= 1 ? 32 - Math.clz32(us) : 0;
      counts[cls[i]!]!++;
    }
    const classes: DurationClass[] = [];
    for (let k = 0; k < 33; k++) {
      if (!counts[k]) continue;
      const at = new Int32Array(counts[k]!);
      for (let i = 0, j = 0; i < n; i++) if (cls[i] === k) at[j++] = spans[i]!;
      // By start, ties in load order: the slots are ascending already.
      const sorted = sortByStart(at, start, counters);
      const c: DurationClass = { maxDur: 0, start: new Float64Array(sorted.length), end: new Float64Array(sorted.length), at: sorted };
      for (let j = 0; j < sorted.length; j++) {
        c.start[j] = start[sorted[j]!]!;
        c.end[j] = end[sorted[j]!]!;
        if (c.end[j]! - c.start[j]! > c.maxDur) c.maxDur = c.end[j]! - c.start[j]!;
      }
      classes.push(c);
    }
    counters.indexed += n;
    return (this.classes = classes);
  }
}

/**
 * `at` (ascending slots) stably sorted by `start`: a natural merge sort over the runs already in
 * order. Records reach a window in the order they ended, so the spans of one connection or thread
 * come mostly in start order already (one run, one pass); the passes are counted in
 * `counters.indexed` (each pass touches every span).
 */
function sortByStart(at: Int32Array, start: Float64Array, counters: LinkCounters): Int32Array {
  const n = at.length;
  let src: Int32Array = at;
  let dst: Int32Array = new Int32Array(n);
  for (;;) {
    let runs = 0;
    for (let i = 0; i < n; ) {
      // Two runs [i, m) and [m, e), merged into dst.
      let m = i + 1;
      while (m < n && start[src[m - 1]!]! <= start[src[m]!]!) m++;
      let e = m;
      if (m < n) {
        e = m + 1;
        while (e < n && start[src[e - 1]!]! <= start[src[e]!]!) e++;
      }
      let a = i;
      let b = m;
      let o = i;
      while (a < m && b < e) dst[o++] = start[src[b]!]! < start[src[a]!]! ? src[b++]! : src[a++]!;
      while (a < m) dst[o++] = src[a++]!;
      while (b < e) dst[o++] = src[b++]!;
      runs++;
      i = e;
    }
    counters.indexed += n;
    if (runs <= 1) return dst;
    const t = src;
    src = dst;
    dst = t;
  }
}

/** Server spans of one process: all of them (lookups by trace id) and by thread. */
interface ProcessSpans {
  all: Timeline;
  byTid: Map<number, Timeline>;
}

/** `SpanRec.linkedBy` by number. */
const LINKED_BY = ["", "tcp", "header", "thread", "trace"] as const;
const BY_TCP = 1, BY_HEADER = 2, BY_THREAD = 3, BY_TRACE = 4;
/** Scratch for trace ids derived from span ids. */
const TRACE_WORDS = new Uint32Array(4);

/** What `SpanLinks.sample` kept of a closing window's spans. */
export interface SampleResult {
  /** Slots kept, in the order given. */
  kept: number[];
  dropped: number;
  /** The fraction of ordinary traces kept: the sample rate, or a power of two below it when the
   *  budget bound (`spanFraction`). */
  fraction: number;
  /** Ordinary spans the sample rate would have kept and the budget left out. */
  overBudget: number;
}

/**
 * The fraction of ordinary spans' traces kept: `rate` when at most `maxOrdinary` of them have a
 * sampling value below `rate` · 2^32, else the largest power of two 2^-j below `rate` under which
 * at most that many fall (0 when even 2^-32 keeps more). Consistent sampling: a trace kept at a
 * fraction is kept at every larger one, so an instance under a lower fraction keeps a subset of the
 * traces an instance under a higher one keeps, and those traces stay whole across them.
 * `words`: each span's sampling value (`traceWord`), read where `taken[i]` is 0 (the ordinary ones).
 */
export function spanFraction(words: Float64Array, taken: Uint8Array, rate: number, maxOrdinary: number): number {
  const atRate = rate * 0x1_0000_0000;
  // By the leading zeros of the 32-bit value: a value is below 2^(32-j) exactly when it has j or more.
  const byZeros = new Float64Array(33);
  let n = 0;
  for (let i = 0; i < words.length; i++) {
    if (taken[i]) continue;
    const w = words[i]!;
    if (w < atRate) n++;
    byZeros[Math.clz32(w)] += 1;
  }
  if (n <= maxOrdinary) return rate;
  // The first power of two strictly below the rate, then down until the count fits.
  let j = Math.max(0, Math.floor(-Math.log2(rate)));
  while (j <= 32 && 2 ** -j >= rate) j++;
  let fit = 0;
  for (let z = j; z <= 32; z++) fit += byZeros[z]!;
  for (; j <= 32; j++) {
    if (fit <= maxOrdinary) return 2 ** -j;
    fit -= byZeros[j]!;
  }
  return 0;
}

/**
 * The links of the spans a window's close resolves: the closing window's spans and those of the
 * open (later) windows that lookups can reach, numbered by slot (the closing window's rows first,
 * in order). Link state lives in typed arrays by slot, read and written in place (no object per
 * span); indexes over the slots find, for a lookup, about the requests that overlap it, not every
 * request of the connection or the process (keep-alive connections carry thousands): client spans
 * by connection, server spans by process and thread, each ordered by time. Own and trace ids stay
 * 32-bit words until a kept span is detached: most spans are sampled out and never need them as
 * text. Buffers grow to the largest close and are reused by the next one.
 */
export class SpanLinks {
  readonly counters: LinkCounters = { ambiguousTcp: 0, ambiguousThread: 0, visited: 0, indexed: 0 };
  /** Spans loaded: slots 0 .. n; the first `mine` are the closing window's rows, in order. */
  n = 0;
  mine = 0;
  private wins: SpanColumns[] = [];
  // By slot:
  private win = new Int32Array(0);
  private row = new Int32Array(0);
  private startMs = new Float64Array(0);
  private endMs = new Float64Array(0);
  /** 0 unresolved, 1 resolving (cycle guard), 2 resolved. */
  private state = new Uint8Array(0);
  /** LINKED_BY's number. */
  private by = new Uint8Array(0);
  /** 1 when the own id is the span's header parent id (a client span that is the span named there). */
  private ownHeader = new Uint8Array(0);
  /** The parent's slot, -1 for none. */
  private parent = new Int32Array(0);
  /** The slot whose trace this span is in: its own (a header's trace id, else derived from its id) or an ancestor's. */
  private trace = new Int32Array(0);
  /** Own id as two words per slot (hex16 of them is the id). */
  private ids = new Uint32Array(0);
  private clients = new Map<number, Timeline>();
  private servers = new Map<string, Map<number, ProcessSpans>>();
  /** Scratch for `Timeline.within` (copied out before any span is resolved). */
  private readonly found = new SlotList();
  /** Scratch results of `pairCandidates` and `overlappingOnThread`. */
  private readonly candScratch = new SlotList();
  private readonly overlapScratch = new SlotList();

  constructor(private readonly skewMs: number) {}

  /**
   * Takes the spans of `closing` and those marked in `take` (all when not given) of `open`, in
   * that order, unresolved, and indexes them. Counters start from zero.
   */
  load(closing: SpanColumns, open: readonly SpanColumns[] = [], take?: readonly Uint8Array[], carry?: SpanColumns): void {
    let n = closing.length + (carry?.length ?? 0);
    for (let w = 0; w < open.length; w++) {
      const t = take?.[w];
      if (!t) n += open[w]!.length;
      else for (let i = 0; i < t.length; i++) n += t[i]!;
    }
    this.reserve(n);
    this.clear();
    this.wins = [closing, ...open];
    this.mine = closing.length;
    for (let w = 0; w < this.wins.length; w++) {
      const c = this.wins[w]!;
      const t = w === 0 ? undefined : take?.[w - 1];
      for (let r = 0; r < c.length; r++) if (!t || t[r]) this.add(w, c, r);
    }
    if (!carry) return;
    // Resolved at the close before: parent, own id and trace stay as written then (the trace is
    // the row's header trace, the id its id words: `carryOut`).
    const w = this.wins.push(carry) - 1;
    for (let r = 0; r < carry.length; r++) {
      const k = this.n;
      this.add(w, carry, r);
      this.state[k] = 2;
    }
  }

  /**
   * The closing window's client spans that a server span of the next window may still pair with
   * (a clock ahead by up to the allowed skew can put a request's server end past the end of the
   * window of its call: those that end at or after `fromMs`), resolved, as rows to `load` as
   * `carry` at the next close. Call after every span is resolved, before `clear`.
   */
  carryOut(fromMs: number): SpanColumns | undefined {
    let out: SpanColumns | undefined;
    const c = this.wins[0];
    if (!c) return undefined;
    for (let k = 0; k < this.mine; k++) {
      if (this.endMs[k]! < fromMs || !this.isClient(k) || this.word(k, U_TUPLE) === 0 || this.state[k] !== 2) continue;
      if (this.ownHeader[k]) hexWords(this.str(k, S_HPARENT), TRACE_WORDS, 0);
      else (TRACE_WORDS[0] = this.ids[2 * k]!), (TRACE_WORDS[1] = this.ids[2 * k + 1]!);
      const idA = TRACE_WORDS[0]!;
      const idB = TRACE_WORDS[1]!;
      out ??= new SpanColumns(c.window, true);
      out.copyRow(c, this.row[k]!, idA, idB, this.traceId(k));
    }
    return out;
  }

  /** Forgets the loaded spans (and the columns they were read from). */
  clear(): void {
    this.wins = [];
    this.n = 0;
    this.mine = 0;
    this.clients = new Map();
    this.servers = new Map();
    this.counters.ambiguousTcp = 0;
    this.counters.ambiguousThread = 0;
    this.counters.visited = 0;
    this.counters.indexed = 0;
  }

  private reserve(n: number): void {
    if (this.win.length >= n) return;
    const cap = Math.max(n, 2 * this.win.length, 256);
    this.win = new Int32Array(cap);
    this.row = new Int32Array(cap);
    this.startMs = new Float64Array(cap);
    this.endMs = new Float64Array(cap);
    this.state = new Uint8Array(cap);
    this.by = new Uint8Array(cap);
    this.ownHeader = new Uint8Array(cap);
    this.parent = new Int32Array(cap);
    this.trace = new Int32Array(cap);
    this.ids = new Uint32Array(2 * cap);
  }

  private add(w: number, c: SpanColumns, r: number): void {
    const k = this.n++;
    this.win[k] = w;
    this.row[k] = r;
    const s = (c.window * 1000 + c.f64[r * NF + F_REL_US]!) / 1000;
    this.startMs[k] = s;
    this.endMs[k] = s + c.f64[r * NF + F_DUR_US]! / 1000;
    this.state[k] = 0;
    this.by[k] = 0;
    this.ownHeader[k] = 0;
    this.parent[k] = -1;
    this.trace[k] = k;
    const u = c.u32;
    const p = r * NU;
    const a = u[p + U_ID_A]!;
    const b = u[p + U_ID_B]!;
    this.ids[2 * k] = a;
    this.ids[2 * k + 1] = a === 0 && b === 0 ? 1 : b; // the base id's rule: never all zeros
    if (u[p + U_SUB_FLAGS]! & (F_CLIENT << 16)) {
      const t = u[p + U_TUPLE]!;
      if (t === 0) return;
      let l = this.clients.get(t - 1);
      if (!l) this.clients.set(t - 1, (l = new Timeline()));
      l.spans.push(k);
    } else {
      const pid = u[p + U_PID]!;
      if (!pid) return;
      const node = c.str(r, S_NODE);
      let byPid = this.servers.get(node);
      if (!byPid) this.servers.set(node, (byPid = new Map()));
      let ps = byPid.get(pid);
      if (!ps) byPid.set(pid, (ps = { all: new Timeline(), byTid: new Map() }));
      ps.all.spans.push(k);
      const tid = u[p + U_TID]!;
      let l = ps.byTid.get(tid);
      if (!l) ps.byTid.set(tid, (l = new Timeline()));
      l.spans.push(k);
    }
  }

  private cols(k: number): SpanColumns {
    return this.wins[this.win[k]!]!;
  }

  private word(k: number, f: number): number {
    return this.wins[this.win[k]!]!.u32[this.row[k]! * NU + f]!;
  }

  private str(k: number, f: number): string {
    return this.wins[this.win[k]!]!.str(this.row[k]!, f);
  }

  private isClient(k: number): boolean {
    return (this.word(k, U_SUB_FLAGS) & (F_CLIENT << 16)) !== 0;
  }

  /** The closing window's slots by start, then base id: the order they are resolved and sampled in. */
  byStart(): number[] {
    const order: number[] = [];
    for (let k = 0; k < this.mine; k++) order.push(k);
    const u = this.wins[0]?.u32;
    const st = this.startMs;
    // The closing window's slot is its row.
    const baseBefore = (a: number, b: number) => {
      const a0 = u![a * NU + U_ID_A]!;
      const b0 = u![b * NU + U_ID_A]!;
      if (a0 !== b0) return a0 < b0;
      const a1 = u![a * NU + U_ID_B]!;
      const b1 = u![b * NU + U_ID_B]!;
      return (a0 === 0 && a1 === 0 ? 1 : a1) < (b0 === 0 && b1 === 0 ? 1 : b1);
    };
    // Signs only (a difference of doubles would be a heap number per comparison).
    return order.sort((a, b) => (st[a]! < st[b]! ? -1 : st[a]! > st[b]! ? 1 : baseBefore(a, b) ? -1 : 1));
  }

  /** Resolves parent, own id and trace of slot `k` (and, recursively, of its ancestors). */
  resolve(k: number): void {
    if (this.state[k] !== 0) return;
    this.state[k] = 1;
    const hTrace = this.str(k, S_HTRACE);
    const hParent = this.str(k, S_HPARENT);
    if (!this.isClient(k)) {
      const pair = this.tcpPair(k);
      if (pair >= 0 && this.state[pair] !== 1) {
        this.resolve(pair);
        this.parent[k] = pair;
        this.by[k] = BY_TCP;
      } else if (hParent) {
        this.by[k] = BY_HEADER;
      }
    } else {
      const ip = this.inProcessParent(k, hTrace);
      if (ip >= 0) {
        this.parent[k] = ip;
        this.by[k] = hTrace ? BY_TRACE : BY_THREAD;
        // A relayed header names the upstream caller's span, not this one.
        if (hParent && this.str(ip, S_HPARENT) !== hParent) this.ownHeaderId(k, hParent);
      } else if (hParent) {
        this.ownHeaderId(k, hParent);
      }
    }
    // The header's trace, else the parent's, else one derived from the own id.
    const p = this.parent[k]!;
    this.trace[k] = hTrace || p < 0 ? k : this.trace[p]!;
    this.state[k] = 2;
  }

  private ownHeaderId(k: number, hParent: string): void {
    this.ownHeader[k] = 1;
    hexWords(hParent, this.ids, 2 * k);
  }

  /**
   * The one client span on the same connection whose call contains this server request. Exact
   * containment first (one clock: both ends on one node); only when nothing contains it, the
   * allowed clock skew between two nodes. Several candidates (HTTP/2 multiplexing) are narrowed
   * by the trace id both ends saw, then by operation and resource; still several: no link.
   */
  private tcpPair(s: number): number {
    for (let pass = 0; pass < 2; pass++) {
      const cands = this.pairCandidates(s, pass === 0 ? 0 : this.skewMs);
      if (cands.n === 1) return cands.a[0]!;
      if (cands.n > 1) {
        // Both ends saw the same request headers: the same trace id tells concurrent streams apart.
        const hTrace = this.str(s, S_HTRACE);
        if (hTrace) {
          const one = this.onlyOne(cands, (c) => this.str(c, S_HTRACE) === hTrace);
          if (one >= 0) return one;
        }
        const op = this.str(s, S_OPERATION);
        const res = this.str(s, S_RESOURCE);
        const one = this.onlyOne(cands, (c) => this.str(c, S_OPERATION) === op && this.str(c, S_RESOURCE) === res);
        if (one >= 0) return one;
        this.counters.ambiguousTcp++;
        return -1;
      }
    }
    return -1;
  }

  private onlyOne(cands: SlotList, ok: (c: number) => boolean): number {
    let one = -1;
    for (let i = 0; i < cands.n; i++) {
      const c = cands.a[i]!;
      if (!ok(c)) continue;
      if (one >= 0) return -1;
      one = c;
    }
    return one;
  }

  /** The server request of the same process this client call was made for, when unambiguous. */
  private inProcessParent(c: number, hTrace: string): number {
    if (!this.word(c, U_PID)) return -1;
    if (hTrace) {
      let found = -1;
      let n = 0;
      for (const sv of this.containing(c)) {
        if (this.state[sv] === 1) continue;
        this.resolve(sv);
        if (!this.traceIs(sv, hTrace)) continue;
        n++;
        found = sv;
      }
      if (n === 1) return found;
      if (n > 1) this.counters.ambiguousThread++;
      return -1;
    }
    let found = -1;
    let overlapping = 0;
    const cs = this.startMs[c]!;
    const ce = this.endMs[c]!;
    const on = this.overlappingOnThread(c);
    for (let i = 0; i < on.n; i++) {
      const sv = on.a[i]!;
      overlapping++;
      if (this.startMs[sv]! <= cs && ce <= this.endMs[sv]!) found = sv;
    }
    if (overlapping === 1 && found >= 0 && this.state[found] !== 1) {
      this.resolve(found);
      return found;
    }
    if (overlapping > 1) this.counters.ambiguousThread++;
    return -1;
  }

  /** The resolved span `k`'s trace id is `hex`. */
  private traceIs(k: number, hex: string): boolean {
    const t = this.trace[k]!;
    const h = this.str(t, S_HTRACE);
    return h ? h === hex : this.derivedTrace(t) === hex;
  }

  // The three lookups. `containing` returns a fresh array (its caller resolves spans while
  // iterating it); the other two reuse one scratch list each, valid until their next call (their
  // callers only read it, once per span: a close makes no array per span).

  /** Client spans of the server span's connection and protocol whose call contains it (± skew). */
  protected pairCandidates(s: number, skew: number): SlotList {
    const cands = this.candScratch;
    cands.n = 0;
    const key = this.word(s, U_TUPLE);
    const l = key === 0 ? undefined : this.clients.get(key - 1);
    if (!l) return cands;
    const ss = this.startMs[s]!;
    const se = this.endMs[s]!;
    BOUNDS[START_MAX] = ss + skew + SLACK_MS;
    BOUNDS[END_MIN] = se - skew - SLACK_MS;
    const at = this.search(l);
    const sc = this.cols(s);
    const sr = this.row[s]!;
    for (let i = 0; i < at.n; i++) {
      const c = at.a[i]!;
      if (!(this.startMs[c]! - skew <= ss && se <= this.endMs[c]! + skew)) continue;
      const cc = this.cols(c);
      const cr = this.row[c]!;
      if (sameStr(cc, cr, sc, sr, S_PROTOCOL) && sameTuple(cc, cr, sc, sr)) cands.push(c);
    }
    return cands;
  }

  /** Server spans of the client span's process that contain it, in load order. */
  protected containing(c: number): number[] {
    const out: number[] = [];
    const p = this.servers.get(this.str(c, S_NODE))?.get(this.word(c, U_PID));
    if (!p) return out;
    const cs = this.startMs[c]!;
    const ce = this.endMs[c]!;
    BOUNDS[START_MAX] = cs + SLACK_MS;
    BOUNDS[END_MIN] = ce - SLACK_MS;
    const at = this.search(p.all);
    for (let i = 0; i < at.n; i++) {
      const sv = at.a[i]!;
      if (this.startMs[sv]! <= cs && ce <= this.endMs[sv]!) out.push(sv);
    }
    // Resolving a candidate can resolve others: the caller takes them in load order, as a list
    // would be walked, so that cycles (possible through equal times or clock skew) break alike.
    if (out.length > 1) out.sort((a, b) => a - b);
    return out;
  }

  /** Server spans of the client span's process and thread that overlap it. */
  protected overlappingOnThread(c: number): SlotList {
    const out = this.overlapScratch;
    out.n = 0;
    const l = this.servers.get(this.str(c, S_NODE))?.get(this.word(c, U_PID))?.byTid.get(this.word(c, U_TID));
    if (!l) return out;
    const cs = this.startMs[c]!;
    const ce = this.endMs[c]!;
    BOUNDS[START_MAX] = ce + SLACK_MS;
    BOUNDS[END_MIN] = cs - SLACK_MS;
    const at = this.search(l);
    for (let i = 0; i < at.n; i++) {
      const sv = at.a[i]!;
      if (this.startMs[sv]! < ce && this.endMs[sv]! > cs) out.push(sv);
    }
    return out;
  }

  /** The slots of `l` within BOUNDS (set by the caller), in the `found` scratch; the visits counted. */
  private search(l: Timeline): SlotList {
    const at = this.found;
    at.n = 0;
    this.counters.visited += l.within(this.startMs, this.endMs, at, this.counters);
    return at;
  }

  /** Own id (16 hex). */
  id(k: number): string {
    return this.ownHeader[k] ? this.str(k, S_HPARENT) : hex16(this.ids[2 * k]!, this.ids[2 * k + 1]!);
  }

  /** The parent's slot, -1 for none. */
  parentOf(k: number): number {
    return this.parent[k]!;
  }

  /** The parent's span id: the linked parent's, else (a server span) the header's, else "". */
  parentId(k: number): string {
    const p = this.parent[k]!;
    if (p >= 0) return this.id(p);
    return this.by[k] === BY_HEADER ? this.str(k, S_HPARENT) : "";
  }

  linkedBy(k: number): SpanRec["linkedBy"] {
    return LINKED_BY[this.by[k]!]!;
  }

  stateOf(k: number): 0 | 1 | 2 {
    return this.state[k] as 0 | 1 | 2;
  }

  /** Trace id (32 hex) of a resolved span. */
  traceId(k: number): string {
    const t = this.trace[k]!;
    return this.str(t, S_HTRACE) || this.derivedTrace(t);
  }

  /** The trace id derived from span `t`'s own id (`id128` of it). */
  private derivedTrace(t: number): string {
    id128Words(this.ids[2 * t]!, this.ids[2 * t + 1]!, TRACE_WORDS);
    return hex16(TRACE_WORDS[0]!, TRACE_WORDS[1]!) + hex16(TRACE_WORDS[2]!, TRACE_WORDS[3]!);
  }

  /** The trace id's first 8 hex digits as an integer below 2^32 (`wordFromHex`), without the
   *  text when derived: the trace's sampling value (kept at fraction f when below f · 2^32). */
  private traceWord(k: number): number {
    const t = this.trace[k]!;
    const h = this.str(t, S_HTRACE);
    if (h) return wordFromHex(h);
    id128Words(this.ids[2 * t]!, this.ids[2 * t + 1]!, TRACE_WORDS);
    return TRACE_WORDS[0]!;
  }

  /** The own id of `a` sorts before that of `b` (as their hex text would). */
  private idBefore(a: number, b: number): boolean {
    const a0 = this.ids[2 * a]!;
    const b0 = this.ids[2 * b]!;
    return a0 < b0 || (a0 === b0 && this.ids[2 * a + 1]! < this.ids[2 * b + 1]!);
  }

  /**
   * Volume control for the closing window's resolved spans (`order`: slots): every error, the
   * `slowest` slowest per series, and the rest (ordinary spans) when their trace id falls under
   * the fraction in force (decided per trace, so sampled traces stay whole). The fraction is
   * `rate`, or when more than `maxOrdinary` ordinary spans would be kept at it, the largest power
   * of two below it that keeps at most that many (`spanFraction`). Deterministic for the window's
   * spans. Returns the kept slots in `order`'s order.
   */
  sample(order: readonly number[], rate: number, slowest: number, maxOrdinary = Infinity): SampleResult {
    const keep = new Uint8Array(order.length);
    // Sampling values of the ordinary candidates (errors are kept whatever their trace).
    const words = new Float64Array(order.length);
    // Per series (its number in the closing window's table), the `slowest` slowest spans (ties by
    // id), by insertion into a short sorted list of positions in `order`.
    const top: number[][] = [];
    const c = this.wins[0]!;
    const dur = (k: number) => c.f64[k * NF + F_DUR_US]! / 1000;
    const before = (a: number, b: number) => dur(a) > dur(b) || (dur(a) === dur(b) && this.idBefore(a, b));
    for (let i = 0; i < order.length; i++) {
      const k = order[i]!;
      if ((c.u32[k * NU + U_SUB_FLAGS]! & (F_ERROR << 16)) !== 0) keep[i] = 1;
      else words[i] = this.traceWord(k);
      if (slowest <= 0) continue;
      const sr = c.u32[k * NU + U_SERIES]!;
      let l = top[sr];
      if (!l) top[sr] = l = [];
      if (l.length < slowest || before(k, order[l[l.length - 1]!]!)) {
        let j = l.length;
        while (j > 0 && before(k, order[l[j - 1]!]!)) j--;
        l.splice(j, 0, i);
        if (l.length > slowest) l.pop();
      }
    }
    for (const l of top) if (l) for (const i of l) keep[i] = 1;
    const fraction = spanFraction(words, keep, rate, maxOrdinary);
    const below = fraction * 0x1_0000_0000;
    let overBudget = 0;
    const atRate = rate * 0x1_0000_0000;
    const kept: number[] = [];
    for (let i = 0; i < order.length; i++) {
      if (!keep[i]) {
        const w = words[i]!;
        if (w < below) keep[i] = 1;
        else if (w < atRate) overBudget++;
      }
      if (keep[i]) kept.push(order[i]!);
    }
    return { kept, dropped: order.length - kept.length, fraction, overBudget };
  }

  /** Span `k` as a plain record that no longer reads the columns; its parent detached too (once
   *  per slot: `done` maps slots to their records). */
  detach(k: number, done: Map<number, SpanRec> = new Map()): SpanRec {
    const had = done.get(k);
    if (had) return had;
    const r = this.record(k);
    r.id = this.id(k);
    r.parentId = this.parentId(k);
    r.traceId = this.traceId(k);
    r.linkedBy = this.linkedBy(k);
    r.state = this.stateOf(k);
    r.final = k < this.mine;
    done.set(k, r);
    const p = this.parent[k]!;
    if (p >= 0) r.parent = this.detach(p, done);
    return r;
  }

  /** The fields of span `k` (unlinked: `SpanColumns.record`). */
  record(k: number): SpanRec {
    return this.cols(k).record(this.row[k]!);
  }

  /** The peer's pid while the peer is named by its bare process name (ListenNames), else 0. */
  peerPid(k: number): number {
    return this.word(k, U_PEER_PID);
  }

  /** The node the peer runs on, with `peerPid`. */
  peerNode(k: number): string {
    return this.str(k, S_PEER_NODE);
  }
}
