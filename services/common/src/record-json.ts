// The NDJSON form of a Record: the contract `wirescope decode` prints and tests rely on.
//
//   {"protocol":"http2","client":"10.0.0.1:51400","server":"10.0.0.2:8080","startNs":"…","durationNs":"…",
//    "operation":"GET","resource":"/hello","status":404,"error":false,"reqBytes":0,"respBytes":9,
//    "attributes":{"http.request.method":"GET",…}}
//
// Key order is fixed (and stays so: consumers diff it). startNs/durationNs are decimal strings (nanoseconds exceed 2^53). status is
// a number, or null when the record has none (incomplete requests). "incomplete":true appears only
// on incomplete records; "trace" only when a trace context was seen. Attribute values: strings,
// numbers (int64 beyond ±2^53 as strings), booleans, arrays of strings.

import { type Record as WsRecord, type AttributeValue, type Endpoint } from "./gen/wirescope/v1/record_pb.js";
import {
  type AttributeValueField,
  AttributeValueTag,
  type EndpointField,
  EndpointTag,
  RecordAttributesEntryTag,
  type RecordField,
  RecordTag,
  type StringListField,
  StringListTag,
  type TraceContextField,
  TraceContextTag,
  WireType,
} from "./gen/wire/fields.js";
import type { FieldCoverage } from "./wire/coverage.js";

export type JsonValue = string | number | boolean | null | string[];

export interface RecordJson {
  protocol: string;
  client: string;
  server: string;
  startNs: string;
  durationNs: string;
  operation: string;
  resource: string;
  status: number | null;
  error: boolean;
  reqBytes: number;
  respBytes: number;
  incomplete?: true;
  trace?: { traceId: string; parentSpanId: string; flags: number; format: string };
  attributes: { [key: string]: JsonValue };
}

/** "address:port" ("[v6]:port"), or "" for an empty endpoint. */
export function endpointText(e: { address: string; port: number } | undefined): string {
  return endpoint(e as Endpoint | undefined);
}

function endpoint(e: Endpoint | undefined): string {
  if (!e || (!e.address && !e.port)) return "";
  const a = e.address.includes(":") && !e.address.startsWith("[") ? `[${e.address}]` : e.address;
  return `${a}:${e.port}`;
}

