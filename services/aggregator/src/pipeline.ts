// Storage without loss: the bookkeeping between the stream, the core and InfluxDB.
//
//   message ──ingest──▶ core windows ──close──▶ lines ──write──▶ InfluxDB
//      │                                                           │ every line acked or dropped
//      └── held (not acked) ◀── ack when the durable watermark ◀───┘ (contiguous closed windows)
//                                passes every window it touched
//
// The durable watermark F ("every window starting before F is in InfluxDB") is saved before any
// message is acked. After a crash, messages not acked are redelivered: records of windows < F
// are skipped (they are in InfluxDB already), the others rebuild their windows from every record
// that touched them (none of those messages was acked), and the deterministic points overwrite
// whatever a partial write left. No NATS or InfluxDB import here: the adapters are injected.
//
// With several instances the watermark is kept per records partition, with the stream position
// to read that partition again from (Positions): an instance taking a partition over reads it
// from there and skips the records of windows its previous owner had written.
import type { RecordView as WRecord } from "./core/record-view.js";
import type { RecordBatchSlots } from "./core/record-slot.js";
import { Aggregator } from "./core/aggregator.js";
import type { ClosedWindow, Upstream } from "./core/aggregator.js";
import { windowLines, SpanClock } from "./core/lines.js";
import type { SpanRec } from "./core/spans.js";

/** A delivered stream message, as far as the pipeline cares. */
export interface Ackable {
  /** Stream sequence: the same for every delivery of one message. */
  readonly seq: number;
  readonly redelivered: boolean;
  /** The records partition (`wirescope.records.<p>`). */
  readonly partition: number;
  ack(): void;
}

/**
 * Where each partition must be read again from for the saved watermark to hold: every message of
 * partition p with a record in a window at or after the watermark has a stream sequence at or
 * above `fromSeq.get(p) ?? nextSeq`.
 */
export interface Positions {
  /** Per partition: the lowest sequence of the messages still held. */
  fromSeq: ReadonlyMap<number, number>;
  /** One past the highest sequence seen: where partitions with nothing held resume. */
  nextSeq: number;
}

export interface WriteResult {
  written: number;
  dropped: number;
}

export interface PipelineDeps {
  write(lines: string[]): Promise<WriteResult>;
  /** Persists the durable watermark (ms) and the positions it holds for; resolves once stored. */
  saveWatermark(ms: number, positions: Positions): Promise<void>;
  onError?(e: unknown): void;
  /** The kept spans of each closed window, for outlets besides InfluxDB (OTLP); must not throw. */
  onSpans?(spans: readonly SpanRec[]): void;
  /** The parsers' watermark now (ParserWatermarks): no window closes past it (Aggregator.closeDue). */
  upstream?(nowMs: number): Upstream;
}

interface Held {
  msg: Ackable;
  maxWindow: number;
}

interface Closing {
  start: number;
  end: number;
  done: boolean;
}

export interface PipelineCounters {
  batchesIn: number;
  batchesAcked: number;
  duplicateDeliveries: number;
  /** Batches of partitions another instance owns: acknowledged unread. */
  batchesForeign: number;
  /**
   * Batches delivered again after they were acknowledged (a NATS server restarted and lost the
   * consumer's last acks, so the redelivery comes without its redelivered flag): read as replays.
   */
  replaysAfterAck: number;
  pointsOut: number;
  pointsDropped: number;
  windowsWritten: number;
}

export class Pipeline {
  readonly counters: PipelineCounters = { batchesIn: 0, batchesAcked: 0, duplicateDeliveries: 0, batchesForeign: 0, replaysAfterAck: 0, pointsOut: 0, pointsDropped: 0, windowsWritten: 0 };
  /** Held messages by stream sequence (a redelivery while held replaces the handle, never re-counts). */
  private readonly held = new Map<number, Held>();
  private readonly closing: Closing[] = [];
  private durable: number;
  private saving: Promise<void> = Promise.resolve();
  /** Windows may not close before this (wall ms): lets redeliveries arrive after a restart. */
  private holdUntil = 0;
  /** The latest idle report (`noteIdle`); Infinity while none are awaited. */
  private idleSeenMs = Infinity;
  private inflight = 0;
  /** Highest stream sequence seen (ingested, discarded or passed). */
  private maxSeq = 0;
  private stopped = false;
  private readonly spanClock = new SpanClock();

  constructor(
    readonly core: Aggregator,
    private readonly deps: PipelineDeps,
    durableWatermark: number,
  ) {
    this.durable = durableWatermark;
    if (Number.isFinite(durableWatermark)) core.setClosedBefore(durableWatermark);
  }

  get durableWatermark(): number {
    return this.durable;
  }
  get heldCount(): number {
    return this.held.size;
  }
  get writesInFlight(): number {
    return this.inflight;
  }

  /** No window closes before `ms` (wall clock), e.g. until redeliveries after a restart arrived. */
  holdClosingUntil(ms: number): void {
    this.holdUntil = Math.max(this.holdUntil, ms);
  }
  releaseHold(): void {
    this.holdUntil = 0;
  }
  /** Until when no window closes (wall clock; 0 or past: none held). */
  get heldUntil(): number {
    return this.holdUntil;
  }
  /**
   * From now on a window closes by the idle wall clock only after an idle report (`noteIdle`)
   * dated after its end + grace and its last record (Aggregator.closeDue). Without this call there
   * are no idle reports: the wall clock alone decides.
   */
  awaitIdleReports(): void {
    this.idleSeenMs = -Infinity;
  }
  /** The source said, at `ms` (wall clock), that it had nothing more to deliver. */
  noteIdle(ms: number): void {
    if (ms > this.idleSeenMs) this.idleSeenMs = ms;
  }

