import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Counters } from "./counters.js";
import { HealthGate } from "./health.js";
import { createLogger } from "./log.js";
import { SupervisedLoop, iterateRun, loopReason, type LoopRun } from "./supervised-loop.js";

const log = createLogger("test", { level: "silent" });

/** A run whose end the test decides. */
function controlled(): LoopRun & { endWith(why: string): void; fail(e: Error): void; stopped: boolean } {
  let resolve!: (why: string) => void;
  let reject!: (e: Error) => void;
  const ended = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
  const run = {
    ended,
    stopped: false,
    stop() {
      run.stopped = true;
    },
    endWith: (why: string) => resolve(why),
    fail: (e: Error) => reject(e),
  };
  return run;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), what);
}

describe("SupervisedLoop", () => {
  it("starts a run that ended by itself again, counts it by reason, and is not serving until it runs", async () => {
    const counters = new Counters();
    const health = new HealthGate();
    const runs: ReturnType<typeof controlled>[] = [];
    let fail = 0;
    const loop = new SupervisedLoop(
      async () => {
        if (fail-- > 0) throw new Error("JetStream not ready");
        const r = controlled();
        runs.push(r);
        return r;
      },
      { name: "consumer", counters, log, health, initialBackoffMs: 1, maxBackoffMs: 4 },
    );
    await until(() => runs.length === 1 && health.serving, "first run serving");
    const reasons: string[][] = [];
    health.onChange((serving) => serving || reasons.push(health.reasons()));
    fail = 2;
    runs[0]!.endWith("Consumer Deleted");
    await until(() => runs.length === 2 && health.serving, "second run serving");
    assert.equal(runs[0]!.stopped, true, "the ended run is stopped too");
    assert.deepEqual(counters.snapshot(), { "consumer_restarts.consumer_deleted": 1, "consumer_restarts.start_failed": 2 });
    assert.equal(loop.restarts, 3);
    assert.match(reasons[0]![0]!, /^consumer: consumer_deleted; starting again in 1 ms \(restart 1\)$/);

    runs[1]!.fail(new Error("iterator broke"));
    await until(() => runs.length === 3, "third run");
    assert.equal(counters.get("consumer_restarts.error"), 1);

    // planned: not counted
    loop.restart("partitions moved");
    await until(() => runs.length === 4, "fourth run");
    assert.equal(runs[2]!.stopped, true);
    assert.equal(loop.restarts, 4);

    await loop.stop();
    assert.equal(runs[3]!.stopped, true);
    assert.equal(loop.running, false);
    assert.equal(health.serving, true, "a stopped loop is no reason not to serve");
    runs[3]!.endWith("ended");
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(runs.length, 4, "nothing starts after stop");
  });

  it("stops a run that was still starting when stopped", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = controlled();
    const loop = new SupervisedLoop(
      async () => {
        await gate;
        return r;
      },
      { name: "watch", counters: new Counters(), log },
    );
    const stopped = loop.stop();
    release();
    await stopped;
    assert.equal(r.stopped, true);
  });

  it("iterateRun ends when the iteration does, with the error that ended it", async () => {
    async function* items(fail: boolean) {
      yield 1;
      yield 2;
      if (fail) throw new Error("watch failed");
    }
    const seen: number[] = [];
    assert.equal(await iterateRun(items(false), (x) => void seen.push(x), () => undefined).ended, "ended");
    await assert.rejects(iterateRun(items(true), (x) => void seen.push(x), () => undefined).ended, /watch failed/);
    assert.deepEqual(seen, [1, 2, 1, 2]);
  });

  it("names reasons for counters", () => {
    assert.equal(loopReason("Consumer Deleted"), "consumer_deleted");
    assert.equal(loopReason("409 consumer deleted"), "409_consumer_deleted");
    assert.equal(loopReason("!!"), "unknown");
  });
});
