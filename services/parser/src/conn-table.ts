// Per-connection state for the partitions this replica owns: ordering by sequence number,
// gaps, eviction and memory limits (the detection budget is the decoder host's: the plugin
// host's ConnectionEngine rejects a connection nobody claims, and the table drops it). Pure: no NATS, no timers (the caller
// passes `now`), so it is tested with plain data.
import { ConnKind, Direction, Role, type ConnEvent } from "@wirescope/wire";
import { type Counters } from "@wirescope/runtime";
import { type Dir, type StepResult, type TopicNameDirectory } from "@wirescope/plugin-host";
import type { DecoderBatch, DecoderHost, DecoderSession } from "./decoder.js";
import { DirectionStream, type Op, type ReorderLimits } from "./reorder.js";
import { endpointsOf, peerUnresolved, PeerDirectory, refreshEndpoints, type Endpoints } from "./identity.js";
import { encodeHostFields, readHead } from "./record-bytes.js";
import { redactRecord, type RedactionPolicy } from "./redact.js";
import { TidRing } from "./tid-ring.js";

export interface ConnTableOptions {
  node: string;
  /** Connections tracked at once; past it one silent EVICT_MIN_IDLE_MS is evicted for a new one, else the new one is dropped (counted). */
  maxConns: number;
  /** Bytes one connection may hold waiting for a hole to fill. */
  maxConnPendingBytes: number;
  /** Bytes all connections may hold waiting; past it the largest waits are flushed as gaps. */
  maxTotalPendingBytes: number;
  /** A connection with no event for this long is closed and evicted. */
  idleMs: number;
  redaction: RedactionPolicy;
  /** Kafka topic ids named across plugin instances and replicas (kafka-topic-names.ts); none: as the plugin wrote them. */
  topicNames?: TopicNameDirectory;
}

export const DEFAULT_CONN_TABLE_OPTIONS: Omit<ConnTableOptions, "node" | "redaction"> = {
  maxConns: 100_000,
  maxConnPendingBytes: 256 * 1024,
  maxTotalPendingBytes: 256 * 1024 * 1024,
  idleMs: 5 * 60_000,
};

/** One DataEvent as the table reads it (a protobuf-es DataEvent fits; the pipeline fills one
 *  reused object per event from the wire reader). */
export interface DataIn {
  connKey: bigint;
  direction: number;
  /** Bytes before this event in its direction (exact below 2^53). */
  seq: number | bigint;
  timestampNs: bigint;
  tid: number;
  payload: Uint8Array;
  originalLength: number;
}

/** One finished record, ready to publish. */
export interface OutRecord {
  /** The plugin's bytes (fields 1-19, redacted); with `suffix` and `tid` they make the Record
   *  (record-bytes.ts appendHostFields; the batcher writes the three pieces without joining). */
  bytes: Uint8Array;
  /** Host fields 20-23, 25 of this connection. */
  suffix: Uint8Array;
  /** Record.tid (field 24); 0 = unknown. */
  tid: number;
  protocol: string;
  /** The observed end's service name (the client's for a client-side record, else the
   *  server's): the output partition key (@wirescope/runtime `recordPartitionOf`). */
  outputService: string;
  rawPartition: number;
}

interface Conn {
  key: bigint;
  /** The open event (synthetic for a connection picked up mid-stream). */
  ev: ConnEvent;
  partition: number;
  /** The node whose probe saw the socket (its raw batches' node): the record's node. */
  node: string;
  session: DecoderSession;
  dirs: [DirectionStream, DirectionStream];
  /** egress maps to this plugin direction; ingress to the other. */
  egressDir: Dir;
  suffix: Uint8Array;
  outputService: string;
  /** Both ends as resolved so far; while `eps.pending`, looked up again per published record. */
  eps: Endpoints;
  lastActive: number;
  /** Timestamp of the newest event: the close time of an evicted connection. */
  lastTsNs: bigint;
  decoding: boolean;
  /** The decoder's answer to the latest step: a plugin owns the connection now. */
  claimed: boolean;
  /** timestamp_ns → tid of recent request-direction events, for Record.tid (bounded). */
  reqTids: TidRing;
  /** False once the connection left the table (a cached reference must not be used). */
  live: boolean;
  /**
   * Directions (bit 1 << dir) that may have lost bytes in a raw batch that never came: their
   * next hole is a gap at once instead of waiting for the reorder limits. Cleared by in-order data.
   */
  suspect: number;
  /** Steps handed to the decoder batch whose results have not come back (beginSteps). */
  held: number;
  /** Request-direction events remembered in reqTids while steps were held. */
  heldTids: number;
  /** While a held step's result is handled: reqTids events remembered after that step. */
  tidSkip: number;
  /** Its close is held back in the decoder batch (the reason, for conn_closed): it leaves at the close's result. */
  closing: string | undefined;
}

