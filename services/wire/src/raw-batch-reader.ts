// RawBatch (proto/wirescope/v1/raw.proto) read straight off the wire, for the parser's hot path.
// protobuf-es builds a message object per event through reflection, and a BigInt per 64-bit
// field; this reads the same bytes with the same semantics (unknown fields skipped, the last value
// of a scalar wins, repeated fields appended, a repeated message field merged) into reusable
// columns: one typed-array slot per DataEvent field, payloads as subarrays of the input (never
// copied). ConnEvents, which are rare (open/close), become plain ConnEvent objects.
//
//   RawBatch  ─┬─ 0a node, 12 probe_id, 18 partition, 38 batch_seq,    header fields
//              │  40 data_time_base_ns, 48 data_key_base                (added to each DataEvent's
//              │                                                         timestamp_ns / conn_key)
//              │  50 served_before, 58 served                           (requests served, counted)
//              ├─ 22 len ConnEvent      → conns[]        (object per event)
//              ├─ 2a len DataEvent      → data columns   (no object per event)
//              └─ 32 len DropsEntry     → dropReasons[] / dropCounts[]
//
// The bases apply once the whole message is read (a header field may come after the events), and
// an original_length below the payload's length (0: absent) reads as the payload's length: the
// columns hold what the event means, as `resolvedData` gives it for a protobuf-es message.
//
// Field numbers come from the generated table (gen/wire/fields.ts). A malformed input makes
// `read` return false with `error` set: never a throw, so the caller counts it and goes on.
import { create } from "@bufbuild/protobuf";
import { DataEventSchema, type ConnEvent, type DataEvent, type ProcessInfo, type RawBatch } from "./gen/wirescope/v1/raw_pb.js";
import {
  ConnEventField as CF,
  ConnEventTag,
  DataEventField as DF,
  DataEventTag,
  ProcessInfoField as PF,
  ProcessInfoTag,
  RawBatchDropsEntryTag,
  RawBatchField as RF,
  RawBatchTag,
  WireType,
} from "./gen/wire/fields.js";

const TWO32 = 4294967296;
// Invalid UTF-8 fails the message, as it does in protobuf-es.
const td = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes to a string, or undefined when they are not valid UTF-8. */
function utf8(b: Uint8Array): string | undefined {
  try {
    return td.decode(b);
  } catch {
    return undefined;
  }
}

// The field numbers each message's reader handles, as bit masks: such a field arriving with
// another wire type fails the message (protobuf-es would read it as its declared type, which is
// garbage), where a field this reader does not know is skipped.
const bits = (...f: number[]) => f.reduce((m, n) => m | (1 << n), 0);
const RAW_FIELDS = bits(RF.node, RF.probeId, RF.partition, RF.conns, RF.data, RF.drops, RF.batchSeq, RF.dataTimeBaseNs, RF.dataKeyBase, RF.servedBefore, RF.served);
const DATA_FIELDS = bits(DF.connKey, DF.direction, DF.seq, DF.timestampNs, DF.tid, DF.payload, DF.originalLength);
const CONN_FIELDS = bits(
  CF.connKey, CF.kind, CF.role, CF.localAddress, CF.localPort, CF.remoteAddress, CF.remotePort, CF.tid,
  CF.timestampNs, CF.process, CF.inferred, CF.tls, CF.tlsLibrary, CF.observedFraction, CF.shed,
);
const PROCESS_FIELDS = bits(PF.pid, PF.name, PF.exe, PF.cmdline, PF.containerId, PF.pod, PF.namespace, PF.container, PF.workload);
const ENTRY_FIELDS = bits(1, 2);

/** Adds the u64 (lo, hi) to the first n u64s held as (los, his), modulo 2^64 as a uint64 sum wraps. */
function addBase(los: Uint32Array, his: Uint32Array, n: number, lo: number, hi: number): void {
  for (let i = 0; i < n; i++) {
    const l = los[i]! + lo;
    los[i] = l; // Uint32Array stores it modulo 2^32
    his[i] = his[i]! + hi + (l >= TWO32 ? 1 : 0);
  }
}

const U64 = 0xffffffffffffffffn;

