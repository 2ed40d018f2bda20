// The probe's one RawBatch encoder, fed by every source: native batches of the eBPF source
// (`encode`, the hot path: straight from the ring-buffer records), decoded events of a pcap replay
// (`encodeEvents`) and connection closes the probe synthesizes (`encodeConns`). Events are written
// in protobuf wire format into one reusable buffer per partition, field numbers from the generated
// tags of proto/ (@wirescope/wire); no object per data event, no protobuf-es on the way.
//
//   RawBatch bytes = header: node, probe_id, partition, drops, batch_seq,
//                            data_time_base_ns, data_key_base (written when cut)
//                  ‖ (0x22 len ConnEvent | 0x2a len DataEvent)*   (in the order they came)
//
// A DataEvent carries its time as the offset from the message's data_time_base_ns (the first
// event's time less 2^24 ns of slack for events a little out of order: 4 bytes, not 9), its
// conn_key as the 40-bit counter without the probe instance's high bits (data_key_base: 2-4
// bytes, not 10), and no original_length when nothing was cut: ~13 bytes of ~38 of framing per
// event. An event older than the slack, or of other high key bits, is written as the difference
// modulo 2^64 (a 10-byte varint; readers add modulo 2^64): correct, only not small.
//
// Repeated fields may interleave on the wire: a reader collects conns and data each in order, and
// the parser applies a message's opens, then its data, then its closes. Events wait for later
// native batches until the oldest waiting in any partition is `holdMs` old (kernel time),
// connection events included; then every partition's message is cut at once. So a partition gets
// at most one message per hold period whatever the mix of events, and the messages of a period
// leave together.
//
// The bytes are written with the wire package's writer (@wirescope/wire writer.ts): a WireWriter per
// partition's message, DataEvents sized first and written at its end with the cursor in a local
// (the per-event path), ConnEvents in place with their length back-patched (beginLen/endLen).
// A ConnEvent's process (field 15) is encoded once per process and reused as bytes.
// 64-bit fields of data events (conn_key, seq, timestamp) are handled as two u32 halves: no BigInt
// per event.
import {
  ConnKind,
  ConnEventTag,
  DataEventTag,
  RawBatchTag,
  RawBatchDropsEntryTag,
  type ConnEventField,
  type DataEventField,
  type FieldCoverage,
  type ProcessInfoField,
  type RawBatchField,
  WireWriter,
  varintLen,
  varint64Len,
  writeVarint,
  writeVarint64,
  writeProcessInfo,
} from "@wirescope/wire";
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_EV_TLS_LIB, WS_CONN_F_TLS, WS_CONN_F_REOPEN, WS_DATA_F_ANSWER } from "./gen/layout.js";
import { decodeConn, type DecodeStats } from "./decode.js";
import type { ConnRecord, EventBatch } from "./events.js";
import type { ProcInfo, ProcessCache } from "./process-info.js";
import { PartitionHash } from "./partition.js";
import type { Http1Trimmer } from "./http1-trim.js";

/** What the encoder writes of each message (a field added to proto/ fails the build here); raw-encoder.test.ts checks it. */
export const RAW_FIELDS = {
  RawBatch: { node: "written", probeId: "written", partition: "written", conns: "written", data: "written", drops: "written", batchSeq: "written", dataTimeBaseNs: "written", dataKeyBase: "written", servedBefore: "written", served: "written" } satisfies FieldCoverage<typeof RawBatchField>,
  ConnEvent: {
    connKey: "written", kind: "written", role: "written", localAddress: "written", localPort: "written", remoteAddress: "written", remotePort: "written",
    tid: "written", timestampNs: "written", process: "written", inferred: "written", tls: "written", tlsLibrary: "written", observedFraction: "written", shed: "written",
  } satisfies FieldCoverage<typeof ConnEventField>,
  DataEvent: { connKey: "written", direction: "written", seq: "written", timestampNs: "written", tid: "written", payload: "written", originalLength: "written" } satisfies FieldCoverage<typeof DataEventField>,
  ProcessInfo: { pid: "written", name: "written", exe: "written", cmdline: "written", containerId: "written", pod: "written", namespace: "written", container: "written", workload: "written" } satisfies FieldCoverage<typeof ProcessInfoField>,
} as const;

