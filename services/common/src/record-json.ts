// The NDJSON form of a Record: the contract `wirescope decode` prints and tests rely on.
//
//   {"protocol":"http2","client":"10.0.0.1:51400","server":"10.0.0.2:8080","startNs":"…","durationNs":"…",
//    "operation":"GET","resource":"/hello","status":404,"error":false,"reqBytes":0,"respBytes":9,
//    "attributes":{"http.request.method":"GET",…}}
//
// Key order is fixed. startNs/durationNs are decimal strings (nanoseconds exceed 2^53). status is
// a number, or null when the record has none (incomplete requests). "incomplete":true appears only
// on incomplete records; "trace" only when a trace context was seen. Attribute values: strings,
// numbers (int64 beyond ±2^53 as strings), booleans, arrays of strings.

import { fromBinary } from "@bufbuild/protobuf";
import { RecordSchema, type Record as WsRecord, type AttributeValue, type Endpoint } from "./gen/wirescope/v1/record_pb.js";

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

/** The NDJSON object of a record (decoded Record, or its wire bytes). */
export function recordToJson(record: WsRecord | Uint8Array): RecordJson {
  const r = record instanceof Uint8Array ? fromBinary(RecordSchema, record) : record;
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
    attributes: {},
  };
  if (r.incomplete) out.incomplete = true;
  if (r.trace && (r.trace.traceId.length || r.trace.parentSpanId.length)) {
    out.trace = { traceId: hex(r.trace.traceId), parentSpanId: hex(r.trace.parentSpanId), flags: r.trace.flags, format: r.trace.format };
  }
  for (const k of Object.keys(r.attributes).sort()) out.attributes[k] = attr(r.attributes[k]!);
  return out;
}

/** One NDJSON line (no trailing newline). */
export function recordToJsonLine(record: WsRecord | Uint8Array): string {
  return JSON.stringify(recordToJson(record));
}
