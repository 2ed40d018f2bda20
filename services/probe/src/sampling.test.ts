import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SamplingController } from "./sampling.js";

// A node whose probe CPU is proportional to the observed fraction of its traffic: cpu = load * level.
function simulate(c: SamplingController, load: number, ticks: number): number[] {
  const levels: number[] = [];
  for (let i = 0; i < ticks; i++) levels.push(c.update({ cpuMillicores: load * c.level, ringFill: 0, lost: 0 }));
  return levels;
}

describe("SamplingController", () => {
  it("observes everything while under budget", () => {
    const c = new SamplingController({ budgetMillicores: 500 });
    assert.deepEqual(simulate(c, 400, 20), Array(20).fill(1));
    assert.equal(c.stats.cuts, 0);
  });

  it("cuts in proportion to the excess, then holds inside the band instead of oscillating", () => {
    const c = new SamplingController({ budgetMillicores: 500, holdTicks: 3 });
    const levels = simulate(c, 1000, 60); // twice the budget
    assert.equal(levels[0], 1, "one tick over budget is not yet load");
    assert.ok(levels[1]! <= 0.5 + 1e-9, `first cut ${levels[1]}`);
    // settled: within the hysteresis band (CPU between lowWater * budget and budget)
    const tail = levels.slice(20);
    for (const l of tail) assert.ok(1000 * l <= 500 + 1e-6 && 1000 * l >= 0.6 * 500 / 1.25 - 1e-6, `level ${l}`);
    const changes = tail.filter((l, i) => i > 0 && l !== tail[i - 1]).length;
    assert.ok(changes <= 2, `the level changed ${changes} times in 40 ticks of steady load: ${tail.join(" ")}`);
  });

  it("raises only after holdTicks calm ticks, and never above 1", () => {
    const c = new SamplingController({ budgetMillicores: 500, holdTicks: 3 });
    c.update({ cpuMillicores: 2000, ringFill: 0, lost: 0 });
    c.update({ cpuMillicores: 2000, ringFill: 0, lost: 0 });
    const cut = c.level;
    assert.ok(cut < 1);
    c.update({ cpuMillicores: 10, ringFill: 0, lost: 0 });
    c.update({ cpuMillicores: 10, ringFill: 0, lost: 0 });
    assert.equal(c.level, cut, "two calm ticks: held");
    c.update({ cpuMillicores: 10, ringFill: 0, lost: 0 });
    assert.ok(c.level > cut, "third calm tick: raised");
    for (let i = 0; i < 100; i++) c.update({ cpuMillicores: 10, ringFill: 0, lost: 0 });
    assert.equal(c.level, 1);
  });

  it("a spike of one tick does not cut; two in a row do", () => {
    const c = new SamplingController({ budgetMillicores: 500 });
    for (let i = 0; i < 10; i++) {
      c.update({ cpuMillicores: 3000, ringFill: 0, lost: 0 });
      c.update({ cpuMillicores: 100, ringFill: 0, lost: 0 });
    }
    assert.equal(c.level, 1);
    c.update({ cpuMillicores: 3000, ringFill: 0, lost: 0 });
    c.update({ cpuMillicores: 3000, ringFill: 0, lost: 0 });
    assert.ok(c.level < 1);
  });

  it("loss or a filling ring cuts even when the CPU is under budget; never below min", () => {
    const c = new SamplingController({ budgetMillicores: 500, min: 1 / 16 });
    c.update({ cpuMillicores: 100, ringFill: 0, lost: 10 });
    assert.equal(c.level, 0.5);
    c.update({ cpuMillicores: 100, ringFill: 0.9, lost: 0 });
    assert.equal(c.level, 0.25);
    for (let i = 0; i < 20; i++) c.update({ cpuMillicores: 100_000, ringFill: 1, lost: 1 });
    assert.equal(c.level, 1 / 16);
  });
});

describe("SamplingController: the whole local pipeline's budget", () => {
  // the pipeline's CPU proportional to the observed fraction, the probe's own far under its budget
  const tick = (c: SamplingController, pipelineLoad: number, nodeIdle: number) =>
    c.update({ cpuMillicores: 20, ringFill: 0, lost: 0, pipelineMillicores: pipelineLoad * c.level, nodeIdle });

  it("binds only while the node has no spare CPU: with idle cores the pipeline may go over it", () => {
    const c = new SamplingController({ budgetMillicores: 500, pipelineBudgetMillicores: 500 });
    for (let i = 0; i < 40; i++) tick(c, 1300, 0.06);
    assert.equal(c.level, 1);
    assert.equal(c.stats.cuts, 0);
  });

  it("cuts in proportion when the pipeline is over it and the node has no idle time, then settles under it", () => {
    const c = new SamplingController({ budgetMillicores: 500, pipelineBudgetMillicores: 500 });
    tick(c, 2000, 0);
    assert.equal(c.level, 1, "one tick over is not yet load");
    tick(c, 2000, 0);
    assert.equal(c.level, 0.25, "four times over: cut to a quarter at most per tick");
    for (let i = 0; i < 60; i++) tick(c, 2000, 0);
    assert.ok(2000 * c.level <= 500 + 1e-6, `settled at ${c.level}: the pipeline at ${2000 * c.level} millicores`);
    assert.ok(c.level >= 0.6 * 0.25 / 1.25 - 1e-9, `not cut further than needed: ${c.level}`);
  });

  it("is off at 0, and works with the probe's own budget off", () => {
    const off = new SamplingController({ budgetMillicores: 500 });
    for (let i = 0; i < 10; i++) tick(off, 5000, 0);
    assert.equal(off.level, 1);
    const own = new SamplingController({ budgetMillicores: 0, pipelineBudgetMillicores: 100 });
    own.update({ cpuMillicores: 5000, ringFill: 0, lost: 0, pipelineMillicores: 50, nodeIdle: 0 });
    own.update({ cpuMillicores: 5000, ringFill: 0, lost: 0, pipelineMillicores: 50, nodeIdle: 0 });
    assert.equal(own.level, 1, "no budget of its own: the probe's CPU alone never cuts");
    for (let i = 0; i < 4; i++) own.update({ cpuMillicores: 10, ringFill: 0, lost: 0, pipelineMillicores: 1000, nodeIdle: 0 });
    assert.ok(own.level < 1);
  });

  it("rises again once the pipeline is under it, or once the node has idle cores", () => {
    for (const calm of [{ load: 0, idle: 0 }, { load: 2000, idle: 0.5 }]) {
      const c = new SamplingController({ budgetMillicores: 500, pipelineBudgetMillicores: 500, holdTicks: 2 });
      for (let i = 0; i < 10; i++) c.update({ cpuMillicores: 20, ringFill: 0, lost: 0, pipelineMillicores: 3000, nodeIdle: 0 });
      const low = c.level;
      assert.ok(low < 0.2, `cut: ${low}`);
      for (let i = 0; i < 100; i++) c.update({ cpuMillicores: 20, ringFill: 0, lost: 0, pipelineMillicores: calm.load * c.level, nodeIdle: calm.idle });
      // with idle cores the level rises until the node's idle share falls (here it stays: up to 1)
      assert.equal(c.level, 1, JSON.stringify(calm));
    }
  });
});