/**
 * The DataEvents of a RawBatch decoded by protobuf-es, as they mean: bases added, an absent
 * original_length made the payload's length. What RawBatchReader's columns hold, for code that
 * reads RawBatch through protobuf-es (tests, benches, tools).
 */
export function resolvedData(b: RawBatch): DataEvent[] {
  return b.data.map((d) =>
    create(DataEventSchema, {
      direction: d.direction,
      seq: d.seq,
      tid: d.tid,
      payload: d.payload,
      connKey: (d.connKey + b.dataKeyBase) & U64,
      timestampNs: (d.timestampNs + b.dataTimeBaseNs) & U64,
      originalLength: Math.max(d.originalLength, d.payload.length),
    }),
  );
}

/** Why a RawBatch did not decode (`RawBatchReader.error`). */
export type RawBatchError = "truncated" | "bad_varint" | "bad_wire_type" | "bad_length" | "bad_utf8" | "bad_tag";

/** One decoded UTF-8 string remembered with its bytes: node and probe_id repeat on every batch. */
class StringCache {
  private bytes = new Uint8Array(0);
  private str = "";
  get(b: Uint8Array, start: number, end: number): string | undefined {
    const n = end - start;
    const last = this.bytes;
    if (n === last.length) {
      let k = 0;
      while (k < n && b[start + k] === last[k]) k++;
      if (k === n) return this.str;
    }
    const bytes = b.slice(start, end);
    const s = utf8(bytes);
    if (s === undefined) return undefined;
    this.bytes = bytes;
    this.str = s;
    return s;
  }
}

/**
 * Reads RawBatch messages. One reader is reused for every message: `read` overwrites the header
 * fields, `conns` and the data columns. Data event `i` (0 ≤ i < dataCount) is read through the
 * columns or the helpers (`payload`, `connKey`, `timestampNs`).
 */
export class RawBatchReader {
  /** The message being read; payloads are subarrays of it. */
  buf: Uint8Array = new Uint8Array(0);
  /** The reason of the last failed `read`. */
  error: RawBatchError | "" = "";

  node = "";
  probeId = "";
  partition = 0;
  /** RawBatch.batch_seq (exact below 2^53). */
  batchSeq = 0;
  /** RawBatch.served_before (exact below 2^53) and served: requests served, counted by the probe. */
  servedBefore = 0;
  served = 0;
  /** RawBatch.data_time_base_ns and data_key_base as 32-bit halves (already added into the columns). */
  timeBaseLo = 0;
  timeBaseHi = 0;
  keyBaseLo = 0;
  keyBaseHi = 0;
  /** RawBatch.drops as two parallel lists (reason, count). */
  readonly dropReasons: string[] = [];
  readonly dropCounts: number[] = [];
  /** ConnEvents in wire order. */
  readonly conns: ConnEvent[] = [];

  /** Number of DataEvents. */
  dataCount = 0;
  /** DataEvent.conn_key as two 32-bit halves. */
  connKeyLo = new Uint32Array(64);
  connKeyHi = new Uint32Array(64);
  /** DataEvent.direction (Direction enum value; values past 255 read as 255: unknown). */
  direction = new Uint8Array(64);
  /** DataEvent.seq (exact below 2^53). */
  seq = new Float64Array(64);
  /** DataEvent.timestamp_ns as two 32-bit halves. */
  tsLo = new Uint32Array(64);
  tsHi = new Uint32Array(64);
  tid = new Uint32Array(64);
  originalLength = new Uint32Array(64);
  /** DataEvent.payload: [payloadStart, payloadEnd) of `buf`. */
  payloadStart = new Int32Array(64);
  payloadEnd = new Int32Array(64);

  private readonly nodeCache = new StringCache();
  private readonly probeCache = new StringCache();
  private readonly reasonCache = new Map<string, string>();
  // varint results (no allocation): `lo`/`hi` 32-bit halves
  private pos = 0;
  private lo = 0;
  private hi = 0;
  private tsHiCached = -1;
  private tsHiBig = 0n;

