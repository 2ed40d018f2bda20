// A parser replica's watermark (`publishedThroughMs` in its membership entry, docs/parser.md):
// a wall-clock time before which every record it will ever publish ended, and was acknowledged
// by JetStream. Aggregators close no window past the lowest of them (docs/aggregator.md, "RED
// windows").
//
// A record ends before the raw message that completes it arrives here (the probe saw its bytes
// first), so a record is dated by that message's arrival. What bounds the watermark:
//
//   raw message queued (input paused)  ──▶ its arrival            (RawInput.oldestQueuedMs)
//   handled, records held for a flush  ──▶ arrival of the first message handled since the last take
//   taken by the flush being published ──▶ arrival of the first message that flush carries
//   anything held or in flight          ──▶ when the last completed flush began (records made
//                                           outside input, by the sweep, end before they are made)
//
// Messages are handled in arrival order (the queue is FIFO, and taken directly only while it is
// empty), so the first arrival since a take is the oldest. Without the arrival terms, a message
// queued while the output waited on JetStream and handled after a later flush completed was
// dated by that flush's start: the watermark passed records still to be published.

export class PublishWatermark {
  /** Arrival of the first raw message handled since the last take (Infinity: none). */
  private heldFrom = Infinity;
  /** Arrival of the first raw message whose records the flush in flight carries. */
  private flightFrom = Infinity;
  /** When the last flush that completed began. */
  private completedFrom: number;

  constructor(nowMs: number) {
    this.completedFrom = nowMs;
  }

  /** A raw message that arrived at `arrivedMs` was handled: its records are held until taken. */
  handled(arrivedMs: number): void {
    if (arrivedMs < this.heldFrom) this.heldFrom = arrivedMs;
  }

  /** A flush began and took everything held. */
  took(): void {
    this.flightFrom = this.heldFrom;
    this.heldFrom = Infinity;
  }

  /** The flush that began at `beganMs` is acknowledged (or its loss counted). */
  completed(beganMs: number): void {
    this.flightFrom = Infinity;
    this.completedFrom = beganMs;
  }

  /**
   * The watermark at `nowMs`: `busy` when records are held or a flush is in flight,
   * `oldestQueuedMs` the arrival of the oldest raw message not handled yet (Infinity: none).
   */
  through(nowMs: number, busy: boolean, oldestQueuedMs: number): number {
    return Math.min(busy ? this.completedFrom : nowMs, oldestQueuedMs, this.heldFrom, this.flightFrom);
  }
}
