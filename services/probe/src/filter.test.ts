import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelFilter, pipelineExclusions } from "./filter.js";
import type { NativeProbe } from "./native.js";

test("pipelineExclusions: pid in the probe's pid namespace, cgroup outside it, never another node's", () => {
  const self = { node: "n1", pid: 100, pidNs: "4026531836" };
  const got = pipelineExclusions([
    { node: "n1", pid: 100, pidNs: "4026531836", cgroupId: "900" }, // the probe itself
    { node: "n1", pid: 200, pidNs: "4026531836", cgroupId: "900" }, // `wirescope up`: same pid namespace
    { node: "n1", pid: 300 }, // an older announcer without identity: its pid, as before
    { node: "n1", pid: 1, pidNs: "4026532001", cgroupId: "7001" }, // a parser pod: pid 1 is its container's
    { node: "n1", pid: 7, pidNs: "4026532002", cgroupId: "7002" }, // the aggregator pod
    { node: "n1", pid: 8, pidNs: "4026532003", cgroupId: "" }, // a pod on cgroup v1: nothing safe to deny
    { node: "n1", pid: 9, pidNs: "4026532004", cgroupId: "1" }, // the root cgroup would deny the host
    { node: "n2", pid: 400, pidNs: "4026532005", cgroupId: "7005" }, // another node
  ], self);
  assert.deepEqual(got, { pids: [200, 300], cgroups: [7001n, 7002n] });
});

/** Records the kernel map writes KernelFilter makes (the native addon's surface). */
function recorder() {
  const entries = new Map<string, string>();
  const probe = {
    setFilterEntry(kind: string, key: unknown, action: string) {
      const k = `${kind}:${String(key)}`;
      if (action === "remove") entries.delete(k);
      else entries.set(k, action);
    },
    setFilterConfig() {},
  } as unknown as NativeProbe;
  return { probe, pids: () => [...entries].filter(([k]) => k.startsWith("pid:")).map(([k, a]) => `${k}=${a}`).sort(), cgroups: () => [...entries].filter(([k]) => k.startsWith("cgroup:")).map(([k, a]) => `${k}=${a}`).sort() };
}

test("KernelFilter.excludeCgroups: denied while announced, forgotten after the grace period, bounded", () => {
  const r = recorder();
  const f = new KernelFilter(r.probe);
  f.excludeCgroups([7001n, 7002n], 0);
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny", "cgroup:7002=deny"]);
  // a registry read that comes back empty keeps them for the grace period
  f.excludeCgroups([], 30_000);
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny", "cgroup:7002=deny"]);
  // 7002's pod was replaced by 7003; 7001 is still announced
  f.excludeCgroups([7001n, 7003n], 61_000);
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny", "cgroup:7003=deny"]);
  // a user allow on a pipeline cgroup does not win over the pipeline's denial
  f.apply({ allowPids: [], denyPids: [], allowPorts: [], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [7001n], denyCgroups: [] });
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny", "cgroup:7003=deny"]);
  // pods replaced every round for a day: the map holds only the live ones
  for (let i = 0; i < 10_000; i++) f.excludeCgroups([BigInt(10_000 + i)], 100_000 + i * 5_000);
  const denied = r.cgroups().filter((e) => e.endsWith("=deny"));
  assert.ok(denied.length <= 13, `${denied.length} entries`); // 60 s of grace at one new pod per 5 s
  assert.ok(r.cgroups().includes("cgroup:7001=allow"), "the user's own entry is left alone");
});

test("KernelFilter.setAnnouncedPids: denied while announced, traced again once left; --exclude-pid stays", () => {
  const r = recorder();
  const f = new KernelFilter(r.probe);
  f.excludePids([5]);
  f.setAnnouncedPids([200, 300]);
  assert.deepEqual(r.pids(), ["pid:200=deny", "pid:300=deny", "pid:5=deny"]);
  f.setAnnouncedPids([300, 400]);
  assert.deepEqual(r.pids(), ["pid:300=deny", "pid:400=deny", "pid:5=deny"]);
  f.setAnnouncedPids([]);
  assert.deepEqual(r.pids(), ["pid:5=deny"]);
  // a user deny of the same pid is the user's: kept when the member leaves
  f.apply({ allowPids: [], denyPids: [300], allowPorts: [], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [] });
  f.setAnnouncedPids([300]);
  f.setAnnouncedPids([]);
  assert.deepEqual(r.pids(), ["pid:300=deny", "pid:5=deny"]);
});

test("KernelFilter.nextCgroupForgetMs: when a cgroup no longer announced is forgotten", () => {
  const r = recorder();
  const f = new KernelFilter(r.probe);
  f.excludeCgroups([7001n, 7002n], 1_000);
  assert.equal(f.nextCgroupForgetMs([7001n, 7002n]), -1, "nothing to forget while both are announced");
  f.excludeCgroups([7001n], 5_000);
  const due = f.nextCgroupForgetMs([7001n]);
  assert.equal(due, 61_001);
  f.excludeCgroups([7001n], due - 1);
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny", "cgroup:7002=deny"]);
  f.excludeCgroups([7001n], due);
  assert.deepEqual(r.cgroups(), ["cgroup:7001=deny"]);
  assert.equal(f.nextCgroupForgetMs([7001n]), -1);
});
