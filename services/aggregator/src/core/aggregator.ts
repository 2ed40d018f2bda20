// The aggregation core: records in, closed windows out. No I/O; time is passed in.
import type { RecordView as WRecord } from "./record-view.js";
import { RecordBatchSlots, type RecordSlot } from "./record-slot.js";
import { Role } from "@wirescope/wire";
import { resolveCoreOptions, type CoreOptions } from "./options.js";
import { LatencyStats } from "./stats.js";
import { normalize, statusClass } from "./normalize.js";
import { collapseSegments, guardValues } from "./collapse.js";
import { serviceName, isTraced, barePid, ListenNames, EndServices } from "./identity.js";
import { windowStart } from "./window.js";
import { id64Words, ID_WORDS, tupleHash } from "./hash.js";
import { SpanColumns, SpanLinks, reachableSpans, type SpanRec, type SpanInput } from "./spans.js";

export interface RedSeries {
  service: string;
  /** Node of the observed end (the service's own node: its records are seen where it runs). */
  node: string;
  /** Kubernetes namespace of the observed end's process ("" outside Kubernetes). */
  namespace: string;
  protocol: string;
  operation: string;
  resource: string;
  role: "server" | "client";
  statusClass: string;
  stats: LatencyStats;
}

export interface EdgeSeries {
  client: string;
  server: string;
  protocol: string;
  /** Node and namespace of the end whose records counted the calls (as RedSeries: the server's
   *  when it was traced, else the client's), so the dashboards' node variable filters the map. */
  node: string;
  namespace: string;
  stats: LatencyStats;
  /** While the client is named by its bare process name: its pid and node (see ListenNames). */
  clientPid?: number;
  clientNode?: string;
}

/** Everything one closed window produces. Deterministic for a given set of records. */
export interface ClosedWindow {
  /** Window start, ms since the epoch. */
  start: number;
  red: RedSeries[];
  edges: EdgeSeries[];
  spans: SpanRec[];
  /** Distinct tag values folded into "*" by the cardinality guard in this window. */
  folded: number;
  spansDropped: number;
  /** The fraction of ordinary traces this window's spans were kept at (`CoreOptions.spanBudget`). */
  spanFraction: number;
}

/** Why records did not count. */
export type DropReason = "late" | "redelivered" | "future" | "invalid" | "cardinality_overflow" | "span_buffer_full" | "role_unknown";

export interface CoreCounters {
  recordsIn: number;
  recordsAccepted: number;
  drops: { [K in DropReason]: number };
  folded: number;
  spansKept: number;
  /** Spans sampled out (every one not kept). */
  spansDropped: number;
  /** Of spansDropped: ordinary spans the sample rate would have kept and the span budget left out. */
  spansOverBudget: number;
  windowsClosed: number;
  ambiguousTcp: number;
  ambiguousThread: number;
  /** Spans looked at by link lookups: the work of linking (stays proportional to the spans). */
  linkVisits: number;
  /** Spans placed in time order for link lookups, and the passes that sorted them: the work of
   *  indexing (stays proportional to the spans). */
  linkIndexed: number;
  /** Client-side records left out of the service map because a server-side record of the same
   *  connection (4-tuple) was seen: the call is counted once, by the server's record. */
  edgeCallsMatched: number;
  /** Records counted on the map without a 4-tuple match because the window held
   *  CoreOptions.maxEdgeTuples connections already (a call seen from both ends may count twice). */
  edgeTuplesOverflow: number;
  /** Requests served while shed, reported by the probes (addShedServed), by what became of them:
   *  counted with the server's observed series; unmapped (no server-side record of that process
   *  and port seen by this instance: another instance's series, or a server never observed);
   *  unobserved (the server had no observed request in that window to count them with); late
   *  (their window was closed); protocol (the end's protocol answers several requests in one
   *  turn: HTTP/2, gRPC, Kafka, Redis; the estimate is kept). */
  shedRequests: { counted: number; unmapped: number; unobserved: number; late: number; protocol: number };
}

export interface IngestResult {
  accepted: number;
  /** Latest window start this call added to, or -Infinity when it added to none. */
  maxWindow: number;
}

/** The series of one service instance set: one service on one node, in one namespace. */
interface ServiceBucket {
  service: string;
  node: string;
  namespace: string;
  /** While the service is a bare process name: the process's pid (such buckets are per pid). */
  pid: number;
  /** In creation order. */
  series: RedSeries[];
  /** By protocol, operation and resource; the few of one such key told apart by role and status class. */
  index: Nest3<RedSeries[]>;
}

/** Protocols that answer each request before the next: the kernel's count of answers started
 *  while shed (turns of the conversation) is their count of requests (docs/probe.md). */
const ONE_ANSWER_PER_REQUEST = new Set(["http1", "http", "https", "mysql", "postgresql"]);

/** Windows whose requests served while shed are held for their close, at most. */
const MAX_SHED_WINDOWS = 64;
/** Nodes remembered as reporting their shed ends' requests (forgotten all at once beyond). */
const MAX_SHED_NODES = 65_536;

/** Three levels of maps: keys looked up part by part, no key string built per record. */
type Nest3<V> = Map<string, Map<string, Map<string, V>>>;

/** 4-tuple strings by client address, server address and ports (Aggregator.tupleOf). */
type Nest3Num = Map<string, Map<string, Map<number, string>>>;

/** The series of one protocol, operation and resource with this role and status class. */
function findSeries(b: ServiceBucket, protocol: string, operation: string, resource: string, role: string, sc: string): RedSeries | undefined {
  const l = get3(b.index, protocol, operation, resource);
  if (l) for (const s of l) if (s.role === role && s.statusClass === sc) return s;
  return undefined;
}

function get3<V>(m: Nest3<V>, a: string, b: string, c: string): V | undefined {
  return m.get(a)?.get(b)?.get(c);
}

function set3<V>(m: Nest3<V>, a: string, b: string, c: string, v: V): void {
  let mb = m.get(a);
  if (!mb) m.set(a, (mb = new Map()));
  let mc = mb.get(b);
  if (!mc) mb.set(b, (mc = new Map()));
  mc.set(c, v);
}

