import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cgroupV2Path, selfIdentity } from "./self-identity.js";

test("cgroupV2Path: the unified hierarchy's line only", () => {
  assert.equal(cgroupV2Path("12:memory:/x\n0::/kubepods.slice/pod1.slice/cri-containerd-ab.scope\n"), "/kubepods.slice/pod1.slice/cri-containerd-ab.scope");
  assert.equal(cgroupV2Path("0::/\n"), "/");
  assert.equal(cgroupV2Path("4:memory:/docker/ab\n"), undefined);
});

test("selfIdentity: this process's pid namespace; a cgroup id only from a cgroup2 mount, never the root", () => {
  const id = selfIdentity();
  assert.equal(id.pidNs, fs.statSync("/proc/self/ns/pid", { bigint: true }).ino.toString());
  const rel = cgroupV2Path(fs.readFileSync("/proc/self/cgroup", "utf8"));
  const v2 = fs.statfsSync("/sys/fs/cgroup").type === 0x63677270;
  if (v2 && rel && rel !== "/" && !rel.includes("..")) {
    assert.equal(id.cgroupId, fs.statSync(`/sys/fs/cgroup${rel}`, { bigint: true }).ino.toString());
  } else {
    // cgroup v1/hybrid, or the root cgroup: nothing that is safe to deny
    assert.ok(id.cgroupId === "" || BigInt(id.cgroupId) > 1n, id.cgroupId);
  }
  // a cgroup root that is not cgroup2 (a plain directory) gives no id
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-cg-"));
  try {
    assert.equal(selfIdentity("/proc", dir).cgroupId, "");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
