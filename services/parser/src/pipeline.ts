// The parser's data path for the partitions it owns, without I/O:
//   RawBatch bytes ─▶ RawBatchReader ─▶ ownership + batch_seq accounting ─▶ ConnTable
//                  ─▶ RecordBatcher ─▶ (caller publishes)
// The service feeds it from NATS and publishes what `takeOutput` returns. Per data event it
// builds no object: one reused DataIn is filled from the reader's columns.
import { ConnKind, RawBatchReader } from "@wirescope/wire";
import { type Counters } from "@wirescope/runtime";
import { ConnTable, type ConnTableOptions, type DataIn } from "./conn-table.js";
import type { DecoderHost } from "./decoder.js";
import { RecordBatcher, type EncodedBatch } from "./record-batcher.js";

export interface PipelineOptions extends ConnTableOptions {
  parserId: string;
  partitions: number;
  maxBatchBytes: number;
  /** Closed output batches waiting for the publisher; more are dropped (counted). */
  maxQueuedBatches: number;
}

/**
 * `${probe_id}/${partition}` → last RawBatch.batch_seq, and `s:${probe_id}/${partition}` → the
 * requests served that the batches up to it held (served_before + served), for probes that count.
 */
export type Progress = Record<string, number>;

/** The progress key of the requests served through a probe/partition's last batch. */
export const servedKey = (key: string): string => `s:${key}`;

const EMPTY = new Uint8Array(0);

/**
 * How long a partition taken over waits before counting what the move lost against the previous
 * owner's progress: a replica letting a partition go commits what it had handled at its next flush
 * (20 ms, plus the acknowledgement and the KV write), usually after the new owner's first batch.
 * Counted at once, the batches it had handled but not yet committed were counted as lost too.
 */
export const HANDOVER_SETTLE_MS = 1000;
/**
 * How long a takeover waits for the previous owner's progress to be read at all (a KV read can
 * take seconds on a loaded machine or during a NATS failover). Counted against nothing before it
 * is read; `handovers_unmeasured` when it never is.
 */
export const HANDOVER_READ_WAIT_MS = 10_000;

/** A takeover's first batch of one probe, waiting for the previous owner's last progress. */
interface PendingHandover {
  partition: number;
  key: string;
  sKey: string;
  seq: number;
  servedBefore: number;
  at: number;
}

export class Pipeline {
  readonly table: ConnTable;
  private readonly batcher: RecordBatcher;
  private owned = new Set<number>();
  /** Last batch_seq handled per probe/partition while owned. */
  private readonly seen = new Map<string, number>();
  /** The keys of `seen` set since the last `progress()`, with their values: what it returns (O(change), not O(probes × partitions)). */
  private changed = new Map<string, number>();
  /** For partitions just taken over: the previous owner's progress, read when it is counted against. */
  private readonly previous = new Map<number, () => Progress | undefined>();
  private pending: PendingHandover[] = [];
  /** Progress of partitions let go since the last `progress()`: their last batches' records are still to be published. */
  private readonly released = new Map<string, number>();
  private readonly full: EncodedBatch[] = [];
  private readonly reader = new RawBatchReader();
  private readonly ev: DataIn = { connKey: 0n, direction: 0, seq: 0, timestampNs: 0n, tid: 0, payload: new Uint8Array(0), originalLength: 0 };
  /** Per partition: the probe id last seen and its progress key (`${probe}/${partition}`). */
  private readonly keyProbe: string[] = [];
  private readonly keyOf: string[] = [];
  private readonly servedKeyOf: string[] = [];

  constructor(
    host: DecoderHost,
    private readonly opts: PipelineOptions,
    private readonly counters: Counters,
  ) {
    this.batcher = new RecordBatcher(opts.node, opts.parserId, opts.partitions, opts.maxBatchBytes);
    this.table = new ConnTable(host, opts, counters, (r) => {
      const b = this.batcher.add(r.outputService, r);
      if (b) this.queue(b);
    });
  }

  ownedPartitions(): Set<number> {
    return this.owned;
  }