/** An edge contribution waiting for the window's close to be matched by 4-tuple. */
interface PendingEdge {
  tuple: string;
  /** Which end's records these are. */
  side: "server" | "client";
  client: string;
  server: string;
  protocol: string;
  node: string;
  namespace: string;
  clientPid: number;
  clientNode: string;
  stats: LatencyStats;
}

/** A client end as its own records named it; `pid` and `node` while the name is its process's
 *  bare name (0 and "" else: see ListenNames). */
interface ClientEnd {
  readonly name: string;
  readonly pid: number;
  readonly node: string;
}

/** What a window knows of the connections' two ends, for matching (see Aggregator.add). */
interface TupleSides {
  /** Connections (4-tuples) with a server-side record. */
  serverTuples: Set<string>;
  /** The client as its own (traced) client-side records named it. */
  clientByTuple: Map<string, ClientEnd>;
}

class WindowState implements TupleSides {
  /** In creation order, and by service, node and namespace. */
  readonly services: ServiceBucket[] = [];
  readonly serviceIndex: Nest3<ServiceBucket> = new Map();
  /** In creation order, and by client, server and protocol (the few of those told apart by node
   *  and namespace). */
  readonly edges: EdgeSeries[] = [];
  readonly edgeIndex: Nest3<EdgeSeries[]> = new Map();
  readonly serverTuples = new Set<string>();
  readonly clientByTuple = new Map<string, ClientEnd>();
  /** In creation order, and by 4-tuple (the few of one tuple told apart by side and names). */
  readonly pendingEdges: PendingEdge[] = [];
  readonly pendingByTuple = new Map<string, PendingEdge[]>();
  readonly spans: SpanColumns;
  lastArrival = 0;
  constructor(readonly start: number) {
    this.spans = new SpanColumns(start);
  }
}

const SEP = "\u0000";

/** What `Aggregator.addSpan` hands to SpanColumns.push, reused record after record. */
const spanInput: SpanInput = {
  idA: 0, idB: 0, kind: "server", service: "", peer: "", protocol: "", operation: "", resource: "", relUs: 0, subUs: 0, durUs: 0,
  status: undefined, error: false, node: "", namespace: "", pid: 0, tid: 0, peerPid: 0, peerNode: "", tupleKey: -1, hTrace: "", hParent: "", series: {},
  clientAddress: "", clientPort: 0, serverAddress: "", serverPort: 0, requestBytes: 0, responseBytes: 0, incomplete: false, tls: false,
};
const ID_STRS: string[] = ["", "", ""];
const ID_NUMS: number[] = [0, 0, 0, 0, 0];

/** Distinct 4-tuples remembered by `Aggregator.tupleOf` before its cache starts afresh. */
const TUPLE_CACHE_MAX = 100_000;

/** Reads one attribute as a string (the protobuf oneof flattened). */
function attrOf(r: RecordSlot, name: string): string | undefined {
  const v = r.attributes[name]?.value;
  if (!v || v.case === undefined) return undefined;
  if (v.case === "stringList") return (v.value as { values: string[] }).values.join(",");
  return String(v.value);
}

/** Service names remembered for status at most. */
const MAX_SEEN_SERVICES = 10_000;

/** What the producers of records have published (Aggregator.closeDue). */
export interface Upstream {
  /** Every record made before this wall-clock time is in the stream (Infinity: nothing known). */
  throughMs: number;
  /** A window waits for it at most this long after its close time. */
  holdMs: number;
}
const NO_UPSTREAM: Upstream = { throughMs: Infinity, holdMs: 0 };

export class Aggregator {
  readonly opts: CoreOptions;
  readonly counters: CoreCounters = {
    recordsIn: 0,
    recordsAccepted: 0,
    drops: { late: 0, redelivered: 0, future: 0, invalid: 0, cardinality_overflow: 0, span_buffer_full: 0, role_unknown: 0 },
    folded: 0,
    spansKept: 0,
    spansDropped: 0,
    spansOverBudget: 0,
    windowsClosed: 0,
    ambiguousTcp: 0,
    ambiguousThread: 0,
    linkVisits: 0,
    linkIndexed: 0,
    edgeCallsMatched: 0,
    edgeTuplesOverflow: 0,
    shedRequests: { counted: 0, unmapped: 0, unobserved: 0, late: 0, protocol: 0 },
  };
  private readonly windows = new Map<number, WindowState>();
  /** Windows that start before this are closed: their records are late. */
  private closedBefore = -Infinity;
  /** Services counted so far (status), at most MAX_SEEN_SERVICES. */
  private readonly seen = new Set<string>();
  /** Latest record end seen (clamped to the wall clock + maxFutureMs), drives event-time closing. */
  private eventMaxMs = -Infinity;
  private bufferedSpans = 0;
  /** The fraction of ordinary traces the last window with spans was kept at. */
  private fraction: number;
  /** The connections' ends seen by the window closed last (a call's two records may straddle a
   *  window boundary). */
  private prevSides: TupleSides | undefined;
  private readonly normCache = new Map<string, Map<string, Map<string, { operation: string; resource: string }>>>();
  private normCached = 0;
  /** Slots for batches given as records (protobuf-es messages, tests), reused. */
  private readonly viewSlots = new RecordBatchSlots();
  /** 4-tuple strings by client address, server address, client port · 65536 + server port. */
  private readonly tupleCache: Nest3Num = new Map();
  private tupleCached = 0;
  /** Listening names of processes, for the ends named before their process's first accept. */
  private readonly listenNames = new ListenNames();
  /** The series key of each traced end (node, pid, port; 0: a process's client ends), for
   *  requests served or answered while shed. */
  private readonly endServices = new EndServices();
  /** Requests served while shed, by window start, node, and end (pid × 65536 + port). */
  private readonly shedByWindow = new Map<number, Map<string, Map<number, number>>>();
  /** The same, carried once from the window before, where their end had nothing observed. */
  private readonly shedCarried = new Map<number, Map<string, Map<number, number>>>();
  /** Nodes whose probe reports what its shed ends serve: there, an end with no report in a
   *  window served nothing while shed in it (beyond a tick counted in the window before). */
  private readonly shedNodes = new Set<string>();
  /** The link state of a window's close (its buffers reused by the next close). */
  private readonly links: SpanLinks;
  /** The last closed window's calls that a server span of the next may pair with (`SpanLinks.carryOut`). */
  private carry: SpanColumns | undefined;

