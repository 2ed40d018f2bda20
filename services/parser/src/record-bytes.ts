// Reading a few top-level fields out of a plugin's Record bytes without decoding the message,
// and appending the host's fields (20+) as a second encoding of the same message.
//
//   plugin bytes (fields 1-19)          host suffix (fields 20-23, 25, 26)       per record
//   ┌───────────────────────────────┐   ┌────────────────────────────────┐   ┌────────────┐
//   │ 0a len "http" 10 <start_ns> … │ + │ a2 01 len <client> aa 01 len … │ + │ c0 01 <tid> │
//   └───────────────────────────────┘   └────────────────────────────────┘   └────────────┘
// Protobuf merges concatenated encodings of one message, so the result decodes as one Record.
// In a RecordBatch the suffix is written once per connection (RecordBatch.connections) and each
// record names it (record-batcher.ts); appendHostFields joins the three pieces into one Record.
//
// Tags come from the generated table of proto/ (@wirescope/wire); HOST_FIELDS says what the
// host writes of each message, and record-bytes.test.ts checks it against protobuf-es.
import {
  AttributeValueTag,
  type EndpointField,
  EndpointTag,
  type FieldCoverage,
  type ProcessInfo,
  type ProcessInfoField,
  RecordAttributesEntryTag,
  type RecordField,
  RecordTag,
  type Role,
  varintLen,
  WireType,
  WireWriter,
  writeProcessInfo,
  writeVarint,
} from "@wirescope/wire";
import type { EndpointInfo } from "./identity.js";

/** Fields the host needs from a plugin's record to route and label it. */
export interface RecordHead {
  protocol: string;
  startNs: bigint;
  /** An attribute key that host-side redaction must look at (see redact.ts) is present. */
  sensitive: boolean;
}

const td = new TextDecoder();
// The protocol string repeats on every record of a connection: decode it once.
let lastProto = new Uint8Array(0);
let lastProtoStr = "";

function protocolString(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n === lastProto.length) {
    let same = true;
    for (let k = 0; k < n; k++) {
      if (b[start + k] !== lastProto[k]) {
        same = false;
        break;
      }
    }
    if (same) return lastProtoStr;
  }
  lastProto = b.slice(start, end);
  lastProtoStr = td.decode(lastProto);
  return lastProtoStr;
}

// Attribute keys (map entry field 1 inside Record field 12) that host-side redaction handles:
// header/metadata values, db.query.text, and a key whose last segment is "body" (a message body;
// "http.request.body.size" is a size and stays).
const SENSITIVE_PREFIXES = ["http.request.header.", "http.response.header.", "rpc.grpc.request.metadata.", "rpc.grpc.response.metadata.", "db.query.text"].map((x) => new TextEncoder().encode(x));
const FIRST = new Set(SENSITIVE_PREFIXES.map((p) => p[0]!));

function sensitiveKey(b: Uint8Array, start: number, end: number): boolean {
  const n = end - start;
  // ...body
  if (n >= 4 && b[end - 4] === 0x62 && b[end - 3] === 0x6f && b[end - 2] === 0x64 && b[end - 1] === 0x79 && (n === 4 || b[end - 5] === 0x2e)) return true;
  if (!FIRST.has(b[start]!)) return false;
  outer: for (const p of SENSITIVE_PREFIXES) {
    if (n < p.length) continue;
    for (let k = 0; k < p.length; k++) if (b[start + k] !== p[k]) continue outer;
    return true;
  }
  return false;
}

// 2^0, 2^7, ... for the high part of a varint (bits 28..63) without Math.pow.
const POW = Array.from({ length: 10 }, (_, k) => 2 ** (7 * k));

/**
 * Scans top-level fields for protocol, start_ns and the keys of attributes.
 * Returns undefined when the bytes are not well-formed protobuf (the caller counts a drop).
 */
