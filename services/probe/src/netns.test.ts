import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { netnsInodeOf, netnsOfPid, NetnsProcRoot } from "./netns.js";

test("netnsInodeOf: a namespace file gives its inode, anything else a clear error", () => {
  const own = fs.statSync("/proc/self/ns/net").ino;
  assert.equal(netnsInodeOf("/proc/self/ns/net"), own);
  assert.equal(netnsOfPid("self"), own);
  const plain = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ws-netns-")), "node-a");
  fs.writeFileSync(plain, "");
  assert.throws(() => netnsInodeOf(plain), /is not a network namespace/);
  assert.throws(() => netnsInodeOf(plain + "-missing"), /--netns: cannot read/);
});

test("NetnsProcRoot: finds a process of the namespace, then checks it again without a scan", () => {
  const roots = new NetnsProcRoot(fs.statSync("/proc/self/ns/net").ino);
  const first = roots.current();
  assert.ok(first && /^\/proc\/\d+$/.test(first), String(first));
  assert.equal(netnsOfPid(Number(path.basename(first)))!, netnsOfPid("self"));
  for (let i = 0; i < 5; i++) assert.equal(roots.current(), first);
  assert.equal(roots.scans, 1, "one scan of /proc while the process lives");
  // no process lives in a namespace that does not exist: undefined after one scan per call
  const none = new NetnsProcRoot(1);
  assert.equal(none.current(), undefined);
  assert.equal(none.scans, 1);
});
