// Fault: one of three parser replicas killed with SIGKILL under the steady workload, then a new
// replica added. The dead replica's partitions go to the survivors once its membership entry
// expires (3 s), the new one takes its share from them; raw data of a moving partition is lost
// until its new owner subscribes (counted: raw_batches_missed.handover, conn_dropped.moved), and
// its open connections are decoded again from their next message. Nothing is counted twice,
// no role or service is guessed (the aggregator drops nothing as role_unknown).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { runFault, type UpStack } from "./support/fault-stack.js";
import { REPO_ROOT, freePort, spawnTracked, waitFor, WIRESCOPE_BIN } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";
import type { ManagedProcess } from "@wirescope/runtime";


/** Another parser replica on the stack (its NATS user from the data dir, like up's own). */
async function addParser(stack: UpStack, name: string): Promise<ManagedProcess> {
  const port = await freePort();
  return spawnTracked(name, process.execPath, [WIRESCOPE_BIN, "parser", "--data-dir", stack.dataDir, "--nats-url", stack.natsUrls.join(","), "--grpc-port", String(port), "--metrics-port", "0", "--log-format", "json"], {
    logFile: path.join(stack.dataDir, "logs", `${name}.log`),
    cwd: REPO_ROOT,
  });
}

/** Parser rows that serve, and the partitions they own between them. */
async function parsers(stack: UpStack): Promise<{ serving: number; owned: number[] }> {
  const rows = (await stack.status()).filter((r) => r.component === "parser" && r.health === "SERVING");
  return { serving: rows.length, owned: rows.map((r) => r.counters.partitions_owned ?? 0) };
}

/** Waits until exactly `n` replicas serve and split the 64 partitions among them with no overlap. */
async function settled(stack: UpStack, n: number): Promise<void> {
  let last = "";
  await waitFor(
    async () => {
      const p = await parsers(stack);
      last = JSON.stringify(p);
      return p.serving === n && p.owned.reduce((a, b) => a + b, 0) === 64 && p.owned.every((o) => o > 0);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: `${n} parser replicas splitting the partitions` },
  ).catch((e: unknown) => assert.fail(`${String(e)}: ${last}`));
}

test("a parser replica killed (SIGKILL) with 3 running, then one added: handover loss counted, nothing twice, no guessed role", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const extra: ManagedProcess[] = [];
  try {
    await runFault({
      fault: "parser replica kill -9 with 3 running, then one added",
      expected: "raw data of the moving partitions lost until their new owner subscribes, counted; nothing twice",
      async act(stack, app) {
        extra.push(await addParser(stack, "parser-2"), await addParser(stack, "parser-3"));
        await settled(stack, 3);
        const servedBefore = app.served();
        await new Promise((r) => setTimeout(r, 1000));
        const killed = Date.now();
        process.kill(extra[0]!.pid, "SIGKILL");
        await settled(stack, 2);
        const takeoverMs = Date.now() - killed;
        // a new replica: the survivors hand it its share
        const added = Date.now();
        extra.push(await addParser(stack, "parser-4"));
        await settled(stack, 3);
        const joinMs = Date.now() - added;
        await new Promise((r) => setTimeout(r, 1000));
        // Unseen: everything served from a second before the kill until the last move settled
        // (a bound: only the moving partitions' share of it was at risk).
        return { recoveryMs: takeoverMs, unseen: app.served() - servedBefore, note: `survivors took the dead replica's partitions after ${takeoverMs} ms; the added replica had its share after ${joinMs} ms` };
      },
      async check(stack, r) {
        assert.equal(r.aggregator.drops_role_unknown ?? 0, 0, "no record without a role reached the aggregator");
        assert.ok((r.parser["raw_batches_missed.handover"] ?? 0) + (r.parser["conn_dropped.moved"] ?? 0) + (r.parser.conn_midstream ?? 0) > 0, `the moves are counted: ${JSON.stringify(r.parser)}`);
        assert.equal(stack.restarts("parser"), 0, "up's parser kept running");
      },
    });
  } finally {
    for (const p of extra) await p.stop(5000);
  }
});