  /**
   * Decodes `buf`. Returns false (and sets `error`) when it is not a well-formed RawBatch; the
   * columns then hold a partial batch that must not be used.
   */
  read(buf: Uint8Array): boolean {
    this.buf = buf;
    this.error = "";
    this.node = "";
    this.probeId = "";
    this.partition = 0;
    this.batchSeq = 0;
    this.servedBefore = 0;
    this.served = 0;
    this.timeBaseLo = this.timeBaseHi = this.keyBaseLo = this.keyBaseHi = 0;
    this.dropReasons.length = 0;
    this.dropCounts.length = 0;
    this.conns.length = 0;
    this.dataCount = 0;
    this.pos = 0;
    const end = buf.length;
    while (this.pos < end) {
      if (!this.varint(end)) return false;
      const tag = this.lo;
      if (this.hi !== 0 || tag > 0x7fffffff) return this.fail("bad_varint");
      switch (tag) {
        case RawBatchTag.data: {
          const e = this.lenEnd(end);
          if (e < 0 || !this.dataEvent(e)) return false;
          break;
        }
        case RawBatchTag.conns: {
          const e = this.lenEnd(end);
          if (e < 0) return false;
          const c = newConnEvent();
          if (!this.connEvent(c, e)) return false;
          this.conns.push(c);
          break;
        }
        case RawBatchTag.node:
        case RawBatchTag.probeId: {
          const e = this.lenEnd(end);
          if (e < 0) return false;
          const s = (tag === RawBatchTag.node ? this.nodeCache : this.probeCache).get(buf, this.pos, e);
          if (s === undefined) return this.fail("bad_utf8");
          if (tag === RawBatchTag.node) this.node = s;
          else this.probeId = s;
          this.pos = e;
          break;
        }
        case RawBatchTag.partition:
          if (!this.varint(end)) return false;
          this.partition = this.lo;
          break;
        case RawBatchTag.batchSeq:
          if (!this.varint(end)) return false;
          this.batchSeq = this.hi * TWO32 + this.lo;
          break;
        case RawBatchTag.servedBefore:
          if (!this.varint(end)) return false;
          this.servedBefore = this.hi * TWO32 + this.lo;
          break;
        case RawBatchTag.served:
          if (!this.varint(end)) return false;
          this.served = this.lo;
          break;
        case RawBatchTag.dataTimeBaseNs:
          if (!this.varint(end)) return false;
          this.timeBaseLo = this.lo;
          this.timeBaseHi = this.hi;
          break;
        case RawBatchTag.dataKeyBase:
          if (!this.varint(end)) return false;
          this.keyBaseLo = this.lo;
          this.keyBaseHi = this.hi;
          break;
        case RawBatchTag.drops: {
          const e = this.lenEnd(end);
          if (e < 0 || !this.dropsEntry(e)) return false;
          break;
        }
        default:
          if (!this.skip(tag, end, RAW_FIELDS)) return false;
      }
    }
    if (this.timeBaseLo || this.timeBaseHi) addBase(this.tsLo, this.tsHi, this.dataCount, this.timeBaseLo, this.timeBaseHi);
    if (this.keyBaseLo || this.keyBaseHi) addBase(this.connKeyLo, this.connKeyHi, this.dataCount, this.keyBaseLo, this.keyBaseHi);
    return true;
  }

  /** Payload of data event `i`: a view of the input, not a copy. */
  payload(i: number): Uint8Array {
    // a plain Uint8Array view even when the input is a Buffer (whose subarray costs more)
    const b = this.buf;
    const start = this.payloadStart[i]!;
    return new Uint8Array(b.buffer, b.byteOffset + start, this.payloadEnd[i]! - start);
  }