/** A step's kind, in the low bits of its tag (the step's index above them): see step(). */
const STEP_GAP = 0;
const STEP_DATA = 1;
const STEP_CLOSE = 2;
const STEP_BITS = 2;

/**
 * A full table (--max-conns) makes room by evicting a connection idle at least EVICT_MIN_IDLE_MS,
 * looked for among the first EVICT_SCAN in the table's order; the ones passed over (active, or
 * leaving already) go to the back of the order, so each is looked at again only after every
 * other (second chance: amortised O(1) per new connection, whatever the table holds). A flood of
 * connections that open and fall silent (half-open, a scan) then cannot keep out the busy ones
 * that open after it: the probe's re-observed keep-alive connections, a pool's new member.
 */
const EVICT_SCAN = 256;
const EVICT_MIN_IDLE_MS = 10_000;
/**
 * The open facts (role, ends, process) of connections evicted for room, so that one speaking again
 * is taken up mid-stream with them instead of anonymously; bounded, the oldest forgotten first.
 */
const EVICTED_OPENS_MAX = 16_384;

/** How often sweep() asks the decoders for the counters of live connections (one plugin call each). */
const COUNTER_REPORT_MS = 10_000;

/**
 * Request events a connection may add to its tid ring (MAX_TIDS) while its steps are held back in
 * a decoder batch: its records look their tid up when they come back, in the ring as it was at
 * their step (the events remembered since are skipped), and the events they start at must still
 * be in it, as they were when one call per step handed them out at once.
 */
const HELD_TIDS_MAX = 64;

/** Counter names [gaps, gap bytes] by [server | client | unknown end][request | response direction]. */
const GAP_COUNTERS = (["server", "client", "unknown"] as const).map((end) =>
  (["request", "response"] as const).map((dir) => [`gaps.${end}_${dir}`, `gap_bytes.${end}_${dir}`] as const),
);

export class ConnTable {
  private readonly conns = new Map<bigint, Conn>();
  /** The same connections by raw partition, so a partition that moves away is dropped without
   *  walking every connection. */
  private readonly byPartition = new Map<number, Set<Conn>>();
  /** Connections dropped before their close: their further data is ignored (bounded, LRU). */
  private readonly ignored = new Set<bigint>();
  /** The open events of connections evicted for room (EVICTED_OPENS_MAX): taken up again with them. */
  private readonly evictedOpens = new Map<bigint, ConnEvent>();
  readonly peers = new PeerDirectory();
  /** "records.<protocol>" built once per protocol (hot path). */
  private readonly recordCounter = new Map<string, string>();
  private readonly ops: Op[] = [];
  /** The connection of the previous data event: consecutive events mostly share one. */
  private last: Conn | undefined;
  /** Bytes held in every reorder buffer (kept up to date, never summed over connections). */
  private pendingTotal = 0;
  /** When idle connections were last looked for. */
  private lastIdleScan = -Infinity;
  /** When the decoders' counters of live connections were last asked for. */
  private lastCounterScan = -Infinity;
  /** The decoder batch (DecoderHost.batch), made once; `stepping` while a raw batch's data runs. */
  private batch: DecoderBatch<number> | undefined;
  private stepping: DecoderBatch<number> | undefined;
  /**
   * The connection of each step handed to the batch (by tag >> STEP_BITS) until endSteps(), and
   * its connection's reqTids.added then; `steps` of them in use. Reused from batch to batch
   * (emptying an array gives its storage back, so it would be made again for every raw batch).
   */
  private readonly stepConns: (Conn | undefined)[] = [];
  private readonly stepTids: number[] = [];
  private steps = 0;
  /** The reorder limits of every connection (options, one object). */
  private readonly limits: ReorderLimits;

