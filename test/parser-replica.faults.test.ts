// Fault: one of three parser replicas (`wirescope up --parsers 3 --aggregators 2`) killed with
// SIGKILL under the steady workload; up starts it again. The dead replica's partitions go to the
// survivors once up deletes its membership entry (at once, not after the 3 s TTL), the restarted replica (a new instance) takes
// its share back from them; raw data of a moving partition is lost until its new owner subscribes
// (counted: raw_batches_missed.handover, and requests_missed.handover: the requests those batches
// held, by the probe's running count), and its open connections are decoded again from their next
// message (one request each may be cut at the edge: conn_midstream, conn_dropped.moved). Every
// request missing must fit in those counts: no bound by time ("unseen") is allowed. Nothing is counted twice, no role or service is guessed (the
// aggregator drops nothing as role_unknown).
import { test } from "node:test";
import assert from "node:assert/strict";
import { runFault, type StatusRow, type UpStack } from "./support/fault-stack.js";
import { waitFor } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

/** Waits until exactly `n` replicas serve, each counting n members, and split the 64 partitions with no overlap. */
async function settled(stack: UpStack, n: number): Promise<StatusRow[]> {
  let last: StatusRow[] = [];
  await waitFor(
    async () => {
      last = (await stack.status()).filter((r) => r.component === "parser" && r.health === "SERVING");
      const owned = last.map((r) => r.counters.partitions_owned ?? 0);
      return last.length === n && last.every((r) => (r.info.members ?? "").split(",").length === n) && owned.reduce((a, b) => a + b, 0) === 64 && owned.every((o) => o > 0);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: `${n} parser replicas splitting the partitions` },
  ).catch((e: unknown) => assert.fail(`${String(e)}: ${JSON.stringify(last.map((r) => [r.instance, r.info.members, r.info.partitions_owned]))}`));
  return last;
}

test("a parser replica of `up --parsers 3` killed (SIGKILL) and restarted by up: handover loss counted, nothing twice, no guessed role", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await runFault({
    fault: "1 of 3 parser replicas kill -9 (`up --parsers 3 --aggregators 2`), restarted by up",
    expected: "raw data of the moving partitions lost until their new owner subscribes, counted; nothing twice",
    parsers: 3,
    aggregators: 2,
    async act(stack, app) {
      const before = await settled(stack, 3);
      const servedBefore = app.served();
      await new Promise((r) => setTimeout(r, 1000));
      const victim = stack.pid("parser-2");
      const killed = Date.now();
      process.kill(victim, "SIGKILL");
      await waitFor(() => stack.restarts("parser-2") === 1, { timeoutMs: 60_000, intervalMs: 100, what: "up to restart parser-2" });
      const restartMs = Date.now() - killed;
      const after = await settled(stack, 3);
      const backMs = Date.now() - killed;
      await new Promise((r) => setTimeout(r, 1000));
      // what the moves cost, by reason (the survivors' and the new replica's counters)
      const p = await stack.counters("parser");
      const moves = ["raw_batches_missed.handover", "requests_missed.handover", "conn_dropped.moved", "conn_midstream", "partitions_acquired", "partitions_released"].map((k) => `${k} ${p[k] ?? 0}`).join(", ");
      const share = (rows: StatusRow[]) => rows.map((r) => r.info.partitions_owned?.split(":")[0]).join(" ");
      return {
        recoveryMs: backMs,
        note: `up restarted parser-2 after ${restartMs} ms; 3 replicas split the partitions again after ${backMs} ms (owned before ${share(before)}, after ${share(after)}); ${app.served() - servedBefore} served meanwhile; ${moves}`,
      };
    },
    async check(stack, r) {
      assert.equal(r.aggregator.drops_role_unknown ?? 0, 0, "no record without a role reached the aggregator");
      assert.ok((r.parser["raw_batches_missed.handover"] ?? 0) + (r.parser["conn_dropped.moved"] ?? 0) + (r.parser.conn_midstream ?? 0) > 0, `the moves are counted: ${JSON.stringify(r.parser)}`);
      assert.equal(stack.restarts("parser-2"), 1, "up restarted the killed replica once");
      for (const name of ["parser", "parser-3", "aggregator", "aggregator-2"]) assert.equal(stack.restarts(name), 0, `${name} ran on`);
      // status: every replica, its share, and up's restart count
      const rows = (await stack.status()).filter((row) => row.component === "parser");
      assert.equal(rows.length, 3, JSON.stringify(rows));
      assert.deepEqual(rows.map((row) => row.restarts).sort(), [0, 0, 1]);
      for (const row of rows) assert.match(row.info.partitions_owned ?? "", /^[1-9]\d*\/64: \d/);
    },
  });
});