  /**
   * Applies a new assignment. Partitions that left drop their connections (counted), and their
   * progress goes into the next `progress()` (committed with the records of their last batches);
   * partitions that arrived from a previous owner count their first batches against its progress,
   * read HANDOVER_SETTLE_MS later (`sweep`). `previousOf(p)`: a reader of the previous owner's
   * progress (undefined until read), or undefined when p had no previous owner. Returns the
   * partitions added and removed.
   */
  setOwned(next: Set<number>, previousOf: (p: number) => (() => Progress | undefined) | undefined): { added: number[]; removed: number[] } {
    const added = [...next].filter((p) => !this.owned.has(p));
    const removed = [...this.owned].filter((p) => !next.has(p));
    for (const p of removed) {
      this.table.dropPartition(p);
      for (const k of keysOfPartition(this.seen, p)) {
        this.released.set(k, this.seen.get(k)!);
        this.seen.delete(k);
        this.changed.delete(k);
      }
      this.previous.delete(p);
      this.pending = this.pending.filter((h) => h.partition !== p);
      this.counters.add("partitions_released");
    }
    for (const p of added) {
      const read = previousOf(p);
      if (read) this.previous.set(p, read);
      else this.previous.delete(p);
      for (const k of keysOfPartition(this.released, p)) this.released.delete(k);
      this.counters.add("partitions_acquired");
    }
    this.owned = next;
    this.counters.set("partitions_owned", next.size);
    return { added, removed };
  }

  /**
   * Handles one RawBatch message. Returns false when it does not decode (counted
   * `raw_decode_errors`, by reason too) or its partition is not ours (counted); never throws on
   * bad input.
   */
  onRawBytes(bytes: Uint8Array, now: number): boolean {
    const r = this.reader;
    if (!r.read(bytes)) {
      this.counters.add("raw_decode_errors");
      this.counters.add(`raw_decode_errors.${r.error}`);
      return false;
    }
    return this.onRawBatch(r, now);
  }

  /** Handles the RawBatch a reader holds; returns false when its partition is not ours (counted). */
  onRawBatch(r: RawBatchReader, now: number): boolean {
    const p = r.partition;
    if (!this.owned.has(p)) {
      this.counters.add("raw_batches_dropped.not_owner");
      return false;
    }
    const missed = this.account(r.probeId, p, r.batchSeq, r.servedBefore, r.served, now);
    for (let k = 0; k < r.dropReasons.length; k++) this.counters.add(`probe_drops.${r.dropReasons[k]}`, r.dropCounts[k]);
    this.counters.add("raw_batches");
    // the node whose probe saw these sockets names their records (a parser hears every node)
    const node = r.node || this.opts.node;
    // Opens before data, closes after: the batch lists them separately.
    const conns = r.conns;
    for (let k = 0; k < conns.length; k++) if (conns[k]!.kind !== ConnKind.CLOSE) this.table.onConn(conns[k]!, p, now, node);
    let bytes = 0;
    const ev = this.ev;
    let keyLo = -1;
    let keyHi = -1;
    // the chunks and closes of all the batch's connections go to the plugins together: one
    // feed_batch call per plugin instance for those being decoded (ConnTable.beginSteps)
    this.table.beginSteps();
    try {
      for (let i = 0; i < r.dataCount; i++) {
        // consecutive events mostly share a connection: its key is converted once
        if (r.connKeyLo[i] !== keyLo || r.connKeyHi[i] !== keyHi) {
          keyLo = r.connKeyLo[i]!;
          keyHi = r.connKeyHi[i]!;
          ev.connKey = r.connKey(i);
        }
        ev.direction = r.direction[i]!;
        ev.seq = r.seq[i]!;
        ev.timestampNs = r.timestampNs(i);
        ev.tid = r.tid[i]!;
        ev.payload = r.payload(i);
        ev.originalLength = r.originalLength[i]!;
        bytes += ev.payload.length;
        this.table.onData(ev, p, now, node);
      }
      // closes after the data, each after its connection's last step
      for (let k = 0; k < conns.length; k++) if (conns[k]!.kind === ConnKind.CLOSE) this.table.onConn(conns[k]!, p, now, node);
    } finally {
      this.table.endSteps();
    }
    ev.payload = EMPTY; // the message's bytes are not held past this call
    this.counters.add("raw_bytes", bytes);
    // Batches of this partition were lost before this one: the holes they left will never fill.
    if (missed) this.table.markPartitionLoss(p);
    return true;
  }

  /**
   * What changed since the last call: the progress of each owned probe/partition that moved (what
   * has been handed to the batcher), and once, of the partitions let go since. A consumer merges
   * these into what it holds (ProgressStore.committed); `snapshot()` is the whole of it.
   */
  progress(): Progress {
    const p: Progress = {};
    if (this.changed.size) {
      for (const [k, v] of this.changed) p[k] = v;
      this.changed.clear();
    }
    if (this.released.size) {
      for (const [k, v] of this.released) p[k] = v;
      this.released.clear();
    }
    return p;
  }

  /** The progress of every owned probe/partition now (O(probes × partitions): tests and benches). */
  snapshot(): Progress {
    return Object.fromEntries(this.seen);
  }

