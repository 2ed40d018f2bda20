// TCP reassembly: from segments as captured to one in-order byte stream per connection and
// direction, with explicit gaps where the capture missed bytes.
//
// Per direction ("half") we keep the next expected sequence number. A segment at or before it is
// delivered with its already-delivered prefix trimmed (retransmissions, overlaps, keep-alives);
// a segment after it waits in a small sorted list. A hole in front of waiting segments is given up
// and passed on as a gap when
//   - the other side acknowledges bytes beyond it (the receiver got them; we never will),
//   - it has been waiting longer than maxWaitNs of capture time,
//   - the waiting bytes exceed their per-direction or global bound,
//   - or the connection ends (FIN from both sides, RST, end of the capture).
// Sequence numbers are compared modulo 2^32 ((a - b) | 0), so wrap-around needs no special case.
import type { TcpSegment } from "./packet.js";
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "./packet.js";
import { formatAddress } from "@wirescope/wire/identity";

/** One TCP connection. `a` is the client when `clientKnown`, else the sender of the first packet seen. */
export interface TcpConnection {
  /** Creation order, from 0 (matches tshark's tcp.stream for ordinary captures). */
  readonly id: number;
  readonly family: 4 | 6;
  readonly addrA: string;
  readonly portA: number;
  readonly addrB: string;
  readonly portB: number;
  /** A SYN or SYN-ACK was seen, so `a` is the end that connected. */
  readonly clientKnown: boolean;
  /** Time of the first packet, ns since the Unix epoch. */
  readonly startNs: bigint;
  /** Free slot for the consumer (e.g. an engine handle). */
  user: unknown;
}

export type CloseReason = "fin" | "rst" | "eof" | "reuse" | "idle";

/**
 * Receives the reassembled streams. `dir` 0 = bytes sent by `a`, 1 = sent by `b`. `bytes` is only
 * valid during the call: copy what you keep. Calls for one connection come in stream order.
 */
export interface StreamSink {
  open(conn: TcpConnection): void;
  data(conn: TcpConnection, dir: 0 | 1, bytes: Buffer, tsNs: bigint): void;
  /** `len` bytes of this direction are missing from the capture here. */
  gap(conn: TcpConnection, dir: 0 | 1, len: number, tsNs: bigint): void;
  close(conn: TcpConnection, reason: CloseReason, tsNs: bigint): void;
}

export interface ReassemblerOptions {
  /** Out-of-order bytes waiting per direction before the hole in front of them is given up. */
  maxPendingBytes: number;
  /** Out-of-order segments waiting per direction. */
  maxPendingSegments: number;
  /** Out-of-order bytes waiting across all connections. */
  maxTotalPendingBytes: number;
  /** Capture time a hole may stay open before it becomes a gap. */
  maxWaitNs: number;
  /** Capture time a closed connection is remembered, so late retransmissions do not open a new one. */
  closedLingerNs: number;
  /** Capture time without a packet after which an open connection is closed ("idle"); 0 = never. */
  idleNs: number;
  /**
   * Only connections whose (direction-independent) hash is `index` modulo `count` are followed;
   * the others are skipped without a trace. Lets several readers of one capture split its
   * connections between them.
   */
  shard: { index: number; count: number };
}

const defaults: ReassemblerOptions = {
  maxPendingBytes: 1 << 20,
  maxPendingSegments: 4096,
  maxTotalPendingBytes: 64 << 20,
  maxWaitNs: 3e9,
  closedLingerNs: 60e9,
  idleNs: 600e9,
  shard: { index: 0, count: 1 },
};

export interface ReassemblerStats {
  segments: number;
  connections: number;
  /** Bytes passed to the sink as data. */
  bytes: number;
  gaps: number;
  gapBytes: number;
  /** Bytes seen again after they were delivered (retransmissions, overlaps, keep-alive probes). */
  duplicateBytes: number;
  /** Segments that arrived ahead of a hole and had to wait. */
  outOfOrderSegments: number;
  /** Holes given up because the waiting bytes hit a bound. */
  pendingOverflows: number;
  /** Segments for no known connection that cannot start one (bare ACK/FIN/RST), or after close. */
  ignoredSegments: number;
}

