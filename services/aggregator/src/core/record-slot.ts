// The flat form of a record that the aggregation core reads: one reusable object per position of
// a batch, its 64-bit fields already split into the plain numbers the core computes with. The
// lean decoder (decode.ts) writes RecordBatch bytes straight into slots, and `fillFromView` does
// the same from a protobuf-es Record (tests, captures): the core has one input form, and a record
// costs no object graph, no BigInt and no fresh string (names come from the decoder's cache).
//
// A slot is valid until the next batch is decoded into it: the core copies what it keeps.
import type { RecordView, EndpointView, ProcessView, AttributeView } from "./record-view.js";
import { bytesToHex } from "./hash.js";
import { readAttributeMap } from "./wire.js";

export class ProcessSlot implements ProcessView {
  pid = 0;
  name = "";
  container = "";
  workload = "";
  namespace = "";
  reset(): void {
    this.pid = 0;
    this.name = "";
    this.container = "";
    this.workload = "";
    this.namespace = "";
  }
}

export class EndpointSlot implements EndpointView {
  address = "";
  port = 0;
  service = "";
  node = "";
  /** `proc` while the record carried this end's process, else undefined (as in a Record). */
  process: ProcessView | undefined = undefined;
  readonly proc = new ProcessSlot();
  reset(): void {
    this.address = "";
    this.port = 0;
    this.service = "";
    this.node = "";
    this.process = undefined;
  }
  /** Marks the process present (a fresh one the first time in the record, merged after). */
  openProcess(): ProcessSlot {
    if (this.process === undefined) {
      this.proc.reset();
      this.process = this.proc;
    }
    return this.proc;
  }
}

/**
 * One record. Times are split so that no BigInt is needed: `startUs` = ⌊start_ns / 1000⌋,
 * `startSubNs` = start_ns mod 1000, `startNsNum` = Number(start_ns) (rounded as Number() of the
 * BigInt rounds it; span ids hash it); the same for the duration, connection key, status and sizes.
 */
export class RecordSlot {
  protocol = "";
  operation = "";
  resource = "";
  /** start_ns > 0 (0: unset, an invalid record). */
  hasStart = false;
  startUs = 0;
  startSubNs = 0;
  startNsNum = 0;
  durUs = 0;
  durNsNum = 0;
  hasStatus = false;
  status = 0;
  error = false;
  requestBytes = 0;
  responseBytes = 0;
  incomplete = false;
  /** trace_id as 32 hex when it has 16 bytes, else "". */
  traceHex = "";
  /** parent_span_id as 16 hex when it has 8 bytes, else "". */
  parentHex = "";
  /** `clientSlot` when the record has a client end, else undefined; the same for the server. */
  client: EndpointSlot | undefined = undefined;
  server: EndpointSlot | undefined = undefined;
  readonly clientSlot = new EndpointSlot();
  readonly serverSlot = new EndpointSlot();
  connKeyNum = 0;
  role = 0;
  tid = 0;
  node = "";
  observedFraction = 0;
  /** The batch's connection entry the record names (Record.connection, 1-based; decode.ts merges it in). */
  connection = 0;
  /** The record's `tls` attribute is true (read inside TLS), known without building the attributes. */
  tls = false;
  /** Start and end offsets in `attrBuf` of each attribute map entry, in wire order (decoded records). */
  readonly attrAt: number[] = [];
  attrBuf: Uint8Array | undefined = undefined;
  /** The attributes when filled from a view, or once built from `attrAt`. */
  private attrs: { [key: string]: AttributeView } | undefined = undefined;

  reset(): void {
    this.protocol = "";
    this.operation = "";
    this.resource = "";
    this.hasStart = false;
    this.startUs = 0;
    this.startSubNs = 0;
    this.startNsNum = 0;
    this.durUs = 0;
    this.durNsNum = 0;
    this.hasStatus = false;
    this.status = 0;
    this.error = false;
    this.requestBytes = 0;
    this.responseBytes = 0;
    this.incomplete = false;
    this.traceHex = "";
    this.parentHex = "";
    this.client = undefined;
    this.server = undefined;
    this.connKeyNum = 0;
    this.role = 0;
    this.tid = 0;
    this.node = "";
    this.observedFraction = 0;
    this.connection = 0;
    this.tls = false;
    this.attrAt.length = 0;
    this.attrBuf = undefined;
    this.attrs = undefined;
  }