  /** conn_key of data event `i`. */
  connKey(i: number): bigint {
    const hi = this.connKeyHi[i]!;
    const lo = this.connKeyLo[i]!;
    return hi < 0x200000 ? BigInt(hi * TWO32 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** timestamp_ns of data event `i`; the high half is converted once while it stays the same. */
  timestampNs(i: number): bigint {
    const hi = this.tsHi[i]!;
    const lo = this.tsLo[i]!;
    if (hi < 0x200000) return BigInt(hi * TWO32 + lo);
    if (hi !== this.tsHiCached) {
      this.tsHiCached = hi;
      this.tsHiBig = BigInt(hi) << 32n;
    }
    return this.tsHiBig | BigInt(lo);
  }

  private fail(e: RawBatchError): false {
    this.error = e;
    return false;
  }

  /** Reads a varint at `pos` into lo/hi (64 bits, the rest dropped as protobuf does). */
  private varint(end: number): boolean {
    const b = this.buf;
    let p = this.pos;
    if (p >= end) return this.fail("truncated");
    let c = b[p++]!;
    if (c < 0x80) {
      this.lo = c;
      this.hi = 0;
      this.pos = p;
      return true;
    }
    let lo = c & 0x7f;
    let hi = 0;
    for (let shift = 7; shift < 28; shift += 7) {
      if (p >= end) return this.fail("truncated");
      c = b[p++]!;
      lo |= (c & 0x7f) << shift;
      if (c < 0x80) {
        this.lo = lo >>> 0;
        this.hi = 0;
        this.pos = p;
        return true;
      }
    }
    // byte 4 carries bits 28-34: four into lo, three into hi
    if (p >= end) return this.fail("truncated");
    c = b[p++]!;
    lo |= (c & 0x0f) << 28;
    hi = (c & 0x7f) >> 4;
    if (c >= 0x80) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) return this.fail("bad_varint"); // more than 10 bytes
        if (p >= end) return this.fail("truncated");
        c = b[p++]!;
        hi |= (c & 0x7f) << shift;
        if (c < 0x80) break;
      }
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
    this.pos = p;
    return true;
  }

  /** Reads a length prefix; returns the end of the field (pos at its start), or -1. */
  private lenEnd(end: number): number {
    if (!this.varint(end)) return -1;
    if (this.hi !== 0 || this.lo > end - this.pos) {
      this.fail(this.hi !== 0 || this.lo > 0x7fffffff ? "bad_length" : "truncated");
      return -1;
    }
    return this.pos + this.lo;
  }

  /** Skips an unknown field (or a known one of an unexpected wire type) after its tag. */
  private skip(tag: number, end: number, known: number): boolean {
    const no = tag >>> 3;
    if (no === 0) return this.fail("bad_tag");
    if (no < 31 && (known & (1 << no)) !== 0) return this.fail("bad_wire_type");
    switch (tag & 7) {
      case WireType.VARINT:
        return this.varint(end);
      case WireType.I64:
        if (end - this.pos < 8) return this.fail("truncated");
        this.pos += 8;
        return true;
      case WireType.LEN: {
        const e = this.lenEnd(end);
        if (e < 0) return false;
        this.pos = e;
        return true;
      }
      case WireType.I32:
        if (end - this.pos < 4) return this.fail("truncated");
        this.pos += 4;
        return true;
      default:
        return this.fail("bad_wire_type"); // groups (3, 4) are not used by proto3, 6 and 7 do not exist
    }
  }

  private grow(): void {
    const n = this.connKeyLo.length * 2;
    const u32 = (a: Uint32Array) => {
      const x = new Uint32Array(n);
      x.set(a);
      return x;
    };
    const i32 = (a: Int32Array) => {
      const x = new Int32Array(n);
      x.set(a);
      return x;
    };
    this.connKeyLo = u32(this.connKeyLo);
    this.connKeyHi = u32(this.connKeyHi);
    const d = new Uint8Array(n);
    d.set(this.direction);
    this.direction = d;
    const s = new Float64Array(n);
    s.set(this.seq);
    this.seq = s;
    this.tsLo = u32(this.tsLo);
    this.tsHi = u32(this.tsHi);
    this.tid = u32(this.tid);
    this.originalLength = u32(this.originalLength);
    this.payloadStart = i32(this.payloadStart);
    this.payloadEnd = i32(this.payloadEnd);
  }

