import { test } from "node:test";
import assert from "node:assert/strict";
import { CopyPolicyBatch, copyPolicyBytes, type CopyPolicy, type CopyPolicySink } from "./copy-policy.js";
import { COPY_POLICY } from "./gen/layout.js";

/** A policy as the kernel holds it: [egress end, ingress end, stream]. */
type Held = [bigint, bigint, number];
function held(b: Uint8Array, at: number): Held {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return [dv.getBigUint64(at + COPY_POLICY.body_end, true), dv.getBigUint64(at + COPY_POLICY.body_end + 8, true), b[at + COPY_POLICY.stream]!];
}

/** Applies what the batch hands over to a map, as the kernel would, and counts the calls. */
class Table implements CopyPolicySink {
  readonly map = new Map<bigint, Held>();
  calls = 0;
  setCopyPolicies(keys: Uint8Array, policies: Uint8Array): void {
    this.calls++;
    assert.equal(policies.length, (keys.length / 8) * COPY_POLICY.size);
    const dv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
    for (let at = 0; at < keys.length; at += 8) this.map.set(dv.getBigUint64(at, true), held(policies, (at / 8) * COPY_POLICY.size));
  }
  setCopyPolicy(connKey: bigint, policy?: Uint8Array): void {
    this.calls++;
    if (!policy) this.map.delete(connKey);
    else this.map.set(connKey, held(policy, 0));
  }
}

const BASE = 0xabcdefn << 40n;
/** A followed connection's policy before any body end is declared. */
const FOLLOWED: Held = [0n, 0n, 0];
const pol = (): CopyPolicy => ({ bodyEnd: [0, 0], stream: 0 });

/** A batch over a fresh Table (its sink), with `now` as its clock when given. */
function setup(now?: () => bigint): { t: Table; b: CopyPolicyBatch } {
  const t = new Table();
  return { t, b: new CopyPolicyBatch(t, BASE, now) };
}

/** Connection `k` followed in one batch and forgotten (no kernel close) in a later one: set, then removed. */
function followThenForget(t: Table, b: CopyPolicyBatch, k: number): void {
  b.note(k, pol());
  b.flush();
  assert.deepEqual(t.map.get(BASE | BigInt(k)), FOLLOWED, "set once its batch is flushed");
  b.note(k, undefined);
  b.flush();
  assert.equal(t.map.has(BASE | BigInt(k)), false, "removed once forgotten");
}

test("CopyPolicyBatch: one call per flush for any number of followed connections, full 64-bit keys", () => {
  const { t, b } = setup();
  const keys = [1, 2, 0xffffffff, 0x1_0000_0000, 0xff_ffff_ffff];
  for (const k of keys) b.note(k, pol());
  b.flush();
  assert.equal(t.calls, 1);
  assert.deepEqual([...t.map.keys()].sort(), keys.map((k) => BASE | BigInt(k)).sort());
  assert.deepEqual(t.map.get(BASE | 2n), FOLLOWED);
  // bounded work: 10,000 connections followed in one batch are still one call
  for (let k = 100; k < 10_100; k++) b.note(k, pol());
  b.flush();
  assert.equal(t.calls, 2);
  assert.equal(t.map.size, keys.length + 10_000);
  b.flush(); // nothing pending: no call
  assert.equal(t.calls, 2);
  assert.deepEqual(b.stats, { set: 10_005, removed: 0, cancelled: 0, closed: 0, calls: 2 });
});

test("CopyPolicyBatch: followed and forgotten within one batch costs no call; forgotten later is removed", () => {
  const { t, b } = setup();
  // a Connection: close exchange inside one native batch
  b.note(7, pol());
  b.note(7, undefined);
  b.flush();
  assert.equal(t.calls, 0);
  assert.equal(b.stats.cancelled, 1);
  // a connection that outlives the batch: set, then removed when it is forgotten
  followThenForget(t, b, 8);
  assert.equal(t.map.size, 0);
  assert.deepEqual(b.stats, { set: 1, removed: 1, cancelled: 1, closed: 0, calls: 2 });
});

