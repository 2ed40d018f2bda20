// Counters registry: the numbers a service reports through its Status RPC and `wirescope status`.

/** Named numeric counters and gauges. Cheap enough for hot paths (a Map lookup and an add). */
export class Counters {
  private readonly values = new Map<string, number>();
  private readonly gauges = new Set<string>();

  /** Adds `n` (default 1) to a monotonically increasing counter. */
  add(name: string, n = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + n);
  }

  /** Sets a gauge (a value that goes up and down, e.g. queue depth, lag). */
  set(name: string, value: number): void {
    this.values.set(name, value);
    this.gauges.add(name);
  }

  /** Sets a counter to a total kept elsewhere (still monotonic: exported as a counter, not a gauge). */
  setTotal(name: string, value: number): void {
    this.values.set(name, value);
  }

  /** True when `name` was last written by `set` (a gauge), for the Prometheus export. */
  isGauge(name: string): boolean {
    return this.gauges.has(name);
  }

  get(name: string): number {
    return this.values.get(name) ?? 0;
  }

  /** Every name and value, unsorted and uncopied (for warm paths; `snapshot` for reports). */
  entries(): IterableIterator<[string, number]> {
    return this.values.entries();
  }

  /** A copy of every value, names sorted. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}
