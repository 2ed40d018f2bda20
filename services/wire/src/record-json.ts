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
} from "./gen/wire/fields.js";
import type { FieldCoverage } from "./coverage.js";
import * as r from "./reader.js";

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
    connection: "not read: a RecordBatch's records are made whole by recordsOf before (a Record by itself never sets it)",
  } satisfies FieldCoverage<typeof RecordField>,
  Endpoint: { address: "read", port: "read", process: "not in the JSON form: an end is address:port", node: "not in the JSON form", service: "not in the JSON form" } satisfies FieldCoverage<typeof EndpointField>,
  TraceContext: { traceId: "read", parentSpanId: "read", flags: "read", format: "read" } satisfies FieldCoverage<typeof TraceContextField>,
  AttributeValue: { stringValue: "read", intValue: "read", boolValue: "read", doubleValue: "read", stringList: "read" } satisfies FieldCoverage<typeof AttributeValueField>,
  StringList: { values: "read" } satisfies FieldCoverage<typeof StringListField>,
} as const;

/** Bytes that are not a wirescope.v1.Record (the wire reader's error). */
export { WireError as RecordWireError } from "./reader.js";

// ---- wire reader ----
//
// On the shared cursor (wire/reader.ts): no allocation per field, numbers below 2^53 without
// BigInt, repeated short strings from its cache.

/** An int64 in JSON: a number when exact, else its decimal text (as `safeNumber`). */
function int64Json(): number | string {
  const v = r.i64Num();
  return Number.isSafeInteger(v) ? v : r.i64Big().toString();
}

interface Ep {
  address: string;
  port: number;
}

/** Endpoint fields up to `end` over `prev` (a repeated message field merges). */
function endpointWire(end: number, prev: Ep): Ep {
  const out = { address: prev.address, port: prev.port };
  while (r.pos < end) {
    const tag = r.varint(end);
    if (tag === EndpointTag.address) out.address = r.string(end);
    else if (tag === EndpointTag.port) out.port = r.varint(end) >>> 0;
    else r.skip(tag & 7, end);
  }
  return out;
}

/** One AttributeValue up to `end`; `prev` is the entry's value so far (a string list merges). */
function attrWire(end: number): JsonValue {
  let v: JsonValue = null;
  while (r.pos < end) {
    const tag = r.varint(end);
    if (tag === AttributeValueTag.stringValue) v = r.string(end);
    else if (tag === AttributeValueTag.intValue) {
      r.varint64(end);
      v = int64Json();
    } else if (tag === AttributeValueTag.boolValue) v = r.varint(end) !== 0;
    else if (tag === AttributeValueTag.doubleValue) {
      const d = r.float64(end);
      v = Number.isFinite(d) ? d : String(d);
    } else if (tag === AttributeValueTag.stringList) {
      const e = r.lenEnd(end);
      const list: string[] = Array.isArray(v) ? v : [];
      while (r.pos < e) {
        const t = r.varint(e);
        if (t === StringListTag.values) list.push(r.string(e));
        else r.skip(t & 7, e);
      }
      v = list;
    } else r.skip(tag & 7, end);
  }
  return v;
}

/** A Record's wire bytes as the NDJSON form reads them: one reused scratch, filled by `readWire`. */
const w = {
  protocol: "",
  startNs: "0",
  durationNs: "0",
  operation: "",
  resource: "",
  status: null as number | string | null,
  error: false,
  reqBytes: 0,
  respBytes: 0,
  incomplete: false,
  trace: undefined as RecordJson["trace"],
  client: { address: "", port: 0 } as Ep,
  server: { address: "", port: 0 } as Ep,
  /** Attribute keys, sorted once read, and their values. */
  keys: [] as string[],
  vals: [] as JsonValue[],
};

