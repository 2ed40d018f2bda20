// The one protobuf cursor of the hand-written Record readers: the aggregator's lean decoder
// (services/aggregator/src/core/decode.ts) and the NDJSON form of `wirescope decode` and `tail`
// (record-json.ts); docs/wire.md says why the parser's record head keeps its own loop. One
// module-level cursor over one buffer: no object per message or sub-message, no BigInt below
// 2^53, and for repeated short strings no new string. Same semantics as protobuf-es: the caller
// keeps the last scalar, merges repeated message fields, skips unknown fields; malformed input
// throws WireError (the caller counts it).
//
//   tag = varint(field << 3 | wire type)   wire types: 0 varint, 1 i64, 2 len, 5 i32
//
// Readers nest by bounds, not by objects: a sub-message is read from `pos` up to the end its
// length gives (`const e = lenEnd(end)`), then the caller goes on at `pos` (= e).
import { WireType } from "./gen/wire/fields.js";

/** Bytes that are not the message they were read as. */
export class WireError extends Error {
  override name = "WireError";
}

/** The cursor: the buffer being read and the position in it. */
export let buf: Uint8Array = new Uint8Array(0);
export let pos = 0;

export function setCursor(b: Uint8Array, at: number): void {
  buf = b;
  pos = at;
}

/** Moves the cursor to `at` (past a field the caller measured itself). */
export function seek(at: number): void {
  pos = at;
}

/** A varint up to 53 bits exactly (tags, lengths, enums, 32-bit values, bools). */
export function varint(end: number): number {
  if (pos < end) {
    const b = buf[pos]!;
    if (b < 0x80) {
      pos++;
      return b;
    }
  }
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError("truncated varint");
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new WireError("varint too long");
}

/** The low and high 32-bit words of the last `varint64`. */
export let lo = 0;
export let hi = 0;

/** A varint as an unsigned 64-bit value, into `lo` and `hi` (no BigInt). */
export function varint64(end: number): void {
  if (pos < end) {
    const b = buf[pos]!;
    if (b < 0x80) {
      pos++;
      lo = b;
      hi = 0;
      return;
    }
  }
  let l = 0;
  let h = 0;
  let shift = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError("truncated varint");
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
  throw new WireError("varint too long");
}

/** Number() of the last varint64 as uint64: one rounding of the exact value, as Number(BigInt). */
export const u64Num = () => hi * 0x1_0000_0000 + lo;

/** Number() of the last varint64 as int64 (two's complement). */
export const i64Num = () => (hi >= 0x8000_0000 ? (hi - 0x1_0000_0000) * 0x1_0000_0000 + lo : hi * 0x1_0000_0000 + lo);

/** The last varint64 as an int64 BigInt. */
export const i64Big = () => BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));

/** The last varint64 as a uint64 BigInt. */
export const u64Big = () => (hi < 0x20_0000 ? BigInt(hi * 0x1_0000_0000 + lo) : (BigInt(hi) << 32n) | BigInt(lo));

/** Decimal text of the last varint64 as uint64 (nanoseconds exceed 2^53), without BigInt below 2^53. */
export function u64Text(): string {
  if (hi < 0x20_0000) return String(hi * 0x1_0000_0000 + lo);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** Reads a length prefix that must fit before `end`. */
export function len(end: number): number {
  const n = varint(end);
  if (n > end - pos) throw new WireError("length past end");
  return n;
}

/** Reads a length prefix; returns the end of the field it starts (pos at its first byte). */
export function lenEnd(end: number): number {
  const n = len(end); // not `pos + len()`: pos would be read before len() moves it
  return pos + n;
}

/** Skips a length-delimited payload. */
export function skipLen(end: number): void {
  const n = len(end); // not `pos += len()`: pos would be read before len() moves it
  pos += n;
}

/** Skips a field of wire type `wireType` (its tag read). */
export function skip(wireType: number, end: number): void {
  switch (wireType) {
    case WireType.VARINT:
      varint64(end);
      return;
    case WireType.I64:
      pos += 8;
      break;
    case WireType.LEN:
      skipLen(end);
      return;
    case WireType.I32:
      pos += 4;
      break;
    default:
      throw new WireError(`unsupported wire type ${wireType}`);
  }
  if (pos > end) throw new WireError("truncated field");
}

const utf8 = new TextDecoder("utf-8");
const latin1 = new TextDecoder("latin1");

/** The string cache of `string`: direct-mapped, by FNV-1a of the bytes. */
const CACHED_MAX = 48;
const CACHE_SLOTS = 4096;
const cacheBytes = new Uint8Array(CACHE_SLOTS * CACHED_MAX);
const cacheLen = new Int32Array(CACHE_SLOTS).fill(-1);
const cacheStr: string[] = new Array<string>(CACHE_SLOTS).fill("");

/** A length-delimited UTF-8 string; invalid sequences become U+FFFD, as protobuf-es reads them. */
export function string(end: number): string {
  const n = len(end);
  const start = pos;
  pos += n;
  // Short ASCII strings (names, addresses, methods, paths, attribute keys) repeat from record to
  // record: one pass hashes and checks them, and a cached copy is returned when the bytes match
  // (no new string, and its hash for Map lookups is already computed).
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

/** Lowercase hex of buf[start, end). */
export function hexOf(start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) s += HEX2[buf[i]!]!;
  return s;
}

/** A length-delimited bytes field as hex when it has `want` bytes (any length: -1), else "" (the field is consumed). */
export function hexOfLength(end: number, want: number): string {
  const n = len(end);
  const start = pos;
  pos += n;
  if (want >= 0 && n !== want) return "";
  return hexOf(start, start + n);
}

export function float32(end: number): number {
  if (pos + 4 > end) throw new WireError("truncated float");
  const v = new DataView(buf.buffer, buf.byteOffset + pos, 4).getFloat32(0, true);
  pos += 4;
  return v;
}

export function float64(end: number): number {
  if (pos + 8 > end) throw new WireError("truncated double");
  const v = new DataView(buf.buffer, buf.byteOffset + pos, 8).getFloat64(0, true);
  pos += 8;
  return v;
}