  /** The client end, merged into from here on (a fresh one the first time in the record). */
  openClient(): EndpointSlot {
    if (this.client === undefined) {
      this.clientSlot.reset();
      this.client = this.clientSlot;
    }
    return this.clientSlot;
  }

  openServer(): EndpointSlot {
    if (this.server === undefined) {
      this.serverSlot.reset();
      this.server = this.serverSlot;
    }
    return this.serverSlot;
  }

  /** Read only for a record whose operation or resource is new to the normalizer's cache. */
  get attributes(): { [key: string]: AttributeView } {
    return (this.attrs ??= this.attrBuf ? readAttributeMap(this.attrBuf, this.attrAt) : {});
  }

  /** The record's fields from a protobuf-es Record (or any RecordView): the reference for decode.ts. */
  fillFromView(r: RecordView): this {
    this.reset();
    this.protocol = r.protocol;
    this.operation = r.operation;
    this.resource = r.resource;
    this.hasStart = r.startNs > 0n;
    this.startUs = Number(r.startNs / 1000n);
    this.startSubNs = Number(r.startNs % 1000n);
    this.startNsNum = Number(r.startNs);
    this.durUs = Number(r.durationNs / 1000n);
    this.durNsNum = Number(r.durationNs);
    this.hasStatus = r.status !== undefined;
    this.status = r.status === undefined ? 0 : Number(r.status);
    this.error = r.error;
    this.requestBytes = Number(r.requestBytes);
    this.responseBytes = Number(r.responseBytes);
    this.incomplete = r.incomplete;
    if (r.trace) {
      this.traceHex = r.trace.traceId.length === 16 ? bytesToHex(r.trace.traceId) : "";
      this.parentHex = r.trace.parentSpanId.length === 8 ? bytesToHex(r.trace.parentSpanId) : "";
    }
    if (r.client) copyEndpoint(r.client, this.openClient());
    if (r.server) copyEndpoint(r.server, this.openServer());
    this.connKeyNum = Number(r.connKey);
    this.role = r.role;
    this.tid = r.tid;
    this.node = r.node;
    this.observedFraction = r.observedFraction ?? 0;
    this.attrs = r.attributes;
    const tls = r.attributes["tls"]?.value;
    this.tls = tls?.case === "boolValue" && tls.value === true;
    return this;
  }
}

function copyEndpoint(e: EndpointView, to: EndpointSlot): void {
  to.address = e.address;
  to.port = e.port;
  to.service = e.service;
  to.node = e.node;
  if (e.process) {
    const p = to.openProcess();
    p.pid = e.process.pid;
    p.name = e.process.name;
    p.container = e.process.container;
    p.workload = e.process.workload;
    p.namespace = e.process.namespace;
  }
}

/** The records of one batch: `slots[0 .. length)`. Slots are reused by the next batch. */
export class RecordBatchSlots {
  readonly slots: RecordSlot[] = [];
  length = 0;
  /** The batch's connection entries (RecordBatch.connections): start and end offsets of each, in order. */
  readonly connAt: number[] = [];
  /** Each entry once decoded (decode.ts), by its number - 1; reused from batch to batch. */
  readonly connSlots: RecordSlot[] = [];
  /** Which fields each decoded entry holds (decode.ts `entryShape`); -1 while not decoded in this batch. */
  readonly connShape: number[] = [];

  /** The next slot, reset. */
  next(): RecordSlot {
    let s = this.slots[this.length];
    if (!s) this.slots.push((s = new RecordSlot()));
    else s.reset();
    this.length++;
    return s;
  }

  /** The batch as slots filled from views. */
  static fromViews(records: readonly RecordView[], into = new RecordBatchSlots()): RecordBatchSlots {
    into.length = 0;
    for (const r of records) into.next().fillFromView(r);
    return into;
  }
}
