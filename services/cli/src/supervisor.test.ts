import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnManaged, pidAlive, waitFor } from "@wirescope/runtime";
import { Supervisor, type ChildSpec, type ChildState } from "./supervisor.js";

// Real processes (`sleep`), killed for real; backoff shortened so the tests wait little.
const sleeper = (name: string, onStart?: () => void): ChildSpec => ({
  name,
  component: name,
  address: "-",
  log: "-",
  start: async () => {
    onStart?.();
    return spawnManaged(name, "sleep", ["1000"]);
  },
});

const state = (sup: Supervisor, name: string): ChildState => sup.states().find((s) => s.name === name)!;

describe("Supervisor", () => {
  it("restarts a child killed with SIGKILL, counts it, and leaves the others alone", async () => {
    const changes: ChildState[][] = [];
    const lines: string[] = [];
    const sup = new Supervisor({ initialBackoffMs: 5, onChange: (s) => changes.push(s), log: (l) => lines.push(l) });
    const a = await sup.start(sleeper("a"));
    const b = await sup.start(sleeper("b"));
    try {
      for (let round = 1; round <= 3; round++) {
        const before = state(sup, "a").pid!;
        process.kill(before, "SIGKILL");
        await waitFor(() => state(sup, "a").restarts === round && state(sup, "a").state === "running", { timeoutMs: 10_000, what: `restart ${round}` });
        const now = state(sup, "a");
        assert.notEqual(now.pid, before);
        assert.ok(pidAlive(now.pid!));
        assert.equal(now.exits, round);
        assert.equal(now.lastExit, "SIGKILL");
      }
      assert.equal(state(sup, "b").pid, b.pid, "the other child was not touched");
      assert.equal(state(sup, "b").restarts, 0);
      assert.ok(pidAlive(b.pid));
      assert.equal(lines.filter((l) => /^wirescope up: a \(pid \d+\) exited unexpectedly \(SIGKILL\)/.test(l)).length, 3);
      assert.equal(lines.filter((l) => /^wirescope up: restarted a \(pid \d+\), restart #\d$/.test(l)).length, 3);
      assert.ok(changes.some((s) => s.find((c) => c.name === "a")?.state === "restarting"), "the restarting state was reported");
    } finally {
      const pids = sup.processes().map((p) => p.pid);
      await sup.stop(true);
      assert.ok(pids.every((p) => !pidAlive(p)), "stop() leaves nothing behind");
      assert.ok(!pidAlive(a.pid));
    }
    assert.deepEqual(sup.states().map((s) => s.state), ["stopped", "stopped"]);
  });

  it("calls onExit once after each unexpected exit, before the restart; a failing onExit does not stop the restart", async () => {
    const lines: string[] = [];
    const events: string[] = [];
    const sup = new Supervisor({ initialBackoffMs: 5, log: (l) => lines.push(l) });
    let calls = 0;
    const spec: ChildSpec = {
      ...sleeper("a", () => events.push("start")),
      onExit: async (exited) => {
        events.push(`exit ${exited.pid}`);
        if (++calls === 2) throw new Error("NATS away");
      },
    };
    await sup.start(spec);
    try {
      const pids: number[] = [];
      for (let round = 1; round <= 2; round++) {
        pids.push(state(sup, "a").pid!);
        process.kill(pids.at(-1)!, "SIGKILL");
        await waitFor(() => state(sup, "a").restarts === round && state(sup, "a").state === "running", { timeoutMs: 10_000, what: `restart ${round}` });
      }
      assert.deepEqual(events, ["start", `exit ${pids[0]}`, "start", `exit ${pids[1]}`, "start"]);
      assert.equal(lines.filter((l) => l === "wirescope up: after a exited: NATS away").length, 1);
    } finally {
      await sup.stop(true);
    }
    assert.equal(calls, 2, "not called for the exits of stop()");
  });

  it("keeps trying while a restart fails, reporting the child down with the reason", async () => {
    let attempts = 0;
    const spec: ChildSpec = {
      ...sleeper("flaky"),
      start: async () => {
        attempts++;
        if (attempts >= 2 && attempts <= 4) throw new Error(`port busy (try ${attempts})`);
        return spawnManaged("flaky", "sleep", ["1000"]);
      },
    };
    const downs: string[] = [];
    const lines: string[] = [];
    const sup = new Supervisor({
      initialBackoffMs: 2,
      maxBackoffMs: 8,
      log: (l) => lines.push(l),
      onChange: (s) => {
        const f = s.find((c) => c.name === "flaky")!;
        if (f.state === "down") downs.push(f.reason ?? "");
      },
    });
    const first = await sup.start(spec);
    try {
      process.kill(first.pid, "SIGKILL");
      await waitFor(() => state(sup, "flaky").state === "running" && state(sup, "flaky").restarts === 1, { timeoutMs: 10_000, what: "flaky to come back" });
      assert.equal(attempts, 5, "three failed tries, then one that worked");
      assert.deepEqual(downs, ["port busy (try 2)", "port busy (try 3)", "port busy (try 4)"]);
      // the delay doubles from the restart's first (2 ms) up to maxBackoffMs, with no last attempt
      assert.deepEqual(
        lines.filter((l) => l.includes("did not start")),
        [4, 8, 8].map((ms, i) => `wirescope up: flaky did not start again: port busy (try ${i + 2}); trying again in ${ms} ms`),
      );
      assert.equal(state(sup, "flaky").exits, 1);
    } finally {
      await sup.stop(true);
    }
  });

  it("a failed first start rejects and lists the child as down; notStarted children are listed too", async () => {
    const sup = new Supervisor();
    await assert.rejects(sup.start({ ...sleeper("x"), start: async () => Promise.reject(new Error("no BTF")) }), /no BTF/);
    sup.notStarted({ name: "probe", component: "probe", address: "-", log: "-" }, "disabled", "disabled with --no-probe");
    assert.deepEqual(
      sup.states().map((s) => [s.name, s.state, s.reason]),
      [["x", "down", "no BTF"], ["probe", "disabled", "disabled with --no-probe"]],
    );
    await sup.stop();
    assert.deepEqual(sup.states().map((s) => s.state), ["stopped", "disabled"]);
  });

  it("a first start that fails is tried again, `attempts` times in all, with the backoff; then it rejects", async () => {
    const lines: string[] = [];
    const sup = new Supervisor({ initialBackoffMs: 5, log: (l) => lines.push(l), who: "demo" });
    let tries = 0;
    // A child that dies before it is ready, twice: the way a part whose port was taken for a moment fails.
    const dying = async (name: string) => {
      const p = await spawnManaged(name, "sh", ["-c", "exit 3"]);
      const { code } = await p.exited;
      throw new Error(`${name} exited (code ${code}) before it was ready`);
    };
    const flaky: ChildSpec = { ...sleeper("api"), start: async () => (++tries <= 2 ? dying("api") : spawnManaged("api", "sleep", ["1000"])) };
    try {
      const p = await sup.start(flaky, 4);
      assert.equal(tries, 3);
      assert.ok(pidAlive(p.pid));
      assert.deepEqual([state(sup, "api").state, state(sup, "api").reason], ["running", undefined]);
      assert.deepEqual(lines, [
        "demo: api did not start: api exited (code 3) before it was ready; trying again in 5 ms (attempt 2 of 4)",
        "demo: api did not start: api exited (code 3) before it was ready; trying again in 10 ms (attempt 3 of 4)",
      ]);

      tries = 0;
      await assert.rejects(sup.start({ ...flaky, name: "web", start: () => (++tries, dying("web")) }, 3), /web exited \(code 3\) before it was ready/);
      assert.equal(tries, 3, "three attempts, no more");
      assert.deepEqual([state(sup, "web").state, state(sup, "web").reason], ["down", "web exited (code 3) before it was ready"]);
      assert.equal(lines.filter((l) => l.startsWith("demo: web did not start")).length, 2);
    } finally {
      await sup.stop(true);
    }
  });

  it("after the abort signal, a child that dies is not restarted", async () => {
    const ac = new AbortController();
    let starts = 0;
    const sup = new Supervisor({ initialBackoffMs: 1, signal: ac.signal });
    const p = await sup.start(sleeper("s", () => starts++));
    ac.abort();
    process.kill(p.pid, "SIGKILL");
    await p.exited;
    await sup.stop();
    assert.equal(starts, 1);
    assert.equal(state(sup, "s").restarts, 0);
  });
});