  /**
   * One delivered batch. `floorMs`: windows before it are already in InfluxDB for this batch's
   * partition; `replayed`: read again from a saved position (drop reason as for a redelivery).
   * Never throws.
   */
  onBatch(records: readonly WRecord[] | RecordBatchSlots, msg: Ackable, nowMs: number, floorMs = -Infinity, replayed = false): void {
    const prev = this.held.get(msg.seq);
    if (prev) {
      // Redelivered while still held (ack wait expired): already counted, keep the newest handle.
      prev.msg = msg;
      this.counters.duplicateDeliveries++;
      return;
    }
    // One consumer delivers a stream's messages for the first time in sequence order, so a
    // sequence at or below the highest seen and not held was acknowledged already: every window
    // it touched is written (or it was counted late then). A server that restarted may deliver
    // it again without the redelivered flag (its consumer's last acks and delivery counts were
    // not yet on disk); without this its records were counted late a second time.
    if (msg.seq <= this.maxSeq && !msg.redelivered && !replayed) {
      replayed = true;
      this.counters.replaysAfterAck++;
    }
    if (msg.seq > this.maxSeq) this.maxSeq = msg.seq;
    this.counters.batchesIn++;
    const r = this.core.ingest(records, nowMs, msg.redelivered || replayed, floorMs);
    if (r.maxWindow === -Infinity || r.maxWindow < this.durable) {
      this.ackOne(msg);
      return;
    }
    this.held.set(msg.seq, { msg, maxWindow: r.maxWindow });
  }

  /** A message that could not be decoded: acknowledged (never redelivered), counted by the caller. */
  discard(msg: Ackable): void {
    if (msg.seq > this.maxSeq) this.maxSeq = msg.seq;
    this.held.delete(msg.seq);
    this.ackOne(msg);
  }

  /** A batch of a partition this instance does not own: acknowledged, not read. */
  pass(msg: Ackable): void {
    if (msg.seq > this.maxSeq) this.maxSeq = msg.seq;
    this.counters.batchesForeign++;
    this.ackOne(msg);
  }

  /**
   * Ends this pipeline's bookkeeping (its partitions were reassigned): nothing more is saved or
   * acknowledged. Writes already started finish; open windows are left to the next owner, who
   * reads their records again from the saved positions.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Closes the due windows and starts writing them. */
  tick(nowMs: number, force = false): void {
    if (!force && nowMs < this.holdUntil) return;
    const closed = this.core.closeDue(nowMs, force, this.idleSeenMs, this.deps.upstream?.(nowMs));
    for (const w of closed) this.startWrite(w);
  }

  private startWrite(w: ClosedWindow): void {
    const c: Closing = { start: w.start, end: w.start + this.core.opts.windowMs, done: false };
    this.closing.push(c);
    const lines = windowLines(w, this.spanClock);
    if (w.spans.length > 0) this.deps.onSpans?.(w.spans);
    this.inflight++;
    this.deps
      .write(lines)
      .then(
        (o) => {
          this.counters.pointsOut += o.written;
          this.counters.pointsDropped += o.dropped;
        },
        (e) => {
          this.counters.pointsDropped += lines.length;
          this.deps.onError?.(e);
        },
      )
      .finally(() => {
        this.inflight--;
        c.done = true;
        this.counters.windowsWritten++;
        this.advance();
      });
  }

  /** Moves the durable watermark over the contiguous done windows, saves it, then acks. */
  private advance(): void {
    let next = this.durable;
    while (this.closing.length > 0 && this.closing[0]!.done) next = Math.max(next, this.closing.shift()!.end);
    if (next <= this.durable || !Number.isFinite(next)) return;
    this.saving = this.saving.then(async () => {
      if (next <= this.durable || this.stopped) return;
      const fromSeq = new Map<number, number>();
      for (const [seq, h] of this.held) {
        if (h.maxWindow < next) continue;
        const p = h.msg.partition;
        const cur = fromSeq.get(p);
        if (cur === undefined || seq < cur) fromSeq.set(p, seq);
      }
      try {
        await this.deps.saveWatermark(next, { fromSeq, nextSeq: this.maxSeq + 1 });
      } catch (e) {
        // Not saved: keep the messages; a later window's save covers them.
        this.deps.onError?.(e);
        return;
      }
      this.durable = next;
      if (this.stopped) return;
      for (const [seq, h] of this.held) {
        if (h.maxWindow < next) {
          this.held.delete(seq);
          this.ackOne(h.msg);
        }
      }
    });
  }

  private ackOne(msg: Ackable): void {
    try {
      msg.ack();
      this.counters.batchesAcked++;
    } catch (e) {
      this.deps.onError?.(e);
    }
  }

  /** Resolves when every started write finished and the watermark they allow is saved. */
  async settled(): Promise<void> {
    while (this.inflight > 0) await new Promise((r) => setTimeout(r, 20));
    await this.saving;
  }
}
