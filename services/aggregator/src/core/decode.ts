// The lean decoder: RecordBatch bytes straight into the flat record slots the core reads
// (record-slot.ts), with the semantics of protobuf-es (last scalar wins, repeated message fields
// merge, unknown fields skipped) but no object per record or sub-message, no BigInt and, for
// repeated short names, no new string. protobuf-es remains the reference (decode.test.ts) and the
// fallback when this refuses a batch (service.ts).
//
// Tags are the generated ones of proto/ (@wirescope/wire); `LEAN_FIELDS` says what is done
// with every field, and decode.test.ts checks each field read here against protobuf-es.
import {
  type EndpointField,
  EndpointTag,
  type FieldCoverage,
  type ProcessInfoField,
  ProcessInfoTag,
  type RecordBatchField,
  RecordBatchTag,
  type RecordField,
  RecordTag,
  type TraceContextField,
  TraceContextTag,
} from "@wirescope/wire";
import { RecordBatchSlots, type EndpointSlot, RecordSlot } from "./record-slot.js";
import * as w from "@wirescope/wire/reader";
import * as a from "./wire.js";

import { DecodeError } from "./wire.js";

export { DecodeError };

/** What the lean decoder does with each field (a field added to proto/ fails the build here). */
export const LEAN_FIELDS = {
  RecordBatch: {
    records: "read",
    node: "not needed: each record names its node",
    parserId: "not needed: JetStream drops a republished batch by the Nats-Msg-Id the parser sends",
    partition: "not needed: the subject names it",
    batchSeq: "not needed (see parserId)",
    connections: "read",
  } satisfies FieldCoverage<typeof RecordBatchField>,
  Record: {
    protocol: "read", startNs: "read", durationNs: "read", operation: "read", resource: "read", status: "read", error: "read", requestBytes: "read",
    responseBytes: "read", incomplete: "read", trace: "read", attributes: "read", client: "read", server: "read", connKey: "read", role: "read", tid: "read",
    node: "read", observedFraction: "read", connection: "read",
  } satisfies FieldCoverage<typeof RecordField>,
  TraceContext: { traceId: "read", parentSpanId: "read", flags: "not used: spans carry no flags", format: "not used: ids are the same in both formats" } satisfies FieldCoverage<typeof TraceContextField>,
  Endpoint: { address: "read", port: "read", process: "read", node: "read", service: "read" } satisfies FieldCoverage<typeof EndpointField>,
  ProcessInfo: {
    pid: "read", name: "read", namespace: "read", container: "read", workload: "read",
    exe: "not used: the service name comes from name, container and workload", cmdline: "not used (see exe)", containerId: "not used (see exe)", pod: "not used (see exe)",
  } satisfies FieldCoverage<typeof ProcessInfoField>,
} as const;

function readProcess(e: EndpointSlot, end: number): void {
  const p = e.openProcess();
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case ProcessInfoTag.pid: p.pid = w.varint(end) >>> 0; break;
      case ProcessInfoTag.name: p.name = w.string(end); break;
      case ProcessInfoTag.namespace: p.namespace = w.string(end); break;
      case ProcessInfoTag.container: p.container = w.string(end); break;
      case ProcessInfoTag.workload: p.workload = w.string(end); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readEndpoint(e: EndpointSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case EndpointTag.address: e.address = w.string(end); break;
      case EndpointTag.port: e.port = w.varint(end) >>> 0; break;
      case EndpointTag.process: {
        const n = w.len(end);
        readProcess(e, w.pos + n);
        break;
      }
      case EndpointTag.node: e.node = w.string(end); break;
      case EndpointTag.service: e.service = w.string(end); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readTrace(rec: RecordSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case TraceContextTag.traceId: rec.traceHex = w.hexOfLength(end, 16); break;
      case TraceContextTag.parentSpanId: rec.parentHex = w.hexOfLength(end, 8); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readRecord(rec: RecordSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case RecordTag.protocol: rec.protocol = w.string(end); break;
      case RecordTag.startNs:
        w.varint64(end);
        rec.hasStart = w.lo !== 0 || w.hi !== 0;
        rec.startNsNum = w.u64Num();
        a.divMod1000();
        rec.startUs = a.q1000;
        rec.startSubNs = a.r1000;
        break;
      case RecordTag.durationNs:
        w.varint64(end);
        rec.durNsNum = w.u64Num();
        a.divMod1000();
        rec.durUs = a.q1000;
        break;
      case RecordTag.operation: rec.operation = w.string(end); break;
      case RecordTag.resource: rec.resource = w.string(end); break;
      case RecordTag.status:
        w.varint64(end);
        rec.hasStatus = true;
        rec.status = w.i64Num();
        break;
      case RecordTag.error: rec.error = w.varint(end) !== 0; break;
      case RecordTag.requestBytes: w.varint64(end); rec.requestBytes = w.u64Num(); break;
      case RecordTag.responseBytes: w.varint64(end); rec.responseBytes = w.u64Num(); break;
      case RecordTag.incomplete: rec.incomplete = w.varint(end) !== 0; break;
      case RecordTag.trace: {
        const n = w.len(end);
        readTrace(rec, w.pos + n);
        break;
      }
      case RecordTag.attributes: {
        const n = w.len(end);
        const start = w.pos;
        if (a.checkAttributeEntry(start + n)) rec.tls = true;
        rec.attrAt.push(start, start + n);
        rec.attrBuf = w.buf;
        break;
      }
      case RecordTag.client: {
        const n = w.len(end);
        readEndpoint(rec.openClient(), w.pos + n);
        break;
      }
      case RecordTag.server: {
        const n = w.len(end);
        readEndpoint(rec.openServer(), w.pos + n);
        break;
      }
      case RecordTag.connKey: w.varint64(end); rec.connKeyNum = w.u64Num(); break;
      case RecordTag.role: rec.role = w.varint(end) >>> 0; break;
      case RecordTag.tid: rec.tid = w.varint(end) >>> 0; break;
      case RecordTag.node: rec.node = w.string(end); break;
      case RecordTag.observedFraction: rec.observedFraction = w.float32(end); break;
      case RecordTag.connection: rec.connection = w.varint(end) >>> 0; break;
      default: w.skip(tag & 7, end);
    }
  }
}

// A connection entry's fields, as bits: the fields the parser writes there (record-bytes.ts
// encodeHostFields) each have one; any other field sets OTHER.
const CLIENT = 1;
const SERVER = 2;
const CONN_KEY = 4;
const ROLE = 8;
const NODE = 16;
const FRACTION = 32;
const ATTRIBUTES = 64;
const OTHER = 128;

/** The bits of the fields present in the entry [pos, end) (the cursor ends at `end`). */
function entryShape(end: number): number {
  let shape = 0;
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case RecordTag.client: shape |= CLIENT; break;
      case RecordTag.server: shape |= SERVER; break;
      case RecordTag.connKey: shape |= CONN_KEY; break;
      case RecordTag.role: shape |= ROLE; break;
      case RecordTag.node: shape |= NODE; break;
      case RecordTag.observedFraction: shape |= FRACTION; break;
      case RecordTag.attributes: shape |= ATTRIBUTES; break;
      default: shape |= OTHER;
    }
    w.skip(tag & 7, end);
  }
  return shape;
}

