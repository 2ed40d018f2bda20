/**
 * A bounded map in two generations of at most `half` keys each: setting a new key writes it into
 * `young`, and a full `young` becomes `old` (the previous `old` forgotten at once). Lookups read
 * both, so what was set within the last `half` new keys is always found, and at most 2 × half
 * keys are held.
 *
 * It replaces oldest-first eviction of one Map (`map.delete(map.keys().next().value)`), which is
 * slow past its bound: V8's Map keeps a deleted entry in its table until the table is rebuilt,
 * and `keys().next()` walks every one of them before the first live key, ~10-35 µs per eviction
 * once 65,536 keys are held. Here nothing is evicted one by one; a generation is dropped whole.
 */
export class Generations<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();

  constructor(private readonly half: number) {
    if (!(half >= 1)) throw new RangeError(`Generations: half must be at least 1, got ${half}`);
  }

  get(k: K): V | undefined {
    const v = this.young.get(k);
    return v !== undefined ? v : this.old.get(k);
  }

  has(k: K): boolean {
    return this.young.has(k) || this.old.has(k);
  }

  /** Writes `k` into the young generation (an older value in `old` is then shadowed). */
  set(k: K, v: V): void {
    if (this.young.size >= this.half && !this.young.has(k)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(k, v);
  }

  /** Moves `k` into the young generation if it is only in the old one, so it outlives the next turn. */
  touch(k: K): void {
    if (this.young.has(k)) return;
    const v = this.old.get(k);
    if (v === undefined) return;
    this.old.delete(k);
    this.set(k, v);
  }

  delete(k: K): boolean {
    const a = this.young.delete(k);
    const b = this.old.delete(k);
    return a || b;
  }

  /** Keys held (a key in both generations counts twice): at most 2 × half. */
  get size(): number {
    return this.young.size + this.old.size;
  }

  /** Every key held, the old generation's first (a key in both generations comes twice). */
  *keys(): IterableIterator<K> {
    yield* this.old.keys();
    yield* this.young.keys();
  }
}
