// Groups finished records by output partition (the observed end's service: recordPartitionOf in
// @wirescope/wire) into RecordBatch
// messages. Records are already protobuf bytes, so the batch is written around them by hand:
//
//   RecordBatch: 0a <node> 12 <parser_id> (1a <len> <plugin bytes> c0 01 <tid> d8 01 <conn>)*
//                20 <partition> 28 <batch_seq> (32 <len> <connection's host fields>)*
// in field order, as protobuf-es writes it (tags from the generated table of proto/). A
// connection's host fields (record-bytes.ts) are written once per batch, in `connections`, and
// each of its records names the entry (Record.connection, 1-based), so a keep-alive connection's
// records do not each carry its endpoints.
// Pure: the caller decides when to flush (size here, time in the service).
import { type FieldCoverage, type RecordBatchField, RecordBatchTag, varintLen, writeVarint, writeVarint64 } from "@wirescope/wire";
import { recordPartitionOf } from "@wirescope/runtime";
import { connectionFieldLen, tidFieldLen, writeConnectionField, writeTidField } from "./record-bytes.js";

/** What encodeRecordBatch writes of a RecordBatch (a field added to proto/ fails the build here). */
export const BATCH_FIELDS = {
  node: "written", parserId: "written", records: "written", partition: "written", batchSeq: "written", connections: "written",
} as const satisfies FieldCoverage<typeof RecordBatchField>;

/** One record as three pieces: plugin bytes, the connection's host fields, the tid (field 24). */
export interface RecordParts {
  bytes: Uint8Array;
  suffix: Uint8Array;
  tid: number;
}

const NO_SUFFIX = new Uint8Array(0);

/** A record that is already whole. */
export function whole(bytes: Uint8Array): RecordParts {
  return { bytes, suffix: NO_SUFFIX, tid: 0 };
}

export interface EncodedBatch {
  partition: number;
  bytes: Uint8Array;
  records: number;
  /** This batcher's batch_seq (1, 2, …): with the parser's id, names the batch for deduplication. */
  seq: bigint;
}

/** The output partition of a service key: FNV-1a 32 of its UTF-8 bytes mod P (@wirescope/runtime `recordPartitionOf`). */
export function servicePartition(serviceKey: string, partitions: number): number {
  return recordPartitionOf(false, "", serviceKey, partitions);
}

/** Service keys whose partition is remembered (a few per connection's server; cleared past this). */
const MAX_CACHED_SERVICES = 4096;

/** A partition's batch being filled: its records and the connections they name. */
interface OpenBatch {
  parts: RecordParts[];
  /** Each record's connection entry (1-based; 0: no suffix), as `add` found it. */
  refs: number[];
  /** Each host suffix (by identity: one per connection, kept by the connection table) and its entry (1-based). */
  conns: Map<Uint8Array, number>;
  bytes: number;
}

export class RecordBatcher {
  private readonly open = new Map<number, OpenBatch>();
  /** servicePartition per service key: hashing its UTF-8 bytes once, not per record. */
  private readonly partitionOf = new Map<string, number>();
  private seq = 0n;
  private held = 0;

  constructor(
    private readonly node: string,
    private readonly parserId: string,
    private readonly partitions: number,
    /** A partition's batch is closed when it reaches this many bytes. */
    private readonly maxBatchBytes = 512 * 1024,
  ) {}

  /** Bytes of records waiting. */
  get heldBytes(): number {
    return this.held;
  }

  /** Adds one record; returns a full batch when this record filled one. */
  add(outputService: string, record: RecordParts): EncodedBatch | undefined {
    let p = this.partitionOf.get(outputService);
    if (p === undefined) {
      if (this.partitionOf.size >= MAX_CACHED_SERVICES) this.partitionOf.clear();
      this.partitionOf.set(outputService, (p = servicePartition(outputService, this.partitions)));
    }
    let b = this.open.get(p);
    if (!b) this.open.set(p, (b = { parts: [], refs: [], conns: new Map(), bytes: 0 }));
    b.parts.push(record);
    let sz = record.bytes.length + 16;
    let ref = 0;
    if (record.suffix.length > 0) {
      ref = b.conns.get(record.suffix) ?? 0;
      if (ref === 0) {
        b.conns.set(record.suffix, (ref = b.conns.size + 1));
        sz += record.suffix.length + 4;
      }
    }
    b.refs.push(ref);
    b.bytes += sz;
    this.held += sz;
    if (b.bytes >= this.maxBatchBytes) return this.close(p);
    return undefined;
  }