  constructor(
    private readonly host: DecoderHost,
    private readonly opts: ConnTableOptions,
    private readonly counters: Counters,
    private readonly emit: (r: OutRecord) => void,
  ) {
    this.limits = { maxPendingBytes: opts.maxConnPendingBytes, maxPendingEvents: 1024 };
  }

  get size(): number {
    return this.conns.size;
  }

  /** Total bytes held in reorder buffers. */
  pendingBytes(): number {
    return this.pendingTotal;
  }

  /** `node`: the node of the raw batch the event came in (its probe's); the parser's own by default. */
  onConn(ev: ConnEvent, partition: number, now: number, node = this.opts.node): void {
    this.peers.learn(ev, node);
    if (this.evictedOpens.size) this.evictedOpens.delete(ev.connKey);
    if (ev.kind === ConnKind.OPEN) {
      this.ignored.delete(ev.connKey);
      const old = this.conns.get(ev.connKey);
      if (old && ev.tls && !old.ev.tls && old.claimed && this.continueInTls(old, ev)) return;
      if (old) this.finish(old, ev.timestampNs, "reopened");
      this.create(ev, partition, now, true, node);
    } else if (ev.kind === ConnKind.CLOSE) {
      this.ignored.delete(ev.connKey);
      // the probe stopped observing it (its fairness budget): a close for us, counted by reason
      if (ev.shed) this.counters.add(`conns_shed_by_probe.${ev.shed}`);
      const c = this.conns.get(ev.connKey);
      if (c) this.finish(c, ev.timestampNs, "closed");
    }
  }

  onData(ev: DataIn, partition: number, now: number, node = this.opts.node): void {
    let c = this.last;
    if (c === undefined || c.key !== ev.connKey || !c.live) c = this.conns.get(ev.connKey);
    if (!c) {
      if (this.ignored.has(ev.connKey)) {
        this.counters.add("data_ignored");
        return;
      }
      // Data of a connection whose open we did not see (started before the probe, or its
      // partition moved here), or that was evicted for room (its open facts kept): decode from
      // here on, as the plugin allows.
      this.counters.add("conn_midstream");
      const evicted = this.evictedOpens.size ? this.evictedOpens.get(ev.connKey) : undefined;
      if (evicted) {
        this.evictedOpens.delete(ev.connKey);
        this.counters.add("conn_resumed_after_eviction");
      }
      const synthetic =
        evicted ??
        ({
          connKey: ev.connKey,
          kind: ConnKind.OPEN,
          role: Role.UNKNOWN,
          localAddress: "",
          localPort: 0,
          remoteAddress: "",
          remotePort: 0,
        } as ConnEvent);
      c = this.create(synthetic, partition, now, false, node);
      if (!c) return;
    }
    c.lastActive = now;
    if (ev.timestampNs > c.lastTsNs) c.lastTsNs = ev.timestampNs;
    const pdir: Dir = ev.direction === Direction.EGRESS ? c.egressDir : ((1 - c.egressDir) as Dir);
    if (pdir === 0) {
      c.reqTids.add(ev.timestampNs, ev.tid);
      if (c.held !== 0 && ++c.heldTids >= HELD_TIDS_MAX) this.stepping?.flush();
    }
    this.last = c;
    const stream = c.dirs[pdir];
    const seq = typeof ev.seq === "number" ? ev.seq : Number(ev.seq);
    if (stream.next(seq, ev.payload.length, ev.originalLength)) {
      // in order and whole (the usual case): straight to the decoder, no op
      if (c.suspect !== 0) c.suspect &= ~(1 << pdir);
      this.data(c, pdir, ev.payload, ev.timestampNs);
      return;
    }
    const ops = this.ops;
    ops.length = 0;
    const forced = stream.forced;
    const held = stream.pendingBytes;
    stream.push(seq, ev.payload, ev.originalLength, ev.timestampNs, ev.tid, ops);
    this.pendingTotal += stream.pendingBytes - held;
    if (stream.forced !== forced) this.counters.add("gaps_forced.conn_pending_limit");
    this.apply(c, pdir, ops);
    if (c.suspect & (1 << pdir)) {
      // the bytes before this hole were in a raw batch that is lost: nothing will fill it
      c.suspect &= ~(1 << pdir);
      if (c.live && stream.hasPending) {
        this.counters.add("gaps_forced.raw_batch_missed");
        this.flushDir(c, pdir);
      }
    }
  }