const TWO32 = 0x1_0000_0000;
/** A message's time base is its first data event's time less this (ns): room for events a little out of order. */
const TIME_SLACK = 1 << 24;
/** High 24 bits of a conn_key (the probe instance's, in the key's high 32-bit half). */
const KEY_HIGH = 0xffffff00;

// The carries and borrows between the 32-bit halves below are arithmetic, not branches: a branch
// first taken after the encoder was optimized (the low half of a nanosecond clock wraps every
// 4.3 s) throws the optimized code away, and recompiling `encode` cost 30-110 ms of CPU each time,
// several times in the first seconds under load.
/** 1 when a low half summed past 32 bits, else 0. */
const carry = (lo: number): number => (lo >= TWO32 ? 1 : 0);
/** 1 when a low half went below 0, else 0. */
const borrow = (lo: number): number => (lo < 0 ? 1 : 0);

/**
 * Appends one DataEvent (field 5 of RawBatch) in wire format; zero values omitted as proto3 does.
 * `keyLo`/`keyHi` are the key less the message's key base, `offLo`/`offHi` the time less its time
 * base (both modulo 2^64); `orig` equal to `plen` is not written (nothing cut).
 */
function writeDataEvent(o: WireWriter, keyLo: number, keyHi: number, dir: number, seqLo: number, seqHi: number, offLo: number, offHi: number,
  tid: number, buf: Uint8Array, at: number, plen: number, orig: number): void {
  const off = offLo || offHi;
  if (orig === plen) orig = 0;
  // sized first (the length goes before the body), then written with the cursor in a local
  let body = 0;
  if (keyLo || keyHi) body += 1 + varint64Len(keyLo, keyHi);
  if (dir) body += 2;
  if (seqLo || seqHi) body += 1 + varint64Len(seqLo, seqHi);
  if (off) body += 1 + varint64Len(offLo, offHi);
  if (tid) body += 1 + varintLen(tid);
  if (plen) body += 1 + varintLen(plen) + plen;
  if (orig) body += 1 + varintLen(orig);
  o.ensure(body + 6);
  const b = o.buf;
  // every tag here is below 128 (one byte; raw-encoder.test.ts checks): stored, not encoded
  let i = o.len;
  b[i++] = RawBatchTag.data;
  i = writeVarint(b, i, body);
  if (keyLo || keyHi) (b[i++] = DataEventTag.connKey), (i = writeVarint64(b, i, keyLo, keyHi));
  if (dir) (b[i++] = DataEventTag.direction), (b[i++] = dir);
  if (seqLo || seqHi) (b[i++] = DataEventTag.seq), (i = writeVarint64(b, i, seqLo, seqHi));
  if (off) (b[i++] = DataEventTag.timestampNs), (i = writeVarint64(b, i, offLo, offHi));
  if (tid) (b[i++] = DataEventTag.tid), (i = writeVarint(b, i, tid));
  if (plen) {
    b[i++] = DataEventTag.payload;
    i = writeVarint(b, i, plen);
    b.set(buf.subarray(at, at + plen), i);
    i += plen;
  }
  if (orig) (b[i++] = DataEventTag.originalLength), (i = writeVarint(b, i, orig));
  o.len = i;
}

/** A process's field of a ConnEvent (15, ProcessInfo), encoded once. */
interface ProcBytes {
  name: string;
  pod: string;
  process: Uint8Array;
}

function encodeProcess(pid: number, p: ProcInfo, name: string, w: WireWriter): ProcBytes {
  writeProcessInfo(w.reset(), pid, name, p);
  return { name, pod: p.pod, process: w.bytes() };
}

/** One partition's message being filled. */
class Part {
  readonly out = new WireWriter(64 * 1024);
  /** Kernel (CLOCK_MONOTONIC) ns of the oldest event waiting in `out`. */
  oldest = 0;
  /** Events in `out`. */
  count = 0;
  /** batch_seq of the last message cut. */
  seq = 0;
  /** `out` holds data events: their bases below are set. */
  hasData = false;
  /** data_time_base_ns as 32-bit halves. */
  timeLo = 0;
  timeHi = 0;
  /** data_key_base's high half (its low half is 0). */
  keyHi = 0;
  /** Requests served (answers started at server ends, WS_DATA_F_ANSWER) in `out`, and in the messages cut before. */
  served = 0;
  servedBefore = 0;
  constructor(readonly p: number) {}
}

