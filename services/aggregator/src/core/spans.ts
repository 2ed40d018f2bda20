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
 * The span of one record while its links are resolved: a view of one row of its window's columns
 * (`SpanColumns`), so that resolving a window costs one small object per span, not a copy of
 * every field and string. The own id string is made only when asked for (most server spans never
 * need theirs). Views live for one close: the spans a closed window keeps are handed on as
 * `detach()`ed plain records, since its columns go to later windows.
 */
export class Span implements SpanRec {
  private ownId: string | null = null;
  parent: SpanRec | null = null;
  parentId = "";
  traceId = "";
  linkedBy: "" | "tcp" | "header" | "thread" | "trace" = "";
  state: 0 | 1 | 2 = 0;
  final = false;
  /** Read by every link lookup and sort: computed once per view (the getters' arithmetic). */
  startMs = 0;
  endMs = 0;
  constructor(
    private cols: SpanColumns,
    /** Row in `cols`. */
    private row: number,
  ) {
    this.at(cols, row);
  }
  /** Makes this view one of another row, unlinked (views are pooled across closes: `SpanViews`). */
  at(cols: SpanColumns, row: number): this {
    this.cols = cols;
    this.row = row;
    this.unlink();
    this.final = false;
    this.startMs = (cols.window * 1000 + cols.f64[row * NF + F_REL_US]!) / 1000;
    this.endMs = this.startMs + cols.f64[row * NF + F_DUR_US]! / 1000;
    return this;
  }
  /** Same connection as `o` (both with a 4-tuple): on one window's columns, by their words and string numbers. */
  sameTupleAs(o: Span): boolean {
    if (o.cols !== this.cols) return sameTuple(this, o);
    const u = this.cols.u32;
    const a = this.row * NU;
    const b = o.row * NU;
    return u[a + U_PORTS] === u[b + U_PORTS] && u[a + U_STR + S_CADDR] === u[b + U_STR + S_CADDR] && u[a + U_STR + S_SADDR] === u[b + U_STR + S_SADDR];
  }
  get id(): string {
    return this.ownId ?? (this.ownId = this.baseId);
  }
  set id(v: string) {
    this.ownId = v;
  }
  get baseId(): string {
    const a = this.cols.u32[this.row * NU + U_ID_A]!;
    const b = this.cols.u32[this.row * NU + U_ID_B]!;
    return a === 0 && b === 0 ? "0000000000000001" : hex16(a, b);
  }
  /** Forgets the links of an earlier resolution (the own id included). */
  unlink(): void {
    this.ownId = null;
    this.parent = null;
    this.parentId = "";
    this.traceId = "";
    this.linkedBy = "";
    this.state = 0;
  }
  private u(f: number): number {
    return this.cols.u32[this.row * NU + f]!;
  }
  private f(f: number): number {
    return this.cols.f64[this.row * NF + f]!;
  }
  private s(f: number): string {
    return this.cols.strs[this.cols.u32[this.row * NU + U_STR + f]!]!;
  }
  get kind(): SpanKind {
    return this.u(U_SUB_FLAGS) & (F_CLIENT << 16) ? "client" : "server";
  }
  get service(): string {
    return this.s(S_SERVICE);
  }
  get peer(): string {
    return this.s(S_PEER);
  }
  get protocol(): string {
    return this.s(S_PROTOCOL);
  }
  get operation(): string {
    return this.s(S_OPERATION);
  }
  get resource(): string {
    return this.s(S_RESOURCE);
  }
  get window(): number {
    return this.cols.window;
  }
  get durationMs(): number {
    return this.f(F_DUR_US) / 1000;
  }
  get startNs(): bigint {
    return BigInt(this.cols.window * 1000 + this.f(F_REL_US)) * 1000n + BigInt(this.u(U_SUB_FLAGS) & 0xffff);
  }
  get status(): number | undefined {
    const v = this.f(F_STATUS);
    return Number.isNaN(v) ? undefined : v;
  }
  get error(): boolean {
    return (this.u(U_SUB_FLAGS) & (F_ERROR << 16)) !== 0;
  }
  get incomplete(): boolean {
    return (this.u(U_SUB_FLAGS) & (F_INCOMPLETE << 16)) !== 0;
  }
  get tls(): boolean {
    return (this.u(U_SUB_FLAGS) & (F_TLS << 16)) !== 0;
  }
  get node(): string {
    return this.s(S_NODE);
  }
  get namespace(): string {
    return this.s(S_NAMESPACE);
  }
  get pid(): number {
    return this.u(U_PID);
  }
  get tid(): number {
    return this.u(U_TID);
  }
  /** The peer's pid while the peer is named by its bare process name (ListenNames), else 0. */
  get peerPid(): number {
    return this.u(U_PEER_PID);
  }
  /** The node the peer runs on, with `peerPid`. */
  get peerNode(): string {
    return this.s(S_PEER_NODE);
  }
  /** Hash of the 4-tuple (a Map key), -1 when unknown. */
  get tupleKey(): number {
    return this.u(U_TUPLE) - 1;
  }
  get hTrace(): string {
    return this.s(S_HTRACE);
  }
  get hParent(): string {
    return this.s(S_HPARENT);
  }
  get series(): object {
    return this.cols.seriesList[this.u(U_SERIES)]!;
  }
  get clientAddress(): string {
    return this.s(S_CADDR);
  }
  get clientPort(): number {
    return this.u(U_PORTS) & 0xffff;
  }
  get serverAddress(): string {
    return this.s(S_SADDR);
  }
  get serverPort(): number {
    return this.u(U_PORTS) >>> 16;
  }
  get requestBytes(): number {
    return this.f(F_REQ);
  }
  get responseBytes(): number {
    return this.f(F_RESP);
  }
  get tuple(): string {
    return this.tupleKey < 0 ? "" : `${this.clientAddress}:${this.clientPort}>${this.serverAddress}:${this.serverPort}`;
  }
  /** Every field as a plain record that no longer reads the columns; its parent detached too
   *  (once per view: `done` maps views to their records). */
  detach(done: Map<Span, SpanRec> = new Map()): SpanRec {
    const had = done.get(this);
    if (had) return had;
    const p = this.parent;
    const r: SpanRec = {
      id: this.id, baseId: this.baseId, kind: this.kind, service: this.service, peer: this.peer, protocol: this.protocol,
      operation: this.operation, resource: this.resource, startNs: this.startNs, startMs: this.startMs, endMs: this.endMs,
      durationMs: this.durationMs, status: this.status, error: this.error, node: this.node, namespace: this.namespace, pid: this.pid, tid: this.tid,
      tuple: this.tuple, hTrace: this.hTrace, hParent: this.hParent, series: this.series, window: this.window,
      clientAddress: this.clientAddress, clientPort: this.clientPort, serverAddress: this.serverAddress, serverPort: this.serverPort,
      requestBytes: this.requestBytes, responseBytes: this.responseBytes, incomplete: this.incomplete, tls: this.tls,
      parent: null, parentId: this.parentId, traceId: this.traceId, linkedBy: this.linkedBy, state: this.state, final: this.final,
    };
    done.set(this, r);
    r.parent = p instanceof Span ? p.detach(done) : p;
    return r;
  }
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
 * no array of references grows with the spans. `Span` views are made when the window's links
 * are resolved; linking state never outlives one close, so making them again is equivalent.
 */
export class SpanColumns {
  /** @internal Read by `Span`. */
  f64: Float64Array;
  /** @internal Read by `Span`. */
  u32: Uint32Array;
  private count = 0;
  /** @internal Read by `Span`. */
  readonly strs: string[] = [];
  private readonly strIds = new Map<string, number>();
  private readonly lastStr: (string | undefined)[] = new Array<string | undefined>(N_STRS).fill(undefined);
  private readonly lastId = new Uint32Array(N_STRS);
  /** @internal Read by `Span`. */
  readonly seriesList: object[] = [];
  private readonly seriesIds = new Map<object, number>();
  constructor(readonly window: number) {
    const s = spare.pop();
    this.f64 = s?.f64 ?? new Float64Array(NF * 256);
    this.u32 = s?.u32 ?? new Uint32Array(NU * 256);
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

  private str(i: number, field: number): string {
    return this.strs[this.u32[i * NU + U_STR + field]!]!;
  }

  push(x: SpanInput): void {
    if ((this.count + 1) * NU > this.u32.length) {
      const rows = Math.max(256, (this.u32.length / NU) * 2);
      const f = new Float64Array(rows * NF);
      f.set(this.f64);
      this.f64 = f;
      const u = new Uint32Array(rows * NU);
      u.set(this.u32);
      this.u32 = u;
    }
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

  /** Gives the column buffers to later windows; this window holds no spans afterwards (views of
   *  it read garbage: detach what must outlive the close first). */
  release(): void {
    if (spare.length < SPARE_MAX && this.u32.length > 0) spare.push({ f64: this.f64, u32: this.u32 });
    this.f64 = new Float64Array(0);
    this.u32 = new Uint32Array(0);
    this.count = 0;
  }

  /** Views of the spans (those marked in `take` when given), in insertion order; from `views` when given. */
  build(out: Span[], take?: Uint8Array, views?: SpanViews): void {
    for (let i = 0; i < this.count; i++) {
      if (take && !take[i]) continue;
      out.push(views ? views.view(this, i) : new Span(this, i));
    }
  }
}

const NO_COLUMNS = new SpanColumns(0);

/**
 * Span views reused from one window's close to the next: a close of 400,000 spans made as many
 * objects, which outlived the young generation's collections of the close (promoted, then dead:
 * old-generation work); pooled, they stay put. Views handed out since `reset` are valid until
 * the next `reset`.
 */
export class SpanViews {
  private readonly pool: Span[] = [];
  private used = 0;

  /** A view of row `row` of `cols`, unlinked. */
  view(cols: SpanColumns, row: number): Span {
    const v = this.pool[this.used];
    this.used++;
    if (v) return v.at(cols, row);
    const n = new Span(cols, row);
    this.pool.push(n);
    return n;
  }

  /** Ends a close: the views drop what they read (columns, parents), and the pool keeps at most
   *  twice what this close needed. */
  reset(): void {
    for (let i = 0; i < this.used; i++) this.pool[i]!.at(NO_COLUMNS, 0);
    if (this.pool.length > 2 * this.used) this.pool.length = 2 * this.used;
    this.used = 0;
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
  /** Scratch results of `pairCandidates` and `overlappingOnThread`. */
  private readonly candScratch: SpanRec[] = [];
  private readonly overlapScratch: SpanRec[] = [];

  constructor(spans: Iterable<SpanRec>, private readonly skewMs: number, protected readonly counters: LinkCounters) {
    for (const s of spans) {
      if (s instanceof Span) {
        if (!s.final) s.unlink();
      } else if (!s.final) {
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

  // The three lookups. `containing` returns a fresh array (its caller resolves spans while
  // iterating it); the other two reuse one scratch array each, valid until their next call (their
  // callers only read it, once per span: a close makes no array per span).

  /** Client spans of the server span's connection and protocol whose call contains it (± skew). */
  protected pairCandidates(s: SpanRec, skew: number): SpanRec[] {
    const cands = this.candScratch;
    cands.length = 0;
    const k = tupleKeyOf(s);
    const l = k < 0 ? undefined : this.clients.get(k);
    if (!l) return cands;
    const at = this.found;
    at.length = 0;
    this.counters.visited += l.within(s.startMs + skew + SLACK_MS, s.endMs - skew - SLACK_MS, at);
    const views = s instanceof Span;
    for (const i of at) {
      const c = l.spans[i]!;
      if (!(c.startMs - skew <= s.startMs && s.endMs <= c.endMs + skew) || c.protocol !== s.protocol) continue;
      if (views && c instanceof Span ? c.sameTupleAs(s) : sameTuple(c, s)) cands.push(c);
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
    const out: SpanRec[] = [];
    if (at.length === 1) {
      const sv = p.all.spans[at[0]!]!;
      if (sv.startMs <= c.startMs && c.endMs <= sv.endMs) out.push(sv);
      return out;
    }
    const order = Int32Array.from(at).sort();
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
    const out = this.overlapScratch;
    out.length = 0;
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
  const keep = new Uint8Array(spans.length);
  // Per series, the `slowest` slowest spans (ties by id), by insertion into a short sorted list of positions.
  const top = new Map<object, number[]>();
  const before = (a: SpanRec, b: SpanRec) => a.durationMs > b.durationMs || (a.durationMs === b.durationMs && a.id < b.id);
  for (let k = 0; k < spans.length; k++) {
    const s = spans[k]!;
    if (s.error || unitFromHex(s.traceId) < rate) keep[k] = 1;
    if (slowest <= 0) continue;
    let l = top.get(s.series);
    if (!l) top.set(s.series, (l = []));
    if (l.length < slowest || before(s, spans[l[l.length - 1]!]!)) {
      let i = l.length;
      while (i > 0 && before(s, spans[l[i - 1]!]!)) i--;
      l.splice(i, 0, k);
      if (l.length > slowest) l.pop();
    }
  }
  for (const l of top.values()) for (const k of l) keep[k] = 1;
  const kept: SpanRec[] = [];
  for (let k = 0; k < spans.length; k++) if (keep[k]) kept.push(spans[k]!);
  return { kept, dropped: spans.length - kept.length };
}
