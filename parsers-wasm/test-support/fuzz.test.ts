// A short fuzzing budget for every built plugin (built-in decoders and examples), in `npm test`.
// Longer runs: `npm run fuzz -- --seconds 600`. WIRESCOPE_FUZZ_MS sets the budget per plugin.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { builtPlugins } from "./plugins.js";
import { fuzzPlugin, runCase, type FuzzCase } from "./fuzz.js";
import { Plugin, PluginRegistry } from "@wirescope/common";

const budget = Number(process.env.WIRESCOPE_FUZZ_MS ?? 2000);
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

  for (const p of plugins) {
    test(`${p.name}: random and mutated inputs for ${budget} ms: no trap, no exception, valid records, bounded memory`, { timeout: budget + 60_000 }, () => {
      const seed = Number(process.env.WIRESCOPE_FUZZ_SEED ?? Date.now() % 1_000_000);
      const stats = fuzzPlugin(p, { ms: budget, seed });
      if (stats.findings.length) {
        const file = path.join(os.tmpdir(), `wirescope-fuzz-${p.name}-${seed}.json`);
        fs.writeFileSync(file, JSON.stringify(stats.findings, null, 1));
        assert.fail(`${p.name}: ${stats.findings.length} finding(s) with seed ${seed}, first: ${stats.findings[0]!.problem.split("\n")[0]}${stats.findings[0]!.reproducible ? "" : " (depends on earlier cases on the instance)"} (cases in ${file}; replay: node scripts/fuzz.mjs --replay ${file})`);
      }
      assert.ok(stats.cases > 0);
      // every case closes its connection: an instance that keeps growing leaks per connection
      assert.ok(stats.maxMemory <= 16 << 20, `${p.name}: instance memory ${stats.maxMemory} bytes after ${stats.cases} cases`);
    });
  }
});