export interface EncodedBatch {
  partition: number;
  data: Uint8Array;
  /** Events in this message. */
  events: number;
  /** Its batch_seq. */
  seq: number;
  /** Requests served whose answers start in it (RawBatch.served). */
  served: number;
  /** The drops it reports (RawBatch.drops), when it reports any: to report again if it is unheard. */
  drops?: Map<string, number>;
}

export interface RawEncoderOptions {
  node: string;
  probeId: string;
  partitions: number;
  /** Who owns each connection (ConnEvent's process fields). */
  processes: ProcessCache;
  /** Wall clock minus the events' clock, ns (0 when the source stamps wall clock, as pcap does). */
  monoToWallOffsetNs: bigint;
  /** Bytes per message before another one is started (NATS max_payload is 1 MiB by default). */
  maxBatchBytes: number;
  /** Cuts HTTP/1.1 bodies out of the data (stated as gaps); none = every byte published. */
  trimmer?: Http1Trimmer;
  /**
   * Events wait for later native batches until the oldest waiting (in any partition) is this old
   * (kernel time), so a partition gets one message per batch age rather than one per native
   * batch. 0 = a message per partition per batch. Full messages cut at once; `flushDue` cuts
   * every partition once the oldest has come of age.
   */
  holdMs?: number;
  /** CLOCK_MONOTONIC now, ns (what the kernel stamps events with); injectable for tests. */
  monoNow?: () => number;
}

const monoNow = (): number => Number(process.hrtime.bigint());

/** CLOCK_MONOTONIC (what the kernel stamps) to wall clock, measured once; `skewNs` added. */
export function monoToWallClock(skewNs = 0n): (mono: bigint) => bigint {
  const offset = monoToWallOffset(skewNs);
  return (mono) => mono + offset;
}

/**
 * Wall clock minus CLOCK_MONOTONIC, ns (process.hrtime is CLOCK_MONOTONIC on Linux, the clock the
 * kernel stamps events with), plus `skewNs` (a node whose clock is off, simulated). Read now, at
 * the wall clock's millisecond edges: Date.now() changes its value exactly at a whole millisecond,
 * so the hrtime readings around the first call that shows a new value bracket that instant (a
 * few hundred ns). A busy loop of under 1 ms per edge; the tightest of at least 3 edges (a
 * preemption widens a bracket, which is then passed over).
 *
 * Before: Date.now() alone was cut to the millisecond (two probes of one machine up to 1 ms
 * apart, and a server's request before its client's call); then the process's time origin
 * (performance.timeOrigin, a wall clock and a monotonic reading node takes at its start, not at
 * once): in a CI run two probes of one machine were 8 ms apart (test/probe-netns: every server
 * request of a keep-alive connection 8 ms before its client's call, only their offsets differ).
 */
export function monoToWallOffset(skewNs = 0n): bigint {
  let best = 0n;
  let bestGap = -1n;
  for (let edge = 0; edge < 10 && !(edge >= 3 && bestGap < 20_000n); edge++) {
    // the edge lies between the last read that still shows t0 and the first that does not: from
    // the hrtime taken before the one to the hrtime taken after the other
    let before = process.hrtime.bigint();
    const t0 = Date.now();
    for (;;) {
      const between = process.hrtime.bigint();
      const t = Date.now();
      const after = process.hrtime.bigint();
      if (t !== t0) {
        if (bestGap < 0n || after - before < bestGap) {
          bestGap = after - before;
          best = BigInt(t) * 1_000_000n - (before + after) / 2n;
        }
        break;
      }
      before = between;
    }
  }
  return best + skewNs;
}

/** A connection key as an exact number: the low 40 bits (the per-instance counter, see bpf/). */
export const keyNumber = (keyLo: number, keyHi: number): number => (keyHi & 0xff) * TWO32 + keyLo;

