// Groups finished records by output partition (the observed end's service: recordPartitionOf in
// @wirescope/wire) into RecordBatch
// messages. Records are already protobuf bytes, so the batch is written around them by hand:
//
//   RecordBatch: 0a <node> 12 <parser_id> (1a <len> <Record bytes>)* 20 <partition> 28 <batch_seq>
// in field order, as protobuf-es writes it (tags from the generated table of proto/).
// Pure: the caller decides when to flush (size here, time in the service).
import { type FieldCoverage, type RecordBatchField, RecordBatchTag, varintLen, writeVarint, writeVarint64 } from "@wirescope/wire";
import { recordPartitionOf } from "@wirescope/runtime";
import { tidFieldLen, writeTidField } from "./record-bytes.js";

/** What encodeRecordBatch writes of a RecordBatch (a field added to proto/ fails the build here). */
export const BATCH_FIELDS = {
  node: "written", parserId: "written", records: "written", partition: "written", batchSeq: "written",
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

export class RecordBatcher {
  private readonly open = new Map<number, { parts: RecordParts[]; bytes: number }>();
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
    if (!b) this.open.set(p, (b = { parts: [], bytes: 0 }));
    b.parts.push(record);
    const sz = record.bytes.length + record.suffix.length + 12;
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
    return { partition: p, bytes: encodeRecordBatch(this.node, this.parserId, p, this.seq, b.parts), records: b.parts.length, seq: this.seq };
  }
}

const te = new TextEncoder();

/** A LEN field's bytes: tag, length, content. */
const lenFieldLen = (tag: number, n: number) => varintLen(tag) + varintLen(n) + n;

export function encodeRecordBatch(node: string, parserId: string, partition: number, seq: bigint, records: RecordParts[]): Uint8Array {
  const nodeB = te.encode(node);
  const idB = te.encode(parserId);
  let size = lenFieldLen(RecordBatchTag.node, nodeB.length) + lenFieldLen(RecordBatchTag.parserId, idB.length) + varintLen(RecordBatchTag.partition) + varintLen(partition) + varintLen(RecordBatchTag.batchSeq) + 10;
  for (const r of records) size += lenFieldLen(RecordBatchTag.records, r.bytes.length + r.suffix.length + tidFieldLen(r.tid));
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
  for (const r of records) {
    i = writeVarint(out, i, RecordBatchTag.records);
    i = writeVarint(out, i, r.bytes.length + r.suffix.length + tidFieldLen(r.tid));
    out.set(r.bytes, i);
    i += r.bytes.length;
    out.set(r.suffix, i);
    i += r.suffix.length;
    i = writeTidField(out, i, r.tid);
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
  return out.subarray(0, i);
}