  constructor(opts: Partial<CoreOptions> = {}) {
    this.opts = resolveCoreOptions(opts);
    this.links = new SpanLinks(this.opts.pairSkewMs);
    this.fraction = this.opts.spanSampleRate;
  }

  /** The fraction of ordinary traces kept at the last close with spans: `spanSampleRate`, or a
   *  power of two below it while the span budget binds. */
  get spanFraction(): number {
    return this.fraction;
  }

  /** Windows starting before `ms` are treated as already flushed (e.g. restored after a restart). */
  setClosedBefore(ms: number): void {
    if (ms > this.closedBefore) this.closedBefore = ms;
  }

  get closedWatermark(): number {
    return this.closedBefore;
  }

  get openWindows(): number {
    return this.windows.size;
  }

  /** Spans waiting for their window's close (bounded by `maxBufferedSpans`). */
  get bufferedSpanCount(): number {
    return this.bufferedSpans;
  }

  /**
   * Listening names this core may give (ListenNames) only when `accept` says so: with several
   * aggregator instances, a name whose records partition another instance owns would make two
   * instances write that service's series; the bare name is kept instead.
   */
  acceptListenNames(accept: (name: string) => boolean): void {
    this.listenNames.accept = accept;
  }

  /** The services this core has counted series for, sorted (what an instance owns: status). */
  servicesSeen(): string[] {
    return [...this.seen].sort();
  }

  /** Earliest open window start, or Infinity. */
  get oldestOpen(): number {
    let m = Infinity;
    for (const k of this.windows.keys()) if (k < m) m = k;
    return m;
  }

  /**
   * Adds the records of one batch. `redelivered` only changes the drop reason of records whose
   * window is already closed (they were counted before the crash/redelivery). Windows before
   * `floorMs` are taken as closed too: the restored watermark of the batch's records partition,
   * when an instance took it over from one that had written further (docs/aggregator.md).
   */
  ingest(records: readonly WRecord[] | RecordBatchSlots, nowMs: number, redelivered = false, floorMs = -Infinity): IngestResult {
    const batch = records instanceof RecordBatchSlots ? records : RecordBatchSlots.fromViews(records, this.viewSlots);
    const floor = Math.max(floorMs, this.closedBefore);
    let accepted = 0;
    let maxWindow = -Infinity;
    const c = this.counters;
    for (let i = 0; i < batch.length; i++) {
      const r = batch.slots[i]!;
      c.recordsIn++;
      if (!r.hasStart) {
        c.drops.invalid++;
        continue;
      }
      const startMs = r.startUs / 1000;
      const durMs = r.durUs / 1000;
      const endMs = startMs + durMs;
      if (!Number.isFinite(endMs) || durMs < 0) {
        c.drops.invalid++;
        continue;
      }
      if (endMs > nowMs + this.opts.maxFutureMs) {
        c.drops.future++;
        continue;
      }
      // Neither the probe nor the content told which end served: counting it as either side
      // would be a guess (both ends of one call, counted twice as servers). Counted instead.
      if (r.role !== Role.CLIENT && r.role !== Role.SERVER) {
        c.drops.role_unknown++;
        continue;
      }
      const w = windowStart(endMs, this.opts.windowMs);
      if (w < floor) {
        if (redelivered) c.drops.redelivered++;
        else c.drops.late++;
        continue;
      }
      let win = this.windows.get(w);
      if (!win) this.windows.set(w, (win = new WindowState(w)));
      win.lastArrival = nowMs;
      if (endMs > this.eventMaxMs) this.eventMaxMs = endMs;
      this.add(win, r, durMs);
      accepted++;
      if (w > maxWindow) maxWindow = w;
    }
    c.recordsAccepted += accepted;
    return { accepted, maxWindow };
  }

  private norm(r: RecordSlot): { operation: string; resource: string } {
    // Nested maps, no key concatenation: this runs for every record.
    let byOp = this.normCache.get(r.protocol);
    if (!byOp) this.normCache.set(r.protocol, (byOp = new Map()));
    let byRes = byOp.get(r.operation);
    if (!byRes) byOp.set(r.operation, (byRes = new Map()));
    let n = byRes.get(r.resource);
    if (n) return n;
    n = normalize({ protocol: r.protocol, operation: r.operation, resource: r.resource, attr: (k) => attrOf(r, k) });
    // Only cache what the record itself determines (attributes fill in missing fields only).
    if (r.resource && r.operation) {
      if (++this.normCached > 50_000) {
        this.normCache.clear();
        this.normCached = 0;
      }
      byRes.set(r.resource, n);
    }
    return n;
  }