const keyLoOf = (k: bigint): number => Number(k & 0xffffffffn);
const keyHiOf = (k: bigint): number => Number((k >> 32n) & 0xffffffffn);

export class RawEncoder {
  private readonly part: PartitionHash;
  private readonly offLo: number;
  private readonly offHi: number;
  /** By partition number (0..P-1); `used` lists the ones that exist, for the flush scans. */
  private readonly parts: (Part | undefined)[];
  private readonly used: Part[] = [];
  private pendingDrops = new Map<string, number>();
  /** Process fields by process (freed with the cache's entry). */
  private readonly procBytes = new WeakMap<ProcInfo, ProcBytes>();
  private readonly scratch = new WireWriter(4096);
  private readonly head = new WireWriter(256);
  /** RawBatch fields 1 (node) and 2 (probe_id), encoded once. */
  private readonly identity: Uint8Array;
  readonly decodeStats: DecodeStats = { records: 0, errors: 0 };

  constructor(
    private readonly o: RawEncoderOptions,
    /** Sees every connection event (e.g. a ConnTracker). */
    private readonly onConn?: (c: ConnRecord) => void,
  ) {
    this.part = new PartitionHash(o.node, o.partitions);
    // every slot from the start: filling a hole later changes the array's shape, which throws
    // away the encoder's optimized code once per new partition
    this.parts = new Array<Part | undefined>(o.partitions).fill(undefined);
    this.offLo = Number(o.monoToWallOffsetNs & 0xffffffffn);
    this.offHi = Number(o.monoToWallOffsetNs >> 32n);
    const h = new WireWriter();
    h.string(RawBatchTag.node, o.node);
    h.string(RawBatchTag.probeId, o.probeId);
    this.identity = h.bytes();
  }

  /** Adds drops (by reason) to report in the next message (the sum over all messages is the total). */
  addDrops(drops: Record<string, number>): void {
    for (const k in drops) {
      const v = drops[k]!;
      if (v > 0) this.pendingDrops.set(k, (this.pendingDrops.get(k) ?? 0) + v);
    }
  }

  private out(p: number): Part {
    let x = this.parts[p];
    if (!x) {
      this.parts[p] = x = new Part(p);
      this.used.push(x);
    }
    return x;
  }

