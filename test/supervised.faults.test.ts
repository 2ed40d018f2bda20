// Faults of the processes `wirescope up` supervises, each under a steady HTTP workload (1,500
// req/s over 8 keep-alive connections, counted at the server) and compared with what reached
// InfluxDB (support/fault-stack.ts runFault: no record dropped, nothing counted twice, every
// missing request accounted for, every component healthy again by itself).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import { probeShedRequests, runFault, type StatusRow, type UpStack } from "./support/fault-stack.js";
import { waitFor } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

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

test("one of two aggregators killed (SIGKILL) mid-window: the other takes its partitions, up restarts it; nothing lost, nothing twice", { timeout: 600_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "1 of 2 aggregators kill -9 mid-window, restarted by up",
    expected: "nothing lost (its partitions re-read from their saved positions), nothing twice",
    aggregators: 2,
    async act(stack, _app, urlPath) {
      // The instance that counts the traced server's service: its name from InfluxDB, its owner
      // from status (each instance lists the services it counts).
      const q = `SHOW TAG VALUES FROM "red" WITH KEY = "service" WHERE "role" = 'server' AND "resource" = '${urlPath}'`;
      const res = (await (await fetch(`${stack.influxUrl}/query?${new URLSearchParams({ q, db: "wirescope" })}`)).json()) as { results: { series?: { values: [string, string][] }[] }[] };
      const service = res.results[0]?.series?.[0]?.values[0]?.[1];
      assert.ok(service, `the server's service is named in red: ${JSON.stringify(res)}`);
      let rows = (await stack.status()).filter((r) => r.component === "aggregator");
      const listed = (r: StatusRow) => (r.info.services ?? "").replace(/^\d+: /, "").split(",");
      const owner = rows.find((r) => listed(r).includes(service));
      assert.ok(owner, `an instance lists ${service}: ${JSON.stringify(rows.map((r) => r.info))}`);
      const name = owner.address.endsWith(`:${stack.ports.aggregator}`) ? "aggregator" : "aggregator-2";
      // halfway through a 10 s window
      await new Promise((r) => setTimeout(r, 15_000 - (Date.now() % 10_000)));
      const killed = Date.now();
      process.kill(stack.pid(name), "SIGKILL");
      await waitFor(() => stack.restarts(name) === 1, { timeoutMs: 120_000, intervalMs: 200, what: `up to restart ${name}` });
      await waitFor(
        async () => {
          rows = (await stack.status()).filter((r) => r.component === "aggregator");
          return rows.length === 2 && rows.every((r) => r.health === "SERVING" && (r.info.members ?? "").split(",").length === 2);
        },
        { timeoutMs: 120_000, intervalMs: 500, what: "both aggregators serving as one fleet again" },
      );
      return { recoveryMs: Date.now() - killed, note: `killed ${name} (counting ${service}); recovery: until both instances were members again` };
    },
    async check(stack) {
      const rows = (await stack.status()).filter((r) => r.component === "aggregator");
      const owned = rows.map((r) => r.info.partitions_owned ?? "");
      assert.ok(rows.every((r) => /^[1-9]\d*\/64/.test(r.info.partitions_owned ?? "")), `both own partitions again: ${owned}`);
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
      // second before: counted from then. What it counted as shed dies with it: read after, so
      // that a request shed in between is both unseen and shed, never neither.
      const servedBefore = app.served();
      const shedBefore = await probeShedRequests(stack);
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
      return { recoveryMs, unseen, shedBefore, note: `programs and links freed ${goneMs} ms after the kill` };
    },
  });
});
