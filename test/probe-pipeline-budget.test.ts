// The pipeline's CPU budget, end to end with the real probe (kernel eBPF) and real processes: the
// processes named with --pipeline-pid burn every core (so the node has no idle time and the
// pipeline is over its budget): the probe lowers its sampling level; once they stop, it raises it
// again. What is asserted is the direction of the level, never how fast it moves; waits are
// bounded conditions.
import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { ProbeService } from "@wirescope/wire";
import { createClient } from "@wirescope/runtime";
import { startNats, freePort, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, runChild, spawnProbe, type Child } from "./probe-support.js";

// A process of "the pipeline" that burns one core from SIGUSR2 until killed.
const BURNER = `
process.title = "wsburn";
process.once("SIGUSR2", () => {
  console.log("BURNING");
  for (;;) {}
});
console.log("READY");
setInterval(() => {}, 60_000);
`;

test("the level falls while the named pipeline processes burn the node's CPU, and rises again when they stop", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats();
  t.after(() => nats.stop());
  const burners: Child[] = [];
  t.after(() => burners.forEach((b) => b.kill()));
  // one per core: the node has no idle time while they run
  for (let i = 0; i < os.availableParallelism(); i++) burners.push(await runChild("pipeline-burner", BURNER));
  await Promise.all(burners.map((b) => b.waitLine(/^READY/, 30_000)));
  const dir = tempDir("wirescope-pipeline-budget-");
  const grpcPort = await freePort();
  // traces nothing (a port nobody uses): the level is steered by the pipeline's CPU alone
  const probe = await spawnProbe(`nats://127.0.0.1:${nats.port}`, grpcPort, dir, [
    "--allow-port", String(await freePort()), "--cpu-budget", "off", "--pipeline-cpu-budget", "100m",
    ...burners.flatMap((b) => ["--pipeline-pid", String(b.pid)]),
  ]);
  t.after(() => probe.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const counters = async () => {
    if (probe.hasExited) throw new Error(`the probe exited: ${probe.tail()}`);
    return (await ctl.status({}, { timeoutMs: 5000 }).catch(() => ({ counters: {} }))).counters as Record<string, number>;
  };
  // steering: the pipeline's figures are published once the probe measures them
  await waitFor(async () => (await counters()).pipeline_processes === burners.length + 1, { timeoutMs: 30_000, intervalMs: 250, what: "the probe counting the named pipeline processes" });
  assert.equal((await counters()).sample_fraction, 1, "idle pipeline processes: everything observed");

  for (const b of burners) b.proc.kill("SIGUSR2");
  await Promise.all(burners.map((b) => b.waitLine(/^BURNING/, 10_000)));
  let busy: Record<string, number> = {};
  await waitFor(async () => (busy = await counters()).sample_fraction < 1, { timeoutMs: 30_000, intervalMs: 250, what: "the level to fall while the pipeline burns every core" });
  assert.ok(busy.pipeline_cpu_millicores > 100, `the pipeline over its budget: ${JSON.stringify(busy)}`);

  for (const b of burners) b.kill();
  await Promise.all(burners.map((b) => b.exited));
  const low = (await counters()).sample_fraction;
  let calm: Record<string, number> = {};
  await waitFor(async () => (calm = await counters()).sample_fraction > low, { timeoutMs: 30_000, intervalMs: 250, what: `the level to rise from ${low} once the pipeline is calm` });
  assert.ok(calm.pipeline_cpu_millicores < 100, `the pipeline under its budget again: ${JSON.stringify(calm)}`);
});
