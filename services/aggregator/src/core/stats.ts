import { DDSketch } from "@datadog/sketches-js";
import { bucketIndex, OTEL_DEFAULT_BOUNDARIES_MS } from "./histogram.js";

/**
 * Counts, sum, max, a DDSketch and histogram buckets for one series in one window. Merging two
 * of these is exact for counts/sum/max/buckets and exact for the sketch (DDSketch merges are
 * lossless: same bins, added counts), so folded series keep the sketch's error bound.
 *
 * Records of sampled connections carry a weight (1 / the observed fraction of their connection):
 * `estimated`, `estimatedErrors` and `estimatedSumMs` add the weights, what was sent; `requests`,
 * `errors`, `sumMs`, the sketch and the buckets hold what was observed. Ratios (error ratio,
 * percentiles, mean) come out the same from either, so they are read from what was observed.
 */
/** Values a LatencyStats keeps as they are before it makes its sketch. */
const FEW = 16;

export class LatencyStats {
  requests = 0;
  errors = 0;
  sumMs = 0;
  estimated = 0;
  estimatedErrors = 0;
  estimatedSumMs = 0;
  maxMs = 0;
  readonly buckets: Float64Array;
  /** Made when more than FEW values came: most per-connection stats (pending map
   *  contributions of short connections) never need one. */
  private sk: DDSketch | undefined = undefined;
  /** The values accepted before the sketch was made. */
  private few: Float64Array | undefined = undefined;
  private nFew = 0;

  constructor(private readonly relativeAccuracy: number) {
    this.buckets = new Float64Array(OTEL_DEFAULT_BOUNDARIES_MS.length + 1);
  }

  /** The sketch of every value accepted (the same bins whether values came before it was made or after). */
  get sketch(): DDSketch {
    if (!this.sk) {
      this.sk = new DDSketch({ relativeAccuracy: this.relativeAccuracy });
      for (let i = 0; i < this.nFew; i++) this.sk.accept(this.few![i]!);
      this.few = undefined;
      this.nFew = 0;
    }
    return this.sk;
  }

  private accept(ms: number): void {
    if (this.sk) this.sk.accept(ms);
    else if (this.nFew < FEW) (this.few ??= new Float64Array(FEW))[this.nFew++] = ms;
    else this.sketch.accept(ms);
  }

  add(ms: number, error: boolean, weight = 1): void {
    this.requests++;
    this.estimated += weight;
    if (error) {
      this.errors++;
      this.estimatedErrors += weight;
    }
    this.sumMs += ms;
    this.estimatedSumMs += ms * weight;
    if (ms > this.maxMs) this.maxMs = ms;
    // DDSketch maps values below its minimum indexable value to the zero bucket; 0 ms is valid.
    this.accept(ms);
    this.buckets[bucketIndex(ms)]!++;
  }

  merge(o: LatencyStats): void {
    this.requests += o.requests;
    this.errors += o.errors;
    this.sumMs += o.sumMs;
    this.estimated += o.estimated;
    this.estimatedErrors += o.estimatedErrors;
    this.estimatedSumMs += o.estimatedSumMs;
    if (o.maxMs > this.maxMs) this.maxMs = o.maxMs;
    if (o.sk) {
      if (o.sk.count > 0) this.sketch.merge(o.sk);
    } else for (let i = 0; i < o.nFew; i++) this.accept(o.few![i]!);
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i]! += o.buckets[i]!;
  }

  /**
   * Sets the estimate of what was sent to `estimated` (never below what was observed), errors and
   * duration sum scaled alike: the requests a server served while shed, counted by the kernel,
   * replace part of the 1 / fraction estimate (Aggregator.countShed).
   */
  rescale(estimated: number): void {
    const to = Math.max(this.requests, estimated);
    const m = this.estimated > 0 ? to / this.estimated : 1;
    this.estimated = to;
    this.estimatedErrors = Math.max(this.errors, this.estimatedErrors * m);
    this.estimatedSumMs = Math.max(this.sumMs, this.estimatedSumMs * m);
  }

  /** Some of its records stood for more than one request (sampled connections). */
  get sampled(): boolean {
    return this.estimated - this.requests > 1e-6;
  }

  /** Observed requests over estimated ones (1 when nothing was sampled). */
  get observedFraction(): number {
    return this.sampled ? this.requests / this.estimated : 1;
  }

  /** Quantile from the sketch, clamped to the observed maximum (the sketch may overshoot by α). */
  quantile(q: number): number {
    if (this.requests === 0) return 0;
    const v = this.sketch.getValueAtQuantile(q);
    return Math.max(0, Math.min(v, this.maxMs));
  }
}