  private add(win: WindowState, r: RecordSlot, durMs: number): void {
    const role: "server" | "client" = r.role === Role.CLIENT ? "client" : "server";
    const serverName = serviceName(r.server, true);
    let clientName = serviceName(r.client, false);
    // Ends named by their own process's node (a peer's node only when the parser knew it).
    const serverNode = r.server?.node || (role === "server" ? r.node : "");
    const clientNode = r.client?.node || (role === "client" ? r.node : "");
    this.listenNames.learn(r.server, serverNode, serverName);
    this.listenNames.learn(r.client, clientNode, clientName);
    // A client named by its bare process name takes its listening name when it is known; until
    // then its series and edges are kept per pid and renamed when the window closes.
    let clientPid = barePid(r.client, clientName);
    if (clientPid) {
      const known = this.listenNames.of(clientNode, clientPid, clientName);
      if (known) {
        clientName = known;
        clientPid = 0;
      }
    }
    const service = role === "server" ? serverName : clientName;
    const ownPid = role === "client" ? clientPid : 0;
    const protocol = r.protocol || "unknown";
    const { operation, resource: res0 } = this.norm(r);
    const sc = statusClass(protocol, r.hasStatus ? r.status : undefined, r.error, r.incomplete);
    const error = r.error || sc === "5xx";
    const own = role === "server" ? r.server : r.client;
    const node = own?.node || r.node;
    const namespace = own?.process?.namespace ?? "";
    const f = r.observedFraction;
    const weight = f !== undefined && f > 0 && f < 1 ? 1 / f : 1;

    const serviceKey = ownPid ? service + SEP + ownPid : service;
    const proc = own?.process?.pid;
    if (proc) this.endServices.learn(node, proc, role === "server" ? own!.port : 0, serviceKey, namespace);
    let bucket = get3(win.serviceIndex, serviceKey, node, namespace);
    if (!bucket) {
      bucket = { service, node, namespace, pid: ownPid, series: [], index: new Map() };
      win.services.push(bucket);
      set3(win.serviceIndex, serviceKey, node, namespace, bucket);
      if (this.seen.size < MAX_SEEN_SERVICES) this.seen.add(service);
    }
    let series = findSeries(bucket, protocol, operation, res0, role, sc);
    if (!series) {
      let resource = res0;
      if (bucket.series.length >= this.opts.maxSeriesPerService) {
        // Memory guard: fold at once (see CoreOptions.maxSeriesPerService).
        this.counters.drops.cardinality_overflow++;
        resource = "*";
        series = findSeries(bucket, protocol, operation, resource, role, sc);
      }
      if (!series) {
        series = { service, node, namespace, protocol, operation, resource, role, statusClass: sc, stats: new LatencyStats(this.opts.relativeAccuracy) };
        bucket.series.push(series);
        const same = get3(bucket.index, protocol, operation, resource);
        if (same) same.push(series);
        else set3(bucket.index, protocol, operation, resource, [series]);
      }
    }
    series.stats.add(durMs, error, weight);

    this.addToMap(win, r, role, clientName, serverName, protocol, node, namespace, clientPid, clientNode, durMs, error, weight);

    if (this.opts.spans) {
      if (this.bufferedSpans >= this.opts.maxBufferedSpans) {
        this.counters.drops.span_buffer_full++;
        return;
      }
      this.bufferedSpans++;
      // A server span's peer named by its bare name keeps its pid, to be renamed as the client is.
      const peerPid = role === "server" ? clientPid : 0;
      this.addSpan(win.spans, r, role, service, role === "server" ? clientName : serverName, peerPid, peerPid ? clientNode : "", protocol, operation, res0, error, series, node, namespace);
    }
  }

  /**
   * Service map. One call counts once, by its server-side record when the server was traced:
   * - a server-side record whose client is traced (named by its process) counts at once;
   * - a client-side record whose server is traced counts never (the server's record does);
   * - the other records are matched at the window's close by connection (client address:port,
   *   server address:port): a client-side record counts only when no server-side record of its
   *   connection was seen (an external or unprobed server), and a server-side record takes the
   *   client's name from the client's own records when it could not name it.
   * This also holds when the two ends went through different parser replicas or probes and each
   * named the other by address. Work and memory are linear in the window's records, bounded by
   * maxEdgeTuples.
   */
  private addToMap(win: WindowState, r: RecordSlot, role: "server" | "client", clientName: string, serverName: string, protocol: string, node: string, namespace: string, clientPid: number, clientNode: string, durMs: number, error: boolean, weight: number): void {
    const isServer = role === "server";
    const clientTraced = isTraced(r.client);
    const c = r.client;
    const sv = r.server;
    const tuple = c && sv && c.address && sv.address && c.port && sv.port ? this.tupleOf(c.address, c.port, sv.address, sv.port) : "";
    const full = tuple !== "" && win.serverTuples.size + win.clientByTuple.size + win.pendingEdges.length >= this.opts.maxEdgeTuples;
    if (tuple && !full) {
      if (isServer) win.serverTuples.add(tuple);
      else if (clientTraced) {
        // One end per connection and name: a lookup per record, an object per connection.
        const had = win.clientByTuple.get(tuple);
        if (had === undefined || had.name !== clientName || had.pid !== clientPid || had.node !== clientNode) {
          win.clientByTuple.set(tuple, { name: clientName, pid: clientPid, node: clientPid ? clientNode : "" });
        }
      }
    }
    if (!isServer && isTraced(r.server)) return;
    if (!tuple || (isServer && clientTraced)) {
      this.addEdge(win, clientName, serverName, protocol, node, namespace, clientPid, clientNode)?.add(durMs, error, weight);
      return;
    }
    if (full) {
      this.counters.edgeTuplesOverflow++;
      this.addEdge(win, clientName, serverName, protocol, node, namespace, clientPid, clientNode)?.add(durMs, error, weight);
      return;
    }
    let same = win.pendingByTuple.get(tuple);
    if (!same) win.pendingByTuple.set(tuple, (same = []));
    let p: PendingEdge | undefined;
    for (const q of same) if (q.side === role && q.client === clientName && q.server === serverName && q.protocol === protocol && q.node === node && q.namespace === namespace && q.clientPid === clientPid) p = q;
    if (!p) {
      p = { tuple, side: role, client: clientName, server: serverName, protocol, node, namespace, clientPid, clientNode, stats: new LatencyStats(this.opts.relativeAccuracy) };
      same.push(p);
      win.pendingEdges.push(p);
    }
    p.stats.add(durMs, error, weight);
  }

