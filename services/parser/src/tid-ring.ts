// Which thread sent each recent request-direction event of a connection, for Record.tid: the
// record's start_ns is the timestamp of its request's first event. A ring of the last MAX events,
// searched from the newest (a record's request is almost always among the last few), so both
// remembering and looking up are bounded work, with no hashing of 64-bit keys.

/** Events remembered per connection. */
export const MAX_TIDS = 256;

export class TidRing {
  private ts: bigint[] = [];
  private tid: number[] = [];
  /** Next slot to write once the ring is full. */
  private at = 0;
  /** Slots compared by `get` so far (work done, for the bounded-work test). */
  steps = 0;
  /** Events remembered so far (a mark for `get`'s `skip`). */
  added = 0;

  /** Remembers that `tid` sent the event at `tsNs` (tid 0 = unknown: not remembered). */
  add(tsNs: bigint, tid: number): void {
    if (!tid) return;
    this.added++;
    if (this.ts.length < MAX_TIDS) {
      this.ts.push(tsNs);
      this.tid.push(tid);
      return;
    }
    this.ts[this.at] = tsNs;
    this.tid[this.at] = tid;
    this.at = (this.at + 1) % MAX_TIDS;
  }

  /**
   * The thread of the newest remembered event at exactly `tsNs`, or 0. `skip`: leave out the
   * newest `skip` events (those remembered after a step whose records are looked up late: the
   * ring as it was then, `added` at that time subtracted from `added` now).
   */
  get(tsNs: bigint, skip = 0): number {
    const n = this.ts.length;
    // newest first: slot at-1 going back, wrapping once
    for (let k = 1 + skip; k <= n; k++) {
      const i = (this.at - k + n) % n;
      this.steps++;
      if (this.ts[i] === tsNs) return this.tid[i]!;
    }
    return 0;
  }
}
