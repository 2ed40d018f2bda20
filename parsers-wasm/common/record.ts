// Rec: writes wirescope.v1.Record messages (proto/wirescope/v1/record.proto, fields 1-12) in
// protobuf wire format straight into the output buffer the host reads (docs/plugin-abi.md,
// "Output"). No intermediate objects: a decoder calls Rec.begin(), the field setters, Rec.end().
//
//   output buffer:  [u32 LE length][Record bytes] [u32 LE length][Record bytes] ...
//
// Length-delimited fields whose size is not known up front (strings built from pieces, map
// entries, nested messages) reserve one length byte and are patched when they end; a length
// >= 128 shifts the content right by the extra varint bytes (rare: attribute values are short).
//
// Strings come from three sources, all written as valid UTF-8:
//   - AssemblyScript strings (UTF-16, e.g. literals): encoded on the fly, no allocation;
//   - raw bytes from the input (paths, SQL text): copied, invalid UTF-8 replaced by U+FFFD;
//   - pieces appended between strBegin/strEnd (normalised SQL, joined topic names).
// Every string field is truncated at MAX_STRING bytes on a code point boundary.

/** Longest string written into any field (bytes). */
export const MAX_STRING: i32 = 4096;

// Field numbers of wirescope.v1.Record and the messages in it: generated from proto/.
import {
  RECORD_PROTOCOL as F_PROTOCOL,
  RECORD_START_NS as F_START_NS,
  RECORD_DURATION_NS as F_DURATION_NS,
  RECORD_OPERATION as F_OPERATION,
  RECORD_RESOURCE as F_RESOURCE,
  RECORD_STATUS as F_STATUS,
  RECORD_ERROR as F_ERROR,
  RECORD_REQUEST_BYTES as F_REQUEST_BYTES,
  RECORD_RESPONSE_BYTES as F_RESPONSE_BYTES,
  RECORD_INCOMPLETE as F_INCOMPLETE,
  RECORD_TRACE as F_TRACE,
  RECORD_ATTRIBUTES as F_ATTRIBUTES,
  RECORD_ATTRIBUTES_KEY,
  RECORD_ATTRIBUTES_VALUE,
  TRACE_CONTEXT_TRACE_ID,
  TRACE_CONTEXT_PARENT_SPAN_ID,
  TRACE_CONTEXT_FLAGS,
  TRACE_CONTEXT_FORMAT,
  ATTRIBUTE_VALUE_STRING_VALUE,
  ATTRIBUTE_VALUE_INT_VALUE,
  ATTRIBUTE_VALUE_BOOL_VALUE,
  ATTRIBUTE_VALUE_DOUBLE_VALUE,
  ATTRIBUTE_VALUE_STRING_LIST,
  STRING_LIST_VALUES,
  WT_VARINT,
  WT_I64,
  WT_LEN,
} from "./gen/record-fields";

const MAX_MARKS: i32 = 8;

// ---- output buffer ----

let outBase: usize = 0;
let outCap: i32 = 0;
let outLen: i32 = 0;
let outCount: i32 = 0;
/** Start of the record being written (its u32 length prefix), -1 when none. */
let recStart: i32 = -1;
/** Open length-delimited fields: offset of their reserved length byte. */
const marks = new StaticArray<i32>(MAX_MARKS);
const markLimit = new StaticArray<i32>(MAX_MARKS);
let depth: i32 = 0;

/** Start of the output buffer (ABI out_ptr). */
export function outPtr(): usize {
  return outBase;
}
/** Bytes in the output buffer (ABI out_len). */
export function outBytes(): i32 {
  return outLen;
}
/** Records completed since the last clear. */
export function outRecords(): i32 {
  return outCount;
}
/** Empties the output buffer (ABI out_clear). */
export function outClear(): void {
  outLen = 0;
  outCount = 0;
  recStart = -1;
  depth = 0;
}

/** Appends raw bytes to the output buffer (conn_tail: bytes handed back, not records). */
export function outRaw(p: usize, n: i32): void {
  if (n <= 0) return;
  ensure(n);
  memory.copy(outBase + <usize>outLen, p, <usize>n);
  outLen += n;
}

@inline function ensure(n: i32): void {
  if (outLen + n > outCap) grow(n);
}

