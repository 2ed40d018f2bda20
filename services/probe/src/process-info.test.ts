import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerIdFromCgroup, readProcInfo, ProcessCache } from "./process-info.js";
import { parseListenPorts } from "./listen-ports.js";
import { indexPods } from "./k8s.js";

const ID = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100";

test("containerIdFromCgroup: docker, containerd, cri-o and kubepods paths; none on the host", () => {
  assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${ID}.scope\n`), ID);
  assert.equal(containerIdFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-${ID}.scope\n`), ID);
  assert.equal(containerIdFromCgroup(`0::/kubepods/besteffort/pod1234/${ID}\n`), ID);
  assert.equal(containerIdFromCgroup(`12:memory:/docker/${ID}\n0::/\n`), ID);
  assert.equal(containerIdFromCgroup(`0::/machine.slice/crio-${ID}.scope`), ID);
  assert.equal(containerIdFromCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), "");
});

test("readProcInfo: this process, and a fake /proc with a container", () => {
  const me = readProcInfo(process.pid);
  assert.equal(me.pid, process.pid);
  assert.equal(me.exe, fs.readlinkSync("/proc/self/exe"));
  assert.ok(me.name.length > 0);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ws-proc-"));
  fs.mkdirSync(path.join(root, "42"));
  fs.writeFileSync(path.join(root, "42/comm"), "nginx\n");
  fs.writeFileSync(path.join(root, "42/cmdline"), "nginx: master\0--secret=x\0-H\0Authorization: Bearer abc\0");
  fs.writeFileSync(path.join(root, "42/cgroup"), `0::/system.slice/docker-${ID}.scope\n`);
  const pods = { lookup: (id: string) => (id === ID ? { pod: "web-1", namespace: "shop", container: "nginx", workload: "web" } : undefined) };
  const cache = new ProcessCache({ procRoot: root, pods });
  const p = cache.get(42);
  assert.deepEqual(
    { name: p.name, cmdline: p.cmdline, containerId: p.containerId, pod: p.pod, namespace: p.namespace, container: p.container, workload: p.workload },
    { name: "nginx", cmdline: "nginx: master --secret=[REDACTED] -H Authorization: [REDACTED]", containerId: ID, pod: "web-1", namespace: "shop", container: "nginx", workload: "web" },
  );
  assert.equal(cache.size, 1);
  // a vanished process: name from the kernel's comm, then forgotten by sweep
  assert.equal(cache.get(43, "gone").name, "gone");
  fs.rmSync(path.join(root, "42"), { recursive: true });
  assert.equal(cache.sweep(), 2);
  assert.equal(cache.size, 0);
  fs.rmSync(root, { recursive: true });
});

test("ProcessCache.exec: events from the exec on read the identity again, once; earlier events keep the old one", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ws-proc-"));
  const write = (comm: string, argv: string[]) => {
    fs.mkdirSync(path.join(root, "50"), { recursive: true });
    fs.writeFileSync(path.join(root, "50/comm"), comm + "\n");
    fs.writeFileSync(path.join(root, "50/cmdline"), argv.join("\0") + "\0");
  };
  write("sh", ["sh", "-c", "exec python3 -m http.server"]);
  const cache = new ProcessCache({ procRoot: root });
  const before = cache.get(50, "sh", 100n);
  assert.equal(before.name, "sh");
  // a pid the cache does not hold: nothing to refresh (its first event reads /proc anyway)
  cache.exec(51, 150n);
  // the process execs at t=200; /proc shows the new program from then on
  write("python3", ["python3", "-m", "http.server"]);
  cache.exec(50, 200n);
  assert.equal(cache.get(50, "sh", 199n), before, "an event from before the exec keeps the old identity");
  const after = cache.get(50, "python3", 200n);
  assert.equal(after.name, "python3");
  assert.equal(after.cmdline, "python3 -m http.server");
  assert.equal(cache.execRefreshed, 1);
  // read once: later events reuse it, and nothing more is read
  fs.writeFileSync(path.join(root, "50/comm"), "changed\n");
  assert.equal(cache.get(50, "python3", 300n), after);
  assert.equal(cache.get(50), after);
  assert.equal(cache.execRefreshed, 1);
  // an exec with no event time asked (a caller without timestamps) counts as after it
  cache.exec(50, 400n);
  assert.equal(cache.get(50).name, "changed");
  assert.equal(cache.execRefreshed, 2);
  // a process that exits with an exec pending leaves nothing behind
  cache.exec(50, 500n);
  fs.rmSync(path.join(root, "50"), { recursive: true });
  assert.equal(cache.sweep(), 1);
  assert.equal(cache.size, 0);
  fs.rmSync(root, { recursive: true });
});