  /**
   * From here to endSteps() (a raw batch's data events), the decoder steps of connections that
   * a plugin is decoding are held back and run together at endSteps(): one ABI v2 feed_batch
   * call per plugin instance instead of one call per chunk (DecoderHost.batch). Steps of
   * connections still detecting, or decoded by a version 1 plugin, run at once as before, and
   * a connection's results are handled in the order of its steps. Without a batching host,
   * nothing changes.
   */
  beginSteps(): void {
    if (!this.host.batch) return;
    this.batch ??= this.host.batch<number>((tag, r) => this.stepResult(tag, r), { eager: true });
    this.stepping = this.batch;
  }

  /** Runs the steps held back since beginSteps() and handles their results, in order. */
  endSteps(): void {
    const b = this.stepping;
    if (!b) return;
    this.stepping = undefined;
    b.flush();
    this.stepConns.fill(undefined, 0, this.steps);
    this.steps = 0;
  }

  /**
   * A raw batch of this partition never arrived (a batch_seq hole): each of its connections'
   * next hole, in either direction, is taken as that loss and passed on as a gap at once.
   */
  markPartitionLoss(partition: number): void {
    const set = this.byPartition.get(partition);
    if (!set) return;
    for (const c of set) {
      c.suspect = 3;
      for (const d of [0, 1] as Dir[]) {
        if (c.live && c.dirs[d].hasPending) {
          c.suspect &= ~(1 << d);
          this.counters.add("gaps_forced.raw_batch_missed");
          this.flushDir(c, d);
        }
      }
    }
  }

  /** Drops every connection of a partition that left this replica (state lost, counted). */
  dropPartition(partition: number): number {
    const set = this.byPartition.get(partition);
    if (!set) return 0;
    let n = 0;
    for (const c of [...set]) {
      this.discard(c, "moved");
      n++;
    }
    return n;
  }

  /**
   * Closes idle connections and enforces the total memory bound. Call periodically. Idle
   * connections are looked for at most every idleMs/8 (a walk over every connection); the
   * memory bound reads a running total.
   */
  sweep(now: number): void {
    if (now - this.lastIdleScan >= this.opts.idleMs / 8) {
      this.lastIdleScan = now;
      for (const c of this.conns.values()) {
        if (now - c.lastActive > this.opts.idleMs) {
          this.counters.add("conn_evicted.idle");
          this.finish(c, 0n, "idle");
        }
      }
    }
    if (now - this.lastCounterScan >= COUNTER_REPORT_MS) {
      // what plugins counted on connections that live long (errors, drops): reported when a
      // connection ends, and meanwhile every COUNTER_REPORT_MS, so status shows it in time
      this.lastCounterScan = now;
      for (const c of this.conns.values()) c.session.reportCounters?.();
    }
    let total = this.pendingTotal;
    if (total <= this.opts.maxTotalPendingBytes) return;
    const bySize = [...this.conns.values()].sort(
      (a, b) => b.dirs[0].pendingBytes + b.dirs[1].pendingBytes - (a.dirs[0].pendingBytes + a.dirs[1].pendingBytes),
    );
    for (const c of bySize) {
      if (total <= this.opts.maxTotalPendingBytes) break;
      const held = c.dirs[0].pendingBytes + c.dirs[1].pendingBytes;
      this.counters.add("gaps_forced.total_pending_limit");
      this.flushAll(c);
      total -= held;
    }
  }

  /**
   * Evicts one connection idle at least EVICT_MIN_IDLE_MS from the front of the table's order
   * (EVICT_SCAN looked at, at most), moving those passed over to the back; false when none is.
   * The evicted connection is closed like an idle one (waiting requests come out incomplete); its
   * open is kept, so its next bytes are taken up mid-stream as the same end of the same process.
   * (Its close may be held back in the decoder batch: the table is over its bound by the
   * evictions of one raw batch at most.)
   */
  private evictForRoom(now: number): boolean {
    let victim: Conn | undefined;
    let looked = 0;
    // one passed over goes to the back at once (a Map iterator goes on past a deletion; one moved
    // comes round again only in a table smaller than EVICT_SCAN, and counts again then)
    for (const c of this.conns.values()) {
      if (c.closing === undefined && now - c.lastActive >= EVICT_MIN_IDLE_MS) {
        victim = c;
        break;
      }
      this.conns.delete(c.key);
      this.conns.set(c.key, c);
      if (++looked >= EVICT_SCAN) break;
    }
    if (!victim) return false;
    this.counters.add("conn_evicted.limit_conns");
    if (this.evictedOpens.size >= EVICTED_OPENS_MAX) this.evictedOpens.delete(this.evictedOpens.keys().next().value as bigint);
    this.evictedOpens.set(victim.key, victim.ev);
    this.finish(victim, 0n, "evicted");
    return true;
  }

