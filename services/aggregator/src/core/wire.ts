// Protobuf wire-format reading for the lean decoder (decode.ts): one module-level cursor over one
// buffer, no object per message or sub-message. Same semantics as protobuf-es: last scalar wins,
// repeated message fields merge, unknown fields are skipped, malformed input throws DecodeError.
//
//   tag = varint(field << 3 | wire type)   wire types: 0 varint, 1 i64, 2 len, 5 i32
import { AttributeValueTag, RecordAttributesEntryTag, StringListTag, WireType } from "@wirescope/common";
import type { AttributeView } from "./record-view.js";

export class DecodeError extends Error {
  override name = "DecodeError";
}

/** The cursor: the buffer being read and the position in it. */
export let buf: Uint8Array = new Uint8Array(0);
export let pos = 0;

export function setCursor(b: Uint8Array, at: number): void {
  buf = b;
  pos = at;
}

/** A varint up to 53 bits exactly (tags, lengths, enums, 32-bit values, bools). */
export function varint(end: number): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new DecodeError("truncated varint");
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new DecodeError("varint too long");
}

/** The low and high 32-bit words of the last `varint64`. */
export let lo = 0;
export let hi = 0;

/** A varint as an unsigned 64-bit value, into `lo` and `hi` (no BigInt). */
export function varint64(end: number): void {
  let l = 0;
  let h = 0;
  let shift = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new DecodeError("truncated varint");
    const b = buf[pos++]!;
    if (shift < 28) l |= (b & 0x7f) << shift;
    else if (shift === 28) {
      l |= (b & 0x0f) << 28;
      h |= (b & 0x7f) >>> 4;
    } else h |= (b & 0x7f) << (shift - 32);
    if (b < 0x80) {
      lo = l >>> 0;
      hi = h >>> 0;
      return;
    }
    shift += 7;
  }
  throw new DecodeError("varint too long");
}

/** Number() of the last varint64 as uint64: one rounding of the exact value, as Number(BigInt). */
export const u64Num = () => hi * 0x1_0000_0000 + lo;

/** Number() of the last varint64 as int64 (two's complement). */
export const i64Num = () => (hi >= 0x8000_0000 ? (hi - 0x1_0000_0000) * 0x1_0000_0000 + lo : hi * 0x1_0000_0000 + lo);

/** ⌊v / 1000⌋ and v mod 1000 of the last varint64 (uint64), exactly, into `q1000` / `r1000`. */
export let q1000 = 0;
export let r1000 = 0;
export function divMod1000(): void {
  if (hi < 0x20_0000) {
    // Below 2^53: exact as a double.
    const v = hi * 0x1_0000_0000 + lo;
    q1000 = Math.floor(v / 1000);
    r1000 = v - q1000 * 1000;
  } else if (hi < 0x4000_0000) {
    // hi·2^32 + lo = 1000·(hi·4294967) + (hi·296 + lo): every term below 2^53.
    const r = hi * 296 + lo;
    const rq = Math.floor(r / 1000);
    q1000 = hi * 4294967 + rq;
    r1000 = r - rq * 1000;
  } else {
    const v = (BigInt(hi) << 32n) | BigInt(lo);
    q1000 = Number(v / 1000n);
    r1000 = Number(v % 1000n);
  }
}

/** Skips a length-delimited payload. */
function skipLen(end: number): void {
  const n = len(end); // not `pos += len()`: pos would be read before len() moves it
  pos += n;
}

export function len(end: number): number {
  const n = varint(end);
  if (pos + n > end) throw new DecodeError("length past end");
  return n;
}

export function skip(wireType: number, end: number): void {
  switch (wireType) {
    case WireType.VARINT:
      varint64(end);
      return;
    case WireType.I64:
      pos += 8;
      break;
    case WireType.LEN: {
      const n = len(end); // not `pos += len()`: pos would be read before len() moves it
      pos += n;
      return;
    }
    case WireType.I32:
      pos += 4;
      break;
    default:
      throw new DecodeError(`unsupported wire type ${wireType}`);
  }
  if (pos > end) throw new DecodeError("truncated field");
}

const utf8 = new TextDecoder("utf-8");
const latin1 = new TextDecoder("latin1");

/** The string cache of `string`: direct-mapped, by FNV-1a of the bytes. */
const CACHED_MAX = 48;
const CACHE_SLOTS = 4096;
const cacheBytes = new Uint8Array(CACHE_SLOTS * CACHED_MAX);
const cacheLen = new Int32Array(CACHE_SLOTS).fill(-1);
const cacheStr: string[] = new Array<string>(CACHE_SLOTS).fill("");