  /** One DataEvent ending at `end` into column slot dataCount. */
  private dataEvent(end: number): boolean {
    const i = this.dataCount;
    if (i === this.connKeyLo.length) this.grow();
    let keyLo = 0,
      keyHi = 0,
      dir = 0,
      seq = 0,
      tsLo = 0,
      tsHi = 0,
      tid = 0,
      orig = 0,
      pStart = 0,
      pEnd = 0;
    while (this.pos < end) {
      if (!this.varint(end)) return false;
      const tag = this.lo;
      if (this.hi !== 0 || tag > 0x7fffffff) return this.fail("bad_varint");
      switch (tag) {
        case DataEventTag.payload: {
          const e = this.lenEnd(end);
          if (e < 0) return false;
          pStart = this.pos;
          pEnd = e;
          this.pos = e;
          break;
        }
        case DataEventTag.connKey:
          if (!this.varint(end)) return false;
          keyLo = this.lo;
          keyHi = this.hi;
          break;
        case DataEventTag.direction:
          if (!this.varint(end)) return false;
          dir = this.hi !== 0 || this.lo > 255 ? 255 : this.lo;
          break;
        case DataEventTag.seq:
          if (!this.varint(end)) return false;
          seq = this.hi * TWO32 + this.lo;
          break;
        case DataEventTag.timestampNs:
          if (!this.varint(end)) return false;
          tsLo = this.lo;
          tsHi = this.hi;
          break;
        case DataEventTag.tid:
          if (!this.varint(end)) return false;
          tid = this.lo;
          break;
        case DataEventTag.originalLength:
          if (!this.varint(end)) return false;
          orig = this.lo;
          break;
        default:
          if (!this.skip(tag, end, DATA_FIELDS)) return false;
      }
    }
    this.connKeyLo[i] = keyLo;
    this.connKeyHi[i] = keyHi;
    this.direction[i] = dir;
    this.seq[i] = seq;
    this.tsLo[i] = tsLo;
    this.tsHi[i] = tsHi;
    this.tid[i] = tid;
    this.originalLength[i] = orig < pEnd - pStart ? pEnd - pStart : orig;
    this.payloadStart[i] = pStart;
    this.payloadEnd[i] = pEnd;
    this.dataCount = i + 1;
    return true;
  }

