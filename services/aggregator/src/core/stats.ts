import { DDSketch } from "@datadog/sketches-js";
import { bucketIndex, OTEL_DEFAULT_BOUNDARIES_MS } from "./histogram.js";

/**
 * Counts, sum, max, a DDSketch and histogram buckets for one series in one window. Merging two
 * of these is exact for counts/sum/max/buckets and exact for the sketch (DDSketch merges are
 * lossless: same bins, added counts), so folded series keep the sketch's error bound.
 */
export class LatencyStats {
  requests = 0;
  errors = 0;
  sumMs = 0;
  maxMs = 0;
  readonly sketch: DDSketch;
  readonly buckets: Float64Array;

  constructor(relativeAccuracy: number) {
    this.sketch = new DDSketch({ relativeAccuracy });
    this.buckets = new Float64Array(OTEL_DEFAULT_BOUNDARIES_MS.length + 1);
  }

  add(ms: number, error: boolean): void {
    this.requests++;
    if (error) this.errors++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
    // DDSketch maps values below its minimum indexable value to the zero bucket; 0 ms is valid.
    this.sketch.accept(ms);
    this.buckets[bucketIndex(ms)]!++;
  }

  merge(o: LatencyStats): void {
    this.requests += o.requests;
    this.errors += o.errors;
    this.sumMs += o.sumMs;
    if (o.maxMs > this.maxMs) this.maxMs = o.maxMs;
    if (o.requests > 0) this.sketch.merge(o.sketch);
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i]! += o.buckets[i]!;
  }

  /** Quantile from the sketch, clamped to the observed maximum (the sketch may overshoot by α). */
  quantile(q: number): number {
    if (this.requests === 0) return 0;
    const v = this.sketch.getValueAtQuantile(q);
    return Math.max(0, Math.min(v, this.maxMs));
  }
}
