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

test("CopyPolicyBatch: one call per flush for any number of followed connections, full 64-bit keys", () => {
  const t = new Table();
  const b = new CopyPolicyBatch(t, BASE, 16384, 256);
  const keys = [1, 2, 0xffffffff, 0x1_0000_0000, 0xff_ffff_ffff];
  for (const k of keys) b.note(k, true);
  b.flush();
  assert.equal(t.calls, 1);
  assert.deepEqual([...t.map.keys()].sort(), keys.map((k) => BASE | BigInt(k)).sort());
  assert.deepEqual(t.map.get(BASE | 2n), [16384, 256]);
  // bounded work: 10,000 connections followed in one batch are still one call
  for (let k = 100; k < 10_100; k++) b.note(k, true);
  b.flush();
  assert.equal(t.calls, 2);
  assert.equal(t.map.size, keys.length + 10_000);
  b.flush(); // nothing pending: no call
  assert.equal(t.calls, 2);
  assert.deepEqual(b.stats, { set: 10_005, removed: 0, cancelled: 0, calls: 2 });
});

test("CopyPolicyBatch: followed and forgotten within one batch costs no call; forgotten later is removed", () => {
  const t = new Table();
  const b = new CopyPolicyBatch(t, BASE, 16384, 256);
  // a Connection: close exchange inside one native batch
  b.note(7, true);
  b.note(7, false);
  b.flush();
  assert.equal(t.calls, 0);
  assert.equal(b.stats.cancelled, 1);
  // a connection that outlives the batch: set, then removed when it is forgotten
  b.note(8, true);
  b.flush();
  b.note(8, false);
  b.flush();
  assert.equal(t.map.size, 0);
  assert.deepEqual(b.stats, { set: 1, removed: 1, cancelled: 1, calls: 2 });
});

test("CopyPolicyBatch: forgotten and followed again (a connection turning TLS keeps its key) ends as the last call said", () => {
  const t = new Table();
  const b = new CopyPolicyBatch(t, BASE, 16384, 256);
  b.note(9, true);
  b.flush();
  // forgotten, followed again: the old entry is removed, the new one set
  b.note(9, false);
  b.note(9, true);
  b.flush();
  assert.deepEqual(t.map.get(BASE | 9n), [16384, 256]);
  // followed earlier, then within one batch: forgotten, followed, forgotten: the kernel's entry goes
  b.note(9, false);
  b.note(9, true);
  b.note(9, false);
  b.flush();
  assert.equal(t.map.size, 0);
});