  /** "caddr cport saddr sport", one string per distinct 4-tuple (not one per record). */
  private tupleOf(clientAddress: string, clientPort: number, serverAddress: string, serverPort: number): string {
    if (clientPort > 0xffff || serverPort > 0xffff) return `${clientAddress} ${clientPort} ${serverAddress} ${serverPort}`;
    const ports = clientPort * 0x1_0000 + serverPort;
    let bySa = this.tupleCache.get(clientAddress);
    if (!bySa) this.tupleCache.set(clientAddress, (bySa = new Map()));
    let byPorts = bySa.get(serverAddress);
    if (!byPorts) bySa.set(serverAddress, (byPorts = new Map()));
    let t = byPorts.get(ports);
    if (t === undefined) {
      if (++this.tupleCached > TUPLE_CACHE_MAX) {
        this.tupleCache.clear();
        this.tupleCached = 0;
      }
      t = `${clientAddress} ${clientPort} ${serverAddress} ${serverPort}`;
      byPorts.set(ports, t);
    }
    return t;
  }

  /** The window's edge series for client → server (undefined past the memory guard, counted). */
  private addEdge(win: WindowState, client: string, server: string, protocol: string, node: string, namespace: string, clientPid = 0, clientNode = ""): LatencyStats | undefined {
    const same = get3(win.edgeIndex, client, server, protocol);
    let e: EdgeSeries | undefined;
    if (same) for (const x of same) if (x.node === node && x.namespace === namespace && (x.clientPid ?? 0) === clientPid) e = x;
    if (!e) {
      if (win.edges.length >= this.opts.maxSeriesPerService * 4) {
        this.counters.drops.cardinality_overflow++;
        return undefined;
      }
      e = { client, server, protocol, node, namespace, stats: new LatencyStats(this.opts.relativeAccuracy) };
      if (clientPid) {
        e.clientPid = clientPid;
        e.clientNode = clientNode;
      }
      win.edges.push(e);
      if (same) same.push(e);
      else set3(win.edgeIndex, client, server, protocol, [e]);
    }
    return e.stats;
  }

  /** Settles the window's pending map contributions against the ends seen by it, the window
   *  closed before it and the next one (still open). */
  private matchEdges(w: WindowState): void {
    const sides: TupleSides[] = [w];
    if (this.prevSides) sides.push(this.prevSides);
    const next = this.windows.get(w.start + this.opts.windowMs);
    if (next) sides.push(next);
    for (const p of w.pendingEdges) {
      if (p.side === "client") {
        if (sides.some((s) => s.serverTuples.has(p.tuple))) {
          this.counters.edgeCallsMatched += p.stats.requests;
          continue;
        }
        this.addEdge(w, p.client, p.server, p.protocol, p.node, p.namespace, p.clientPid, p.clientNode)?.merge(p.stats);
      } else {
        let named: ClientEnd | undefined;
        for (const s of sides) {
          named = s.clientByTuple.get(p.tuple);
          if (named !== undefined) break;
        }
        // Named by the client's own records: with their pid, so that a bare name is renamed too.
        if (named === undefined) this.addEdge(w, p.client, p.server, p.protocol, p.node, p.namespace, p.clientPid, p.clientNode)?.merge(p.stats);
        else this.addEdge(w, named.name, p.server, p.protocol, p.node, p.namespace, named.pid, named.node)?.merge(p.stats);
      }
    }
    w.pendingEdges.length = 0;
    w.pendingByTuple.clear();
    this.prevSides = { serverTuples: w.serverTuples, clientByTuple: w.clientByTuple };
  }

  private addSpan(cols: SpanColumns, r: RecordSlot, role: "server" | "client", service: string, peer: string, peerPid: number, peerNode: string, protocol: string, operation: string, resource: string, error: boolean, series: object, node: string, namespace: string): void {
    const ep = role === "server" ? r.server : r.client;
    // Strings are shared through the window's string table (SpanColumns), not copied per span.
    const clientAddress = r.client?.address ?? "";
    const serverAddress = r.server?.address ?? "";
    const clientPort = r.client?.port ?? 0;
    const serverPort = r.server?.port ?? 0;
    // Number(startNs) keeps ~256 ns of resolution: plenty to tell sequential requests of one
    // connection apart. Multiplexed ones (HTTP/2, gRPC) whose requests arrived in one read share
    // the start: their durations tell them apart (without it, 4 of 6,938 spans of the demo shared
    // an id with another, which OTLP collectors and trace views take for one span).
    ID_STRS[0] = node;
    ID_STRS[1] = protocol;
    ID_STRS[2] = resource;
    ID_NUMS[0] = r.connKeyNum;
    ID_NUMS[1] = role === "server" ? 2 : 1;
    ID_NUMS[2] = r.startNsNum;
    ID_NUMS[3] = r.tid;
    ID_NUMS[4] = r.durNsNum;
    id64Words(ID_STRS, ID_NUMS, ID_WORDS);
    let hTrace = r.traceHex;
    let hParent = hTrace ? r.parentHex : "";
    if (hTrace === "00000000000000000000000000000000") hTrace = "";
    if (hParent === "0000000000000000") hParent = "";
    const x = spanInput;
    x.idA = ID_WORDS[0]!;
    x.idB = ID_WORDS[1]!;
    x.kind = role;
    x.service = service;
    x.peer = peer;
    x.protocol = protocol;
    x.operation = operation;
    x.resource = resource;
    x.relUs = r.startUs - cols.window * 1000;
    x.subUs = r.startSubNs;
    x.durUs = r.durUs;
    x.status = r.hasStatus ? r.status : undefined;
    x.error = error;
    x.node = node;
    x.namespace = namespace;
    x.pid = ep?.process?.pid ?? 0;
    x.tid = r.tid;
    x.peerPid = peerPid;
    x.peerNode = peerNode;
    x.tupleKey = clientAddress && serverAddress && clientPort && serverPort ? tupleHash(clientAddress, clientPort, serverAddress, serverPort) : -1;
    x.hTrace = hTrace;
    x.hParent = hParent;
    x.series = series;
    x.clientAddress = clientAddress;
    x.clientPort = clientPort;
    x.serverAddress = serverAddress;
    x.serverPort = serverPort;
    x.requestBytes = r.requestBytes;
    x.responseBytes = r.responseBytes;
    x.incomplete = r.incomplete;
    x.tls = r.tls;
    cols.push(x);
  }

