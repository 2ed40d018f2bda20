// Faults of the processes `wirescope up` supervises, each under a steady HTTP workload (1,500
// req/s over 8 keep-alive connections, counted at the server) and compared with what reached
// InfluxDB (support/fault-stack.ts runFault: no record dropped, nothing counted twice, every
// missing request accounted for, every component healthy again by itself).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import { runFault, type UpStack } from "./support/fault-stack.js";
import { waitFor } from "./support/index.js";
import { bpfAvailable } from "./probe-helpers.js";

/** Waits until the aggregator has written everything it held back (no lines pending, none held). */
async function aggregatorDrained(stack: UpStack, since: number): Promise<number> {
  await waitFor(
    async () => {
      const row = (await stack.status()).find((r) => r.component === "aggregator");
      return row?.health === "SERVING" && (row.counters.pending_lines ?? 1) === 0;
    },
    { timeoutMs: 180_000, intervalMs: 500, what: "the aggregator to write what it held back" },
  );
  return Date.now() - since;
}

test("influxd stopped (SIGSTOP) for 60 s: nothing lost, the backlog written once it answers", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "influxd stopped (SIGSTOP) 60 s, then continued",
    expected: "nothing lost (lines buffered, retried)",
    async act(stack) {
      const pid = stack.pid("influxd");
      process.kill(pid, "SIGSTOP");
      await new Promise((r) => setTimeout(r, 60_000));
      const pending = (await stack.counters("aggregator")).pending_lines ?? 0;
      const resumed = Date.now();
      process.kill(pid, "SIGCONT");
      return { recoveryMs: await aggregatorDrained(stack, resumed), note: `${pending} lines pending after 60 s; recovery counted from SIGCONT` };
    },
    async check(stack) {
      assert.equal(stack.restarts("influxd"), 0, "a stopped influxd is not restarted");
    },
  });
});

test("influxd killed (SIGKILL) and restarted by up: nothing lost", { timeout: 600_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "influxd kill -9, restarted by up",
    expected: "nothing lost (lines retried until written)",
    async act(stack) {
      const killed = Date.now();
      process.kill(stack.pid("influxd"), "SIGKILL");
      await waitFor(() => stack.restarts("influxd") === 1, { timeoutMs: 120_000, intervalMs: 200, what: "up to restart influxd" });
      return { recoveryMs: await aggregatorDrained(stack, killed) };
    },
  });
});

test("aggregator killed (SIGKILL) in the middle of a window, restarted by up: nothing lost, nothing counted twice", { timeout: 600_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "aggregator kill -9 mid-window, restarted by up",
    expected: "nothing lost (unacknowledged batches redelivered), nothing twice",
    async act(stack) {
      // halfway through a 10 s window
      await new Promise((r) => setTimeout(r, 15_000 - (Date.now() % 10_000)));
      const killed = Date.now();
      process.kill(stack.pid("aggregator"), "SIGKILL");
      await waitFor(() => stack.restarts("aggregator") === 1, { timeoutMs: 120_000, intervalMs: 200, what: "up to restart the aggregator" });
      await waitFor(async () => ((await stack.counters("aggregator")).batches_acked ?? 0) > 0, { timeoutMs: 120_000, intervalMs: 500, what: "the new aggregator to write a window" });
      return { recoveryMs: Date.now() - killed, note: "recovery: until the new instance acknowledged its first written window" };
    },
  });
});

/** BPF program ids a process holds open (its fdinfo), as in probe-lifecycle.test.ts. */
function bpfPrograms(pid: number): string[] {
  const ids = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = /prog_id:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
      if (m) ids.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  return [...ids];
}

test("probe killed (SIGKILL), restarted by up: its programs and links are gone, the app unaffected, what it missed bounded", { timeout: 600_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "probe kill -9, restarted by up",
    expected: "requests while no probe ran are unseen; the rest exact",
    async act(stack, app) {
      const pid = stack.pid("probe");
      const progs = bpfPrograms(pid);
      assert.ok(progs.length >= 10, `the probe holds its programs: ${progs.length}`);
      // what the probe held unpublished when killed (its batches are 50 ms) was served within the
      // second before: counted from then
      const servedBefore = app.served();
      await new Promise((r) => setTimeout(r, 1000));
      const killed = Date.now();
      process.kill(pid, "SIGKILL");
      const alive = (id: string) => spawnSync("bpftool", ["prog", "show", "id", id], { encoding: "utf8" }).status === 0;
      await waitFor(() => !progs.some(alive), { timeoutMs: 10_000, intervalMs: 100, what: "the killed probe's programs to be freed" });
      const goneMs = Date.now() - killed;
      await waitFor(() => stack.restarts("probe") === 1, { timeoutMs: 120_000, intervalMs: 200, what: "up to restart the probe" });
      await waitFor(async () => (await stack.status()).find((r) => r.component === "probe")?.health === "SERVING", { timeoutMs: 120_000, intervalMs: 250, what: "the new probe to serve" });
      const recoveryMs = Date.now() - killed;
      // Unseen: from a second before the kill until the new probe served (it attaches before)
      const unseen = app.served() - servedBefore;
      return { recoveryMs, unseen, note: `programs and links freed ${goneMs} ms after the kill` };
    },
  });
});
