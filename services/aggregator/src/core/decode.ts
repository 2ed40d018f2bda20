// A lean decoder for RecordBatch: protobuf wire format straight into plain objects holding only
// what the aggregator reads (RecordView). protobuf-es builds full messages through reflection,
// which costs more than the whole aggregation of a record; this reads the same bytes with the
// same semantics (last scalar wins, repeated message fields merge, unknown fields skipped).
//
//   tag = varint(field << 3 | wire type)   wire types: 0 varint, 1 i64, 2 len, 5 i32
import type { RecordView, EndpointView, ProcessView, AttributeView, TraceView } from "./record-view.js";

export class DecodeError extends Error {
  override name = "DecodeError";
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    // Up to 53 bits exactly; used for tags, lengths, enums, 32-bit values and bools.
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError("truncated varint");
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new DecodeError("varint too long");
  }

  /** A varint as an unsigned 64-bit BigInt. */
  varint64(): bigint {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError("truncated varint");
      const b = this.buf[this.pos++]!;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (b < 0x80) return hi === 0 ? BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
      shift += 7;
    }
    throw new DecodeError("varint too long");
  }

  len(): number {
    const n = this.varint();
    if (this.pos + n > this.end) throw new DecodeError("length past end");
    return n;
  }

  string(): string {
    const n = this.len();
    const start = this.pos;
    this.pos += n;
    const buf = this.buf;
    // Short ASCII strings (names, addresses, methods, paths) repeat from record to record: one
    // pass hashes and checks them, and a cached copy is returned when the bytes match (no new
    // string, and its hash for Map lookups is already computed).
    if (n <= CACHED_MAX) {
      let h = 0x811c9dc5;
      let ascii = true;
      for (let i = start; i < start + n; i++) {
        const b = buf[i]!;
        if (b >= 0x80) {
          ascii = false;
          break;
        }
        h = Math.imul(h ^ b, 0x01000193);
      }
      if (ascii) {
        const slot = (h >>> 0) & (CACHE_SLOTS - 1);
        const at = slot * CACHED_MAX;
        if (cacheLen[slot] === n) {
          let same = true;
          for (let i = 0; i < n; i++) {
            if (cacheBytes[at + i] !== buf[start + i]) {
              same = false;
              break;
            }
          }
          if (same) return cacheStr[slot]!;
        }
        // Built once per distinct value: as a flat string (TextDecoder) when concatenation would make a chain.
        let v = "";
        if (n > 12) v = latin1.decode(buf.subarray(start, start + n));
        else for (let i = start; i < start + n; i++) v += String.fromCharCode(buf[i]!);
        cacheBytes.set(buf.subarray(start, start + n), at);
        cacheLen[slot] = n;
        cacheStr[slot] = v;
        return v;
      }
    }
    for (let i = start; i < start + n; i++) if (buf[i]! >= 0x80) return utf8.decode(buf.subarray(start, start + n));
    return latin1.decode(buf.subarray(start, start + n));
  }

  bytes(): Uint8Array {
    const n = this.len();
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new DecodeError("truncated float");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new DecodeError("truncated double");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const n = this.len(); // not `pos += len()`: pos would be read before len() moves it
        this.pos += n;
        return;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new DecodeError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new DecodeError("truncated field");
  }

  sub(): Reader {
    const n = this.len();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
}

const utf8 = new TextDecoder("utf-8");
const latin1 = new TextDecoder("latin1");

/** The string cache of `Reader.string`: direct-mapped, by FNV-1a of the bytes. */
const CACHED_MAX = 48;
const CACHE_SLOTS = 4096;
const cacheBytes = new Uint8Array(CACHE_SLOTS * CACHED_MAX);
const cacheLen = new Int32Array(CACHE_SLOTS).fill(-1);
const cacheStr: string[] = new Array<string>(CACHE_SLOTS).fill("");

/** int64 from its two's-complement uint64 varint. */
const toInt64 = (u: bigint) => BigInt.asIntN(64, u);

function readProcess(r: Reader, p: ProcessView): ProcessView {
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 0: p.pid = r.varint() >>> 0; break;
      case (2 << 3) | 2: p.name = r.string(); break;
      case (7 << 3) | 2: p.namespace = r.string(); break;
      case (8 << 3) | 2: p.container = r.string(); break;
      case (9 << 3) | 2: p.workload = r.string(); break;
      default: r.skip(tag & 7);
    }
  }
  return p;
}

function readEndpoint(r: Reader, e: EndpointView): EndpointView {
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: e.address = r.string(); break;
      case (2 << 3) | 0: e.port = r.varint() >>> 0; break;
      case (3 << 3) | 2: e.process = readProcess(r.sub(), e.process ?? { pid: 0, name: "", container: "", workload: "", namespace: "" }); break;
      case (4 << 3) | 2: e.node = r.string(); break;
      case (5 << 3) | 2: e.service = r.string(); break;
      default: r.skip(tag & 7);
    }
  }
  return e;
}

function readTrace(r: Reader, t: TraceView): TraceView {
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: t.traceId = r.bytes(); break;
      case (2 << 3) | 2: t.parentSpanId = r.bytes(); break;
      default: r.skip(tag & 7);
    }
  }
  return t;
}

function readAttributeValue(r: Reader): AttributeView {
  let value: AttributeView["value"] = { case: undefined };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: value = { case: "stringValue", value: r.string() }; break;
      case (2 << 3) | 0: value = { case: "intValue", value: toInt64(r.varint64()) }; break;
      case (3 << 3) | 0: value = { case: "boolValue", value: r.varint() !== 0 }; break;
      case (4 << 3) | 1: value = { case: "doubleValue", value: r.double() }; break;
      case (5 << 3) | 2: {
        const s = r.sub();
        const values: string[] = [];
        while (s.pos < s.end) {
          const t = s.varint();
          if (t === ((1 << 3) | 2)) values.push(s.string());
          else s.skip(t & 7);
        }
        value = { case: "stringList", value: { values } };
        break;
      }
      default: r.skip(tag & 7);
    }
  }
  return { value };
}

