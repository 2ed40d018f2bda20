// ABI v2 batches: the entries the engine stages for one plugin instance and hands over in one
// feed_batch call (docs/plugin-abi.md, "feed_batch"), and the answers that come back.
//
//   input buffer:  entry 0 | entry 1 | ... | entry n-1 | bytes of the feed entries, in order
//   entry (48 bytes, little-endian):
//      0 h i32 | 4 op i32 (bits 0..7 op, bit 8 dir) | 8 len i32 | 12 zero | 16 ts_ns i64
//     24 status i32 | 28 out_end i32 | 32 errors u32 | 36 drops u32 | 40 dropped bytes i64   (written by the plugin)
//
// The staging is host memory, copied into the instance only when the batch runs: calls made to
// the same instance meanwhile (detection replays, version 1 style calls) cannot disturb it.

import type { PluginTrap } from "./plugin.js";

export const BATCH_ENTRY = 48;
export const BATCH_FEED = 0;
export const BATCH_GAP = 1;
export const BATCH_CLOSE = 2;
/** The status the host writes before the call: an entry still holding it was not run. */
export const BATCH_PENDING = -0x80000000;
/** Entries per batch at most. */
export const BATCH_MAX_ENTRIES = 1024;
/** Bytes of feed entries per batch at most. */
export const BATCH_MAX_BYTES = 256 * 1024;
/** Larger chunks are not batched (they gain nothing from it). */
export const BATCH_MAX_CHUNK = 64 * 1024;

export class BatchStage {
  n = 0;
  dataLen = 0;
  readonly headBytes = new Uint8Array(BATCH_MAX_ENTRIES * BATCH_ENTRY);
  // typed views in the platform's byte order: little-endian on every platform Node runs WASM on
  // (DataView setters and BigInt arithmetic cost more than the whole entry otherwise)
  private readonly h32 = new Int32Array(this.headBytes.buffer);
  private readonly h64 = new BigInt64Array(this.headBytes.buffer);
  readonly data = new Uint8Array(BATCH_MAX_BYTES);
  // answers of the last run, per entry (s.done entries)
  done = 0;
  trap?: PluginTrap;
  readonly status = new Int32Array(BATCH_MAX_ENTRIES);
  readonly outEnd = new Int32Array(BATCH_MAX_ENTRIES);
  readonly errors = new Uint32Array(BATCH_MAX_ENTRIES);
  readonly drops = new Uint32Array(BATCH_MAX_ENTRIES);
  readonly dropped = new Float64Array(BATCH_MAX_ENTRIES);
  /** Records of every completed entry, in order; entry i's end at recEnd[i]. */
  readonly records: Uint8Array[] = [];
  readonly recEnd = new Int32Array(BATCH_MAX_ENTRIES);

  /** True when an entry carrying `len` more bytes fits. */
  fits(len: number): boolean {
    return this.n < BATCH_MAX_ENTRIES && this.dataLen + len <= BATCH_MAX_BYTES;
  }

  /**
   * Stages one entry (check fits() first). A feed entry's bytes are copied; returns where the
   * copy starts in `data` (valid until the stage is reset), -1 for no bytes.
   */
  add(h: number, op: number, dir: number, len: number, ts: bigint, bytes?: Uint8Array): number {
    const o = this.n * (BATCH_ENTRY >> 2);
    const v = this.h32;
    v[o] = h;
    v[o + 1] = op | (dir << 8);
    v[o + 2] = len;
    v[o + 3] = 0;
    this.h64[(o >> 1) + 2] = ts;
    v[o + 6] = BATCH_PENDING;
    this.n++;
    if (!bytes) return -1;
    const at = this.dataLen;
    this.data.set(bytes, at);
    this.dataLen += bytes.length;
    // no view of the copy made here: a view made right after set() costs 5× the copy in V8
    return at;
  }

  reset(): void {
    this.n = 0;
    this.dataLen = 0;
    this.done = 0;
    this.trap = undefined;
    this.records.length = 0;
  }
}
