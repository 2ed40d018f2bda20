// Per-direction byte ordering: DataEvents arrive with `seq` (bytes since the connection start in
// that direction); the decoder needs an in-order stream where every hole is an explicit gap.
//
//   expected ─┐
//   ──────────▼───────────────────────────────
//   [ delivered ][ hole ][ pending ][ pending ]
//   A hole is waited for while the pending bytes stay under the limit; past it, the hole
//   becomes gap(len) and delivery goes on. A payload shorter than original_length is a gap now.

export type Op =
  | { kind: "data"; bytes: Uint8Array; tsNs: bigint; tid: number }
  | { kind: "gap"; len: number; tsNs: bigint };

interface Pending {
  seq: number;
  payload: Uint8Array;
  originalLength: number;
  tsNs: bigint;
  tid: number;
}

export interface ReorderLimits {
  /** Bytes held while waiting for a hole to fill; past this the hole is declared a gap. */
  maxPendingBytes: number;
  /** Events held while waiting, likewise. */
  maxPendingEvents: number;
}

export class DirectionStream {
  /** Next byte offset expected; undefined until the first event (mid-stream start allowed). */
  private expected: number | undefined;
  private pending: Pending[] = [];
  pendingBytes = 0;
  duplicates = 0;
  /** Times a hole was declared a gap because the pending limits were reached. */
  forced = 0;

  constructor(
    private readonly limits: ReorderLimits,
    startAtZero: boolean,
  ) {
    if (startAtZero) this.expected = 0;
  }

  /** Accepts one event; appends the ops it makes ready to `out`. */
  push(seq: number, payload: Uint8Array, originalLength: number, tsNs: bigint, tid: number, out: Op[]): void {
    if (originalLength < payload.length) originalLength = payload.length;
    if (this.expected === undefined) this.expected = seq;
    if (seq > this.expected) {
      this.pending.push({ seq, payload, originalLength, tsNs, tid });
      this.pendingBytes += payload.length;
      if (this.pending.length > 1 && this.pending[this.pending.length - 2]!.seq > seq) this.pending.sort((a, b) => a.seq - b.seq);
      if (this.pendingBytes > this.limits.maxPendingBytes || this.pending.length > this.limits.maxPendingEvents) {
        this.forced++;
        this.flush(out);
      }
      return;
    }
    this.deliver(seq, payload, originalLength, tsNs, tid, out);
    this.drain(out);
  }

  /** Events wait for a hole to fill (some may carry no bytes: a truncated event's gap). */
  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * The common case without an op: nothing waits and this event is exactly the next bytes, whole
   * (no hole, no overlap, no truncation). Advances and returns true; the caller hands `payload`
   * to the decoder itself. Otherwise returns false and changes nothing (use `push`).
   */
  next(seq: number, payloadLength: number, originalLength: number): boolean {
    if (this.pending.length !== 0 || seq !== this.expected || payloadLength === 0 || originalLength > payloadLength) return false;
    this.expected = seq + payloadLength;
    return true;
  }

  /** Gives up waiting: every remaining hole becomes a gap (used on close, eviction, limits). */
  flush(out: Op[]): void {
    while (this.pending.length) {
      const p = this.pending[0]!;
      if (this.expected !== undefined && p.seq > this.expected) {
        out.push({ kind: "gap", len: p.seq - this.expected, tsNs: p.tsNs });
        this.expected = p.seq;
      }
      this.drain(out);
    }
  }

  private drain(out: Op[]): void {
    while (this.pending.length && this.pending[0]!.seq <= this.expected!) {
      const p = this.pending.shift()!;
      this.pendingBytes -= p.payload.length;
      this.deliver(p.seq, p.payload, p.originalLength, p.tsNs, p.tid, out);
    }
  }

  private deliver(seq: number, payload: Uint8Array, originalLength: number, tsNs: bigint, tid: number, out: Op[]): void {
    const expected = this.expected!;
    const end = seq + originalLength;
    if (end <= expected) {
      if (originalLength > 0) this.duplicates++;
      return;
    }
    // Overlap with bytes already delivered: keep only the new tail.
    const skip = expected - seq;
    if (skip < payload.length) {
      const bytes = skip > 0 ? payload.subarray(skip) : payload;
      if (bytes.length) out.push({ kind: "data", bytes, tsNs, tid });
    }
    const captured = seq + payload.length;
    const from = Math.max(captured, expected);
    if (end > from) out.push({ kind: "gap", len: end - from, tsNs });
    this.expected = end;
  }
}
