// A short fuzzing budget for every built plugin (built-in decoders and examples), in `npm test`.
// Deterministic by default: a fixed seed and a fixed number of cases per plugin, so a failure
// here is the same on every machine and every run (nothing random can turn CI red). Exploring:
//   WIRESCOPE_FUZZ_SEED=123 (or "random")  another seed (the failure message names it)
//   WIRESCOPE_FUZZ_CASES=20000              more cases per plugin (default 2000)
//   WIRESCOPE_FUZZ_MS=10000                 a time budget per plugin instead of a case count
// Longer runs with fresh seeds every time: `npm run fuzz -- --seconds 600`.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { builtPlugins } from "./plugins.js";
import { fuzzPlugin, replayRun, runCase, type FuzzCase } from "./fuzz.js";
import { Plugin, PluginRegistry } from "@wirescope/plugin-host";

/** The seed CI uses (any fixed value; changing it is a deliberate, reviewed change). */
const FIXED_SEED = 20261122;
const seedEnv = process.env.WIRESCOPE_FUZZ_SEED;
const seed = seedEnv === undefined || seedEnv === "" ? FIXED_SEED : seedEnv === "random" ? Date.now() % 1_000_000 : Number(seedEnv);
const ms = process.env.WIRESCOPE_FUZZ_MS ? Number(process.env.WIRESCOPE_FUZZ_MS) : Infinity;
const maxCases = process.env.WIRESCOPE_FUZZ_MS ? Infinity : Number(process.env.WIRESCOPE_FUZZ_CASES ?? 2000);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`WIRESCOPE_FUZZ_SEED: not a non-negative integer or "random": ${seedEnv}`);
if (!(maxCases > 0) || !(ms > 0)) throw new Error("WIRESCOPE_FUZZ_CASES / WIRESCOPE_FUZZ_MS must be positive");
const budget = ms < Infinity ? `${ms} ms` : `${maxCases} cases`;
const plugins = builtPlugins();

describe("fuzz every plugin", () => {
  test("there are plugins to fuzz", () => {
    assert.ok(plugins.some((p) => p.name === "redis"), "the redis example is not built: run node parsers-wasm/build.mjs");
  });

  test("the fuzzer finds a planted bug (misbehave fixture traps on its inputs)", () => {
    const fixture = builtPlugins({ fixtures: true }).find((p) => p.name === "misbehave");
    assert.ok(fixture, "misbehave fixture not built");
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(fixture.manifest));
    const c: FuzzCase = { plugin: "misbehave", seed: 0, detect: false, clientKnown: true, chunks: [{ dir: 0, hex: Buffer.from("MB:TRAP").toString("hex") }] };
    assert.match(runCase(reg, c).problem ?? "", /trap/);
  });

  test("a run is a fixed sequence of cases: the same seed gives the same inputs and outputs, and replayRun regenerates it", () => {
    const redis = plugins.find((p) => p.name === "redis")!;
    const a = fuzzPlugin(redis, { ms: Infinity, seed: 7, maxCases: 150 });
    const b = fuzzPlugin(redis, { ms: Infinity, seed: 7, maxCases: 150 });
    assert.deepEqual([b.cases, b.bytes, b.records], [a.cases, a.bytes, a.records]);
    assert.ok(a.bytes > 0 && a.records > 0, "the cases feed bytes and produce records");
    const c = fuzzPlugin(redis, { ms: Infinity, seed: 8, maxCases: 150 });
    assert.notEqual(c.bytes, a.bytes, "another seed gives other inputs");
    assert.deepEqual(replayRun(redis, 7, 149), { problem: undefined, earlier: 0 });
  });

  for (const p of plugins) {
    test(`${p.name}: random and mutated inputs (seed ${seed}, ${budget}): no trap, no exception, valid records, bounded memory`, { timeout: (ms < Infinity ? ms : 30_000) + 60_000 }, () => {
      const stats = fuzzPlugin(p, { ms, seed, maxCases });
      if (stats.findings.length) {
        const file = path.join(os.tmpdir(), `wirescope-fuzz-${p.name}-${seed}.json`);
        fs.writeFileSync(file, JSON.stringify(stats.findings, null, 1));
        assert.fail(`${p.name}: ${stats.findings.length} finding(s) with seed ${seed} (case ${stats.findings[0]!.run.index} of the run), first: ${stats.findings[0]!.problem.split("\n")[0]}${stats.findings[0]!.reproducible ? "" : " (depends on earlier cases on the instance)"} (cases in ${file}; replay: node scripts/fuzz.mjs --replay ${file})`);
      }
      if (ms < Infinity) assert.ok(stats.cases > 0);
      else assert.equal(stats.cases, maxCases, "the whole fixed budget of cases ran");
      // every case closes its connection: an instance that keeps growing leaks per connection
      assert.ok(stats.maxMemory <= 16 << 20, `${p.name}: instance memory ${stats.maxMemory} bytes after ${stats.cases} cases`);
    });
  }
});