export function readHead(b: Uint8Array): RecordHead | undefined {
  let protocol = "";
  let startNs = 0n;
  let sensitive = false;
  let i = 0;
  const n = b.length;
  while (i < n) {
    let tag = 0;
    let shift = 0;
    for (;;) {
      if (i >= n || shift > 28) return undefined;
      const c = b[i++]!;
      tag |= (c & 0x7f) << shift;
      if (c < 0x80) break;
      shift += 7;
    }
    const wt = tag & 7;
    if (wt === WireType.VARINT) {
      // varint: low 28 bits and the rest as plain numbers, one BigInt at the end
      let lo = 0;
      let hi = 0;
      let s = 0;
      for (;;) {
        if (i >= n || s > 63) return undefined;
        const c = b[i++]!;
        if (s < 28) lo |= (c & 0x7f) << s;
        else hi += (c & 0x7f) * POW[(s - 28) / 7]!;
        if (c < 0x80) break;
        s += 7;
      }
      if (tag === RecordTag.startNs) startNs = (BigInt(hi) << 28n) | BigInt(lo);
    } else if (wt === WireType.LEN) {
      let len = 0;
      let s = 0;
      for (;;) {
        if (i >= n || s > 28) return undefined;
        const c = b[i++]!;
        len |= (c & 0x7f) << s;
        if (c < 0x80) break;
        s += 7;
      }
      if (len < 0 || i + len > n) return undefined;
      if (tag === RecordTag.protocol) protocol = protocolString(b, i, i + len);
      else if (tag === RecordTag.attributes && !sensitive && len > 2 && b[i] === RecordAttributesEntryTag.key) {
        // map entry: <key tag> <key len> <key> ...
        const kl = b[i + 1]!;
        if (kl < 0x80 && i + 2 + kl <= i + len) sensitive = sensitiveKey(b, i + 2, i + 2 + kl);
        else sensitive = true; // long or odd key: let redaction decode and decide
      }
      i += len;
    } else if (wt === WireType.I64) {
      i += 8;
    } else if (wt === WireType.I32) {
      i += 4;
    } else {
      return undefined;
    }
  }
  if (i !== n) return undefined;
  return { protocol, startNs, sensitive };
}

export interface HostFields {
  client?: EndpointInfo;
  server?: EndpointInfo;
  connKey: bigint;
  role: Role;
  node: string;
  /** The TLS library whose plaintext this connection is (ConnEvent.tls_library), when tls. */
  tlsLibrary?: string;
  /** Its connection's observed fraction (ConnEvent.observed_fraction): written when < 1. */
  observedFraction?: number;
}

/** What the host writes of each message (fields 1-19 of Record are the plugin's). */
export const HOST_FIELDS = {
  Record: {
    client: "written", server: "written", connKey: "written", role: "written", node: "written", observedFraction: "written",
    tid: "written", // per record, by appendHostFields
    connection: "not written here: record-batcher.ts names each record's entry of the batch's connections, which hold this suffix",
    attributes: "written", // tls and tls.library, merged into the plugin's map
    protocol: "not the host's: the plugin writes 1-19", startNs: "not the host's", durationNs: "not the host's", operation: "not the host's",
    resource: "not the host's", status: "not the host's", error: "not the host's", requestBytes: "not the host's", responseBytes: "not the host's",
    incomplete: "not the host's", trace: "not the host's",
  } satisfies FieldCoverage<typeof RecordField>,
  Endpoint: { address: "written", port: "written", process: "written", node: "written", service: "written" } satisfies FieldCoverage<typeof EndpointField>,
  ProcessInfo: {
    pid: "written", name: "written", containerId: "written", pod: "written", namespace: "written", container: "written", workload: "written",
    exe: "not written: a record names its process by identity; the RawBatch's ConnEvent keeps exe and cmdline",
    cmdline: "not written (see exe): up to 4 KiB per end and record, read by no consumer",
  } satisfies FieldCoverage<typeof ProcessInfoField>,
} as const;

// Scratch writers, reused for every connection: a connection's host fields cost one allocation
// (the suffix), not a buffer and a copy per sub-message. Each sub-message is copied into its
// parent before its writer is used again.
const PROCESS_W = new WireWriter();
const ENDPOINT_W = new WireWriter();
const HOST_W = new WireWriter();