function grow(n: i32): void {
  let c = outCap < 4096 ? 4096 : outCap;
  while (c < outLen + n) c <<= 1;
  outBase = outBase == 0 ? heap.alloc(<usize>c) : heap.realloc(outBase, <usize>c);
  outCap = c;
}

@inline function put8(b: u32): void {
  store<u8>(outBase + <usize>outLen, <u8>b);
  outLen++;
}

function putVarint(v: u64): void {
  ensure(10);
  let p = outBase + <usize>outLen;
  const s = p;
  while (v >= 0x80) {
    store<u8>(p++, <u8>(v | 0x80));
    v >>= 7;
  }
  store<u8>(p++, <u8>v);
  outLen += <i32>(p - s);
}

@inline function putTag(field: u32, wt: u32): void {
  ensure(2);
  const t = (field << 3) | wt;
  if (t < 0x80) put8(t);
  else putVarint(<u64>t);
}

/** Opens a length-delimited field: reserves one length byte. `limit` caps its content (0 = none). */
function open(limit: i32): void {
  ensure(1);
  if (depth < MAX_MARKS) {
    unchecked((marks[depth] = outLen));
    unchecked((markLimit[depth] = limit));
  }
  depth++;
  put8(0);
}

/** Closes the innermost open field: writes its length, shifting the content when it needs more than one byte. */
@inline function close(): void {
  if (depth > 0 && depth <= MAX_MARKS) {
    const m = unchecked(marks[depth - 1]);
    const len = outLen - m - 1;
    if (len < 0x80) {
      depth--;
      store<u8>(outBase + <usize>m, <u8>len);
      return;
    }
  }
  closeLong();
}

function closeLong(): void {
  if (depth <= 0) return;
  depth--;
  if (depth >= MAX_MARKS) return;
  const m = unchecked(marks[depth]);
  const len = outLen - m - 1;
  let extra = 0;
  for (let v = <u32>len >>> 7; v != 0; v >>>= 7) extra++;
  ensure(extra);
  const body = outBase + <usize>m + 1;
  memory.copy(body + <usize>extra, body, <usize>len);
  let p = outBase + <usize>m;
  let v = <u32>len;
  while (v >= 0x80) {
    store<u8>(p++, <u8>(v | 0x80));
    v >>>= 7;
  }
  store<u8>(p, <u8>v);
  outLen += extra;
}

/** Room left in the innermost open string before MAX_STRING (or its own limit). */
function room(): i32 {
  if (depth <= 0 || depth > MAX_MARKS) return MAX_STRING;
  const d = depth - 1;
  const lim = unchecked(markLimit[d]);
  const used = outLen - unchecked(marks[d]) - 1;
  return (lim > 0 ? lim : MAX_STRING) - used;
}

// ---- string content ----

// UTF-8 of string literals, cached by address: literals live in static data (below
// __heap_base) and never move or change, so keys and constant values are encoded once and then
// copied. Strings on the heap are encoded every time (their address may be reused).
const CACHE_SLOTS: i32 = 256;
const cacheKey = new StaticArray<usize>(CACHE_SLOTS);
const cacheVal = new StaticArray<ArrayBuffer | null>(CACHE_SLOTS);

@inline function staticUtf8(s: string): ArrayBuffer | null {
  const p = changetype<usize>(s);
  if (p >= __heap_base) return null;
  const h = <i32>((p >> 3) & <usize>(CACHE_SLOTS - 1));
  if (unchecked(cacheKey[h]) == p) return unchecked(cacheVal[h]);
  return cacheMiss(s, p, h);
}

function cacheMiss(s: string, p: usize, h: i32): ArrayBuffer {
  const b = String.UTF8.encode(s);
  unchecked((cacheKey[h] = p));
  unchecked((cacheVal[h] = b));
  return b;
}