test("parseListenPorts: LISTEN rows only", () => {
  const text = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000000000000000000000000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 3 1
`;
  assert.deepEqual(parseListenPorts(text).sort((a, b) => a - b), [3306, 8080]);
  assert.deepEqual(parseListenPorts("garbage\n\n1 2 3"), []);
});

test("ProcessCache is bounded: a process looked up again stays cached, the others are forgotten by halves", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ws-proc-"));
  const cache = new ProcessCache({ procRoot: root, maxEntries: 4 }); // two generations of 2
  const get = (pid: number) => {
    fs.mkdirSync(path.join(root, String(pid)), { recursive: true });
    fs.writeFileSync(path.join(root, `${pid}/comm`), `p${pid}\n`);
    return cache.get(pid);
  };
  get(1);
  get(2);
  get(3); // young {3}, old {1, 2}
  assert.equal(cache.get(1).name, "p1"); // looked up again: young {3, 1}, old {2}
  get(4); // young {4}, old {3, 1}: 2 forgotten
  get(5); // young {4, 5}
  fs.writeFileSync(path.join(root, "2/comm"), "changed\n");
  fs.writeFileSync(path.join(root, "1/comm"), "changed\n");
  assert.equal(cache.get(1).name, "p1", "kept: not read again");
  assert.equal(cache.get(2).name, "changed", "forgotten: read again");
  assert.ok(cache.size <= 4);
  // young {1, 2}, old {4, 5}: an exec noted for 5, then 5 forgotten with its generation
  cache.exec(5, 10n);
  for (let pid = 6; pid <= 9; pid++) get(pid);
  assert.equal(cache.sweep(), 0);
  // the sweep dropped the note: 5, read again, is not read a second time for an exec long past
  fs.writeFileSync(path.join(root, "5/comm"), "p5-exec\n");
  assert.equal(cache.get(5).name, "p5-exec");
  fs.writeFileSync(path.join(root, "5/comm"), "p5-again\n");
  assert.equal(cache.get(5, "", 20n).name, "p5-exec");
  assert.equal(cache.execRefreshed, 0);
  fs.rmSync(root, { recursive: true });
});

test("indexPods: container ids to pod, namespace, container and workload", () => {
  const idx = indexPods({
    items: [
      {
        metadata: { name: "web-7d9f8b6c5d-abcde", namespace: "shop", ownerReferences: [{ kind: "ReplicaSet", name: "web-7d9f8b6c5d" }] },
        status: { containerStatuses: [{ name: "app", containerID: `containerd://${ID}` }, { name: "sidecar" }] },
      },
      { metadata: { name: "db-0", namespace: "data", ownerReferences: [{ kind: "StatefulSet", name: "db" }] }, status: { containerStatuses: [{ name: "mysql", containerID: "docker://abc" }] } },
    ],
  });
  assert.deepEqual(idx.get(ID), { pod: "web-7d9f8b6c5d-abcde", namespace: "shop", container: "app", workload: "web" });
  assert.deepEqual(idx.get("abc"), { pod: "db-0", namespace: "data", container: "mysql", workload: "db" });
  assert.equal(idx.size, 2);
  assert.equal(indexPods({}).size, 0);
});