  /**
   * Closes the windows that are due, oldest first, and returns what they produced. A window is
   * due when event time has passed its end + grace, or when the wall clock has and no record
   * arrived for it during the last grace period (idle streams, replays of old captures), and,
   * when the caller says when its source last reported having nothing more to deliver
   * (`idleSeenMs`), that report came after the window's grace ended and after its last record:
   * every record of the window was published by then (what the grace is for) and none was
   * waiting. A source gone silent (deliveries stalled) closes no window whose records may still
   * come.
   *
   * `upstream`: the producers' watermark (the parsers', ParserWatermarks): every record made
   * before `throughMs` is in the stream. Neither way closes a window whose close time is past it,
   * for at most `holdMs` after that close time (a producer's clock may be behind): records that
   * a producer holds (a publish timing out, a busy event loop) are waited for, not made late by
   * the records of another producer or by a quiet stream.
   */
  closeDue(nowMs: number, force = false, idleSeenMs = Infinity, upstream: Upstream = NO_UPSTREAM): ClosedWindow[] {
    const out: ClosedWindow[] = [];
    const starts = [...this.windows.keys()].sort((a, b) => a - b);
    const { windowMs, graceMs, maxOpenWindows } = this.opts;
    const eventNow = Math.min(this.eventMaxMs, nowMs + this.opts.maxFutureMs);
    for (let i = 0; i < starts.length; i++) {
      const w = this.windows.get(starts[i]!)!;
      const closeAt = w.start + windowMs + graceMs;
      const published = upstream.throughMs >= closeAt || nowMs >= closeAt + upstream.holdMs;
      const due =
        force ||
        starts.length - i > maxOpenWindows ||
        (published && (eventNow >= closeAt || (nowMs >= closeAt && nowMs - w.lastArrival >= graceMs && idleSeenMs >= closeAt && idleSeenMs > w.lastArrival)));
      if (!due) break;
      out.push(this.close(w));
    }
    return out;
  }

  private close(w: WindowState): ClosedWindow {
    this.windows.delete(w.start);
    this.closedBefore = w.start + this.opts.windowMs;
    this.counters.windowsClosed++;
    let folded = 0;
    const red: RedSeries[] = [];
    // (before the bare names are renamed: the ends were learned under the keys of the records)
    const shedScale = this.countShed(w);
    this.nameBareServices(w);
    for (const bucket of w.services) {
      const r = this.finishService(bucket);
      folded += r.folded;
      red.push(...r.red);
    }
    this.matchEdges(w);
    this.nameBareClients(w);
    if (shedScale) {
      // the calls to a server counted with what it served while shed, as its red series
      for (const e of w.edges) {
        const k = get3(shedScale, e.server, e.node, e.namespace);
        if (k !== undefined) e.stats.rescale(e.stats.estimated * k);
      }
    }
    const edgesOut = this.finishEdges(w);
    folded += edgesOut.folded;
    this.counters.folded += folded;
    const { kept, dropped } = this.finishSpans(w);
    w.spans.release();
    return { start: w.start, red, edges: edgesOut.edges, spans: kept, folded, spansDropped: dropped, spanFraction: this.fraction };
  }

  /**
   * Requests a probe counted as served (or answered) while their connection was shed, by end
   * (process and local port; 0: its client ends), between `sinceMs` and `timeMs` (ShedReport),
   * counted when their window closes (countShed). The kernel does not date each request, so a
   * report goes whole to the window its interval starts in: at most one tick's requests (250 ms)
   * move across a boundary, and none is put in a window after the burst they belong to. When
   * that window is closed already, the one it ends in; when both are, they are late.
   */
  addShedServed(node: string, pid: number, port: number, requests: number, sinceMs: number, timeMs: number): void {
    if (!(requests > 0) || !Number.isFinite(timeMs)) return;
    if (!this.shedNodes.has(node)) {
      if (this.shedNodes.size >= MAX_SHED_NODES) this.shedNodes.clear();
      this.shedNodes.add(node);
    }
    const W = this.opts.windowMs;
    let start = windowStart(Math.min(Number.isFinite(sinceMs) ? sinceMs : timeMs, timeMs), W);
    if (start < this.closedBefore) start = windowStart(timeMs, W);
    if (start < this.closedBefore) {
      this.counters.shedRequests.late += requests;
      return;
    }
    this.holdShed(this.shedByWindow, start, node, pid * 65_536 + (port & 0xffff), requests);
  }

  private holdShed(into: Map<number, Map<string, Map<number, number>>>, start: number, node: string, key: number, n: number): void {
    let byNode = into.get(start);
    if (!byNode) {
      // bounded: windows that never open (no record at all) do not keep their reports forever
      if (into.size >= MAX_SHED_WINDOWS) this.forgetOldestShed(into);
      into.set(start, (byNode = new Map()));
    }
    let ends = byNode.get(node);
    if (!ends) byNode.set(node, (ends = new Map()));
    ends.set(key, (ends.get(key) ?? 0) + n);
  }

  /** Drops the reports of the earliest window held (counted as unobserved). */
  private forgetOldestShed(from: Map<number, Map<string, Map<number, number>>>): void {
    let oldest = Infinity;
    for (const start of from.keys()) if (start < oldest) oldest = start;
    for (const ends of from.get(oldest)?.values() ?? []) for (const n of ends.values()) this.counters.shedRequests.unobserved += n;
    from.delete(oldest);
  }

