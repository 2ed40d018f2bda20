import { test } from "node:test";
import assert from "node:assert/strict";
import { AnnouncedTable } from "./registry-watch.js";
import type { Announcement } from "./registry.js";

const enc = (a: Partial<Announcement>) => new TextEncoder().encode(JSON.stringify({ component: "parser", instance: "p1", address: "127.0.0.1:1", node: "n", pid: 10, startedAt: 0, ...a }));
const put = (key: string, a: Partial<Announcement>, createdMs: number) => ({ key, operation: "PUT" as const, value: enc(a), created: new Date(createdMs) });
const del = (key: string, op: "DEL" | "PURGE" = "DEL") => ({ key, operation: op, value: new Uint8Array(), created: new Date(0) });

test("AnnouncedTable: joins, refreshes, leaves by delete or purge, a foreign value is no member", () => {
  const t = new AnnouncedTable(15_000);
  assert.equal(t.apply(put("parser.p1", { pid: 10 }, 1_000), 1_000), true, "a member joins");
  assert.equal(t.apply(put("parser.p1", { pid: 10 }, 6_000), 6_000), false, "the same value again is a refresh, no change");
  assert.equal(t.apply(put("parser.p2", { instance: "p2", pid: 11 }, 6_500), 6_500), true);
  assert.deepEqual(t.list().map((a) => a.pid), [10, 11]);
  assert.equal(t.apply(put("parser.p1", { pid: 12 }, 7_000), 7_000), true, "a member that restarted with another pid");
  assert.equal(t.apply(del("parser.p1"), 8_000), true, "a member that stopped");
  assert.equal(t.apply(del("parser.p1"), 8_000), false);
  assert.equal(t.apply(del("parser.p2", "PURGE"), 8_000), true);
  assert.equal(t.size, 0);
  assert.equal(t.apply({ key: "x", operation: "PUT", value: new TextEncoder().encode("not json"), created: new Date(9_000) }, 9_000), false);
  assert.equal(t.apply({ key: "y", operation: "PUT", value: new TextEncoder().encode('{"pid":1}'), created: new Date(9_000) }, 9_000), false);
  assert.equal(t.size, 0);
});

test("AnnouncedTable: an entry expires TTL after the server wrote it, never counted from later than now", () => {
  const t = new AnnouncedTable(15_000);
  assert.equal(t.nextExpiryMs(), -1);
  // read when a watch started: written 10 s before
  t.apply(put("parser.p1", { pid: 10 }, 90_000), 100_000);
  // a server clock ahead of ours counts from now
  t.apply(put("parser.p2", { instance: "p2", pid: 11 }, 200_000), 100_000);
  assert.equal(t.nextExpiryMs(), 105_000);
  assert.equal(t.expire(104_999), false);
  assert.equal(t.expire(105_000), true);
  assert.deepEqual(t.list().map((a) => a.pid), [11]);
  assert.equal(t.nextExpiryMs(), 115_000);
  // refreshed before it expires: lives on
  t.apply(put("parser.p2", { instance: "p2", pid: 11 }, 110_000), 110_000);
  assert.equal(t.expire(115_000), false);
  assert.equal(t.nextExpiryMs(), 125_000);
  // an older value read again (a watch made again) does not shorten its life
  t.apply(put("parser.p2", { instance: "p2", pid: 11 }, 104_000), 111_000);
  assert.equal(t.nextExpiryMs(), 125_000);
  assert.equal(t.expire(125_000), true);
  assert.equal(t.size, 0);
});