  /** Closed batches plus every open one: what must be published now. */
  takeOutput(): EncodedBatch[] {
    const out = this.full.splice(0);
    out.push(...this.batcher.drain());
    return out;
  }

  /** Closed batches waiting for the publisher. */
  queuedBatches(): number {
    return this.full.length;
  }

  /** True when records wait to be published. */
  hasOutput(): boolean {
    return this.full.length > 0 || this.batcher.heldBytes > 0;
  }

  /** Periodic housekeeping: idle eviction and memory bounds; the takeovers' losses counted once settled. */
  sweep(now: number): void {
    this.table.sweep(now);
    this.counters.set("connections_tracked", this.table.size);
    this.settleHandovers(now);
  }

  /** Shutdown: every connection closed, incomplete requests written. */
  closeAll(): void {
    this.table.closeAll();
    this.settleHandovers(Infinity);
  }

  /** Counts what the takeovers waiting HANDOVER_SETTLE_MS lost, against the previous owner's progress now. */
  private settleHandovers(now: number): void {
    if (!this.pending.length) return;
    const due: PendingHandover[] = [];
    const waiting: PendingHandover[] = [];
    for (const h of this.pending) (now - h.at >= HANDOVER_SETTLE_MS ? due : waiting).push(h);
    if (!due.length) return;
    this.pending = waiting;
    for (const h of due) {
      const prev = this.previous.get(h.partition)?.();
      if (prev === undefined) {
        // not read yet: counted against nothing, it would miss the move's loss silently
        if (now - h.at < HANDOVER_READ_WAIT_MS) waiting.push(h);
        else this.counters.add("handovers_unmeasured");
        continue;
      }
      const baseSeq = prev[h.key];
      if (baseSeq === undefined || h.seq <= baseSeq + 1) continue;
      this.counters.add("raw_batches_missed.handover", h.seq - baseSeq - 1);
      this.countMissedServed("handover", h.servedBefore, prev![h.sKey]);
    }
  }

  private queue(b: EncodedBatch): void {
    if (this.full.length >= this.opts.maxQueuedBatches) {
      this.counters.add("records_dropped.output_queue_full", b.records);
      return;
    }
    this.full.push(b);
  }

  /**
   * Counts batches of this partition that never reached us (batch_seq holes), and the requests
   * served they held (from the probe's running count, when it keeps one); true when some did not.
   */
  private account(probeId: string, partition: number, seq: number, servedBefore: number, served: number, now: number): boolean {
    if (!seq) return false; // producer without sequence numbers
    let key = this.keyOf[partition];
    let sKey = this.servedKeyOf[partition]!;
    if (key === undefined || this.keyProbe[partition] !== probeId) {
      key = `${probeId}/${partition}`;
      sKey = servedKey(key);
      this.keyOf[partition] = key;
      this.servedKeyOf[partition] = sKey;
      this.keyProbe[partition] = probeId;
    }
    const last = this.seen.get(key);
    let missed = false;
    if (last === undefined) {
      // a partition taken over: counted once the previous owner's last progress has come (sweep)
      if (this.previous.has(partition)) this.pending.push({ partition, key, sKey, seq, servedBefore, at: now });
    } else if (seq > last + 1) {
      this.counters.add("raw_batches_missed.gap", seq - last - 1);
      this.countMissedServed("gap", servedBefore, this.seen.get(sKey));
      missed = true;
    } else if (seq <= last) {
      this.counters.add("raw_batches_restart"); // probe restarted (or a duplicate): begin again
      this.seen.delete(sKey);
    }
    this.seen.set(key, seq);
    this.changed.set(key, seq);
    if (servedBefore || served) {
      this.seen.set(sKey, servedBefore + served);
      this.changed.set(sKey, servedBefore + served);
    }
    return missed;
  }

  /**
   * Requests served in the batches missed: what the probe had counted before this batch less what
   * the batches we (or the previous owner) had held. Unknown when the probe does not count.
   */
  private countMissedServed(how: "gap" | "handover", servedBefore: number, servedThrough: number | undefined): void {
    const n = servedBefore - (servedThrough ?? 0);
    if (n > 0) this.counters.add(`requests_missed.${how}`, n);
  }
}

/** The keys of `m` that belong to partition `p` (`…/p`: the progress keys of its producers), listed before any is deleted. */
function keysOfPartition(m: Map<string, unknown>, p: number): string[] {
  const suffix = `/${p}`;
  return [...m.keys()].filter((k) => k.endsWith(suffix));
}