  /**
   * What the probes reported served (server ends) or answered (a process's client ends) while
   * shed in this window, counted with the observed series of that service and role: its
   * estimate becomes observed + shed exactly, the requests beyond those observed spread over its
   * series in proportion to what their weights estimated beyond them (or, with none sampled, to
   * what they observed); on a node whose probe reports, a sampled one with no report here as
   * observed + 0. Returns the factor each service's server-side estimate was multiplied
   * by (for the edges to it), by service, node and namespace.
   */
  private countShed(w: WindowState): Nest3<number> | undefined {
    const c = this.counters.shedRequests;
    const take = (from: Map<number, Map<string, Map<number, number>>>) => {
      let mine: Map<string, Map<number, number>> | undefined;
      for (const [start, m] of from) {
        if (start > w.start) continue;
        if (start === w.start) mine = m;
        // an earlier window that never opened: no record to count them with
        else for (const ends of m.values()) for (const n of ends.values()) c.unobserved += n;
        from.delete(start);
      }
      return mine;
    };
    const pending = take(this.shedByWindow);
    const carried = take(this.shedCarried);
    if (!pending && !carried && this.shedNodes.size === 0) return undefined;
    const perBucket = [new Map<ServiceBucket, number>(), new Map<ServiceBucket, number>()]; // server, client
    for (const [held, again] of [[pending, true], [carried, false]] as const) {
      for (const [node, ends] of held ?? []) {
        for (const [key, n] of ends) {
          const port = key % 65_536;
          const id = this.endServices.of(node, Math.floor(key / 65_536), port);
          const b = id && get3(w.serviceIndex, id.key, node, id.namespace);
          const m = perBucket[port === 0 ? 1 : 0]!;
          if (b && b.series.some((s) => s.role === (port === 0 ? "client" : "server"))) m.set(b, (m.get(b) ?? 0) + n);
          // nothing of that end observed in this window (a burst that began in the last tick of
          // the window before it, or an end not named yet): once to the next window
          else if (again) this.holdShed(this.shedCarried, w.start + this.opts.windowMs, node, key, n);
          else if (!id) c.unmapped += n;
          else c.unobserved += n;
        }
      }
    }
    // A sampled service of a node whose probe reports, with no report of that role in this window:
    // it served nothing on shed connections here (the first tick's requests went with the report
    // that began in the window before), so observed + 0 is its count; 1 / fraction would count
    // again what that report counted, or what no shed connection served.
    if (this.shedNodes.size > 0) {
      for (const b of w.services) {
        if (!this.shedNodes.has(b.node)) continue;
        for (const [i, role] of (["server", "client"] as const).entries()) {
          if (perBucket[i]!.has(b)) continue;
          if (b.series.some((x) => x.role === role && x.stats.estimated - x.stats.requests > 1e-9)) perBucket[i]!.set(b, 0);
        }
      }
    }
    const scale: Nest3<number> = new Map();
    for (const [i, role] of (["server", "client"] as const).entries()) {
      for (const [b, shed] of perBucket[i]!) {
        let observed = 0;
        let estimated = 0;
        for (const s of b.series) {
          if (s.role !== role) continue;
          observed += s.stats.requests;
          estimated += s.stats.estimated;
        }
        if (observed === 0) {
          c.unobserved += shed;
          continue;
        }
        if (b.series.some((s) => s.role === role && !ONE_ANSWER_PER_REQUEST.has(s.protocol))) {
          // the kernel counts turns of the conversation; HTTP/2, gRPC and Kafka multiplex, and
          // Redis pipelines, so there a turn is not a request: the estimate stays
          c.protocol += shed;
          continue;
        }
        const beyond = estimated - observed;
        for (const s of b.series) {
          if (s.role !== role) continue;
          const st = s.stats;
          st.rescale(st.requests + (beyond > 1e-9 ? ((st.estimated - st.requests) * shed) / beyond : (st.requests * shed) / observed));
        }
        if (role === "server") set3(scale, b.service, b.node, b.namespace, (observed + shed) / estimated);
        c.counted += shed;
      }
    }
    return scale;
  }

  /** Services named by a bare process name whose process is now known to listen take that
   *  name, merged with the service's other series (ListenNames). */
  private nameBareServices(w: WindowState): void {
    let dropped = false;
    for (const b of w.services) {
      if (!b.pid) continue;
      const name = this.listenNames.of(b.node, b.pid, b.service);
      if (name === undefined) continue;
      const into = get3(w.serviceIndex, name, b.node, b.namespace);
      if (!into) {
        b.service = name;
        b.pid = 0;
        for (const s of b.series) s.service = name;
        set3(w.serviceIndex, name, b.node, b.namespace, b);
        continue;
      }
      for (const s of b.series) {
        const m = findSeries(into, s.protocol, s.operation, s.resource, s.role, s.statusClass);
        if (m) m.stats.merge(s.stats);
        else {
          s.service = name;
          into.series.push(s);
          const same = get3(into.index, s.protocol, s.operation, s.resource);
          if (same) same.push(s);
          else set3(into.index, s.protocol, s.operation, s.resource, [s]);
        }
      }
      b.series = [];
      dropped = true;
    }
    if (dropped) {
      const keep = w.services.filter((b) => b.series.length > 0);
      w.services.length = 0;
      w.services.push(...keep);
    }
  }

  /** The same for the clients of edges. */
  private nameBareClients(w: WindowState): void {
    let dropped = false;
    for (const e of w.edges) {
      if (!e.clientPid) continue;
      const name = this.listenNames.of(e.clientNode ?? "", e.clientPid, e.client);
      if (name === undefined) continue;
      const into = get3(w.edgeIndex, name, e.server, e.protocol)?.find((x) => x.node === e.node && x.namespace === e.namespace && !x.clientPid);
      if (into) {
        into.stats.merge(e.stats);
        e.clientPid = -1; // merged: left out below
        dropped = true;
        continue;
      }
      e.client = name;
      e.clientPid = 0;
      const same = get3(w.edgeIndex, name, e.server, e.protocol);
      if (same) same.push(e);
      else set3(w.edgeIndex, name, e.server, e.protocol, [e]);
    }
    if (dropped) {
      const keep = w.edges.filter((e) => e.clientPid !== -1);
      w.edges.length = 0;
      w.edges.push(...keep);
    }
  }

