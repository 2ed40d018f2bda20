// Copy policies the HTTP/1.1 trimmer asks for (http1-trim.ts `onPolicy`), handed to the kernel
// in batches: the policies set or changed while one native batch is encoded go in with one bpf()
// call (BPF_MAP_UPDATE_BATCH), a policy changed several times within it goes in once, and a
// connection followed and forgotten within the same batch (a `Connection: close` exchange: open,
// request, response, close) costs no call at all. One call per connection used to be most of the
// probe's per-connection work at 1,000 new connections/s.
//
//   trimmer ──note(key, policy)──▶ pending sets ──flush() after each native batch──▶ kernel map
//
// A policy is set when the trimmer follows a connection (it then vouches for its turns) and
// changed when it parses the head of a body that goes on for long (a body end declared: the
// kernel states the bytes before it as a gap instead of copying them).
//
// Removals go first, then the sets, so a connection forgotten and followed again (a connection
// turning TLS keeps its key) ends followed. A removal is never skipped when the kernel may hold an
// entry from an earlier flush: the kernel deletes a policy when the connection closes, but a set
// that reached it after the close would stay behind. A connection the kernel closed after the last
// set reached it needs none: the kernel's close took its entry out (bpf/ forget_fd stamps the close
// event before it deletes the policy, on the clock process.hrtime reads), so a close stamped later
// than that set costs no call. Removals were one bpf() call per followed connection, most of them
// finding nothing.
import { COPY_POLICY } from "./gen/layout.js";

/**
 * One connection's copy policy (bpf/wirescope.h `ws_copy_policy`): where the body of known length
 * that user space is in ends, per direction (stream offsets; 0 = none), in which byte stream. The
 * trimmer owns the object and raises its ends; a batch reads it when it flushes.
 */
export interface CopyPolicy {
  /** [egress, ingress] */
  readonly bodyEnd: [number, number];
  readonly stream: number;
}

/** The kernel's bytes of one policy, written at `at`. */
export function writeCopyPolicy(p: CopyPolicy, out: Uint8Array, at = 0): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let d = 0; d < 2; d++) {
    const e = p.bodyEnd[d];
    dv.setUint32(at + COPY_POLICY.body_end + 8 * d, e % TWO32, true);
    dv.setUint32(at + COPY_POLICY.body_end + 8 * d + 4, Math.floor(e / TWO32), true);
  }
  out.fill(0, at + COPY_POLICY.stream, at + COPY_POLICY.size);
  out[at + COPY_POLICY.stream] = p.stream & 0xff;
}

/** A policy as the kernel's bytes (one call's worth; batches write theirs in place). */
export function copyPolicyBytes(p: CopyPolicy): Uint8Array {
  const b = new Uint8Array(COPY_POLICY.size);
  writeCopyPolicy(p, b);
  return b;
}

/** Where policies go (the eBPF source); keys are the kernel's conn_keys. */
export interface CopyPolicySink {
  /** Many connections' policies: `keys` holds little-endian u64 conn_keys, `policies` as many ws_copy_policy. */
  setCopyPolicies(keys: Uint8Array, policies: Uint8Array): void;
  /** Without a policy: removes the connection's. */
  setCopyPolicy(connKey: bigint, policy?: Uint8Array): void;
}

export interface CopyPolicyStats {
  /** Policies set, or changed (a body end declared). */
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
  /** Policies to set at the next flush, by key. */
  private readonly pending = new Map<number, CopyPolicy>();
  private readonly unfollow = new Set<number>();
  /** Keys whose policy a flush handed to the kernel and no removal or close took out since. */
  private readonly sent = new Set<number>();
  private keys = new Uint8Array(8 * 64);
  private vals = new Uint8Array(COPY_POLICY.size * 64);
  private readonly baseLo: number;
  private readonly baseHi: number;
  readonly stats: CopyPolicyStats = { set: 0, removed: 0, cancelled: 0, closed: 0, calls: 0 };
  /** CLOCK_MONOTONIC ns when the last set returned (-1: none yet). */
  private setAt = -1n;

  /**
   * @param base the probe instance's high key bits (ORed into the trimmer's 40-bit keys)
   */
  constructor(
    private readonly sink: CopyPolicySink,
    private readonly base: bigint,
    /** CLOCK_MONOTONIC now, ns (what the kernel stamps events with); injectable for tests. */
    private readonly monoNow: () => bigint = process.hrtime.bigint,
  ) {
    this.baseLo = Number(base & 0xffffffffn);
    this.baseHi = Number((base >> 32n) & 0xffffffffn);
  }

  /**
   * The trimmer's `onPolicy`: `key` is the connection key's low 40 bits, exact as a number;
   * `policy` the connection's (set, or changed), undefined to remove it; `closedAtMono` the
   * kernel's time of the connection's close when it is removed for one (not for a close the probe
   * made up, nor one that sheds the connection: its socket lives on).
   */
  note(key: number, policy: CopyPolicy | undefined, closedAtMono?: bigint): void {
    if (policy) {
      this.pending.set(key, policy);
      return;
    }
    const wasPending = this.pending.delete(key);
    if (!this.sent.delete(key)) {
      if (wasPending) this.stats.cancelled++;
    } else if (closedAtMono !== undefined && closedAtMono > this.setAt && !this.unfollow.has(key)) this.stats.closed++;
    else this.unfollow.add(key);
  }

  /** Hands what is pending to the kernel. */
  flush(): void {
    for (const k of this.unfollow) {
      this.sink.setCopyPolicy(this.base | BigInt(k));
      this.stats.removed++;
      this.stats.calls++;
    }
    this.unfollow.clear();
    const n = this.pending.size;
    if (!n) return;
    if (this.keys.length < n * 8) ((this.keys = new Uint8Array(n * 16)), (this.vals = new Uint8Array(n * 2 * COPY_POLICY.size)));
    const dv = new DataView(this.keys.buffer);
    let at = 0;
    let v = 0;
    for (const [k, p] of this.pending) {
      dv.setUint32(at, (this.baseLo | k % TWO32) >>> 0, true);
      dv.setUint32(at + 4, (this.baseHi | Math.floor(k / TWO32)) >>> 0, true);
      writeCopyPolicy(p, this.vals, v);
      this.sent.add(k);
      at += 8;
      v += COPY_POLICY.size;
    }
    this.pending.clear();
    this.sink.setCopyPolicies(this.keys.subarray(0, at), this.vals.subarray(0, v));
    this.setAt = this.monoNow();
    this.stats.set += n;
    this.stats.calls++;
  }
}
