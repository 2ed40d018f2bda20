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