interface Pending {
  seq: number;
  data: Buffer;
  /** Bytes after `data` the capture cut. */
  missing: number;
  tsNs: bigint;
}

class Half {
  init = false;
  next = 0;
  finSeen = false;
  finSeq = 0;
  /** Bytes delivered or skipped as gaps. */
  consumed = 0;
  pending: Pending[] = [];
  pendingBytes = 0;
  holeSinceNs = 0;
  peerAckValid = false;
  peerAck = 0;
}

class Conn implements TcpConnection {
  user: unknown = undefined;
  readonly halves: [Half, Half] = [new Half(), new Half()];
  closed = false;
  closedAtNs = 0;
  lastNs = 0;
  bucketNext: Conn | undefined = undefined;
  constructor(
    readonly id: number,
    readonly family: 4 | 6,
    readonly rawA: Buffer,
    readonly portA: number,
    readonly rawB: Buffer,
    readonly portB: number,
    readonly clientKnown: boolean,
    readonly startNs: bigint,
    readonly hash: number,
  ) {}
  get addrA(): string {
    return (this._addrA ??= formatAddress(this.rawA, 0, this.family));
  }
  get addrB(): string {
    return (this._addrB ??= formatAddress(this.rawB, 0, this.family));
  }
  private _addrA: string | undefined;
  private _addrB: string | undefined;
}

/** Reassembles the TCP connections of one capture. Feed segments in capture order, then finish(). */
export class TcpReassembler {
  readonly stats: ReassemblerStats = {
    segments: 0,
    connections: 0,
    bytes: 0,
    gaps: 0,
    gapBytes: 0,
    duplicateBytes: 0,
    outOfOrderSegments: 0,
    pendingOverflows: 0,
    ignoredSegments: 0,
  };
  private readonly opts: ReassemblerOptions;
  private readonly table = new Map<number, Conn>();
  private readonly withPending = new Set<Conn>();
  private readonly closedConns: Conn[] = [];
  private totalPending = 0;
  private nextId = 0;
  private nowNs = 0;
  private lastSweepNs = 0;
  private lastIdleSweepNs = 0;
  // one bigint per packet at most: the timestamp of the packet being pushed
  private tsSec = -1;
  private tsNsec = -1;
  private tsBigValue = 0n;
  private tsBigValid = false;