function safeNumber(v: bigint): number | string {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

function attr(v: AttributeValue): JsonValue {
  const x = v.value;
  switch (x.case) {
    case "stringValue":
      return x.value;
    case "intValue": {
      const n = safeNumber(x.value);
      return n;
    }
    case "boolValue":
      return x.value;
    case "doubleValue":
      return Number.isFinite(x.value) ? x.value : String(x.value);
    case "stringList":
      return [...x.value.values];
    default:
      return null;
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Endpoints given as "address:port" strings, overriding what the record holds. */
export interface JsonEnds {
  client?: string;
  server?: string;
}

/**
 * The NDJSON object of a record: a decoded Record, or its wire bytes (plugin fields, optionally
 * followed by host-appended fields). Wire bytes take a hand-written reader (no protobuf-es
 * reflection: this is the hot path of `wirescope decode`); it throws RecordWireError on bytes
 * that are not a Record.
 */
export function recordToJson(record: WsRecord | Uint8Array, ends?: JsonEnds): RecordJson {
  const out = record instanceof Uint8Array ? fromWire(record) : fromMessage(record);
  if (ends?.client !== undefined) out.client = ends.client;
  if (ends?.server !== undefined) out.server = ends.server;
  return out;
}

function fromMessage(r: WsRecord): RecordJson {
  const out: RecordJson = {
    protocol: r.protocol,
    client: endpoint(r.client),
    server: endpoint(r.server),
    startNs: r.startNs.toString(),
    durationNs: r.durationNs.toString(),
    operation: r.operation,
    resource: r.resource,
    status: r.status === undefined ? null : (safeNumber(r.status) as number),
    error: r.error,
    reqBytes: Number(r.requestBytes),
    respBytes: Number(r.responseBytes),
  } as RecordJson;
  // insertion order is the JSON key order: incomplete and trace before attributes
  if (r.incomplete) out.incomplete = true;
  if (r.trace && (r.trace.traceId.length || r.trace.parentSpanId.length)) {
    out.trace = { traceId: hex(r.trace.traceId), parentSpanId: hex(r.trace.parentSpanId), flags: r.trace.flags, format: r.trace.format };
  }
  out.attributes = {};
  for (const k of Object.keys(r.attributes).sort()) out.attributes[k] = attr(r.attributes[k]!);
  return out;
}

/**
 * What the NDJSON form takes from a Record, field by field (both readers: `fromMessage` and the
 * wire reader). A field added to proto/ fails the build here until it is placed.
 */
export const RECORD_JSON_FIELDS = {
  Record: {
    protocol: "read", startNs: "read", durationNs: "read", operation: "read", resource: "read", status: "read", error: "read",
    requestBytes: "read", responseBytes: "read", incomplete: "read", trace: "read", attributes: "read", client: "read", server: "read",
    connKey: "not in the JSON form (host bookkeeping)", role: "not in the JSON form (client and server say it)", tid: "not in the JSON form (host bookkeeping)",
    node: "not in the JSON form (host bookkeeping)", observedFraction: "not in the JSON form (the aggregator scales by it)",
  } satisfies FieldCoverage<typeof RecordField>,
  Endpoint: { address: "read", port: "read", process: "not in the JSON form: an end is address:port", node: "not in the JSON form", service: "not in the JSON form" } satisfies FieldCoverage<typeof EndpointField>,
  TraceContext: { traceId: "read", parentSpanId: "read", flags: "read", format: "read" } satisfies FieldCoverage<typeof TraceContextField>,
  AttributeValue: { stringValue: "read", intValue: "read", boolValue: "read", doubleValue: "read", stringList: "read" } satisfies FieldCoverage<typeof AttributeValueField>,
  StringList: { values: "read" } satisfies FieldCoverage<typeof StringListField>,
} as const;

/** Bytes that are not a wirescope.v1.Record. */
export class RecordWireError extends Error {}

// ---- wire reader ----
//
// Written for speed: no allocation per field (lengths go to fields of the reader, not tuples),
// numbers below 2^53 without BigInt, strings sliced by Node's native latin1/utf8 decoders.

type Buf = Uint8Array & { latin1Slice(s: number, e: number): string; utf8Slice(s: number, e: number): string };
type Slice = (this: Uint8Array, s: number, e: number) => string;

class Wire {
  pos = 0;
  end = 0;
  /** Content bounds of the last length-delimited field read by len(). */
  ls = 0;
  le = 0;
  constructor(readonly b: Uint8Array) {}

  at(start: number, end: number): this {
    this.pos = start;
    this.end = end;
    return this;
  }

  private byte(): number {
    if (this.pos >= this.end) throw new RecordWireError("truncated varint");
    return this.b[this.pos++]!;
  }

  /** A varint as a number (exact below 2^53; tags, lengths, sizes, ports, flags). */
  u(): number {
    let x = this.byte();
    if (x < 0x80) return x;
    let r = x & 0x7f;
    let mul = 128;
    for (let i = 1; i < 10; i++) {
      x = this.byte();
      r += (x & 0x7f) * mul;
      if (x < 0x80) return r;
      mul *= 128;
    }
    throw new RecordWireError("varint longer than 10 bytes");
  }

  /** A varint as a bigint (64-bit values: nanoseconds, int64). */
  big(): bigint {
    const start = this.pos;
    const n = this.u();
    if (n <= Number.MAX_SAFE_INTEGER && this.pos - start <= 7) return BigInt(n);
    let r = 0n;
    let shift = 0n;
    for (let i = start; i < this.pos; i++) {
      r |= BigInt(this.b[i]! & 0x7f) << shift;
      shift += 7n;
    }
    return BigInt.asUintN(64, r);
  }

  /** Reads a length; sets ls/le to the content and moves past it. */
  len(): void {
    const n = this.u();
    const s = this.pos;
    if (n > this.end - s) throw new RecordWireError("length past the end");
    this.ls = s;
    this.le = s + n;
    this.pos = s + n;
  }

  str(): string {
    this.len();
    return slice(this.b, this.ls, this.le);
  }

  /** A varint's decimal text (uint64). */
  text(): string {
    const start = this.pos;
    this.u();
    return u64Text(this.b, start, this.pos);
  }

  skip(wt: number): void {
    if (wt === WireType.VARINT) this.u();
    else if (wt === WireType.I64) this.pos += 8;
    else if (wt === WireType.LEN) this.len();
    else if (wt === WireType.I32) this.pos += 4;
    else throw new RecordWireError(`unsupported wire type ${wt}`);
    if (this.pos > this.end) throw new RecordWireError("field past the end");
  }
}

// Node's native decoders accept any Uint8Array as `this`: no Buffer object per record.
const latin1Slice = (Buffer.prototype as unknown as Buf).latin1Slice as Slice;
const utf8Slice = (Buffer.prototype as unknown as Buf).utf8Slice as Slice;

// Short strings repeat endlessly in records (attribute keys, methods, protocols, status words):
// an intern table keyed by a hash of the bytes returns the same string without decoding.
const INTERN_SLOTS = 4096;
const INTERN_MAX = 48;
const internBytes: (Uint8Array | undefined)[] = new Array(INTERN_SLOTS);
const internStr: string[] = new Array(INTERN_SLOTS);

/** UTF-8 text of b[s, e): invalid sequences become U+FFFD (as protobuf-es does). */
function slice(b: Uint8Array, s: number, e: number): string {
  const n = e - s;
  if (n === 0) return "";
  if (n > INTERN_MAX) return decode(b, s, e);
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  const slot = (h >>> 0) & (INTERN_SLOTS - 1);
  const k = internBytes[slot];
  if (k && k.length === n) {
    let i = 0;
    while (i < n && k[i] === b[s + i]) i++;
    if (i === n) return internStr[slot]!;
  }
  const str = decode(b, s, e);
  internBytes[slot] = b.slice(s, e);
  internStr[slot] = str;
  return str;
}

function decode(b: Uint8Array, s: number, e: number): string {
  for (let i = s; i < e; i++) if (b[i]! >= 0x80) return utf8Slice.call(b, s, e);
  return latin1Slice.call(b, s, e);
}

/** Decimal text of the unsigned varint at b[s, e) (up to 64 bits) without BigInt. */
function u64Text(b: Uint8Array, s: number, e: number): string {
  // value = hi * 2^28 + lo, lo from the first four bytes
  let lo = 0;
  let hi = 0;
  let mul = 1;
  for (let i = s; i < e; i++) {
    const x = b[i]! & 0x7f;
    if (i - s < 4) lo += x * mul;
    else hi += x * (mul / 268435456);
    mul *= 128;
  }
  if (hi < 0x2000000) return String(hi * 268435456 + lo); // below 2^53
  hi = hi % 68719476736; // 64-bit wrap: hi has at most 36 bits
  // value = (xh * 1e7 + xl) * 2^28 + lo = xh * 2^28 * 1e7 + (xl * 2^28 + lo)
  const xh = Math.floor(hi / 1e7);
  const xl = hi - xh * 1e7;
  const t = xl * 268435456 + lo;
  const tq = Math.floor(t / 1e7);
  const high = xh * 268435456 + tq;
  const low = t - tq * 1e7;
  return high === 0 ? String(low) : String(high) + String(low).padStart(7, "0");
}

const I64 = (v: bigint) => BigInt.asIntN(64, v);
const num64 = (v: bigint) => safeNumber(I64(v));

interface Ep {
  address: string;
  port: number;
}

function endpointWire(b: Uint8Array, s: number, e: number, prev: Ep): Ep {
  const r = new Wire(b).at(s, e);
  const out = { address: prev.address, port: prev.port };
  while (r.pos < r.end) {
    const tag = r.u();
    if (tag === EndpointTag.address) out.address = r.str();
    else if (tag === EndpointTag.port) out.port = r.u() >>> 0;
    else r.skip(tag & 7);
  }
  return out;
}

function attrWire(r: Wire, s: number, e: number): JsonValue {
  const end = r.end;
  r.at(s, e);
  let v: JsonValue = null;
  while (r.pos < r.end) {
    const tag = r.u();
    if (tag === AttributeValueTag.stringValue) v = r.str();
    else if (tag === AttributeValueTag.intValue) v = num64(r.big());
    else if (tag === AttributeValueTag.boolValue) v = r.u() !== 0;
    else if (tag === AttributeValueTag.doubleValue) {
      if (r.pos + 8 > r.end) throw new RecordWireError("truncated double");
      const d = new DataView(r.b.buffer, r.b.byteOffset + r.pos, 8).getFloat64(0, true);
      r.pos += 8;
      v = Number.isFinite(d) ? d : String(d);
    } else if (tag === AttributeValueTag.stringList) {
      r.len();
      const list: string[] = Array.isArray(v) ? v : [];
      const lr = new Wire(r.b).at(r.ls, r.le);
      while (lr.pos < lr.end) {
        const t = lr.u();
        if (t === StringListTag.values) list.push(lr.str());
        else lr.skip(t & 7);
      }
      v = list;
    } else r.skip(tag & 7);
  }
  r.end = end;
  return v;
}

function fromWire(bytes: Uint8Array): RecordJson {
  const b = bytes;
  const w = new Wire(b).at(0, b.length);
  const sub = new Wire(b);
  let protocol = "";
  let startNs = "0";
  let durationNs = "0";
  let operation = "";
  let resource = "";
  let status: number | null = null;
  let error = false;
  let reqBytes = 0;
  let respBytes = 0;
  let incomplete = false;
  let trace: RecordJson["trace"];
  let client: Ep = { address: "", port: 0 };
  let server: Ep = { address: "", port: 0 };
  const keys: string[] = [];
  const vals: JsonValue[] = [];
  while (w.pos < w.end) {
    const tag = w.u();
    switch (tag) {
      case RecordTag.protocol:
        protocol = w.str();
        break;
      case RecordTag.startNs:
        startNs = w.text();
        break;
      case RecordTag.durationNs:
        durationNs = w.text();
        break;
      case RecordTag.operation:
        operation = w.str();
        break;
      case RecordTag.resource:
        resource = w.str();
        break;
      case RecordTag.status:
        status = num64(w.big()) as number;
        break;
      case RecordTag.error:
        error = w.u() !== 0;
        break;
      case RecordTag.requestBytes:
        reqBytes = w.u();
        break;
      case RecordTag.responseBytes:
        respBytes = w.u();
        break;
      case RecordTag.incomplete:
        incomplete = w.u() !== 0;
        break;
      case RecordTag.trace: {
        w.len();
        const r = sub.at(w.ls, w.le);
        const t = trace ?? { traceId: "", parentSpanId: "", flags: 0, format: "" };
        while (r.pos < r.end) {
          const tg = r.u();
          if (tg === TraceContextTag.traceId) {
            r.len();
            t.traceId = Buffer.from(b.buffer, b.byteOffset + r.ls, r.le - r.ls).toString("hex");
          } else if (tg === TraceContextTag.parentSpanId) {
            r.len();
            t.parentSpanId = Buffer.from(b.buffer, b.byteOffset + r.ls, r.le - r.ls).toString("hex");
          } else if (tg === TraceContextTag.flags) t.flags = r.u() >>> 0;
          else if (tg === TraceContextTag.format) t.format = r.str();
          else r.skip(tg & 7);
        }
        trace = t;
        break;
      }
      case RecordTag.attributes: {
        // a map entry { key, AttributeValue }
        w.len();
        const r = sub.at(w.ls, w.le);
        let key = "";
        let vs = -1;
        let ve = -1;
        while (r.pos < r.end) {
          const tg = r.u();
          if (tg === RecordAttributesEntryTag.key) key = r.str();
          else if (tg === RecordAttributesEntryTag.value) {
            r.len();
            vs = r.ls;
            ve = r.le;
          } else r.skip(tg & 7);
        }
        const val = vs >= 0 ? attrWire(r, vs, ve) : null;
        const at = keys.indexOf(key); // a few keys: a scan beats a Map
        if (at >= 0) vals[at] = val;
        else {
          keys.push(key);
          vals.push(val);
        }
        break;
      }
      case RecordTag.client: // a two-byte tag (a2 01), read whole by u()
      case RecordTag.server:
        w.skip(WireType.LEN);
        if (tag === RecordTag.client) client = endpointWire(b, w.ls, w.le, client);
        else server = endpointWire(b, w.ls, w.le, server);
        break;
      default:
        w.skip(tag & 7);
    }
  }
  // attributes sorted by key (insertion sort: a handful, usually already in order)
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    const v = vals[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      vals[j + 1] = vals[j]!;
      j--;
    }
    keys[j + 1] = k;
    vals[j + 1] = v;
  }
  const attributes: RecordJson["attributes"] = {};
  for (let i = 0; i < keys.length; i++) attributes[keys[i]!] = vals[i]!;
  const c = client.address || client.port ? endpoint(client as Endpoint) : "";
  const sv = server.address || server.port ? endpoint(server as Endpoint) : "";
  const hasTrace = trace !== undefined && (trace.traceId !== "" || trace.parentSpanId !== "");
  if (!incomplete && !hasTrace) {
    // one literal, one hidden class for the common record
    return { protocol, client: c, server: sv, startNs, durationNs, operation, resource, status, error, reqBytes, respBytes, attributes };
  }
  const out = { protocol, client: c, server: sv, startNs, durationNs, operation, resource, status, error, reqBytes, respBytes } as RecordJson;
  if (incomplete) out.incomplete = true;
  if (hasTrace) out.trace = trace;
  out.attributes = attributes;
  return out;
}

/** One NDJSON line (no trailing newline). */
export function recordToJsonLine(record: WsRecord | Uint8Array): string {
  return JSON.stringify(recordToJson(record));
}