/** Appends an AssemblyScript string as UTF-8 (within the room of the open string). */
function putString(s: string): void {
  const cached = staticUtf8(s);
  if (cached != null) {
    const len = cached.byteLength;
    if (len <= room()) {
      ensure(len);
      memory.copy(outBase + <usize>outLen, changetype<usize>(cached), <usize>len);
      outLen += len;
      return;
    }
  }
  const n = s.length;
  const sp = changetype<usize>(s);
  let r = room();
  ensure(n < r ? n : r);
  // ASCII fast path; falls back to the std encoder at the first non-ASCII unit.
  let i = 0;
  for (; i < n && i < r; i++) {
    const c = <u32>load<u16>(sp + (<usize>i << 1));
    if (c >= 0x80) break;
    store<u8>(outBase + <usize>outLen + <usize>i, <u8>c);
  }
  outLen += i;
  if (i >= n || i >= r) return;
  const rest = sp + (<usize>i << 1);
  const restLen = n - i;
  ensure(restLen * 3);
  // Encode the remainder, then trim back to the room on a code point boundary.
  const before = outLen;
  // encodeUnsafe returns the number of bytes written (not the end address)
  const written = String.UTF8.encodeUnsafe(rest, restLen, outBase + <usize>outLen, false, String.UTF8.ErrorMode.REPLACE);
  outLen += <i32>written;
  r = room();
  if (r < 0) {
    let cut = outLen + r;
    if (cut < before) cut = before;
    while (cut > before && (load<u8>(outBase + <usize>cut) & 0xc0) == 0x80) cut--;
    outLen = cut;
  }
}

/** Appends raw bytes as UTF-8: ASCII copied, valid multi-byte sequences kept, invalid bytes → U+FFFD. */
function putRawUtf8(p: usize, n: i32): void {
  if (n <= 0) return;
  let r = room();
  if (r <= 0) return;
  // Fast path: all ASCII (8 bytes at a time).
  let i = 0;
  const lim = n < r ? n : r;
  while (i + 8 <= lim && (load<u64>(p + <usize>i) & 0x8080808080808080) == 0) i += 8;
  while (i < lim && load<u8>(p + <usize>i) < 0x80) i++;
  if (i == lim) {
    ensure(lim);
    memory.copy(outBase + <usize>outLen, p, <usize>lim);
    outLen += lim;
    return;
  }
  ensure(i);
  memory.copy(outBase + <usize>outLen, p, <usize>i);
  outLen += i;
  r -= i;
  while (i < n && r > 0) {
    const b = <u32>load<u8>(p + <usize>i);
    if (b < 0x80) {
      ensure(1);
      put8(b);
      i++;
      r--;
      continue;
    }
    const k = utf8SeqLen(p + <usize>i, n - i);
    if (k > 0) {
      if (k > r) break;
      ensure(k);
      memory.copy(outBase + <usize>outLen, p + <usize>i, <usize>k);
      outLen += k;
      i += k;
      r -= k;
    } else {
      if (r < 3) break;
      ensure(3);
      put8(0xef);
      put8(0xbf);
      put8(0xbd);
      i++;
      r -= 3;
    }
  }
}

