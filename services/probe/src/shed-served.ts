// Requests served while shed, by server process and port: the kernel keeps running totals
// (`shed_served`, bpf/wirescope.h); each overload tick the probe reads them and publishes what
// each grew by (ShedReport on SHED_SUBJECT), so that the aggregator counts what every sampled
// server served exactly: observed + shed (docs/probe.md, "Overload").

/** What one server end (process, local port) served while shed since the previous reading. */
export interface ShedServedDelta {
  pid: number;
  port: number;
  requests: number;
}

/**
 * Turns readings of the running totals into what each grew by. An end that left the kernel's
 * LRU map and came back starts again from 0: a total below the last one is all new. Ends no
 * longer in the map are forgotten, so memory is bounded by the map's size.
 */
export class ShedServedDeltas {
  private last = new Map<number, number>();

  /** `flat`: [pid, port, total, ...] as NativeProbe.shedServed gives them. */
  update(flat: readonly number[]): ShedServedDelta[] {
    const out: ShedServedDelta[] = [];
    const next = new Map<number, number>();
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const pid = flat[i]!;
      const port = flat[i + 1]!;
      const total = flat[i + 2]!;
      const key = pid * 65536 + port;
      next.set(key, total);
      const before = this.last.get(key) ?? 0;
      const grew = total >= before ? total - before : total;
      if (grew > 0) out.push({ pid, port, requests: grew });
    }
    this.last = next;
    return out;
  }
}
