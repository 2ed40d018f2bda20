// The lean decoder: RecordBatch bytes straight into the flat record slots the core reads
// (record-slot.ts), with the semantics of protobuf-es (last scalar wins, repeated message fields
// merge, unknown fields skipped) but no object per record or sub-message, no BigInt and, for
// repeated short names, no new string. protobuf-es remains the reference (decode.test.ts) and the
// fallback when this refuses a batch (service.ts).
//
// Field numbers are those of proto/wirescope/v1/record.proto (`RECORD_FIELDS`, checked against
// the generated schemas by decode.test.ts).
import { RecordBatchSlots, type EndpointSlot, type RecordSlot } from "./record-slot.js";
import * as w from "./wire.js";

export { DecodeError } from "./wire.js";

/** Field numbers read here, by the generated schemas' names (decode.test.ts compares them). */
export const RECORD_FIELDS = {
  RecordBatch: { records: 3 },
  Record: { protocol: 1, startNs: 2, durationNs: 3, operation: 4, resource: 5, status: 6, error: 7, requestBytes: 8, responseBytes: 9, incomplete: 10, trace: 11, attributes: 12, client: 20, server: 21, connKey: 22, role: 23, tid: 24, node: 25, observedFraction: 26 },
  TraceContext: { traceId: 1, parentSpanId: 2 },
  Endpoint: { address: 1, port: 2, process: 3, node: 4, service: 5 },
  ProcessInfo: { pid: 1, name: 2, namespace: 7, container: 8, workload: 9 },
} as const;

function readProcess(e: EndpointSlot, end: number): void {
  const p = e.openProcess();
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case (1 << 3) | 0: p.pid = w.varint(end) >>> 0; break;
      case (2 << 3) | 2: p.name = w.string(end); break;
      case (7 << 3) | 2: p.namespace = w.string(end); break;
      case (8 << 3) | 2: p.container = w.string(end); break;
      case (9 << 3) | 2: p.workload = w.string(end); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readEndpoint(e: EndpointSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case (1 << 3) | 2: e.address = w.string(end); break;
      case (2 << 3) | 0: e.port = w.varint(end) >>> 0; break;
      case (3 << 3) | 2: {
        const n = w.len(end);
        readProcess(e, w.pos + n);
        break;
      }
      case (4 << 3) | 2: e.node = w.string(end); break;
      case (5 << 3) | 2: e.service = w.string(end); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readTrace(rec: RecordSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case (1 << 3) | 2: rec.traceHex = w.hexOfLength(end, 16); break;
      case (2 << 3) | 2: rec.parentHex = w.hexOfLength(end, 8); break;
      default: w.skip(tag & 7, end);
    }
  }
}

function readRecord(rec: RecordSlot, end: number): void {
  while (w.pos < end) {
    const tag = w.varint(end);
    switch (tag) {
      case (1 << 3) | 2: rec.protocol = w.string(end); break;
      case (2 << 3) | 0:
        w.varint64(end);
        rec.hasStart = w.lo !== 0 || w.hi !== 0;
        rec.startNsNum = w.u64Num();
        w.divMod1000();
        rec.startUs = w.q1000;
        rec.startSubNs = w.r1000;
        break;
      case (3 << 3) | 0:
        w.varint64(end);
        rec.durNsNum = w.u64Num();
        w.divMod1000();
        rec.durUs = w.q1000;
        break;
      case (4 << 3) | 2: rec.operation = w.string(end); break;
      case (5 << 3) | 2: rec.resource = w.string(end); break;
      case (6 << 3) | 0:
        w.varint64(end);
        rec.hasStatus = true;
        rec.status = w.i64Num();
        break;
      case (7 << 3) | 0: rec.error = w.varint(end) !== 0; break;
      case (8 << 3) | 0: w.varint64(end); rec.requestBytes = w.u64Num(); break;
      case (9 << 3) | 0: w.varint64(end); rec.responseBytes = w.u64Num(); break;
      case (10 << 3) | 0: rec.incomplete = w.varint(end) !== 0; break;
      case (11 << 3) | 2: {
        const n = w.len(end);
        readTrace(rec, w.pos + n);
        break;
      }
      case (12 << 3) | 2: {
        const n = w.len(end);
        const start = w.pos;
        if (w.checkAttributeEntry(start + n)) rec.tls = true;
        rec.attrAt.push(start, start + n);
        rec.attrBuf = w.buf;
        break;
      }
      case (20 << 3) | 2: {
        const n = w.len(end);
        readEndpoint(rec.openClient(), w.pos + n);
        break;
      }
      case (21 << 3) | 2: {
        const n = w.len(end);
        readEndpoint(rec.openServer(), w.pos + n);
        break;
      }
      case (22 << 3) | 0: w.varint64(end); rec.connKeyNum = w.u64Num(); break;
      case (23 << 3) | 0: rec.role = w.varint(end) >>> 0; break;
      case (24 << 3) | 0: rec.tid = w.varint(end) >>> 0; break;
      case (25 << 3) | 2: rec.node = w.string(end); break;
      case (26 << 3) | 5: rec.observedFraction = w.float32(end); break;
      default: w.skip(tag & 7, end);
    }
  }
}

/**
 * The records of one RecordBatch into `into` (its slots reused: valid until the next call with
 * it); throws DecodeError on malformed input, having read part of the batch.
 */
export function decodeRecordBatch(buf: Uint8Array, into = new RecordBatchSlots()): RecordBatchSlots {
  into.length = 0;
  w.setCursor(buf, 0);
  const end = buf.length;
  while (w.pos < end) {
    const tag = w.varint(end);
    if (tag === ((3 << 3) | 2)) {
      const n = w.len(end);
      readRecord(into.next(), w.pos + n);
    } else w.skip(tag & 7, end);
  }
  return into;
}
