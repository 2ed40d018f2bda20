// Reading a few top-level fields out of a plugin's Record bytes without decoding the message,
// and appending the host's fields (20+) as a second encoding of the same message.
//
//   plugin bytes (fields 1-19)          host suffix (fields 20-25)
//   ┌───────────────────────────────┐   ┌───────────────────────────────────┐
//   │ 0a len "http" 10 <start_ns> … │ + │ a2 01 len <client> aa 01 len … c0 01 <tid> │
//   └───────────────────────────────┘   └───────────────────────────────────┘
// Protobuf merges concatenated encodings of one message, so the result decodes as one Record.
import { RecordField, type ProcessInfo, type Role } from "@wirescope/common";
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
 * Scans top-level fields for protocol (1), start_ns (2) and the keys of attributes (12).
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
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt === 0) {
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
      if (field === 2) startNs = (BigInt(hi) << 28n) | BigInt(lo);
    } else if (wt === 2) {
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
      if (field === 1) protocol = protocolString(b, i, i + len);
      else if (field === 12 && !sensitive && len > 2 && b[i] === 0x0a) {
        // map entry: 0a <key len> <key> ...
        const kl = b[i + 1]!;
        if (kl < 0x80 && i + 2 + kl <= i + len) sensitive = sensitiveKey(b, i + 2, i + 2 + kl);
        else sensitive = true; // long or odd key: let redaction decode and decide
      }
      i += len;
    } else if (wt === 1) {
      i += 8;
    } else if (wt === 5) {
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

const te = new TextEncoder();

/** A tiny protobuf writer for the host fields (once per connection; no reflection). */
class Writer {
  private parts: number[] = [];
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  uint(field: number, v: number | bigint): void {
    if (!v) return; // proto3: zero is not written
    this.tag(field, 0);
    this.varint(v);
  }
  bytes(field: number, b: Uint8Array | number[]): void {
    this.tag(field, 2);
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
  }
  string(field: number, s: string | undefined): void {
    if (s) this.bytes(field, te.encode(s));
  }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.parts.push(x);
  }
  message(field: number, w: Writer | undefined): void {
    if (w) this.bytes(field, w.parts);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function processInfo(p: ProcessInfo | undefined): Writer | undefined {
  if (!p) return undefined;
  const w = new Writer();
  w.uint(1, p.pid);
  w.string(2, p.name);
  w.string(3, p.exe);
  w.string(4, p.cmdline);
  w.string(5, p.containerId);
  w.string(6, p.pod);
  w.string(7, p.namespace);
  w.string(8, p.container);
  w.string(9, p.workload);
  return w;
}

function endpoint(e: EndpointInfo | undefined): Writer | undefined {
  if (!e) return undefined;
  const w = new Writer();
  w.string(1, e.address);
  w.uint(2, e.port);
  w.message(3, processInfo(e.process));
  w.string(4, e.node);
  w.string(5, e.service);
  return w;
}

/** One map<string, AttributeValue> entry: key (1), value (2) written by `value`. */
function attribute(key: string, value: (v: Writer) => void): Writer {
  const v = new Writer();
  value(v);
  const e = new Writer();
  e.string(1, key);
  e.message(2, v);
  return e;
}

/** Encodes Record fields 20-23 and 25 once per connection (and the TLS attributes, field 12); tid (24) is added per record. */
export function encodeHostFields(f: HostFields): Uint8Array {
  const w = new Writer();
  w.message(20, endpoint(f.client));
  w.message(21, endpoint(f.server));
  w.uint(22, f.connKey);
  w.uint(23, f.role);
  w.string(25, f.node);
  if (f.tlsLibrary !== undefined) {
    // Record.attributes (field 12, a map): entries appended here merge with the plugin's
    // tls = true, tls.library = "openssl"
    w.message(12, attribute("tls", (v) => (v.tag(3, 0), v.varint(1))));
    w.message(12, attribute("tls.library", (v) => v.string(1, f.tlsLibrary || "unknown")));
  }
  // a sampled connection: each record stands for 1 / fraction requests (the aggregator scales)
  if (f.observedFraction !== undefined && f.observedFraction > 0 && f.observedFraction < 1) w.float(RecordField.observedFraction, f.observedFraction);
  return w.finish();
}

/** plugin bytes + connection suffix + tid (field 24, varint), in one allocation. */
export function appendHostFields(plugin: Uint8Array, suffix: Uint8Array, tid: number): Uint8Array {
  const tidLen = tid > 0 ? 2 + varintLen(tid) : 0;
  const out = new Uint8Array(plugin.length + suffix.length + tidLen);
  out.set(plugin, 0);
  out.set(suffix, plugin.length);
  if (tid > 0) {
    let i = plugin.length + suffix.length;
    out[i++] = 0xc0; // (24 << 3) | 0, low 7 bits with continuation
    out[i++] = 0x01;
    let v = tid >>> 0;
    while (v >= 0x80) {
      out[i++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    out[i] = v;
  }
  return out;
}

function varintLen(v: number): number {
  let n = 1;
  v >>>= 0;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}