/** Entry k [start, end) decoded into its slot, and its shape noted, the first time this batch names it. */
function entrySlot(into: RecordBatchSlots, k: number, buf: Uint8Array, start: number, end: number): RecordSlot {
  let t = into.connSlots[k];
  if (into.connShape[k] !== -1 && t) return t;
  w.setCursor(buf, start);
  into.connShape[k] = entryShape(end);
  if (!t) into.connSlots[k] = t = new RecordSlot(); // by number: a batch may name entry 3 before entry 1
  else t.reset();
  w.setCursor(buf, start);
  readRecord(t, end);
  return t;
}

/**
 * Merges the batch's connection entries into the records that name them, as if each record's
 * bytes were followed by its entry's (the rule of proto/ Record.connection). An entry is decoded
 * once per batch; a record takes its values (its endpoints as the entry's slots, shared: the
 * core reads records and copies what it keeps). A record with endpoints of its own, or an entry
 * holding fields the parser never puts there, is merged by reading the entry into the record.
 */
function resolveConnections(into: RecordBatchSlots, buf: Uint8Array): void {
  const at = into.connAt;
  const count = at.length / 2;
  const shapes = into.connShape;
  for (let k = 0; k < count; k++) shapes[k] = -1;
  for (let i = 0; i < into.length; i++) {
    const rec = into.slots[i]!;
    const ref = rec.connection;
    if (ref === 0) continue;
    if (ref > count) throw new DecodeError(`a record names connection ${ref} of a batch that has ${count}`);
    const k = ref - 1;
    const start = at[2 * k]!;
    const end = at[2 * k + 1]!;
    const t = entrySlot(into, k, buf, start, end);
    const shape = shapes[k]!;
    if ((shape & OTHER) !== 0 || rec.client !== undefined || rec.server !== undefined) {
      w.setCursor(buf, start);
      readRecord(rec, end);
      continue;
    }
    if (shape & CLIENT) rec.client = t.client;
    if (shape & SERVER) rec.server = t.server;
    if (shape & CONN_KEY) rec.connKeyNum = t.connKeyNum;
    if (shape & ROLE) rec.role = t.role;
    if (shape & NODE) rec.node = t.node;
    if (shape & FRACTION) rec.observedFraction = t.observedFraction;
    if (shape & ATTRIBUTES) {
      for (let j = 0; j < t.attrAt.length; j++) rec.attrAt.push(t.attrAt[j]!);
      rec.attrBuf = buf;
      if (t.tls) rec.tls = true;
    }
  }
}

/**
 * The records of one RecordBatch into `into` (its slots reused: valid until the next call with
 * it); throws DecodeError on malformed input, having read part of the batch.
 */
export function decodeRecordBatch(buf: Uint8Array, into = new RecordBatchSlots()): RecordBatchSlots {
  into.length = 0;
  into.connAt.length = 0;
  let refs = false;
  w.setCursor(buf, 0);
  const end = buf.length;
  while (w.pos < end) {
    const tag = w.varint(end);
    if (tag === RecordBatchTag.records) {
      const n = w.len(end);
      const rec = into.next();
      readRecord(rec, w.pos + n);
      if (rec.connection !== 0) refs = true;
    } else if (tag === RecordBatchTag.connections) {
      const n = w.len(end);
      into.connAt.push(w.pos, w.pos + n);
      w.seek(w.pos + n);
    } else w.skip(tag & 7, end);
  }
  if (refs) resolveConnections(into, buf);
  return into;
}
