// The hot path: a native batch → RawBatch bytes per partition, without building an object per
// event. Data records are copied straight from the native buffer into protobuf wire format
// (DataEvent, field 5 of RawBatch); connection records, which are rare, go through RawBatcher's
// object path (process enrichment) and protobuf-es. Protobuf lets the two halves be concatenated:
// repeated fields of concatenated messages are appended.
//
//   RawBatch bytes = toBinary(RawBatch{node, probe_id, partition, conns, drops, batch_seq})
//                  ‖ (0x2a len DataEvent)*
//
// 64-bit fields (conn_key, seq, timestamp) are handled as two u32 halves: no BigInt per event.
import { toBinary } from "@bufbuild/protobuf";
import { RawBatchSchema } from "@wirescope/common";
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_EV_TLS_LIB, WS_CONN_F_TLS } from "./gen/layout.js";
import { decodeBatch, type DecodeStats } from "./decode.js";
import type { RawBatcher } from "./raw-batcher.js";
import type { ConnRecord } from "./events.js";
import { PartitionHash } from "./partition.js";
import type { Http1Trimmer } from "./http1-trim.js";

const TWO32 = 0x1_0000_0000;

/** Growable byte buffer with protobuf varint writers. */
class Out {
  buf: Buffer;
  len = 0;
  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  byte(v: number): void {
    this.buf[this.len++] = v;
  }
  varint32(v: number): void {
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
  }
  varint64(lo: number, hi: number): void {
    while (hi > 0 || lo > 0x7f) {
      this.buf[this.len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.len++] = lo;
  }
}

function size32(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function size64(lo: number, hi: number): number {
  if (hi === 0) return size32(lo);
  let n = 0;
  while (hi > 0 || lo > 0x7f) {
    n++;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  return n + 1;
}

/** Appends one DataEvent (field 5 of RawBatch) in wire format; zero values omitted as proto3 does. */
function writeDataEvent(o: Out, keyLo: number, keyHi: number, dir: number, seqLo: number, seqHi: number, tsLo: number, tsHi: number,
  tid: number, buf: Buffer, at: number, plen: number, orig: number): void {
  let body = 0;
  if (keyLo || keyHi) body += 1 + size64(keyLo, keyHi);
  if (dir) body += 2;
  if (seqLo || seqHi) body += 1 + size64(seqLo, seqHi);
  body += 1 + size64(tsLo, tsHi);
  if (tid) body += 1 + size32(tid);
  if (plen) body += 1 + size32(plen) + plen;
  if (orig) body += 1 + size32(orig);
  o.ensure(body + 6);
  o.byte(0x2a);
  o.varint32(body);
  if (keyLo || keyHi) (o.byte(0x08), o.varint64(keyLo, keyHi));
  if (dir) (o.byte(0x10), o.byte(dir));
  if (seqLo || seqHi) (o.byte(0x18), o.varint64(seqLo, seqHi));
  o.byte(0x20);
  o.varint64(tsLo, tsHi);
  if (tid) (o.byte(0x28), o.varint32(tid));
  if (plen) {
    o.byte(0x32);
    o.varint32(plen);
    buf.copy(o.buf, o.len, at, at + plen);
    o.len += plen;
  }
  if (orig) (o.byte(0x38), o.varint32(orig));
}

export interface EncodedBatch {
  partition: number;
  data: Uint8Array;
  /** Data events in this message. */
  events: number;
}

export interface RawEncoderOptions {
  node: string;
  partitions: number;
  /** Wall clock minus CLOCK_MONOTONIC, ns. */
  monoToWallOffsetNs: bigint;
  /** Data bytes per message before another one is started. */
  maxBatchBytes: number;
  /** Cuts HTTP/1.1 bodies out of the data (stated as gaps); none = every byte published. */
  trimmer?: Http1Trimmer;
  /**
   * A partition's data waits for later native batches until its oldest event is this old (kernel
   * time), so a partition gets one message per batch age rather than one per native batch when
   * native batches close by size. 0 = a message per partition per native batch. Connection events
   * and full messages cut at once; `flushDue` cuts what has come of age.
   */
  holdMs?: number;
  /** CLOCK_MONOTONIC now, ns (what the kernel stamps events with); injectable for tests. */
  monoNow?: () => number;
}

const monoNow = (): number => Number(process.hrtime.bigint());

/** A connection key as an exact number: the low 40 bits (the per-instance counter, see bpf/). */
export const keyNumber = (keyLo: number, keyHi: number): number => (keyHi & 0xff) * TWO32 + keyLo;

export class RawEncoder {
  private readonly part: PartitionHash;
  private readonly offLo: number;
  private readonly offHi: number;
  private readonly outs = new Map<number, Out>();
  /** Kernel (CLOCK_MONOTONIC) ns of the oldest event waiting in each partition's Out. */
  private readonly oldest = new Map<number, number>();
  private readonly counts = new Map<number, number>();
  readonly decodeStats: DecodeStats = { records: 0, errors: 0 };

  constructor(
    private readonly o: RawEncoderOptions,
    private readonly batcher: RawBatcher,
    /** Sees every connection event (e.g. a ConnTracker). */
    private readonly onConn?: (c: ConnRecord) => void,
  ) {
    this.part = new PartitionHash(o.node, o.partitions);
    this.offLo = Number(o.monoToWallOffsetNs & 0xffffffffn);
    this.offHi = Number(o.monoToWallOffsetNs >> 32n);
  }

  private out(p: number): Out {
    let o = this.outs.get(p);
    if (!o) this.outs.set(p, (o = new Out()));
    return o;
  }

  /** Encodes one native batch into RawBatch messages, one (or more, by size) per partition. */
  encode(buf: Buffer): { messages: EncodedBatch[]; events: number; bytes: number } {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const messages: EncodedBatch[] = [];
    let connRecords: Buffer[] | undefined;
    let events = 0;
    let bytes = 0;
    let off = 0;
    while (off + 4 <= buf.length) {
      const len = dv.getUint32(off, true);
      const s = off + 4;
      if (len < HDR.size || s + len > buf.length) {
        this.decodeStats.errors++;
        break;
      }
      const type = dv.getUint32(s + HDR.type, true);
      if (type === WS_EV_DATA) {
        const plen = len >= DATA.headerSize ? dv.getUint32(s + DATA.len, true) : -1;
        if (plen < 0 || DATA.headerSize + plen > len) {
          this.decodeStats.errors++;
          break;
        }
        const keyLo = dv.getUint32(s + HDR.conn_key, true);
        const keyHi = dv.getUint32(s + HDR.conn_key + 4, true);
        const p = this.part.of(keyLo, keyHi);
        const seqLo = dv.getUint32(s + DATA.seq, true);
        const seqHi = dv.getUint32(s + DATA.seq + 4, true);
        let tsLo = dv.getUint32(s + HDR.ts_ns, true) + this.offLo;
        let tsHi = dv.getUint32(s + HDR.ts_ns + 4, true) + this.offHi;
        if (tsLo >= TWO32) {
          tsLo -= TWO32;
          tsHi += 1;
        }
        const dir = buf[s + DATA.direction];
        const tid = dv.getUint32(s + HDR.tid, true);
        const orig = dv.getUint32(s + DATA.original_length, true);
        const at = s + DATA.payload;
        const o = this.out(p);
        if (o.len === 0) this.oldest.set(p, dv.getUint32(s + HDR.ts_ns, true) + dv.getUint32(s + HDR.ts_ns + 4, true) * TWO32);
        const pieces = this.o.trimmer ? this.o.trimmer.trim(keyNumber(keyLo, keyHi), dir, buf, at, plen, orig) : 0;
        bytes += plen;
        if (pieces === 0) writeDataEvent(o, keyLo, keyHi, dir, seqLo, seqHi, tsLo, tsHi, tid, buf, at, plen, orig);
        else {
          // one DataEvent per piece: kept bytes, then the body bytes left out as a stated gap
          const t = this.o.trimmer!.pieces;
          for (let i = 0; i < pieces * 3; i += 3) {
            let lo = seqLo + t[i];
            let hi = seqHi;
            if (lo >= TWO32) ((lo -= TWO32), (hi += 1));
            writeDataEvent(o, keyLo, keyHi, dir, lo, hi, tsLo, tsHi, tid, buf, at + t[i], t[i + 1], t[i + 1] + t[i + 2]);
          }
        }
        const evs = pieces || 1;
        this.counts.set(p, (this.counts.get(p) ?? 0) + evs);
        events += evs;
        if (o.len >= this.o.maxBatchBytes) messages.push(this.cut(p, []));
      } else if (type === WS_EV_OPEN || type === WS_EV_CLOSE) {
        // an open (new connection, or one turning TLS: its plaintext starts a new byte stream)
        // resets the trimmer before the data after it in this batch
        if (type === WS_EV_OPEN) {
          const keyLo = dv.getUint32(s + HDR.conn_key, true);
          const keyHi = dv.getUint32(s + HDR.conn_key + 4, true);
          this.o.trimmer?.forget(keyNumber(keyLo, keyHi));
          // a connection turning TLS: the data held for its partition (its handshake among it)
          // goes out first, or a consumer applying the message's opens before its data would
          // put the ciphertext into the plaintext's stream
          if (len >= CONN.size && buf[s + CONN.flags] & WS_CONN_F_TLS) {
            const p = this.part.of(keyLo, keyHi);
            if ((this.outs.get(p)?.len ?? 0) > 0) messages.push(this.cut(p, []));
          }
        }
        (connRecords ??= []).push(buf.subarray(off, (s + len + 7) & ~7));
        events++;
      } else if (type !== WS_EV_TLS_LIB) {
        this.decodeStats.errors++;
      }
      this.decodeStats.records++;
      off = (s + len + 7) & ~7;
    }
    // connection events: the object path (process enrichment), grouped with the data
    const byPart = new Map<number, ReturnType<RawBatcher["connEvent"]>[]>();
    if (connRecords) {
      const decoded = decodeBatch(Buffer.concat(connRecords), this.decodeStats);
      // opens were counted once already by the loop above
      this.decodeStats.records -= decoded.conns.length;
      const ordered = [...decoded.conns.filter((c) => c.kind === "open"), ...decoded.conns.filter((c) => c.kind === "close")];
      for (const c of ordered) {
        this.onConn?.(c);
        if (c.kind === "close") this.forget(c.connKey);
        const p = this.part.of(Number(c.connKey & 0xffffffffn), Number(c.connKey >> 32n));
        let l = byPart.get(p);
        if (!l) byPart.set(p, (l = []));
        l.push(this.batcher.connEvent(c));
      }
    }
    const now = this.o.holdMs ? (this.o.monoNow ?? monoNow)() : 0;
    for (const p of new Set([...this.outs.keys(), ...byPart.keys()])) {
      if (byPart.has(p) || ((this.outs.get(p)?.len ?? 0) > 0 && this.due(p, now))) messages.push(this.cut(p, byPart.get(p) ?? []));
    }
    return { messages, events, bytes };
  }

  private due(p: number, nowMono: number): boolean {
    return !this.o.holdMs || nowMono - (this.oldest.get(p) ?? 0) >= this.o.holdMs * 1e6;
  }

  /**
   * Messages for the partitions whose waiting data has come of age (`holdMs`); all of them when
   * `all` (at stop). `nowMono`: CLOCK_MONOTONIC ns, what the kernel stamps events with.
   */
  flushDue(all = false, nowMono = (this.o.monoNow ?? monoNow)()): EncodedBatch[] {
    const out: EncodedBatch[] = [];
    for (const [p, o] of this.outs) if (o.len > 0 && (all || this.due(p, nowMono))) out.push(this.cut(p, []));
    return out;
  }

  /** RawBatch messages carrying only these connection events (e.g. closes the probe synthesized). */
  encodeConns(conns: ConnRecord[]): EncodedBatch[] {
    const byPart = new Map<number, ReturnType<RawBatcher["connEvent"]>[]>();
    for (const c of conns) {
      if (c.kind === "close") this.forget(c.connKey);
      const p = this.part.of(Number(c.connKey & 0xffffffffn), Number(c.connKey >> 32n));
      let l = byPart.get(p);
      if (!l) byPart.set(p, (l = []));
      l.push(this.batcher.connEvent(c));
    }
    return [...byPart].map(([p, l]) => this.cut(p, l));
  }

  private forget(connKey: bigint): void {
    this.o.trimmer?.forget(keyNumber(Number(connKey & 0xffffffffn), Number((connKey >> 32n) & 0xffn)));
  }

  /** RawBatch fields 1 (node) and 2 (probe_id), encoded once. */
  private identity: Buffer | undefined;

  /**
   * The header of a message without connection events or drops, written by hand (the common
   * case: one per partition per flush; protobuf-es's reflective encoder cost more than the data):
   * node, probe_id, partition, batch_seq, exactly as toBinary writes them.
   */
  private plainHeader(p: number): Buffer | undefined {
    const seq = this.batcher.plainSeq(p);
    if (seq === undefined) return undefined;
    this.identity ??= Buffer.from(toBinary(RawBatchSchema, this.batcher.identity()));
    const h = this.head;
    h.len = 0;
    h.ensure(this.identity.length + 16);
    this.identity.copy(h.buf, 0);
    h.len = this.identity.length;
    if (p) (h.byte(0x18), h.varint32(p));
    h.byte(0x38);
    h.varint64(Number(seq & 0xffffffffn), Number(seq >> 32n));
    return h.buf.subarray(0, h.len);
  }

  private readonly head = new Out(256);

  private cut(p: number, conns: ReturnType<RawBatcher["connEvent"]>[]): EncodedBatch {
    const header = (conns.length ? undefined : this.plainHeader(p)) ?? toBinary(RawBatchSchema, this.batcher.header(p, conns));
    const o = this.outs.get(p);
    const dataLen = o?.len ?? 0;
    const msg = Buffer.allocUnsafe(header.length + dataLen);
    msg.set(header, 0);
    if (o && dataLen) o.buf.copy(msg, header.length, 0, dataLen);
    if (o) o.len = 0;
    const events = this.counts.get(p) ?? 0;
    this.counts.set(p, 0);
    return { partition: p, data: msg, events };
  }
}