test("CopyPolicyBatch: forgotten and followed again (a connection turning TLS keeps its key) ends as the last call said", () => {
  const { t, b } = setup();
  b.note(9, pol());
  b.flush();
  // forgotten, followed again: the old entry is removed, the new one set
  b.note(9, undefined);
  b.note(9, pol());
  b.flush();
  assert.deepEqual(t.map.get(BASE | 9n), FOLLOWED);
  // followed earlier, then within one batch: forgotten, followed, forgotten: the kernel's entry goes
  b.note(9, undefined);
  b.note(9, pol());
  b.note(9, undefined);
  b.flush();
  assert.equal(t.map.size, 0);
});

test("CopyPolicyBatch: connections the kernel closed after their policy was set cost no call; closed before it, they are removed", () => {
  let now = 1_000_000n;
  const { t, b } = setup(() => now);
  // 1,000 connections followed and set in one call (at 1_000_000 ns)
  for (let k = 1; k <= 1000; k++) b.note(k, pol());
  b.flush();
  assert.equal(t.calls, 1);
  // the kernel deletes a connection's policy when it closes (bpf/ forget_fd), after stamping the close
  for (let k = 1; k <= 1000; k++) t.map.delete(BASE | BigInt(k));
  // closes stamped after the set: the kernel's close took each entry; no call per connection
  now = 2_000_000n;
  for (let k = 1; k <= 1000; k++) b.note(k, undefined, 1_500_000n);
  b.flush();
  assert.equal(t.calls, 1, "no bpf() call per closed connection");
  assert.equal(b.stats.closed, 1000);
  // a close stamped before the set reached the kernel: the set came after the kernel's delete and
  // its entry would stay behind, so it is removed
  b.note(2000, pol());
  b.flush(); // set at 2_000_000
  t.map.set(BASE | 2000n, FOLLOWED);
  b.note(2000, undefined, 1_999_999n);
  b.flush();
  assert.equal(t.map.size, 0, "the late set's entry removed");
  assert.equal(t.calls, 3);
  // forgotten without a kernel close (trimming gave up, a TLS open, a shed, a close the probe made up): removed
  followThenForget(t, b, 3000);
  assert.equal(t.map.size, 0);
  assert.deepEqual(b.stats, { set: 1002, removed: 2, cancelled: 0, closed: 1000, calls: 5 });
});

test("CopyPolicyBatch: a body end declared goes in with the next flush, changes within a batch once; the bytes are the kernel's struct", () => {
  const { t, b } = setup();
  const p: CopyPolicy = { bodyEnd: [0, 0], stream: 3 };
  b.note(5, p);
  b.flush();
  assert.deepEqual(t.map.get(BASE | 5n), [0n, 0n, 3]);
  // two declarations before the next flush: one entry, the last ends
  p.bodyEnd[1] = 70_000;
  b.note(5, p);
  p.bodyEnd[1] = 2 ** 40 + 7; // past 32 bits
  p.bodyEnd[0] = 12;
  b.note(5, p);
  b.flush();
  assert.deepEqual(t.map.get(BASE | 5n), [12n, 2n ** 40n + 7n, 3]);
  assert.equal(t.calls, 2);
  assert.deepEqual([...copyPolicyBytes(p)].length, COPY_POLICY.size);
  // changed after it reached the kernel, then forgotten in the same batch: the kernel's entry is
  // removed (a pending change is no reason to skip the removal)
  p.bodyEnd[1] = 80_000;
  b.note(5, p);
  b.note(5, undefined);
  b.flush();
  assert.equal(t.map.has(BASE | 5n), false);
  assert.deepEqual(b.stats, { set: 2, removed: 1, cancelled: 0, closed: 0, calls: 3 });
});