/** ProcessInfo's bytes in PROCESS_W (a view), or undefined. */
function processInfo(p: ProcessInfo | undefined): Uint8Array | undefined {
  if (!p) return undefined;
  const w = PROCESS_W.reset();
  writeProcessInfo(w, p.pid, p.name, p, false);
  return w.view();
}

/** Endpoint's bytes in ENDPOINT_W (a view), or undefined. */
function endpoint(e: EndpointInfo | undefined): Uint8Array | undefined {
  if (!e) return undefined;
  const w = ENDPOINT_W.reset();
  w.string(EndpointTag.address, e.address);
  w.uint(EndpointTag.port, e.port);
  w.lenField(EndpointTag.process, processInfo(e.process));
  w.string(EndpointTag.node, e.node);
  w.string(EndpointTag.service, e.service);
  return w.view();
}

/** One map<string, AttributeValue> entry: key, and the value written by `value`. */
function attribute(key: string, value: (v: WireWriter) => void): Uint8Array {
  const v = new WireWriter();
  value(v);
  const e = new WireWriter();
  e.string(RecordAttributesEntryTag.key, key);
  e.lenField(RecordAttributesEntryTag.value, v.bytes());
  return e.bytes();
}

/** Encodes the connection's host fields once (client, server, conn_key, role, node, the TLS attributes, observed_fraction); tid is added per record. */
export function encodeHostFields(f: HostFields): Uint8Array {
  const w = HOST_W.reset();
  w.lenField(RecordTag.client, endpoint(f.client));
  w.lenField(RecordTag.server, endpoint(f.server));
  w.uint(RecordTag.connKey, f.connKey);
  w.uint(RecordTag.role, f.role);
  w.string(RecordTag.node, f.node);
  if (f.tlsLibrary !== undefined) {
    // Record.attributes (a map): entries appended here merge with the plugin's
    // tls = true, tls.library = "openssl"
    w.lenField(RecordTag.attributes, attribute("tls", (v) => v.uint(AttributeValueTag.boolValue, 1)));
    w.lenField(RecordTag.attributes, attribute("tls.library", (v) => v.string(AttributeValueTag.stringValue, f.tlsLibrary || "unknown")));
  }
  // a sampled connection: each record stands for 1 / fraction requests (the aggregator scales)
  if (f.observedFraction !== undefined && f.observedFraction > 0 && f.observedFraction < 1) w.float(RecordTag.observedFraction, f.observedFraction);
  return w.bytes();
}

// Per-record fields after the plugin's bytes, as varints (nothing for 0): tid (24, here) and the
// batch's connection entry (27, written by record-batcher.ts). Both tags take two bytes.
const uintFieldLen = (tag: number, v: number) => (v > 0 ? varintLen(tag) + varintLen(v) : 0);
function writeUintField(out: Uint8Array, i: number, tag: number, v: number): number {
  if (v > 0) {
    i = writeVarint(out, i, tag);
    i = writeVarint(out, i, v >>> 0);
  }
  return i;
}

/** Bytes of tid's field as appendHostFields writes it (none for 0). */
export const tidFieldLen = (tid: number): number => uintFieldLen(RecordTag.tid, tid);

/** Writes tid's field (tag, varint) at out[i]; returns the position after it. Nothing for 0. */
export const writeTidField = (out: Uint8Array, i: number, tid: number): number => writeUintField(out, i, RecordTag.tid, tid);

/** Bytes of Record.connection's field (the batch's entry, 1-based; none for 0). */
export const connectionFieldLen = (ref: number): number => uintFieldLen(RecordTag.connection, ref);

/** Writes Record.connection's field at out[i]; returns the position after it. Nothing for 0. */
export const writeConnectionField = (out: Uint8Array, i: number, ref: number): number => writeUintField(out, i, RecordTag.connection, ref);

/** plugin bytes + connection suffix + tid, in one allocation. */
export function appendHostFields(plugin: Uint8Array, suffix: Uint8Array, tid: number): Uint8Array {
  const out = new Uint8Array(plugin.length + suffix.length + tidFieldLen(tid));
  out.set(plugin, 0);
  out.set(suffix, plugin.length);
  writeTidField(out, plugin.length + suffix.length, tid);
  return out;
}