  constructor(
    private readonly sink: StreamSink,
    opts: Partial<ReassemblerOptions> = {},
  ) {
    this.opts = { ...defaults, ...opts };
    const { index, count } = this.opts.shard;
    if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(index) && index >= 0 && index < count)) throw new RangeError(`bad shard ${index}/${count}`);
    this.shardIndex = index;
    this.shardCount = count;
  }
  private readonly shardIndex: number;
  private readonly shardCount: number;

  /** The current packet's time as ns since the epoch (one bigint per packet, on demand). */
  private get tsBig(): bigint {
    if (!this.tsBigValid) {
      this.tsBigValue = BigInt(this.tsSec) * 1_000_000_000n + BigInt(this.tsNsec);
      this.tsBigValid = true;
    }
    return this.tsBigValue;
  }

  /** Connections currently open. */
  get openConnections(): number {
    let n = 0;
    for (const c of this.table.values()) for (let x: Conn | undefined = c; x; x = x.bucketNext) if (!x.closed) n++;
    return n;
  }

  /** One segment, as decoded by decodeTcp, with the capture time of its frame. */
  push(seg: TcpSegment, tsSec: number, tsNsec: number): void {
    // capture time moves on with every packet, whichever shard it belongs to
    if (tsSec !== this.tsSec || tsNsec !== this.tsNsec) {
      this.tsSec = tsSec;
      this.tsNsec = tsNsec;
      this.tsBigValid = false; // made when something is delivered: bare ACKs need no bigint
      this.nowNs = tsSec * 1e9 + tsNsec;
      if (this.nowNs - this.lastSweepNs > 1e9) this.sweep();
    }
    const alen = seg.family === 4 ? 4 : 16;
    const hash = (endpointHash(seg.buf, seg.srcOff, alen, seg.sport) ^ endpointHash(seg.buf, seg.dstOff, alen, seg.dport)) >>> 0;
    if (this.shardCount > 1 && hash % this.shardCount !== this.shardIndex) return;
    this.stats.segments++;
    let conn: Conn | undefined;
    let dir: 0 | 1 = 0;
    for (let c = this.table.get(hash); c; c = c.bucketNext) {
      if (c.family !== seg.family) continue;
      if (c.portA === seg.sport && c.portB === seg.dport && same(c.rawA, seg.buf, seg.srcOff, alen) && same(c.rawB, seg.buf, seg.dstOff, alen)) {
        conn = c;
        dir = 0;
        break;
      }
      if (c.portB === seg.sport && c.portA === seg.dport && same(c.rawB, seg.buf, seg.srcOff, alen) && same(c.rawA, seg.buf, seg.dstOff, alen)) {
        conn = c;
        dir = 1;
        break;
      }
    }
    const flags = seg.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const hasPayload = seg.payloadLen + seg.payloadMissing > 0;
    if (conn) {
      const h = conn.halves[dir];
      const starts = syn && (flags & TCP_ACK) === 0;
      // A fresh SYN on a tuple that already carried data or ended is the port being reused.
      const used = conn.closed || conn.halves[0].consumed + conn.halves[1].consumed > 0 || conn.halves[0].finSeen || conn.halves[1].finSeen;
      if (starts && used && !(h.init && h.consumed === 0 && !conn.closed && seg.seq === ((h.next - 1) >>> 0))) {
        this.unlink(conn);
        if (!conn.closed) this.closeConn(conn, "reuse");
        conn = undefined;
      } else if (conn.closed) {
        this.stats.ignoredSegments++;
        return;
      }
    }
    if (!conn) {
      if (!syn && !hasPayload) {
        this.stats.ignoredSegments++;
        return;
      }
      // SYN: the sender is the client. SYN-ACK: the receiver is. Otherwise the sender goes first.
      const senderIsA = !(syn && (flags & TCP_ACK) !== 0);
      const rawS = Buffer.from(seg.buf.subarray(seg.srcOff, seg.srcOff + alen));
      const rawD = Buffer.from(seg.buf.subarray(seg.dstOff, seg.dstOff + alen));
      conn = senderIsA
        ? new Conn(this.nextId++, seg.family, rawS, seg.sport, rawD, seg.dport, syn, this.tsBig, hash)
        : new Conn(this.nextId++, seg.family, rawD, seg.dport, rawS, seg.sport, true, this.tsBig, hash);
      dir = senderIsA ? 0 : 1;
      conn.bucketNext = this.table.get(hash);
      this.table.set(hash, conn);
      this.stats.connections++;
      this.sink.open(conn);
    }
    conn.lastNs = this.nowNs;
    const half = conn.halves[dir];
    const other = conn.halves[dir ^ 1]!;

    if (flags & TCP_RST) {
      this.closeConn(conn, "rst");
      return;
    }
    let seq = seg.seq;
    if (syn) {
      if (!half.init || half.consumed === 0) {
        half.init = true;
        half.next = (seq + 1) >>> 0;
      }
      seq = (seq + 1) >>> 0;
      // SYN-ACK: its ack is where the client's bytes start.
      if (flags & TCP_ACK && !other.init) {
        other.init = true;
        other.next = seg.ack;
      }
    }
    if (flags & TCP_ACK && other.init) {
      if (!other.peerAckValid || ((seg.ack - other.peerAck) | 0) > 0) {
        other.peerAck = seg.ack;
        other.peerAckValid = true;
      }
      if (other.pending.length && ((other.peerAck - other.next) | 0) > 0) this.giveUpHole(conn, (dir ^ 1) as 0 | 1, other, other.peerAck);
    }
    if (!hasPayload && !syn && half.init && !half.pending.length && !half.finSeen && ((seq - half.next) | 0) > 0) {
      // A bare segment (ACK, FIN) whose sequence number is past what we delivered: the bytes
      // between were sent and the capture missed them.
      const len = (seq - half.next) >>> 0;
      this.emitGap(conn, dir, len, this.tsBig);
      half.next = seq;
      half.consumed += len;
    }
    if (hasPayload) {
      if (!half.init) {
        half.init = true;
        half.next = seq;
      }
      if (!(half.finSeen && ((seq - half.finSeq) | 0) >= 0)) this.segment(conn, dir, half, seq, seg);
    }
    if (flags & TCP_FIN && half.init) {
      if (!half.finSeen) {
        half.finSeen = true;
        half.finSeq = (seq + seg.payloadLen + seg.payloadMissing) >>> 0;
      }
      if (other.finSeen) this.closeConn(conn, "fin");
    }
  }

  /** Ends the capture: every open connection gives up its holes and closes ("eof"). */
  finish(): void {
    const open: Conn[] = [];
    for (const c of this.table.values()) for (let x: Conn | undefined = c; x; x = x.bucketNext) if (!x.closed) open.push(x);
    open.sort((a, b) => a.id - b.id);
    for (const c of open) this.closeConn(c, "eof");
    this.table.clear();
    this.closedConns.length = 0;
  }

  private segment(conn: Conn, dir: 0 | 1, half: Half, seq: number, seg: TcpSegment): void {
    const d = (seq - half.next) | 0;
    if (d <= 0) {
      this.deliver(conn, dir, half, seq, seg.buf, seg.payloadOff, seg.payloadLen, seg.payloadMissing, this.tsBig);
      if (half.pending.length) this.drain(conn, dir, half);
      return;
    }
    // Ahead of a hole: keep a copy (the frame's bytes are reused) in sequence order.
    this.stats.outOfOrderSegments++;
    const p: Pending = { seq, data: Buffer.from(seg.buf.subarray(seg.payloadOff, seg.payloadOff + seg.payloadLen)), missing: seg.payloadMissing, tsNs: this.tsBig };
    const list = half.pending;
    let i = list.length;
    while (i > 0 && ((list[i - 1]!.seq - seq) | 0) > 0) i--;
    list.splice(i, 0, p);
    if (list.length === 1) {
      half.holeSinceNs = this.nowNs;
      this.withPending.add(conn);
    }
    half.pendingBytes += p.data.length;
    this.totalPending += p.data.length;
    if (half.pendingBytes > this.opts.maxPendingBytes || list.length > this.opts.maxPendingSegments || this.totalPending > this.opts.maxTotalPendingBytes) {
      this.stats.pendingOverflows++;
      this.giveUpHole(conn, dir, half);
    } else if (half.peerAckValid && ((half.peerAck - half.next) | 0) > 0) {
      this.giveUpHole(conn, dir, half, half.peerAck);
    }
  }

  /** Delivers bytes starting at `seq` ≤ next, trimming what was already delivered. */
  private deliver(conn: Conn, dir: 0 | 1, half: Half, seq: number, buf: Buffer, off: number, len: number, missing: number, ts: bigint): void {
    const trim = (half.next - seq) | 0;
    const total = len + missing;
    if (trim >= total) {
      this.stats.duplicateBytes += total;
      return;
    }
    this.stats.duplicateBytes += trim;
    if (trim < len) {
      this.stats.bytes += len - trim;
      this.sink.data(conn, dir, buf.subarray(off + trim, off + len), ts);
      if (missing) this.emitGap(conn, dir, missing, ts);
    } else {
      this.emitGap(conn, dir, total - trim, ts);
    }
    half.next = (half.next + total - trim) >>> 0;
    half.consumed += total - trim;
  }

  private drain(conn: Conn, dir: 0 | 1, half: Half): void {
    const list = half.pending;
    let k = 0;
    while (k < list.length && ((list[k]!.seq - half.next) | 0) <= 0) {
      const p = list[k++]!;
      this.deliver(conn, dir, half, p.seq, p.data, 0, p.data.length, p.missing, p.tsNs);
      half.pendingBytes -= p.data.length;
      this.totalPending -= p.data.length;
    }
    if (k) list.splice(0, k);
    if (list.length) half.holeSinceNs = this.nowNs;
    else if (!conn.halves[dir ^ 1]!.pending.length) this.withPending.delete(conn);
  }

  /**
   * Gives up the hole in front of the first waiting segment: a gap, then what now follows. With
   * `upTo` (the peer's ack), only the acknowledged part of the hole is given up: the rest may
   * still come as a retransmission.
   */
  private giveUpHole(conn: Conn, dir: 0 | 1, half: Half, upTo?: number): void {
    const first = half.pending[0];
    if (!first) return;
    let end = first.seq;
    if (upTo !== undefined && ((upTo - end) | 0) < 0) end = upTo;
    const len = (end - half.next) >>> 0;
    if (len > 0) {
      this.emitGap(conn, dir, len, first.tsNs);
      half.next = end;
      half.consumed += len;
    }
    this.drain(conn, dir, half);
  }

  private emitGap(conn: Conn, dir: 0 | 1, len: number, ts: bigint): void {
    this.stats.gaps++;
    this.stats.gapBytes += len;
    this.sink.gap(conn, dir, len, ts);
  }

  private closeConn(conn: Conn, reason: CloseReason): void {
    for (const dir of [0, 1] as const) {
      const half = conn.halves[dir];
      while (half.pending.length) this.giveUpHole(conn, dir, half);
    }
    this.withPending.delete(conn);
    conn.closed = true;
    conn.closedAtNs = this.nowNs;
    this.closedConns.push(conn);
    this.sink.close(conn, reason, this.tsBig);
  }

  private unlink(conn: Conn): void {
    let head = this.table.get(conn.hash);
    if (head === conn) {
      if (conn.bucketNext) this.table.set(conn.hash, conn.bucketNext);
      else this.table.delete(conn.hash);
      return;
    }
    for (; head; head = head.bucketNext) {
      if (head.bucketNext === conn) {
        head.bucketNext = conn.bucketNext;
        return;
      }
    }
  }

  /** Once per second of capture time: give up holes that waited too long, forget old closed conns. */
  private sweep(): void {
    this.lastSweepNs = this.nowNs;
    for (const conn of [...this.withPending]) {
      for (const dir of [0, 1] as const) {
        const half = conn.halves[dir];
        if (half.pending.length && this.nowNs - half.holeSinceNs > this.opts.maxWaitNs) this.giveUpHole(conn, dir, half);
      }
    }
    if (this.opts.idleNs > 0 && this.nowNs - this.lastIdleSweepNs > Math.min(60e9, this.opts.idleNs / 2)) {
      // every minute of capture time at most: connections silent for longer than idleNs end
      this.lastIdleSweepNs = this.nowNs;
      const idle: Conn[] = [];
      for (const c of this.table.values()) for (let x: Conn | undefined = c; x; x = x.bucketNext) if (!x.closed && this.nowNs - x.lastNs > this.opts.idleNs) idle.push(x);
      idle.sort((a, b) => a.id - b.id);
      for (const c of idle) this.closeConn(c, "idle");
    }
    let k = 0;
    const list = this.closedConns;
    while (k < list.length && this.nowNs - list[k]!.closedAtNs > this.opts.closedLingerNs) this.unlink(list[k++]!);
    if (k) list.splice(0, k);
  }
}

function endpointHash(buf: Buffer, off: number, len: number, port: number): number {
  let h = 0x811c9dc5 ^ port;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ buf[off + i]!, 0x01000193);
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
}

function same(a: Buffer, buf: Buffer, off: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[i] !== buf[off + i]) return false;
  return true;
}