function newEndpoint(): EndpointView {
  return { address: "", port: 0, service: "", node: "" };
}

/** One attribute map entry (key, value) into `out`. */
function readAttributeEntry(e: Reader, out: { [key: string]: AttributeView }): void {
  let key = "";
  let val: AttributeView = { value: { case: undefined } };
  while (e.pos < e.end) {
    const t = e.varint();
    if (t === ((1 << 3) | 2)) key = e.string();
    else if (t === ((2 << 3) | 2)) val = readAttributeValue(e.sub());
    else e.skip(t & 7);
  }
  out[key] = val;
}

/** Walks an attribute map entry as `readAttributeEntry` reads it, building nothing: the same DecodeErrors. */
function checkAttributeEntry(e: Reader): void {
  while (e.pos < e.end) {
    const t = e.varint();
    if (t === ((1 << 3) | 2)) skipLen(e);
    else if (t === ((2 << 3) | 2)) checkAttributeValue(e.sub());
    else e.skip(t & 7);
  }
}

function checkAttributeValue(r: Reader): void {
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: skipLen(r); break;
      case (2 << 3) | 0: r.varint64(); break;
      case (3 << 3) | 0: r.varint(); break;
      case (4 << 3) | 1: r.double(); break;
      case (5 << 3) | 2: {
        const s = r.sub();
        while (s.pos < s.end) {
          const t = s.varint();
          if (t === ((1 << 3) | 2)) skipLen(s);
          else s.skip(t & 7);
        }
        break;
      }
      default: r.skip(tag & 7);
    }
  }
}

function skipLen(r: Reader): void {
  const n = r.len();
  r.pos += n;
}

/**
 * A decoded record. Its attributes are checked at decode time (malformed ones fail the batch as
 * before) but built only when read: the aggregator reads them for a record whose operation or
 * resource is new, not for the thousands of requests after it.
 */
class DecodedRecord implements RecordView {
  protocol = "";
  startNs = 0n;
  durationNs = 0n;
  operation = "";
  resource = "";
  status: bigint | undefined = undefined;
  error = false;
  requestBytes = 0n;
  responseBytes = 0n;
  incomplete = false;
  trace: TraceView | undefined = undefined;
  client: EndpointView | undefined = undefined;
  server: EndpointView | undefined = undefined;
  connKey = 0n;
  role = 0;
  tid = 0;
  node = "";
  observedFraction = 0;
  /** Start and end offsets in `attrBuf` of each attribute map entry, in wire order. */
  attrAt: number[] | undefined = undefined;
  attrBuf: Uint8Array | undefined = undefined;
  private attrs: { [key: string]: AttributeView } | undefined = undefined;

  get attributes(): { [key: string]: AttributeView } {
    if (this.attrs === undefined) {
      const out: { [key: string]: AttributeView } = {};
      const at = this.attrAt;
      if (at) for (let i = 0; i < at.length; i += 2) readAttributeEntry(new Reader(this.attrBuf!, at[i]!, at[i + 1]!), out);
      this.attrs = out;
      this.attrAt = undefined;
      this.attrBuf = undefined;
    }
    return this.attrs;
  }
}

function readRecord(r: Reader): RecordView {
  const rec = new DecodedRecord();
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: rec.protocol = r.string(); break;
      case (2 << 3) | 0: rec.startNs = r.varint64(); break;
      case (3 << 3) | 0: rec.durationNs = r.varint64(); break;
      case (4 << 3) | 2: rec.operation = r.string(); break;
      case (5 << 3) | 2: rec.resource = r.string(); break;
      case (6 << 3) | 0: rec.status = toInt64(r.varint64()); break;
      case (7 << 3) | 0: rec.error = r.varint() !== 0; break;
      case (8 << 3) | 0: rec.requestBytes = r.varint64(); break;
      case (9 << 3) | 0: rec.responseBytes = r.varint64(); break;
      case (10 << 3) | 0: rec.incomplete = r.varint() !== 0; break;
      case (11 << 3) | 2: rec.trace = readTrace(r.sub(), rec.trace ?? { traceId: new Uint8Array(0), parentSpanId: new Uint8Array(0) }); break;
      case (12 << 3) | 2: {
        const e = r.sub();
        const start = e.pos;
        checkAttributeEntry(e);
        (rec.attrAt ??= []).push(start, e.end);
        rec.attrBuf = r.buf;
        break;
      }
      case (20 << 3) | 2: rec.client = readEndpoint(r.sub(), rec.client ?? newEndpoint()); break;
      case (21 << 3) | 2: rec.server = readEndpoint(r.sub(), rec.server ?? newEndpoint()); break;
      case (22 << 3) | 0: rec.connKey = r.varint64(); break;
      case (23 << 3) | 0: rec.role = r.varint() >>> 0; break;
      case (24 << 3) | 0: rec.tid = r.varint() >>> 0; break;
      case (25 << 3) | 2: rec.node = r.string(); break;
      case (26 << 3) | 5: rec.observedFraction = r.float(); break;
      default: r.skip(tag & 7);
    }
  }
  return rec;
}

/** The records of one RecordBatch; throws DecodeError on malformed input. */
export function decodeRecordBatch(buf: Uint8Array): RecordView[] {
  const r = new Reader(buf, 0, buf.length);
  const out: RecordView[] = [];
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === ((3 << 3) | 2)) out.push(readRecord(r.sub()));
    else r.skip(tag & 7);
  }
  return out;
}