function readWire(bytes: Uint8Array): void {
  r.setCursor(bytes, 0);
  const end = bytes.length;
  w.protocol = "";
  w.startNs = "0";
  w.durationNs = "0";
  w.operation = "";
  w.resource = "";
  w.status = null;
  w.error = false;
  w.reqBytes = 0;
  w.respBytes = 0;
  w.incomplete = false;
  w.trace = undefined;
  w.client = { address: "", port: 0 };
  w.server = { address: "", port: 0 };
  const keys = w.keys;
  const vals = w.vals;
  keys.length = 0;
  vals.length = 0;
  while (r.pos < end) {
    const tag = r.varint(end);
    switch (tag) {
      case RecordTag.protocol:
        w.protocol = r.string(end);
        break;
      case RecordTag.startNs:
        r.varint64(end);
        w.startNs = r.u64Text();
        break;
      case RecordTag.durationNs:
        r.varint64(end);
        w.durationNs = r.u64Text();
        break;
      case RecordTag.operation:
        w.operation = r.string(end);
        break;
      case RecordTag.resource:
        w.resource = r.string(end);
        break;
      case RecordTag.status:
        r.varint64(end);
        w.status = int64Json();
        break;
      case RecordTag.error:
        w.error = r.varint(end) !== 0;
        break;
      case RecordTag.requestBytes:
        r.varint64(end);
        w.reqBytes = r.u64Num();
        break;
      case RecordTag.responseBytes:
        r.varint64(end);
        w.respBytes = r.u64Num();
        break;
      case RecordTag.incomplete:
        w.incomplete = r.varint(end) !== 0;
        break;
      case RecordTag.trace: {
        const e = r.lenEnd(end);
        const t: NonNullable<RecordJson["trace"]> = w.trace ?? { traceId: "", parentSpanId: "", flags: 0, format: "" };
        while (r.pos < e) {
          const tg = r.varint(e);
          if (tg === TraceContextTag.traceId) t.traceId = r.hexOfLength(e, -1);
          else if (tg === TraceContextTag.parentSpanId) t.parentSpanId = r.hexOfLength(e, -1);
          else if (tg === TraceContextTag.flags) t.flags = r.varint(e) >>> 0;
          else if (tg === TraceContextTag.format) t.format = r.string(e);
          else r.skip(tg & 7, e);
        }
        w.trace = t;
        break;
      }
      case RecordTag.attributes: {
        // a map entry { key, AttributeValue }
        const e = r.lenEnd(end);
        let key = "";
        let val: JsonValue = null;
        while (r.pos < e) {
          const tg = r.varint(e);
          if (tg === RecordAttributesEntryTag.key) key = r.string(e);
          else if (tg === RecordAttributesEntryTag.value) {
            const ve = r.lenEnd(e);
            val = attrWire(ve);
          } else r.skip(tg & 7, e);
        }
        const at = keys.indexOf(key); // a few keys: a scan beats a Map
        if (at >= 0) vals[at] = val;
        else {
          keys.push(key);
          vals.push(val);
        }
        break;
      }
      case RecordTag.client: {
        const e = r.lenEnd(end);
        w.client = endpointWire(e, w.client);
        break;
      }
      case RecordTag.server: {
        const e = r.lenEnd(end);
        w.server = endpointWire(e, w.server);
        break;
      }
      default:
        r.skip(tag & 7, end);
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
}

function fromWire(bytes: Uint8Array): RecordJson {
  readWire(bytes);
  const { protocol, startNs, durationNs, operation, resource, error, reqBytes, respBytes, incomplete, trace, keys, vals } = w;
  const status = w.status as number | null;
  const attributes: RecordJson["attributes"] = {};
  for (let i = 0; i < keys.length; i++) attributes[keys[i]!] = vals[i]!;
  const c = endpointOf(w.client);
  const sv = endpointOf(w.server);
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

function endpointOf(e: Ep): string {
  return e.address || e.port ? endpoint(e as Endpoint) : "";
}

/** Keys an object would not keep in insertion order (array indices go first) or at all (`__proto__`). */
const ODD_KEY = /^(?:0|[1-9]\d*|__proto__)$/;

/**
 * NDJSON lines as UTF-8 bytes, appended to one buffer that grows: what `recordToJsonLine` and
 * `wirescope decode` write records into. `take()` hands the bytes written so far to the caller
 * (who may keep them: the next line goes into a new buffer).
 */
export class JsonLines {
  private buf: Buffer;
  private pos = 0;

  constructor(private readonly initial = 1 << 20) {
    this.buf = Buffer.allocUnsafeSlow(initial);
  }

  /** Bytes written since the last take(). */
  get length(): number {
    return this.pos;
  }

  /**
   * The bytes written since the last take(); the lines after it go into a new buffer. They are a
   * view of an ArrayBuffer of their own (never Buffer's shared pool), which may be transferred.
   */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    // as large as the largest so far: a caller that takes alike amounts grows it once
    this.buf = Buffer.allocUnsafeSlow(Math.max(this.initial, this.buf.length));
    this.pos = 0;
    return out;
  }

  /** Room for `n` more bytes. */
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Text of printable ASCII that needs no escape (keys, digits, punctuation). */
  raw(s: string): void {
    this.room(s.length);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** A string as JSON.stringify writes it, in UTF-8. */
  str(s: string): void {
    const n = s.length;
    this.room(n + 2);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      // printable ASCII but `"` and `\`: as is; anything else (escapes, UTF-8) as JSON.stringify
      // writes the whole string, from the opening quote again
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
        this.text(JSON.stringify(s));
        return;
      }
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** Any text, in UTF-8 as it is (no quotes, no escapes). */
  text(s: string): void {
    this.room(s.length * 3);
    this.pos += this.buf.write(s, this.pos, "utf8");
  }

  /** A JSON value as JSON.stringify writes it (numbers here are finite). */
  value(v: JsonValue): void {
    if (typeof v === "string") this.str(v);
    else if (typeof v === "number") this.raw(String(v));
    else if (v === null) this.raw("null");
    else if (typeof v === "boolean") this.raw(v ? "true" : "false");
    else {
      this.raw("[");
      for (let i = 0; i < v.length; i++) {
        if (i) this.raw(",");
        this.str(v[i]!);
      }
      this.raw("]");
    }
  }
}

/**
 * Appends a record's wire bytes to `out` as one NDJSON line and its newline: exactly
 * `JSON.stringify(recordToJson(bytes, ends))`, written without the object in between (the hot
 * path of `wirescope decode`). Throws RecordWireError as `recordToJson` does, having written
 * nothing.
 */
export function writeRecordJsonLine(out: JsonLines, bytes: Uint8Array, ends?: JsonEnds): void {
  readWire(bytes);
  const keys = w.keys;
  for (let i = 0; i < keys.length; i++) {
    // an object would reorder or drop this key: the object's own JSON
    if (ODD_KEY.test(keys[i]!)) {
      out.text(`${JSON.stringify(recordToJson(bytes, ends))}\n`);
      return;
    }
  }
  out.raw('{"protocol":');
  out.str(w.protocol);
  out.raw(',"client":');
  out.str(ends?.client ?? endpointOf(w.client));
  out.raw(',"server":');
  out.str(ends?.server ?? endpointOf(w.server));
  out.raw(',"startNs":"');
  out.raw(w.startNs);
  out.raw('","durationNs":"');
  out.raw(w.durationNs);
  out.raw('","operation":');
  out.str(w.operation);
  out.raw(',"resource":');
  out.str(w.resource);
  out.raw(',"status":');
  const status = w.status;
  if (typeof status === "string") out.str(status);
  else out.raw(status === null ? "null" : String(status));
  out.raw(w.error ? ',"error":true,"reqBytes":' : ',"error":false,"reqBytes":');
  out.raw(String(w.reqBytes));
  out.raw(',"respBytes":');
  out.raw(String(w.respBytes));
  if (w.incomplete) out.raw(',"incomplete":true');
  const t = w.trace;
  if (t !== undefined && (t.traceId !== "" || t.parentSpanId !== "")) {
    out.raw(',"trace":{"traceId":"');
    out.raw(t.traceId);
    out.raw('","parentSpanId":"');
    out.raw(t.parentSpanId);
    out.raw('","flags":');
    out.raw(String(t.flags));
    out.raw(',"format":');
    out.str(t.format);
    out.raw("}");
  }
  out.raw(',"attributes":{');
  const vals = w.vals;
  for (let i = 0; i < keys.length; i++) {
    if (i) out.raw(",");
    out.str(keys[i]!);
    out.raw(":");
    out.value(vals[i]!);
  }
  out.raw("}}\n");
}

const scratch = new JsonLines(4096);

/**
 * One NDJSON line (no newline): exactly `JSON.stringify(recordToJson(record, ends))`; wire bytes
 * go through `writeRecordJsonLine`.
 */
export function recordToJsonLine(record: WsRecord | Uint8Array, ends?: JsonEnds): string {
  if (!(record instanceof Uint8Array)) return JSON.stringify(recordToJson(record, ends));
  writeRecordJsonLine(scratch, record, ends);
  const b = scratch.take();
  return b.toString("utf8", 0, b.length - 1);
}