/** Length of the valid UTF-8 sequence at p (2..4), or 0 when invalid or truncated. */
function utf8SeqLen(p: usize, n: i32): i32 {
  const b0 = <u32>load<u8>(p);
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (n >= 2 && (load<u8>(p, 1) & 0xc0) == 0x80) return 2;
    return 0;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    if (n < 3) return 0;
    const b1 = <u32>load<u8>(p, 1);
    if ((b1 & 0xc0) != 0x80 || (load<u8>(p, 2) & 0xc0) != 0x80) return 0;
    if (b0 == 0xe0 && b1 < 0xa0) return 0; // overlong
    if (b0 == 0xed && b1 >= 0xa0) return 0; // surrogate
    return 3;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    if (n < 4) return 0;
    const b1 = <u32>load<u8>(p, 1);
    if ((b1 & 0xc0) != 0x80 || (load<u8>(p, 2) & 0xc0) != 0x80 || (load<u8>(p, 3) & 0xc0) != 0x80) return 0;
    if (b0 == 0xf0 && b1 < 0x90) return 0;
    if (b0 == 0xf4 && b1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

function strField(field: u32, s: string): void {
  // literals (cached UTF-8) shorter than 128 bytes: tag, one length byte, copy
  const cached = staticUtf8(s);
  if (cached != null && field < 16) {
    const len = cached.byteLength;
    if (len < 0x80) {
      ensure(2 + len);
      put8((field << 3) | WT_LEN);
      put8(len);
      memory.copy(outBase + <usize>outLen, changetype<usize>(cached), <usize>len);
      outLen += len;
      return;
    }
  }
  putTag(field, WT_LEN);
  open(0);
  putString(s);
  close();
}

function rawField(field: u32, p: usize, n: i32): void {
  putTag(field, WT_LEN);
  open(0);
  putRawUtf8(p, n);
  close();
}

// Attribute map entry: field 12 { 1: key, 2: AttributeValue { <value field> } }.
function attrOpen(key: string, valueField: u32, wt: u32): void {
  attrOpenValue(key);
  putTag(valueField, wt);
}

/** Opens the map entry and its AttributeValue, before the value's tag. */
function attrOpenValue(key: string): void {
  putTag(F_ATTRIBUTES, WT_LEN);
  open(0);
  strField(RECORD_ATTRIBUTES_KEY, key);
  putTag(RECORD_ATTRIBUTES_VALUE, WT_LEN);
  open(0);
}

/**
 * Writes one Record. Usage:
 *
 *   Rec.begin("http1");
 *   Rec.startNs(t0); Rec.durationNs(t1 - t0);
 *   Rec.operationRaw(q.ptr(), methodLen);
 *   Rec.attrRaw("url.path", pathPtr, pathLen);
 *   Rec.end();
 *
 * Setters may be called in any order, each at most once (attributes: once per key). All
 * integer arguments are i64/u64 as in the proto.
 */
export class Rec {
  /** Starts a record and writes its protocol (field 1). Abandons an unfinished previous record. */
  static begin(protocol: string): void {
    if (recStart >= 0) Rec.cancel();
    ensure(4);
    recStart = outLen;
    depth = 0;
    store<u32>(outBase + <usize>outLen, 0);
    outLen += 4;
    strField(F_PROTOCOL, protocol);
  }

  /** Finishes the record: patches its length prefix. */
  static end(): void {
    if (recStart < 0) return;
    while (depth > 0) close();
    store<u32>(outBase + <usize>recStart, <u32>(outLen - recStart - 4));
    recStart = -1;
    outCount++;
  }

  /** Drops the record being written. */
  static cancel(): void {
    if (recStart < 0) return;
    outLen = recStart;
    recStart = -1;
    depth = 0;
  }

  static startNs(v: i64): void {
    putTag(F_START_NS, WT_VARINT);
    putVarint(<u64>v);
  }

  static durationNs(v: i64): void {
    putTag(F_DURATION_NS, WT_VARINT);
    putVarint(<u64>(v < 0 ? 0 : v));
  }

  static operation(s: string): void {
    strField(F_OPERATION, s);
  }
  static operationRaw(p: usize, n: i32): void {
    rawField(F_OPERATION, p, n);
  }
  static resource(s: string): void {
    strField(F_RESOURCE, s);
  }
  static resourceRaw(p: usize, n: i32): void {
    rawField(F_RESOURCE, p, n);
  }
  /** Opens the resource for piecewise writing with put*(); close with strEnd(). */
  static resourceBegin(): void {
    putTag(F_RESOURCE, WT_LEN);
    open(0);
  }
  /** Opens the operation for piecewise writing with put*(); close with strEnd(). */
  static operationBegin(): void {
    putTag(F_OPERATION, WT_LEN);
    open(0);
  }

  /** status (optional int64: written even when 0, so "0" differs from "no status"). */
  static status(v: i64): void {
    putTag(F_STATUS, WT_VARINT);
    putVarint(<u64>v);
  }

  static error(b: bool): void {
    if (!b) return;
    putTag(F_ERROR, WT_VARINT);
    put8(1);
  }

  static requestBytes(v: i64): void {
    if (v <= 0) return;
    putTag(F_REQUEST_BYTES, WT_VARINT);
    putVarint(<u64>v);
  }

  static responseBytes(v: i64): void {
    if (v <= 0) return;
    putTag(F_RESPONSE_BYTES, WT_VARINT);
    putVarint(<u64>v);
  }

  /** Marks the record incomplete (no response seen). */
  static incomplete(): void {
    putTag(F_INCOMPLETE, WT_VARINT);
    put8(1);
  }

  /** TraceContext (field 11): 16-byte trace id and 8-byte parent span id at the given addresses. */
  static trace(traceId: usize, parentSpanId: usize, flags: u32, format: string): void {
    putTag(F_TRACE, WT_LEN);
    open(0);
    if (traceId != 0) {
      putTag(TRACE_CONTEXT_TRACE_ID, WT_LEN);
      ensure(17);
      put8(16);
      memory.copy(outBase + <usize>outLen, traceId, 16);
      outLen += 16;
    }
    if (parentSpanId != 0) {
      putTag(TRACE_CONTEXT_PARENT_SPAN_ID, WT_LEN);
      ensure(9);
      put8(8);
      memory.copy(outBase + <usize>outLen, parentSpanId, 8);
      outLen += 8;
    }
    if (flags != 0) {
      putTag(TRACE_CONTEXT_FLAGS, WT_VARINT);
      putVarint(<u64>flags);
    }
    strField(TRACE_CONTEXT_FORMAT, format);
    close();
  }

  // ---- attributes (map<string, AttributeValue>) ----

  static attrStr(key: string, v: string): void {
    attrOpenValue(key);
    strField(ATTRIBUTE_VALUE_STRING_VALUE, v);
    close();
    close();
  }

  static attrRaw(key: string, p: usize, n: i32): void {
    attrOpen(key, ATTRIBUTE_VALUE_STRING_VALUE, WT_LEN);
    open(0);
    putRawUtf8(p, n);
    close();
    close();
    close();
  }

  /** Opens a string attribute for piecewise writing with put*(); close with strEnd(). */
  static attrBegin(key: string): void {
    attrOpen(key, ATTRIBUTE_VALUE_STRING_VALUE, WT_LEN);
    open(0);
  }

  static attrInt(key: string, v: i64): void {
    attrOpen(key, ATTRIBUTE_VALUE_INT_VALUE, WT_VARINT);
    putVarint(<u64>v);
    close();
    close();
  }

  static attrBool(key: string, b: bool): void {
    attrOpen(key, ATTRIBUTE_VALUE_BOOL_VALUE, WT_VARINT);
    ensure(1);
    put8(b ? 1 : 0);
    close();
    close();
  }

  static attrDouble(key: string, v: f64): void {
    attrOpen(key, ATTRIBUTE_VALUE_DOUBLE_VALUE, WT_I64);
    ensure(8);
    store<f64>(outBase + <usize>outLen, v);
    outLen += 8;
    close();
    close();
  }

  /** Opens a string-list attribute; add items with listItem*(), close with listEnd(). */
  static listBegin(key: string): void {
    attrOpen(key, ATTRIBUTE_VALUE_STRING_LIST, WT_LEN);
    open(0);
  }
  static listItem(s: string): void {
    strField(STRING_LIST_VALUES, s);
  }
  static listItemRaw(p: usize, n: i32): void {
    rawField(STRING_LIST_VALUES, p, n);
  }
  /** Opens one list item for piecewise writing; close with strEnd(). */
  static listItemBegin(): void {
    putTag(STRING_LIST_VALUES, WT_LEN);
    open(0);
  }
  static listEnd(): void {
    close(); // StringList
    close(); // AttributeValue
    close(); // map entry
  }

  // ---- piecewise strings ----

  static putStr(s: string): void {
    putString(s);
  }
  static putRaw(p: usize, n: i32): void {
    putRawUtf8(p, n);
  }
  /** One ASCII byte (< 0x80; others are replaced by '?'). */
  static putByte(b: u32): void {
    if (room() <= 0) return;
    ensure(1);
    put8(b < 0x80 ? b : 0x3f);
  }
  /** Decimal digits of `v`. */
  static putInt(v: i64): void {
    const tmp = memory.data(24);
    let u: u64 = v < 0 ? <u64>(-v) : <u64>v;
    let i = 24;
    do {
      store<u8>(tmp + <usize>--i, <u8>(0x30 + <u32>(u % 10)));
      u /= 10;
    } while (u != 0);
    if (v < 0) store<u8>(tmp + <usize>--i, 0x2d);
    putRawUtf8(tmp + <usize>i, 24 - i);
  }
  /** Bytes written so far in the open piecewise string. */
  static pieceLen(): i32 {
    if (depth <= 0 || depth > MAX_MARKS) return 0;
    return outLen - unchecked(marks[depth - 1]) - 1;
  }
  /** Closes the string opened by resourceBegin/operationBegin/attrBegin/listItemBegin. */
  static strEnd(): void {
    close();
    // attribute strings are nested three deep; resource/operation/list items one deep.
  }
  /** Closes the string opened by attrBegin (value, AttributeValue and map entry). */
  static attrEnd(): void {
    close();
    close();
    close();
  }
}