  /** Closes every connection (shutdown): waiting requests come out as incomplete records. */
  closeAll(): void {
    for (const c of this.conns.values()) this.finish(c, 0n, "shutdown");
  }

  private create(ev: ConnEvent, partition: number, now: number, fromOpen: boolean, node: string): Conn | undefined {
    if (this.conns.size >= this.opts.maxConns && !this.evictForRoom(now)) {
      this.counters.add("conn_dropped.limit_conns");
      return undefined;
    }
    const eps = endpointsOf(ev, node, this.peers);
    const limits = this.limits;
    const c: Conn = {
      key: ev.connKey,
      ev,
      partition,
      node,
      session: this.host.open({ roleKnown: ev.role !== Role.UNKNOWN, serverPort: eps.server.port, midstream: !fromOpen }),
      dirs: [new DirectionStream(limits, fromOpen), new DirectionStream(limits, fromOpen)],
      egressDir: eps.role === Role.SERVER ? 1 : 0,
      suffix: encodeHostFields({ client: eps.client, server: eps.server, connKey: ev.connKey, role: ev.role, node, tlsLibrary: ev.tls ? ev.tlsLibrary : undefined, observedFraction: ev.observedFraction }),
      outputService: outputService(ev.role, eps),
      eps,
      lastActive: now,
      lastTsNs: ev.timestampNs ?? 0n,
      decoding: false,
      claimed: false,
      reqTids: new TidRing(),
      live: true,
      suspect: 0,
      held: 0,
      heldTids: 0,
      tidSkip: 0,
      closing: undefined,
    };
    this.conns.set(c.key, c);
    let set = this.byPartition.get(partition);
    if (!set) this.byPartition.set(partition, (set = new Set()));
    set.add(c);
    this.counters.add("conn_opened");
    return c;
  }

  private apply(c: Conn, dir: Dir, ops: Op[]): void {
    for (const op of ops) {
      if (!c.live) return; // rejected by an earlier op
      if (op.kind === "data") this.data(c, dir, op.bytes, op.tsNs);
      else {
        this.counters.add("gaps");
        // gaps and bytes never decoded, by end and direction (the probe's trimmed bodies included);
        // a session oriented by content may have found requests in the caller's direction 1
        const [gaps, bytes] = GAP_COUNTERS[c.ev.role === Role.SERVER ? 0 : c.ev.role === Role.CLIENT ? 1 : 2]![dir === (c.session.flipped ? 1 : 0) ? 0 : 1]!;
        this.counters.add(gaps);
        this.counters.add(bytes, op.len);
        this.step(c, dir, false, undefined, op.len, op.tsNs);
      }
    }
  }

  /**
   * The connection turned out to be TLS (the probe's second open, its plaintext counted from 0)
   * while a plugin was decoding its cleartext: an in-band upgrade (MySQL's SSL request), whose
   * plaintext goes on where the cleartext stopped. The same decoder session gets it, so the
   * state of the cleartext part (the greeting, the SSL request) carries over and the login is
   * one record; a plugin that gave up at the upgrade (rejected) is not asked. Records from here
   * on carry the TLS attributes. False when holes of the cleartext could not be given up.
   */
  private continueInTls(c: Conn, ev: ConnEvent): boolean {
    this.flushAll(c);
    if (!c.live) return false;
    c.dirs = [new DirectionStream(this.limits, true), new DirectionStream(this.limits, true)];
    c.suspect = 0;
    // the session's orientation stays; a role the open does not know is the one content gave
    c.ev = ev.role === Role.UNKNOWN && c.ev.role !== Role.UNKNOWN ? ({ ...ev, role: c.ev.role } as ConnEvent) : ev;
    c.eps = endpointsOf(c.ev, c.node, this.peers);
    this.encodeEnds(c);
    this.counters.add("conn_tls_continued");
    return true;
  }

