// A parser's losses, carried to InfluxDB in its membership entries (docs/parser.md, "Losses in
// InfluxDB"). Only aggregators write to InfluxDB, and every aggregator watches the parsers'
// bucket for their watermarks already: each entry states how much each loss counter grew since
// the previous entry that was written, and the aggregators write that as one `pipeline` point
// (component=parser) dated by the entry itself, so several aggregators write the same point.
//
//   counters ──pending()──▶ entry.losses ──put──▶ KV ──watch──▶ aggregators ──▶ pipeline,component=parser
//                 ▲                          │
//                 └────────written(losses)───┘  (only what a written entry carried counts as told)

/**
 * The parser counters that are losses: records, raw batches and the requests in them, connections
 * (not `.unclaimed`: traffic no plugin decodes), what plugins drop, and what the probes upstream
 * counted as dropped (`probe_drops.<reason>`, from their RawBatches).
 */
export const LOSS_COUNTER = /^(records_dropped|raw_batches_missed|requests_missed|raw_drops_sub_queue_full|probe_drops|plugin_drops|plugin_bytes_dropped|conn_dropped)(\.|$)/;

export function isLossCounter(name: string): boolean {
  return LOSS_COUNTER.test(name) && name !== "conn_dropped.unclaimed";
}

export class LossReport {
  /** What written entries have told, per counter. */
  private readonly told = new Map<string, number>();

  /** Whether each counter name seen is a loss counter (names are few and fixed: tested once each). */
  private readonly isLoss = new Map<string, boolean>();

  /**
   * How much each loss counter among `counters` (name, value pairs: `Counters.entries()`) grew past
   * what was told; undefined when none did.
   */
  pending(counters: Iterable<[string, number]>): Record<string, number> | undefined {
    let out: Record<string, number> | undefined;
    for (const [k, v] of counters) {
      let loss = this.isLoss.get(k);
      if (loss === undefined) this.isLoss.set(k, (loss = isLossCounter(k)));
      if (!loss) continue;
      const d = v - (this.told.get(k) ?? 0);
      if (d > 0) (out ??= {})[k] = d;
    }
    return out;
  }

  /** An entry carrying `losses` was written: they are told. */
  written(losses: Record<string, number> | undefined): void {
    if (!losses) return;
    for (const [k, d] of Object.entries(losses)) this.told.set(k, (this.told.get(k) ?? 0) + d);
  }
}
