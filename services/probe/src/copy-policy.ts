// Copy policies the HTTP/1.1 trimmer asks for (http1-trim.ts `onFollow`), handed to the kernel
// in batches: the policies asked for while one native batch is encoded go in with one bpf() call
// (BPF_MAP_UPDATE_BATCH), and a connection followed and forgotten within the same batch (a
// `Connection: close` exchange: open, request, response, close) costs no call at all. One call per
// connection used to be most of the probe's per-connection work at 1,000 new connections/s.
//
//   trimmer ──note(key, follow)──▶ pending sets ──flush() after each native batch──▶ kernel map
//
// Removals go first, then the sets, so a connection forgotten and followed again (a connection
// turning TLS keeps its key) ends followed. A removal is never skipped when the kernel may hold an
// entry from an earlier flush: the kernel deletes a policy when the connection closes, but a set
// that reached it after the close would stay behind. A connection the kernel closed after the last
// set reached it needs none: the kernel's close took its entry out (bpf/ forget_fd stamps the close
// event before it deletes the policy, on the clock process.hrtime reads), so a close stamped later
// than that set costs no call. Removals were one bpf() call per followed connection, most of them
// finding nothing.

/** Where policies go (the eBPF source); keys are the kernel's conn_keys. */
export interface CopyPolicySink {
  /** One policy for many connections: `keys` holds little-endian u64 conn_keys. */
  setCopyPolicies(keys: Uint8Array, head: number, tail: number): void;
  /** head 0 removes the connection's policy. */
  setCopyPolicy(connKey: bigint, head: number, tail: number): void;
}

export interface CopyPolicyStats {
  /** Policies set. */
  set: number;
  /** Policies removed. */
  removed: number;
  /** Follow and forget within one batch: nothing reached the kernel. */
  cancelled: number;
  /** Closed by the kernel after their policy was set: the close removed it, no call. */
  closed: number;
  /** bpf() calls made (a batch of sets counts one). */
  calls: number;
}

const TWO32 = 0x1_0000_0000;

export class CopyPolicyBatch {
  private readonly follow = new Set<number>();
  private readonly unfollow = new Set<number>();
  private keys = new Uint8Array(8 * 64);
  private readonly baseLo: number;
  private readonly baseHi: number;
  readonly stats: CopyPolicyStats = { set: 0, removed: 0, cancelled: 0, closed: 0, calls: 0 };
  /** CLOCK_MONOTONIC ns when the last set returned (-1: none yet). */
  private setAt = -1n;

  /**
   * @param base the probe instance's high key bits (ORed into the trimmer's 40-bit keys)
   * @param head, tail the policy of a followed connection (bpf/wirescope.h ws_copy_policy)
   */
  constructor(
    private readonly sink: CopyPolicySink,
    private readonly base: bigint,
    private readonly head: number,
    private readonly tail: number,
    /** CLOCK_MONOTONIC now, ns (what the kernel stamps events with); injectable for tests. */
    private readonly monoNow: () => bigint = process.hrtime.bigint,
  ) {
    this.baseLo = Number(base & 0xffffffffn);
    this.baseHi = Number((base >> 32n) & 0xffffffffn);
  }

  /**
   * The trimmer's `onFollow`: `key` is the connection key's low 40 bits, exact as a number;
   * `closedAtMono` the kernel's time of the connection's close when it is forgotten for one (not
   * for a close the probe made up, nor one that sheds the connection: its socket lives on).
   */
  note(key: number, follow: boolean, closedAtMono?: bigint): void {
    if (follow) this.follow.add(key);
    else if (this.follow.delete(key)) {
      if (!this.unfollow.has(key)) this.stats.cancelled++;
    } else if (closedAtMono !== undefined && closedAtMono > this.setAt && !this.unfollow.has(key)) this.stats.closed++;
    else this.unfollow.add(key);
  }

  /** Hands what is pending to the kernel. */
  flush(): void {
    for (const k of this.unfollow) {
      this.sink.setCopyPolicy(this.base | BigInt(k), 0, 0);
      this.stats.removed++;
      this.stats.calls++;
    }
    this.unfollow.clear();
    const n = this.follow.size;
    if (!n) return;
    if (this.keys.length < n * 8) this.keys = new Uint8Array(n * 16);
    const dv = new DataView(this.keys.buffer);
    let at = 0;
    for (const k of this.follow) {
      dv.setUint32(at, (this.baseLo | k % TWO32) >>> 0, true);
      dv.setUint32(at + 4, (this.baseHi | Math.floor(k / TWO32)) >>> 0, true);
      at += 8;
    }
    this.follow.clear();
    this.sink.setCopyPolicies(this.keys.subarray(0, at), this.head, this.tail);
    this.setAt = this.monoNow();
    this.stats.set += n;
    this.stats.calls++;
  }
}