export function string(end: number): string {
  const n = len(end);
  const start = pos;
  pos += n;
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

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => (i < 16 ? "0" : "") + i.toString(16));

/** A length-delimited bytes field as hex when it has `want` bytes, else "" (the field is consumed). */
export function hexOfLength(end: number, want: number): string {
  const n = len(end);
  const start = pos;
  pos += n;
  if (n !== want) return "";
  let s = "";
  for (let i = start; i < start + n; i++) s += HEX2[buf[i]!]!;
  return s;
}

export function float32(end: number): number {
  if (pos + 4 > end) throw new DecodeError("truncated float");
  const v = new DataView(buf.buffer, buf.byteOffset + pos, 4).getFloat32(0, true);
  pos += 4;
  return v;
}

export function float64(end: number): number {
  if (pos + 8 > end) throw new DecodeError("truncated double");
  const v = new DataView(buf.buffer, buf.byteOffset + pos, 8).getFloat64(0, true);
  pos += 8;
  return v;
}

// Attributes (map<string, AttributeValue> entries): checked when the record is decoded, built
// when read (the aggregator reads them for a record whose operation or resource is new).

/**
 * Walks one map entry [pos, end) as `readAttributeEntry` reads it, building nothing: the same
 * DecodeErrors. Returns true for `tls` = true (the parser's mark of a TLS connection's records),
 * so that flag is known without building the attributes.
 */
export function checkAttributeEntry(end: number): boolean {
  let keyTls = false;
  let yes = false;
  while (pos < end) {
    const t = varint(end);
    if (t === RecordAttributesEntryTag.key) {
      const n = len(end);
      keyTls = n === 3 && buf[pos] === 0x74 && buf[pos + 1] === 0x6c && buf[pos + 2] === 0x73; // "tls"
      pos += n;
    } else if (t === RecordAttributesEntryTag.value) {
      const n = len(end);
      yes = checkAttributeValue(pos + n);
    } else skip(t & 7, end);
  }
  return keyTls && yes;
}

/** Checks one AttributeValue; true when it is the boolean true. */
function checkAttributeValue(end: number): boolean {
  let yes = false;
  while (pos < end) {
    const tag = varint(end);
    switch (tag) {
      case AttributeValueTag.stringValue: skipLen(end); yes = false; break;
      case AttributeValueTag.intValue: varint64(end); yes = false; break;
      case AttributeValueTag.boolValue: yes = varint(end) !== 0; break;
      case AttributeValueTag.doubleValue: float64(end); yes = false; break;
      case AttributeValueTag.stringList: {
        const n = len(end);
        const e = pos + n;
        while (pos < e) {
          const t = varint(e);
          if (t === StringListTag.values) skipLen(e);
          else skip(t & 7, e);
        }
        break;
      }
      default: skip(tag & 7, end);
    }
  }
  return yes;
}

function readAttributeValue(end: number): AttributeView {
  let value: AttributeView["value"] = { case: undefined };
  while (pos < end) {
    const tag = varint(end);
    switch (tag) {
      case AttributeValueTag.stringValue: value = { case: "stringValue", value: string(end) }; break;
      case AttributeValueTag.intValue: varint64(end); value = { case: "intValue", value: BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)) }; break;
      case AttributeValueTag.boolValue: value = { case: "boolValue", value: varint(end) !== 0 }; break;
      case AttributeValueTag.doubleValue: value = { case: "doubleValue", value: float64(end) }; break;
      case AttributeValueTag.stringList: {
        const n = len(end);
        const e = pos + n;
        const values: string[] = [];
        while (pos < e) {
          const t = varint(e);
          if (t === StringListTag.values) values.push(string(e));
          else skip(t & 7, e);
        }
        value = { case: "stringList", value: { values } };
        break;
      }
      default: skip(tag & 7, end);
    }
  }
  return { value };
}

/** The attribute map of the entries at `at` (start, end pairs) in `b`, checked before by `checkAttributeEntry`. */
export function readAttributeMap(b: Uint8Array, at: readonly number[]): { [key: string]: AttributeView } {
  const out: { [key: string]: AttributeView } = {};
  for (let i = 0; i < at.length; i += 2) {
    setCursor(b, at[i]!);
    const end = at[i + 1]!;
    let key = "";
    let val: AttributeView = { value: { case: undefined } };
    while (pos < end) {
      const t = varint(end);
      if (t === RecordAttributesEntryTag.key) key = string(end);
      else if (t === RecordAttributesEntryTag.value) {
        const n = len(end);
        val = readAttributeValue(pos + n);
      } else skip(t & 7, end);
    }
    out[key] = val;
  }
  return out;
}