  /** In-order bytes to the decoder, and what comes of them. */
  private data(c: Conn, dir: Dir, bytes: Uint8Array, tsNs: bigint): void {
    this.step(c, dir, true, bytes, 0, tsNs);
  }

  /**
   * One decoder step (bytes, or a gap of `len`): its result handled now, or, between
   * beginSteps() and endSteps(), when the batch hands it out (tag: the step's index << STEP_BITS
   * | its kind).
   */
  private step(c: Conn, dir: Dir, isData: boolean, bytes: Uint8Array | undefined, len: number, tsNs: bigint): void {
    const b = this.stepping;
    if (!b) {
      this.result(c, isData ? c.session.data(dir, bytes!, tsNs) : c.session.gap(dir, len, tsNs));
      return;
    }
    const tag = this.holdStep(c, isData ? STEP_DATA : STEP_GAP);
    if (isData) b.data(c.session, dir, bytes!, tsNs, tag);
    else b.gap(c.session, dir, len, tsNs, tag);
  }

  /** Notes a step handed to the batch; returns its tag. */
  private holdStep(c: Conn, kind: number): number {
    const k = this.steps++;
    this.stepConns[k] = c;
    this.stepTids[k] = c.reqTids.added;
    c.held++;
    return (k << STEP_BITS) | kind;
  }

  /** A batched step's result (see step()). */
  private stepResult(tag: number, r: StepResult): void {
    const k = tag >> STEP_BITS;
    const c = this.stepConns[k]!;
    if (--c.held === 0) c.heldTids = 0;
    const kind = tag & ((1 << STEP_BITS) - 1);
    if (kind === STEP_CLOSE) {
      // the connection stayed in the table until its close came back (finish())
      if (!c.live) return; // dropped by the answer to one of its earlier steps
      this.forget(c);
      c.tidSkip = c.reqTids.added - this.stepTids[k]!;
      this.closed(c, r, c.closing!);
      c.tidSkip = 0;
      return;
    }
    if (c.live) {
      c.tidSkip = c.reqTids.added - this.stepTids[k]!;
      this.result(c, r);
      c.tidSkip = 0;
    }
    // dropped by the answer to an earlier step of the same batch: with one call per step, these
    // bytes would have found the connection gone
    else if (kind === STEP_DATA) this.counters.add("data_ignored");
  }

  /** Gives up every hole of both directions (close, eviction, memory bound). */
  private flushAll(c: Conn): void {
    for (const d of [0, 1] as Dir[]) {
      if (!c.live) return; // dropped by a decoder's answer to the other direction's bytes
      this.flushDir(c, d);
    }
  }

  /** Gives up the holes of one direction: each becomes a gap, the bytes after it go on. */
  private flushDir(c: Conn, d: Dir): void {
    const stream = c.dirs[d];
    if (!stream.hasPending) return;
    const ops: Op[] = [];
    const held = stream.pendingBytes;
    stream.flush(ops);
    this.pendingTotal -= held - stream.pendingBytes;
    this.apply(c, d, ops);
  }

  private result(c: Conn, r: StepResult): void {
    if (r.state === "decoding" && !c.decoding && c.ev.role === Role.UNKNOWN) this.roleFromContent(c);
    const recs = r.records;
    for (let k = 0; k < recs.length; k++) this.publish(c, recs[k]!);
    c.claimed = r.state === "decoding";
    if (r.state === "decoding") c.decoding = true;
    else if (r.state === "rejected") this.discard(c, r.reason ?? "rejected");
  }

  /**
   * The probe did not say which end this socket is (or the open was never seen): once the
   * decoder found out from content (requests vs responses), the endpoints and the role follow
   * it. When content could not tell, the role stays unknown (counted), never guessed.
   */
  private roleFromContent(c: Conn): void {
    const s = c.session;
    if (s.orientation !== "content" || s.flipped === undefined) {
      this.counters.add("conn_role_unknown");
      return;
    }
    // the local end sends egress, which is the caller's dir c.egressDir; the plugin's client
    // direction is the caller's dir 1 when flipped
    const localIsClient = c.egressDir === (s.flipped ? 1 : 0);
    const ev = { ...c.ev, role: localIsClient ? Role.CLIENT : Role.SERVER } as ConnEvent;
    c.ev = ev;
    c.eps = endpointsOf(ev, c.node, this.peers);
    this.encodeEnds(c);
    this.counters.add("conn_role_from_content");
  }

