/** OpenTelemetry's default explicit bucket boundaries for durations in ms. */
export const OTEL_DEFAULT_BOUNDARIES_MS: readonly number[] = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

/** The `le` tag value of each bucket, "+Inf" last. */
export const LE_TAGS: readonly string[] = [...OTEL_DEFAULT_BOUNDARIES_MS.map(String), "+Inf"];

/** Index of the (non-cumulative) bucket holding `ms`: the first boundary b with ms <= b. */
export function bucketIndex(ms: number): number {
  const b = OTEL_DEFAULT_BOUNDARIES_MS;
  // Linear scan: 15 boundaries, most durations hit the first few.
  for (let i = 0; i < b.length; i++) if (ms <= b[i]!) return i;
  return b.length;
}

/** Cumulative counts (count of values <= le) from per-bucket counts. */
export function cumulative(counts: ArrayLike<number>): number[] {
  const out: number[] = new Array(counts.length);
  let run = 0;
  for (let i = 0; i < counts.length; i++) {
    run += counts[i]!;
    out[i] = run;
  }
  return out;
}