  /** Encodes one native batch; returns the messages of the partitions that are due (or full). */
  encode(batch: Buffer): { messages: EncodedBatch[]; events: number; bytes: number } {
    const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    // a plain view: a Buffer's subarray (each payload copied out) constructs a Buffer, a
    // Uint8Array's does not; the trimmer's byte reads then see one kind of array
    const buf = new Uint8Array(batch.buffer, batch.byteOffset, batch.byteLength);
    const messages: EncodedBatch[] = [];
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
        const monoLo = dv.getUint32(s + HDR.ts_ns, true);
        const monoHi = dv.getUint32(s + HDR.ts_ns + 4, true);
        const tc = carry(monoLo + this.offLo);
        const tsLo = monoLo + this.offLo - tc * TWO32;
        const tsHi = monoHi + this.offHi + tc;
        const dir = buf[s + DATA.direction]!;
        const tid = dv.getUint32(s + HDR.tid, true);
        const orig = dv.getUint32(s + DATA.original_length, true);
        const at = s + DATA.payload;
        const x = this.out(p);
        const o = x.out;
        if (o.len === 0) x.oldest = monoLo + monoHi * TWO32;
        this.place(x, tsLo, tsHi, keyHi);
        const offLo = this.offLo_;
        const offHi = this.offHi_;
        const kHi = this.keyHi_;
        const pieces = this.o.trimmer ? this.o.trimmer.trim(keyNumber(keyLo, keyHi), dir, buf, at, plen, orig, seqLo + seqHi * TWO32, buf[s + DATA.stream]!) : 0;
        bytes += plen;
        if (pieces === 0) writeDataEvent(o, keyLo, kHi, dir, seqLo, seqHi, offLo, offHi, tid, buf, at, plen, orig);
        else {
          // one DataEvent per piece: kept bytes, then the body bytes left out as a stated gap
          const t = this.o.trimmer!.pieces;
          for (let i = 0; i < pieces * 3; i += 3) {
            const sc = carry(seqLo + t[i]!);
            const lo = seqLo + t[i]! - sc * TWO32;
            const hi = seqHi + sc;
            writeDataEvent(o, keyLo, kHi, dir, lo, hi, offLo, offHi, tid, buf, at + t[i]!, t[i + 1]!, t[i + 1]! + t[i + 2]!);
          }
        }
        const evs = pieces || 1;
        x.count += evs;
        x.served += buf[s + DATA.flags]! & WS_DATA_F_ANSWER;
        events += evs;
        if (o.len >= this.o.maxBatchBytes) messages.push(this.cut(p));
      } else if (type === WS_EV_OPEN || type === WS_EV_CLOSE) {
        if (len < CONN.size) {
          this.decodeStats.errors++;
          break;
        }
        const c = decodeConn(buf, dv, s, type);
        // a connection turning TLS, or decided again at a request boundary (a new byte stream from
        // seq 0 under the same key): what its partition holds (the handshake, the old stream's
        // last response, a shed close) goes out first, or a consumer applying the message's opens
        // before its data and closes would put the old bytes into the new stream and close it
        if (type === WS_EV_OPEN && buf[s + CONN.flags]! & (WS_CONN_F_TLS | WS_CONN_F_REOPEN)) {
          const p = this.part.of(keyLoOf(c.connKey), keyHiOf(c.connKey));
          if ((this.parts[p]?.out.len ?? 0) > 0) messages.push(this.cut(p));
        }
        const m = this.addConn(c, true, true);
        if (m) messages.push(m);
        events++;
      } else if (type !== WS_EV_TLS_LIB) {
        this.decodeStats.errors++;
      }
      this.decodeStats.records++;
      off = (s + len + 7) & ~7;
    }
    messages.push(...this.flushDue(false, this.o.holdMs ? (this.o.monoNow ?? monoNow)() : 0));
    return { messages, events, bytes };
  }

  /**
   * Encodes decoded events (a pcap replay): opens, data, closes. Returns the messages that are
   * due: every partition's with holdMs 0.
   */
  encodeEvents(batch: EventBatch): EncodedBatch[] {
    const messages: EncodedBatch[] = [];
    for (const c of batch.conns) if (c.kind === "open") this.push(messages, this.addConn(c));
    for (const d of batch.data) {
      const keyLo = keyLoOf(d.connKey);
      const keyHi = keyHiOf(d.connKey);
      const p = this.part.of(keyLo, keyHi);
      const x = this.out(p);
      const o = x.out;
      if (o.len === 0) x.oldest = Number(d.tsMono);
      const ts = d.tsMono + this.o.monoToWallOffsetNs;
      this.place(x, keyLoOf(ts), keyHiOf(ts), keyHi);
      writeDataEvent(o, keyLo, this.keyHi_, d.direction, keyLoOf(d.seq), keyHiOf(d.seq), this.offLo_, this.offHi_, d.tid, d.payload, 0, d.payload.length, d.originalLength);
      x.count++;
      if (o.len >= this.o.maxBatchBytes) messages.push(this.cut(p));
    }
    for (const c of batch.conns) if (c.kind === "close") this.push(messages, this.addConn(c));
    messages.push(...this.flushDue(false, this.o.holdMs ? (this.o.monoNow ?? monoNow)() : 0));
    return messages;
  }

  /** RawBatch messages carrying these connection events (e.g. closes the probe synthesized), cut at once. */
  encodeConns(conns: ConnRecord[]): EncodedBatch[] {
    const parts = new Set<number>();
    const messages: EncodedBatch[] = [];
    for (const c of conns) {
      this.push(messages, this.addConn(c, false));
      parts.add(this.part.of(keyLoOf(c.connKey), keyHiOf(c.connKey)));
    }
    for (const p of parts) if ((this.parts[p]?.out.len ?? 0) > 0) messages.push(this.cut(p));
    return messages;
  }

  // what `place` found for the event (no object per event)
  private offLo_ = 0;
  private offHi_ = 0;
  private keyHi_ = 0;

  /**
   * The bases of partition `x`'s message (set at its first data event: its time less the slack,
   * its key's high bits), and this event's time and key's high half relative to them, modulo 2^64.
   */
  private place(x: Part, tsLo: number, tsHi: number, keyHi: number): void {
    if (!x.hasData) {
      const bb = borrow(tsLo - TIME_SLACK);
      let lo = tsLo - TIME_SLACK + bb * TWO32;
      let hi = tsHi - bb;
      if (hi < 0) lo = hi = 0;
      x.timeLo = lo;
      x.timeHi = hi;
      x.keyHi = (keyHi & KEY_HIGH) >>> 0;
      x.hasData = true;
    }
    const b = borrow(tsLo - x.timeLo);
    const lo = tsLo - x.timeLo + b * TWO32;
    const hi = tsHi - x.timeHi - b;
    this.offLo_ = lo;
    this.offHi_ = hi >>> 0;
    this.keyHi_ = (keyHi - x.keyHi) >>> 0;
  }

  private push(messages: EncodedBatch[], m: EncodedBatch | undefined): void {
    if (m) messages.push(m);
  }

  /**
   * Writes one ConnEvent into its partition; the message when that filled it. `fromKernel`: the
   * kernel sent it (a close the probe made up for a process gone is not one).
   */
  private addConn(c: ConnRecord, notify = true, fromKernel = false): EncodedBatch | undefined {
    if (notify) this.onConn?.(c);
    const keyLo = keyLoOf(c.connKey);
    const keyHi = keyHiOf(c.connKey);
    // an open (new connection, or one turning TLS: its plaintext starts a new byte stream) and a
    // close both end what the trimmer knew of the connection; the kernel's own close (not a shed:
    // that socket lives on) took the connection's copy policy with it
    const closed = fromKernel && c.kind === "close" && !c.shed;
    this.o.trimmer?.forget(keyNumber(keyLo, keyHi & 0xff), closed ? c.tsMono : undefined);
    const p = this.part.of(keyLo, keyHi);
    const x = this.out(p);
    const o = x.out;
    if (o.len === 0) x.oldest = Number(c.tsMono);
    const start = o.beginLen(RawBatchTag.conns);
    this.writeConnEvent(o, c);
    o.endLen(start);
    x.count++;
    return o.len >= this.o.maxBatchBytes ? this.cut(p) : undefined;
  }

  /** One ConnEvent's fields (its tag and length are the caller's), in field order as protobuf-es writes them. */
  private writeConnEvent(w: WireWriter, c: ConnRecord): void {
    w.uint(ConnEventTag.connKey, c.connKey);
    w.uint(ConnEventTag.kind, c.kind === "open" ? ConnKind.OPEN : ConnKind.CLOSE);
    w.uint(ConnEventTag.role, c.role);
    w.string(ConnEventTag.localAddress, c.localAddress);
    w.uint(ConnEventTag.localPort, c.localPort);
    w.string(ConnEventTag.remoteAddress, c.remoteAddress);
    w.uint(ConnEventTag.remotePort, c.remotePort);
    w.uint(ConnEventTag.tid, c.tid);
    const proc = this.processBytes(c);
    w.uint(ConnEventTag.timestampNs, c.tsMono + this.o.monoToWallOffsetNs);
    w.lenField(ConnEventTag.process, proc.process);
    w.uint(ConnEventTag.inferred, c.inferred ? 1 : 0);
    w.uint(ConnEventTag.tls, c.tls ? 1 : 0);
    w.string(ConnEventTag.tlsLibrary, c.tlsLibrary);
    // 1 is the proto default (0): only a sampled connection carries its fraction
    if (c.observedFraction !== undefined && c.observedFraction > 0 && c.observedFraction < 1) w.float(ConnEventTag.observedFraction, c.observedFraction);
    w.string(ConnEventTag.shed, c.shed);
  }

  private processBytes(c: ConnRecord): ProcBytes {
    const info = this.o.processes.get(c.tgid, c.comm, c.tsMono);
    const name = info.name || c.comm;
    let b = this.procBytes.get(info);
    // re-encoded when the pod became known later (k8s.ts) or the name comes from another comm
    if (!b || b.name !== name || b.pod !== info.pod) this.procBytes.set(info, (b = encodeProcess(c.tgid, info, name, this.scratch)));
    return b;
  }

  /** The oldest waiting event has come of age (always, without `holdMs`). */
  private due(nowMono: number): boolean {
    if (!this.o.holdMs) return true;
    const oldest = this.oldestWaiting();
    return oldest !== Infinity && nowMono - oldest >= this.o.holdMs * 1e6;
  }

  /** Kernel time of the oldest event waiting in any partition; Infinity when none waits. */
  private oldestWaiting(): number {
    let oldest = Infinity;
    for (const x of this.used) if (x.out.len > 0 && x.oldest < oldest) oldest = x.oldest;
    return oldest;
  }

  /**
   * Every partition's message once the oldest event waiting in any of them has come of age
   * (`holdMs`), none before; all of them when `all` (at stop). `nowMono`: CLOCK_MONOTONIC ns, what
   * the kernel stamps events with.
   *
   * One age for all partitions, not one each: with many connections spread over the partitions,
   * ages of their own made the partitions come due one after the other, each with a publish (a
   * socket write) and an ager wake-up of its own, hundreds a second at 500 new connections a
   * second. Together, the messages of one hold period leave in one write. A partition still gets
   * at most one message per hold period, and no event waits longer than `holdMs`.
   */
  flushDue(all = false, nowMono = (this.o.monoNow ?? monoNow)()): EncodedBatch[] {
    const out: EncodedBatch[] = [];
    if (!all && !this.due(nowMono)) return out;
    for (const x of this.used) if (x.out.len > 0) out.push(this.cut(x.p));
    return out;
  }

  /**
   * Milliseconds until the oldest waiting event comes of age (`holdMs`; 0 when one is due now),
   * or -1 when no partition holds anything: the ager's timer is armed only then.
   */
  nextDueMs(nowMono = (this.o.monoNow ?? monoNow)()): number {
    const oldest = this.oldestWaiting();
    if (oldest === Infinity) return -1;
    return Math.max(0, (oldest + (this.o.holdMs ?? 0) * 1e6 - nowMono) / 1e6);
  }

  /** The header of the next message of partition `p`: identity, partition, pending drops, batch_seq. */
  private header(p: number): WireWriter {
    const h = this.head.reset();
    h.raw(this.identity);
    h.uint(RawBatchTag.partition, p);
    if (this.pendingDrops.size) {
      for (const [k, v] of this.pendingDrops) {
        const start = h.beginLen(RawBatchTag.drops, 1);
        h.string(RawBatchDropsEntryTag.key, k);
        h.uint(RawBatchDropsEntryTag.value, v);
        h.endLen(start, 1);
      }
      this.pendingDrops = new Map();
    }
    const x = this.out(p);
    h.uint(RawBatchTag.batchSeq, ++x.seq);
    if (x.hasData) {
      h.uint64(RawBatchTag.dataTimeBaseNs, x.timeLo, x.timeHi);
      h.uint64(RawBatchTag.dataKeyBase, 0, x.keyHi);
    }
    // every message of a partition that ever served states the running count, so one missed
    // message is enough to count what it held (a probe without answer flags writes neither)
    if (x.servedBefore || x.served) {
      h.uint(RawBatchTag.servedBefore, x.servedBefore);
      h.uint(RawBatchTag.served, x.served);
      x.servedBefore += x.served;
      x.served = 0;
    }
    return h;
  }

  private cut(p: number): EncodedBatch {
    const x = this.out(p);
    const served = x.served; // header() moves it into servedBefore
    // the drops header() writes (it starts a new map for the next ones): the message carries them
    const drops = this.pendingDrops.size ? this.pendingDrops : undefined;
    const h = this.header(p);
    const o = x.out;
    const dataLen = o.len;
    const msg = Buffer.allocUnsafe(h.len + dataLen);
    h.buf.copy(msg, 0, 0, h.len);
    if (dataLen) o.buf.copy(msg, h.len, 0, dataLen);
    o.reset();
    x.hasData = false;
    const events = x.count;
    x.count = 0;
    return drops ? { partition: p, data: msg, events, seq: x.seq, served, drops } : { partition: p, data: msg, events, seq: x.seq, served };
  }
}
