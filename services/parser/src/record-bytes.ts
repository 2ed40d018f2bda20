// Reading a few top-level fields out of a plugin's Record bytes without decoding the message,
// and appending the host's fields (20+) as a second encoding of the same message.
//
//   plugin bytes (fields 1-19)          host suffix (fields 20-25)
//   ┌───────────────────────────────┐   ┌───────────────────────────────────┐
//   │ 0a len "http" 10 <start_ns> … │ + │ a2 01 len <client> aa 01 len … c0 01 <tid> │
//   └───────────────────────────────┘   └───────────────────────────────────┘
// Protobuf merges concatenated encodings of one message, so the result decodes as one Record.
import { create, toBinary } from "@bufbuild/protobuf";
import { RecordSchema, type Endpoint, type Role } from "@wirescope/common";

/** Fields the host needs from a plugin's record to route and label it. */
export interface RecordHead {
  protocol: string;
  startNs: bigint;
}

const td = new TextDecoder();

/**
 * Scans top-level fields for protocol (1) and start_ns (2). Returns undefined when the bytes are
 * not well-formed protobuf (the caller counts a drop).
 */
export function readHead(b: Uint8Array): RecordHead | undefined {
  let protocol = "";
  let startNs = 0n;
  let i = 0;
  const n = b.length;
  while (i < n) {
    // tag
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
      let v = 0n;
      let s = 0n;
      for (;;) {
        if (i >= n || s > 63n) return undefined;
        const c = b[i++]!;
        if (field === 2) v |= BigInt(c & 0x7f) << s;
        if (c < 0x80) break;
        s += 7n;
      }
      if (field === 2) startNs = v;
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
      if (field === 1) protocol = td.decode(b.subarray(i, i + len));
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
  return { protocol, startNs };
}

export interface HostFields {
  client?: Endpoint;
  server?: Endpoint;
  connKey: bigint;
  role: Role;
  node: string;
}

/** Encodes fields 20-23 and 25 once per connection; tid (24) is added per record. */
export function encodeHostFields(f: HostFields): Uint8Array {
  return toBinary(
    RecordSchema,
    create(RecordSchema, { client: f.client, server: f.server, connKey: f.connKey, role: f.role, node: f.node }),
  );
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