  private finishService(bucket: ServiceBucket): { red: RedSeries[]; folded: number } {
    const { service, node, namespace } = bucket;
    const all = bucket.series;
    // 1. Per-segment collapse of HTTP paths (window-local, order-independent).
    const httpPaths = new Set<string>();
    for (const s of all) if (s.resource.startsWith("/") && s.protocol !== "grpc") httpPaths.add(s.resource);
    const collapsed = httpPaths.size > this.opts.segmentThreshold ? collapseSegments(httpPaths, this.opts.segmentThreshold) : null;
    // 2. Cardinality guard per tag, weighted by requests.
    const resW = new Map<string, number>();
    const opW = new Map<string, number>();
    for (const s of all) {
      const res = (s.protocol !== "grpc" && collapsed?.get(s.resource)) || s.resource;
      resW.set(res, (resW.get(res) ?? 0) + s.stats.requests);
      opW.set(s.operation, (opW.get(s.operation) ?? 0) + s.stats.requests);
    }
    const gr = guardValues(resW, this.opts.maxValuesPerTag);
    const go = guardValues(opW, this.opts.maxValuesPerTag);
    // 3. Merge the series that now share a key.
    const merged = new Map<string, RedSeries>();
    for (const s of all) {
      const res0 = (s.protocol !== "grpc" && collapsed?.get(s.resource)) || s.resource;
      const resource = gr.map.get(res0) ?? "*";
      const operation = go.map.get(s.operation) ?? "*";
      if (resource === s.resource && operation === s.operation) {
        const k = s.protocol + SEP + operation + SEP + resource + SEP + s.role + SEP + s.statusClass;
        const m = merged.get(k);
        if (m) m.stats.merge(s.stats);
        else merged.set(k, s);
        continue;
      }
      const k = s.protocol + SEP + operation + SEP + resource + SEP + s.role + SEP + s.statusClass;
      let m = merged.get(k);
      if (!m) merged.set(k, (m = { service, node, namespace, protocol: s.protocol, operation, resource, role: s.role, statusClass: s.statusClass, stats: new LatencyStats(this.opts.relativeAccuracy) }));
      m.stats.merge(s.stats);
    }
    return { red: [...merged.values()], folded: gr.folded + go.folded };
  }

  private finishEdges(w: WindowState): { edges: EdgeSeries[]; folded: number } {
    // Guard the client tag per server (clients named by address can be unbounded).
    const byServer = new Map<string, EdgeSeries[]>();
    for (const e of w.edges) {
      let l = byServer.get(e.server);
      if (!l) byServer.set(e.server, (l = []));
      l.push(e);
    }
    const out: EdgeSeries[] = [];
    let folded = 0;
    for (const [server, list] of byServer) {
      const cw = new Map<string, number>();
      for (const e of list) cw.set(e.client, (cw.get(e.client) ?? 0) + e.stats.requests);
      const g = guardValues(cw, this.opts.maxValuesPerTag);
      folded += g.folded;
      const merged = new Map<string, EdgeSeries>();
      for (const e of list) {
        const client = g.map.get(e.client) ?? "*";
        const k = client + SEP + e.protocol + SEP + e.node + SEP + e.namespace;
        const m = merged.get(k);
        if (!m) merged.set(k, client === e.client ? e : { client, server, protocol: e.protocol, node: e.node, namespace: e.namespace, stats: this.copyStats(e.stats) });
        else m.stats.merge(e.stats);
      }
      out.push(...merged.values());
    }
    return { edges: out, folded };
  }

  private copyStats(s: LatencyStats): LatencyStats {
    const c = new LatencyStats(this.opts.relativeAccuracy);
    c.merge(s);
    return c;
  }

  private finishSpans(w: WindowState): { kept: SpanRec[]; dropped: number } {
    const carry = this.carry;
    this.carry = undefined;
    if (!this.opts.spans || w.spans.length === 0) return { kept: [], dropped: 0 };
    // Link targets: this window's spans and those of the open (later) windows. Flushed windows
    // are not needed, as a parent ends after its children (a server request after the calls made
    // for it, a client call after the server's response) and windows go by end time, except
    // across nodes: a server whose clock runs ahead (within pairSkewMs) can end a request after
    // the window of its call has closed. The calls of the window closed just before that ended
    // within pairSkewMs of its end come along, resolved (`carry`).
    // Of the open windows, only the spans a lookup can reach (a reached span is resolved too and
    // makes its own lookups). Index lists of reachable keys are then the same as over every span,
    // in the same order.
    const open = [...this.windows.values()].map((ow) => ow.spans);
    const links = this.links;
    links.load(w.spans, open, reachableSpans(w.spans, open), carry && carry.window + this.opts.windowMs === w.start ? carry : undefined);
    const sorted = links.byStart();
    for (let i = 0; i < sorted.length; i++) links.resolve(sorted[i]!);
    this.counters.ambiguousTcp += links.counters.ambiguousTcp;
    this.counters.ambiguousThread += links.counters.ambiguousThread;
    this.counters.linkVisits += links.counters.visited;
    this.counters.linkIndexed += links.counters.indexed;
    this.bufferedSpans -= w.spans.length;
    const { spanBudget, windowMs } = this.opts;
    const { kept, dropped, fraction, overBudget } = links.sample(sorted, this.opts.spanSampleRate, this.opts.slowestPerSeries, spanBudget > 0 ? (spanBudget * windowMs) / 1000 : Infinity);
    this.fraction = fraction;
    this.counters.spansKept += kept.length;
    this.counters.spansDropped += dropped;
    this.counters.spansOverBudget += overBudget;
    // The links read this window's columns, which later windows reuse: the kept spans outlive them.
    const done = new Map<number, SpanRec>();
    const out = kept.map((k) => links.detach(k, done));
    // An end named by its process's bare name takes its listening name (ListenNames): the
    // service of a client span, the peer of a server span.
    for (let i = 0; i < out.length; i++) {
      const s = out[i]!;
      if (s.kind === "client") {
        if (!s.pid) continue;
        const name = this.listenNames.of(s.node, s.pid, s.service);
        if (name !== undefined) (s as { service: string }).service = name;
      } else {
        const pid = links.peerPid(kept[i]!);
        if (!pid) continue;
        const name = this.listenNames.of(links.peerNode(kept[i]!), pid, s.peer);
        if (name !== undefined) (s as { peer: string }).peer = name;
      }
    }
    this.carry = links.carryOut(w.start + this.opts.windowMs - this.opts.pairSkewMs - 0.01);
    links.clear();
    return { kept: out, dropped };
  }
}
