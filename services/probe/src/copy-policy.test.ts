import { test } from "node:test";
import assert from "node:assert/strict";
import { CopyPolicyBatch, type CopyPolicySink } from "./copy-policy.js";

/** Applies what the batch hands over to a map, as the kernel would, and counts the calls. */
class Table implements CopyPolicySink {
  readonly map = new Map<bigint, [number, number]>();
  calls = 0;
  setCopyPolicies(keys: Uint8Array, head: number, tail: number): void {
    this.calls++;
    const dv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
    for (let at = 0; at < keys.length; at += 8) this.map.set(dv.getBigUint64(at, true), [head, tail]);
  }
  setCopyPolicy(connKey: bigint, head: number, tail: number): void {
    this.calls++;
    if (head === 0) this.map.delete(connKey);
    else this.map.set(connKey, [head, tail]);
  }
}

const BASE = 0xabcdefn << 40n;
const HEAD = 16384;
const TAIL = 256;

/** A batch over a fresh Table (its sink), with `now` as its clock when given. */
function setup(now?: () => bigint): { t: Table; b: CopyPolicyBatch } {
  const t = new Table();
  return { t, b: new CopyPolicyBatch(t, BASE, HEAD, TAIL, now) };
}

/** Connection `k` followed in one batch and forgotten (no kernel close) in a later one: set, then removed. */
function followThenForget(t: Table, b: CopyPolicyBatch, k: number): void {
  b.note(k, true);
  b.flush();
  assert.deepEqual(t.map.get(BASE | BigInt(k)), [HEAD, TAIL], "set once its batch is flushed");
  b.note(k, false);
  b.flush();
  assert.equal(t.map.has(BASE | BigInt(k)), false, "removed once forgotten");
}

test("CopyPolicyBatch: one call per flush for any number of followed connections, full 64-bit keys", () => {
  const { t, b } = setup();
  const keys = [1, 2, 0xffffffff, 0x1_0000_0000, 0xff_ffff_ffff];
  for (const k of keys) b.note(k, true);
  b.flush();
  assert.equal(t.calls, 1);
  assert.deepEqual([...t.map.keys()].sort(), keys.map((k) => BASE | BigInt(k)).sort());
  assert.deepEqual(t.map.get(BASE | 2n), [HEAD, TAIL]);
  // bounded work: 10,000 connections followed in one batch are still one call
  for (let k = 100; k < 10_100; k++) b.note(k, true);
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
  b.note(7, true);
  b.note(7, false);
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
  b.note(9, true);
  b.flush();
  // forgotten, followed again: the old entry is removed, the new one set
  b.note(9, false);
  b.note(9, true);
  b.flush();
  assert.deepEqual(t.map.get(BASE | 9n), [HEAD, TAIL]);
  // followed earlier, then within one batch: forgotten, followed, forgotten: the kernel's entry goes
  b.note(9, false);
  b.note(9, true);
  b.note(9, false);
  b.flush();
  assert.equal(t.map.size, 0);
});

test("CopyPolicyBatch: connections the kernel closed after their policy was set cost no call; closed before it, they are removed", () => {
  let now = 1_000_000n;
  const { t, b } = setup(() => now);
  // 1,000 connections followed and set in one call (at 1_000_000 ns)
  for (let k = 1; k <= 1000; k++) b.note(k, true);
  b.flush();
  assert.equal(t.calls, 1);
  // the kernel deletes a connection's policy when it closes (bpf/ forget_fd), after stamping the close
  for (let k = 1; k <= 1000; k++) t.map.delete(BASE | BigInt(k));
  // closes stamped after the set: the kernel's close took each entry; no call per connection
  now = 2_000_000n;
  for (let k = 1; k <= 1000; k++) b.note(k, false, 1_500_000n);
  b.flush();
  assert.equal(t.calls, 1, "no bpf() call per closed connection");
  assert.equal(b.stats.closed, 1000);
  // a close stamped before the set reached the kernel: the set came after the kernel's delete and
  // its entry would stay behind, so it is removed
  b.note(2000, true);
  b.flush(); // set at 2_000_000
  t.map.set(BASE | 2000n, [HEAD, TAIL]);
  b.note(2000, false, 1_999_999n);
  b.flush();
  assert.equal(t.map.size, 0, "the late set's entry removed");
  assert.equal(t.calls, 3);
  // forgotten without a kernel close (trimming gave up, a TLS open, a shed, a close the probe made up): removed
  followThenForget(t, b, 3000);
  assert.equal(t.map.size, 0);
  assert.deepEqual(b.stats, { set: 1002, removed: 2, cancelled: 0, closed: 1000, calls: 5 });
});