  /** Freezes the ends as resolved so far into the host fields and the output key. */
  private encodeEnds(c: Conn): void {
    const eps = c.eps;
    c.suffix = encodeHostFields({ client: eps.client, server: eps.server, connKey: c.key, role: c.ev.role, node: c.node, tlsLibrary: c.ev.tls ? c.ev.tlsLibrary : undefined, observedFraction: c.ev.observedFraction });
    c.outputService = outputService(c.ev.role, eps);
  }

  private publish(c: Conn, pluginBytes: Uint8Array): void {
    const head = readHead(pluginBytes);
    if (!head) {
      this.counters.add("records_dropped.malformed");
      return;
    }
    if (head.protocol === "kafka" && this.opts.topicNames) pluginBytes = this.opts.topicNames.process(pluginBytes);
    let bytes: Uint8Array | undefined = pluginBytes;
    if (head.sensitive && !this.opts.redaction.disabledFor.has(head.protocol)) {
      bytes = redactRecord(pluginBytes, this.opts.redaction);
      if (!bytes) {
        this.counters.add("records_dropped.malformed");
        return;
      }
    }
    const eps = c.eps;
    // An end not known at the connection's start (the peer's event came later, or the client's
    // listening port): looked up again, and the frozen host fields re-encoded only on a change.
    if (eps.pending && refreshEndpoints(eps, c.node, this.peers)) {
      this.encodeEnds(c);
      this.counters.add("endpoints_resolved_late");
    }
    if (peerUnresolved(eps)) this.counters.add("records_peer_unresolved");
    const tid = c.reqTids.get(head.startNs, c.tidSkip);
    let name = this.recordCounter.get(head.protocol);
    if (!name) this.recordCounter.set(head.protocol, (name = `records.${head.protocol || "unknown"}`));
    this.counters.add(name);
    this.emit({
      bytes,
      suffix: c.suffix,
      tid,
      protocol: head.protocol,
      outputService: c.outputService,
      rawPartition: c.partition,
    });
  }

  /**
   * Flushes, closes the decoder (incomplete requests come out) and forgets the connection.
   * Between beginSteps() and endSteps() the close is a step of the batch like its bytes (one
   * feed_batch entry for a connection a version 2 plugin decodes): the connection leaves the
   * table when its result comes back, after the results of its earlier steps.
   */
  private finish(c: Conn, tsNs: bigint, why: string): void {
    if (c.closing !== undefined) return; // its close is held back already
    this.flushAll(c);
    if (!c.live) return;
    const ts = tsNs > 0n ? tsNs : c.lastTsNs;
    const b = this.stepping;
    if (b) {
      c.closing = why;
      if (this.last === c) this.last = undefined;
      b.close(c.session, ts, this.holdStep(c, STEP_CLOSE));
      return;
    }
    this.forget(c);
    this.closed(c, c.session.close(ts), why);
  }

  /** What the decoder's close gave: the waiting requests' records, the counts; the session freed. */
  private closed(c: Conn, r: StepResult, why: string): void {
    // claimed only now (a detection held back until the close): its role is settled here
    if (!c.decoding && r.records.length && c.ev.role === Role.UNKNOWN) this.roleFromContent(c);
    for (const b of r.records) this.publish(c, b);
    c.session.free();
    // A connection that ended before any plugin claimed it was never decoded: say so.
    this.counters.add(c.decoding ? `conn_closed.${why}` : "conn_closed.unclaimed");
  }

  private discard(c: Conn, reason: string): void {
    if (!c.live) return;
    this.forget(c);
    if (reason !== "moved") {
      this.ignored.add(c.key);
      if (this.ignored.size > 65536) this.ignored.delete(this.ignored.values().next().value as bigint);
    }
    c.session.free();
    this.counters.add(`conn_dropped.${reason}`);
  }

  /** Takes the connection out of the table (and its held bytes out of the total). */
  private forget(c: Conn): void {
    c.live = false;
    this.conns.delete(c.key);
    this.byPartition.get(c.partition)?.delete(c);
    if (this.last === c) this.last = undefined;
    this.pendingTotal -= c.dirs[0].pendingBytes + c.dirs[1].pendingBytes;
  }
}

/** The service a record of this connection feeds: the key of its records partition. */
function outputService(role: Role, eps: Endpoints): string {
  return role === Role.CLIENT ? eps.client.service : eps.server.service;
}
