/** Options of the pure aggregation core. Every limit has a default; pass a Partial to override. */
export interface CoreOptions {
  /** Window length in ms; windows are aligned to the Unix epoch (wall clock). */
  windowMs: number;
  /** How long after a window's end records for it are still accepted before it is closed. */
  graceMs: number;
  /** DDSketch relative accuracy: a reported quantile q̃ satisfies |q̃ − q| ≤ α·q. */
  relativeAccuracy: number;
  /** Cardinality guard: per service, per tag (operation, resource; edges: client), at most this
   *  many distinct values per window; the rest are folded into "*". */
  maxValuesPerTag: number;
  /** Memory guard while a window is open: distinct series per service beyond this are folded
   *  into resource "*" at once (order-dependent, so only a last resort). */
  maxSeriesPerService: number;
  /** HTTP path segments with more distinct values than this under the same prefix (in one
   *  window, per service) are collapsed to "*". */
  segmentThreshold: number;
  /** Windows kept open at most; the oldest is force-closed beyond this. */
  maxOpenWindows: number;
  /** Records whose end lies further than this in the future (wall clock) are dropped. */
  maxFutureMs: number;
  /** Spans: fraction of non-error, non-slowest traces kept (0..1), decided per trace id. */
  spanSampleRate: number;
  /** Spans: ordinary spans (neither errors nor the slowest) kept per second at most, per
   *  instance, 0 = no bound. Past it, a window keeps the traces under the largest power of two
   *  below `spanSampleRate` that fits (consistent sampling on the trace id). */
  spanBudget: number;
  /** Spans: keep the slowest N spans per RED series and window, whatever the sample rate. */
  slowestPerSeries: number;
  /** Spans buffered (open windows) at most; beyond it spans are dropped and counted. A span waits
   *  for its window's close (window + grace: 15 s by default), so the buffer must hold that long
   *  at the highest lossless rate: 600,000 spans at 40,000 records/s. Each takes
   *  `SPAN_COLUMN_BYTES` (124) in its window's columns: 124 MB at the default bound. */
  maxBufferedSpans: number;
  /** Allowed clock difference between the two ends of a connection when pairing records. */
  pairSkewMs: number;
  /** Write spans at all. */
  spans: boolean;
  /** Service map: connections (4-tuples) remembered per window to count a call seen from both
   *  ends once; past it records count without matching (edgeTuplesOverflow). */
  maxEdgeTuples: number;
}

export const defaultCoreOptions: CoreOptions = {
  windowMs: 10_000,
  graceMs: 5_000,
  relativeAccuracy: 0.01,
  maxValuesPerTag: 100,
  maxSeriesPerService: 2_000,
  segmentThreshold: 50,
  maxOpenWindows: 64,
  maxFutureMs: 60_000,
  spanSampleRate: 0.1,
  spanBudget: 500,
  slowestPerSeries: 1,
  maxBufferedSpans: 1_000_000,
  pairSkewMs: 50,
  spans: true,
  maxEdgeTuples: 200_000,
};

/** Merges user options over the defaults and checks them; throws a RangeError naming the bad option. */
export function resolveCoreOptions(o: Partial<CoreOptions> = {}): CoreOptions {
  const r: CoreOptions = { ...defaultCoreOptions };
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (r as unknown as Record<string, unknown>)[k] = v;
  const positive: (keyof CoreOptions)[] = ["windowMs", "maxValuesPerTag", "maxSeriesPerService", "segmentThreshold", "maxOpenWindows", "maxBufferedSpans", "maxEdgeTuples"];
  for (const k of positive) {
    const v = r[k] as number;
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`aggregator option ${k} must be a positive number, got ${String(v)}`);
  }
  if (!(r.relativeAccuracy > 0 && r.relativeAccuracy < 1)) throw new RangeError(`aggregator option relativeAccuracy must be in (0, 1), got ${r.relativeAccuracy}`);
  if (!(r.spanSampleRate >= 0 && r.spanSampleRate <= 1)) throw new RangeError(`aggregator option spanSampleRate must be in [0, 1], got ${r.spanSampleRate}`);
  if (!(r.spanBudget >= 0)) throw new RangeError(`aggregator option spanBudget must be >= 0, got ${r.spanBudget}`);
  if (!(r.graceMs >= 0)) throw new RangeError(`aggregator option graceMs must be >= 0, got ${r.graceMs}`);
  return r;
}