  private u64big(): bigint {
    return this.hi === 0 ? BigInt(this.lo) : (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  private str(end: number): string | undefined {
    const e = this.lenEnd(end);
    if (e < 0) return undefined;
    const s = utf8(this.buf.subarray(this.pos, e));
    if (s === undefined) {
      this.fail("bad_utf8");
      return undefined;
    }
    this.pos = e;
    return s;
  }

  /** ConnEvent fields ending at `end`, merged into `c` (protobuf merge semantics). */
  private connEvent(c: ConnEvent, end: number): boolean {
    while (this.pos < end) {
      if (!this.varint(end)) return false;
      const tag = this.lo;
      if (this.hi !== 0 || tag > 0x7fffffff) return this.fail("bad_varint");
      let s: string | undefined;
      switch (tag) {
        case ConnEventTag.connKey:
        case ConnEventTag.timestampNs:
          if (!this.varint(end)) return false;
          if (tag === ConnEventTag.connKey) c.connKey = this.u64big();
          else c.timestampNs = this.u64big();
          break;
        case ConnEventTag.kind:
        case ConnEventTag.role:
        case ConnEventTag.localPort:
        case ConnEventTag.remotePort:
        case ConnEventTag.tid:
        case ConnEventTag.inferred:
        case ConnEventTag.tls: {
          if (!this.varint(end)) return false;
          // enums are int32 (a negative one is sign-extended to 64 bits), the rest uint32 or bool
          const v = this.lo;
          if (tag === ConnEventTag.kind) c.kind = v | 0;
          else if (tag === ConnEventTag.role) c.role = v | 0;
          else if (tag === ConnEventTag.localPort) c.localPort = v;
          else if (tag === ConnEventTag.remotePort) c.remotePort = v;
          else if (tag === ConnEventTag.tid) c.tid = v;
          else if (tag === ConnEventTag.tls) c.tls = v !== 0 || this.hi !== 0;
          else c.inferred = v !== 0 || this.hi !== 0;
          break;
        }
        case ConnEventTag.localAddress:
          if ((s = this.str(end)) === undefined) return false;
          c.localAddress = s;
          break;
        case ConnEventTag.remoteAddress:
          if ((s = this.str(end)) === undefined) return false;
          c.remoteAddress = s;
          break;
        case ConnEventTag.tlsLibrary:
          if ((s = this.str(end)) === undefined) return false;
          c.tlsLibrary = s;
          break;
        case ConnEventTag.shed:
          if ((s = this.str(end)) === undefined) return false;
          c.shed = s;
          break;
        case ConnEventTag.observedFraction:
          if (end - this.pos < 4) return this.fail("truncated");
          c.observedFraction = f32le(this.buf, this.pos);
          this.pos += 4;
          break;
        case ConnEventTag.process: {
          const e = this.lenEnd(end);
          if (e < 0) return false;
          if (!this.processInfo((c.process ??= newProcessInfo()), e)) return false;
          break;
        }
        default:
          if (!this.skip(tag, end, CONN_FIELDS)) return false;
      }
    }
    return true;
  }

  private processInfo(p: ProcessInfo, end: number): boolean {
    while (this.pos < end) {
      if (!this.varint(end)) return false;
      const tag = this.lo;
      if (this.hi !== 0 || tag > 0x7fffffff) return this.fail("bad_varint");
      if (tag === ProcessInfoTag.pid) {
        if (!this.varint(end)) return false;
        p.pid = this.lo;
        continue;
      }
      let s: string | undefined;
      switch (tag) {
        case ProcessInfoTag.name:
        case ProcessInfoTag.exe:
        case ProcessInfoTag.cmdline:
        case ProcessInfoTag.containerId:
        case ProcessInfoTag.pod:
        case ProcessInfoTag.namespace:
        case ProcessInfoTag.container:
        case ProcessInfoTag.workload:
          if ((s = this.str(end)) === undefined) return false;
          if (tag === ProcessInfoTag.name) p.name = s;
          else if (tag === ProcessInfoTag.exe) p.exe = s;
          else if (tag === ProcessInfoTag.cmdline) p.cmdline = s;
          else if (tag === ProcessInfoTag.containerId) p.containerId = s;
          else if (tag === ProcessInfoTag.pod) p.pod = s;
          else if (tag === ProcessInfoTag.namespace) p.namespace = s;
          else if (tag === ProcessInfoTag.container) p.container = s;
          else p.workload = s;
          break;
        default:
          if (!this.skip(tag, end, PROCESS_FIELDS)) return false;
      }
    }
    return true;
  }

  /** A map<string, uint64> entry; a repeated key replaces the earlier value (map semantics). */
  private dropsEntry(end: number): boolean {
    let key = "";
    let value = 0;
    while (this.pos < end) {
      if (!this.varint(end)) return false;
      const tag = this.lo;
      if (this.hi !== 0 || tag > 0x7fffffff) return this.fail("bad_varint");
      if (tag === RawBatchDropsEntryTag.key) {
        const s = this.str(end);
        if (s === undefined) return false;
        key = this.reasonCache.get(s) ?? s;
        if (this.reasonCache.size < 256) this.reasonCache.set(key, key);
      } else if (tag === RawBatchDropsEntryTag.value) {
        if (!this.varint(end)) return false;
        value = this.hi * TWO32 + this.lo;
      } else if (!this.skip(tag, end, ENTRY_FIELDS)) return false;
    }
    const at = this.dropReasons.indexOf(key);
    if (at >= 0) this.dropCounts[at] = value;
    else {
      this.dropReasons.push(key);
      this.dropCounts.push(value);
    }
    return true;
  }
}

const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);

/** A little-endian float32 at `at` (a protobuf `float`). */
function f32le(b: Uint8Array, at: number): number {
  f32Bytes[0] = b[at]!;
  f32Bytes[1] = b[at + 1]!;
  f32Bytes[2] = b[at + 2]!;
  f32Bytes[3] = b[at + 3]!;
  return f32[0]!;
}

function newProcessInfo(): ProcessInfo {
  return { $typeName: "wirescope.v1.ProcessInfo", pid: 0, name: "", exe: "", cmdline: "", containerId: "", pod: "", namespace: "", container: "", workload: "" };
}

function newConnEvent(): ConnEvent {
  return {
    $typeName: "wirescope.v1.ConnEvent",
    connKey: 0n,
    kind: 0,
    role: 0,
    localAddress: "",
    localPort: 0,
    remoteAddress: "",
    remotePort: 0,
    tid: 0,
    timestampNs: 0n,
    process: undefined,
    inferred: false,
    tls: false,
    tlsLibrary: "",
    observedFraction: 0,
    shed: "",
  };
}
