// The pipeline never traces itself, also where its pids mean nothing to the kernel: a process in
// its own pid namespace and cgroup (what a parser or aggregator pod is to the probe) announces
// its identity as the services do, and the probe denies its cgroup, not its pid (which is 1
// there, and would name the host's init). Checked on real traffic with the kernel programs.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { selfIdentity } from "@wirescope/runtime";
import { pipelineExclusions } from "@wirescope/probe/filter";
import { REPO_ROOT, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, CollectingProbe, runChild } from "./probe-support.js";

const ECHO_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

/** Prints its identity, then one echo exchange per trigger file. argv: port cgroupRoot steps... */
const TALKER = (title: string) => `
import net from "node:net";
import fs from "node:fs";
const { selfIdentity } = await import(${JSON.stringify(path.join(REPO_ROOT, "services/runtime/dist/self-identity.js"))});
process.title = ${JSON.stringify(title)};
const [port, cgroupRoot, ...steps] = process.argv.slice(2);
console.log("ID " + JSON.stringify({ pid: process.pid, ...selfIdentity("/proc", cgroupRoot) }));
for (const f of steps) {
  while (!fs.existsSync(f)) await new Promise((r) => setTimeout(r, 10));
  await new Promise((resolve) => {
    const s = net.connect(Number(port), "127.0.0.1", () => s.write("ping"));
    s.on("data", () => s.end());
    s.on("close", resolve);
  });
  console.log("STEP " + f);
}
`;

function cgroup2Mount(): string | undefined {
  return fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")).find((f) => f[2] === "cgroup2")?.[1];
}

test("probe: a pod-like process (own pid namespace and cgroup) is denied by its announced cgroup, not its pid", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const mount = cgroup2Mount();
  assert.ok(mount, "a cgroup2 hierarchy is mounted");
  const cg = path.join(mount, `wirescope-test-${process.pid}`);
  fs.mkdirSync(cg);
  const dir = tempDir("wirescope-podlike-");
  const steps = [1, 2].map((i) => path.join(dir, `step${i}`));

  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  const server = await runChild("echo", ECHO_SERVER);
  t.after(() => server.kill());
  const port = (await server.waitLine(/^PORT (\d+)/))[1];
  const other = await runChild("other", TALKER("wsother"), [port, mount, ...steps]);
  t.after(() => other.kill());

  // the "pod": moved into its own cgroup, then into a new pid namespace (unshare forks it as pid 1)
  const podFile = path.join(dir, "pod.mjs");
  fs.writeFileSync(podFile, TALKER("wspod"));
  const pod = spawn("sh", ["-c", `echo $$ > ${cg}/cgroup.procs && exec unshare --pid --fork --kill-child ${process.execPath} ${podFile} ${port} ${mount} ${steps.join(" ")}`], { stdio: ["ignore", "pipe", "inherit"] });
  const podKilled = new Promise((r) => pod.once("exit", r));
  t.after(async () => {
    pod.kill("SIGKILL");
    await podKilled;
    for (let i = 0; i < 50 && fs.existsSync(cg); i++) {
      try {
        fs.rmdirSync(cg); // EBUSY until the killed processes are gone
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  let podOut = "";
  pod.stdout.on("data", (d: Buffer) => (podOut += d.toString()));
  await waitFor(() => /^ID /m.test(podOut), { timeoutMs: 10_000, intervalMs: 20, what: "the pod's identity" });
  const id = JSON.parse(/^ID (.*)$/m.exec(podOut)![1]) as { pid: number; cgroupId: string; pidNs: string };
  const self = selfIdentity();
  assert.equal(id.pid, 1, "inside its pid namespace the pod is pid 1");
  assert.notEqual(id.pidNs, self.pidNs);
  assert.equal(id.cgroupId, fs.statSync(cg, { bigint: true }).ino.toString(), "the cgroup id is its directory's inode");

  const podConns = () => probe.find((o) => o.comm === "wspod").length;
  const otherConns = () => probe.find((o) => o.comm === "wsother").length;
  const step = async (i: number) => {
    fs.writeFileSync(steps[i], "");
    await other.waitLine(new RegExp(`^STEP ${steps[i]}$`));
    await waitFor(() => podOut.includes(`STEP ${steps[i]}`), { timeoutMs: 10_000, intervalMs: 20, what: `pod step ${i + 1}` });
  };

  // step 1: not yet excluded, the pod's connection is traced like any other (so step 2 can fail)
  await other.waitLine(/^ID /);
  await step(0);
  await waitFor(() => podConns() === 1 && otherConns() === 1, { timeoutMs: 10_000, intervalMs: 20, what: "both step-1 connections" });

  // step 2: the probe reads the announcement the way the service does
  const ex = pipelineExclusions([{ node: "n", ...id }], { node: "n", pid: process.pid, pidNs: self.pidNs });
  assert.deepEqual(ex, { pids: [], cgroups: [BigInt(id.cgroupId)] }, "pid 1 is not denied; the cgroup is");
  probe.source.filter.excludePids(ex.pids);
  probe.source.filter.excludeCgroups(ex.cgroups);
  await step(1);
  await waitFor(() => otherConns() === 2, { timeoutMs: 10_000, intervalMs: 20, what: "the other process's second connection" });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(podConns(), 1, "the pod's second connection was never traced");
});