  /** Closes every open batch. */
  drain(): EncodedBatch[] {
    return [...this.open.keys()].map((p) => this.close(p)!);
  }

  private close(p: number): EncodedBatch | undefined {
    const b = this.open.get(p);
    if (!b) return undefined;
    this.open.delete(p);
    this.held -= b.bytes;
    this.seq++;
    return { partition: p, bytes: encodeRecordBatch(this.node, this.parserId, p, this.seq, b.parts, b), records: b.parts.length, seq: this.seq };
  }
}

const te = new TextEncoder();

/** A LEN field's bytes: tag, length, content. */
const lenFieldLen = (tag: number, n: number) => varintLen(tag) + varintLen(n) + n;

/** Each distinct host suffix of `records` (by identity) numbered 1, 2, … in first-seen order, and each record's number (0: none). */
function connectionsOf(records: readonly RecordParts[]): { refs: number[]; conns: Map<Uint8Array, number> } {
  const conns = new Map<Uint8Array, number>();
  const refs = records.map((r) => {
    if (r.suffix.length === 0) return 0;
    let ref = conns.get(r.suffix);
    if (ref === undefined) conns.set(r.suffix, (ref = conns.size + 1));
    return ref;
  });
  return { refs, conns };
}

/**
 * One RecordBatch of `records`. `entries` (each record's entry number and each suffix's, numbered
 * 1, 2, … in insertion order) is what the batcher kept while adding them; computed when not given.
 */
export function encodeRecordBatch(node: string, parserId: string, partition: number, seq: bigint, records: readonly RecordParts[], entries = connectionsOf(records)): Uint8Array {
  const { refs, conns } = entries;
  const nodeB = te.encode(node);
  const idB = te.encode(parserId);
  let size = lenFieldLen(RecordBatchTag.node, nodeB.length) + lenFieldLen(RecordBatchTag.parserId, idB.length) + varintLen(RecordBatchTag.partition) + varintLen(partition) + varintLen(RecordBatchTag.batchSeq) + 10;
  for (let k = 0; k < records.length; k++) {
    const r = records[k]!;
    size += lenFieldLen(RecordBatchTag.records, r.bytes.length + tidFieldLen(r.tid) + connectionFieldLen(refs[k]!));
  }
  for (const suffix of conns.keys()) size += lenFieldLen(RecordBatchTag.connections, suffix.length);
  const out = new Uint8Array(size);
  let i = 0;
  const bytes = (tag: number, b: Uint8Array) => {
    i = writeVarint(out, i, tag);
    i = writeVarint(out, i, b.length);
    out.set(b, i);
    i += b.length;
  };
  if (nodeB.length) bytes(RecordBatchTag.node, nodeB);
  if (idB.length) bytes(RecordBatchTag.parserId, idB);
  for (let k = 0; k < records.length; k++) {
    const r = records[k]!;
    const ref = refs[k]!;
    i = writeVarint(out, i, RecordBatchTag.records);
    i = writeVarint(out, i, r.bytes.length + tidFieldLen(r.tid) + connectionFieldLen(ref));
    out.set(r.bytes, i);
    i += r.bytes.length;
    i = writeTidField(out, i, r.tid);
    i = writeConnectionField(out, i, ref);
  }
  if (partition) {
    i = writeVarint(out, i, RecordBatchTag.partition);
    i = writeVarint(out, i, partition);
  }
  if (seq) {
    i = writeVarint(out, i, RecordBatchTag.batchSeq);
    const x = BigInt.asUintN(64, seq);
    i = writeVarint64(out, i, Number(x & 0xffff_ffffn), Number(x >> 32n));
  }
  // Map keys iterate in insertion order, the order of their numbers
  for (const suffix of conns.keys()) bytes(RecordBatchTag.connections, suffix);
  return out.subarray(0, i);
}
