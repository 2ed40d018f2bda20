#!/usr/bin/env node
// Fuzzes every built protocol plugin (parsers-wasm/build/*.wasm and examples) for as long as
// asked, round-robin in slices, with random and mutated inputs through the real plugin host.
// Findings (traps incl. runaway loops, host exceptions, invalid records) are written to
// .wirescope/fuzz/<plugin>-<seed>.json and make the exit status 1.
//
// Usage: node scripts/fuzz.mjs [--seconds N] [--plugin NAME]... [--seed S] [--replay FILE]
// (npm run fuzz -- --seconds 600). Without --seed every run explores new seeds (time-based).
//
// --replay FILE runs each finding's case again on one instance after every case that ran before
// it in its run (regenerated from the run's seed: a finding that needs earlier inputs on the same
// instance reproduces exactly, as long as the plugins' test vectors, which seed the cases, are
// unchanged). Findings written before runs were recorded replay their last 50 cases instead.
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const many = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const dist = path.join(root, "parsers-wasm/dist/test-support/index.js");
if (!fs.existsSync(dist)) {
  console.error("fuzz: parsers-wasm/dist/test-support is not built: run node scripts/build.mjs");
  process.exit(2);
}
const { builtPlugins, fuzzPlugin, runCase, replayRun } = await import(dist);
const { Plugin, PluginRegistry } = await import(path.join(root, "parsers-wasm/host/dist/index.js"));

const replay = opt("--replay");
if (replay) {
  const findings = JSON.parse(fs.readFileSync(replay, "utf8"));
  let bad = 0;
  for (const f of Array.isArray(findings) ? findings : [findings]) {
    const c = f.case ?? f;
    const b = builtPlugins({ fixtures: true }).find((p) => p.name === c.plugin);
    if (!b) throw new Error(`plugin ${c.plugin} is not built`);
    if (f.run) {
      const r = replayRun(b, f.run.seed, f.run.index, builtPlugins());
      const before = r.earlier ? ` (${r.earlier} earlier case(s) of the run failed too)` : "";
      console.log(`${c.plugin} run seed ${f.run.seed} case ${f.run.index} (case seed ${c.seed}): ${r.problem ?? "ok now"}${before}`);
      if (r.problem || r.earlier) bad++;
      continue;
    }
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(b.manifest));
    // cases that ran on the same instance before it, then the case itself
    for (const h of f.history ?? []) runCase(reg, h);
    const r = runCase(reg, c);
    console.log(`${c.plugin} seed ${c.seed}: ${r.problem ?? "ok now"}`);
    if (r.problem) bad++;
  }
  process.exit(bad ? 1 : 0);
}

const seconds = Number(opt("--seconds", "60"));
const only = many("--plugin");
let seed = Number(opt("--seed", String(Date.now() % 1_000_000)));
const plugins = builtPlugins().filter((p) => !only.length || only.includes(p.name));
if (!plugins.length) {
  console.error("fuzz: no built plugins (node parsers-wasm/build.mjs)");
  process.exit(2);
}
const outDir = path.join(root, ".wirescope/fuzz");
const totals = new Map(plugins.map((p) => [p.name, { cases: 0, bytes: 0, records: 0, findings: 0, maxMemory: 0 }]));
const deadline = Date.now() + seconds * 1000;
const slice = Math.max(500, Math.min(10_000, (seconds * 1000) / plugins.length));
let failed = false;
while (Date.now() < deadline) {
  for (const p of plugins) {
    const ms = Math.min(slice, deadline - Date.now());
    if (ms <= 0) break;
    const s = fuzzPlugin(p, { ms, seed: seed++, all: builtPlugins() });
    const t = totals.get(p.name);
    t.cases += s.cases;
    t.bytes += s.bytes;
    t.records += s.records;
    t.maxMemory = Math.max(t.maxMemory, s.maxMemory);
    if (s.findings.length) {
      failed = true;
      t.findings += s.findings.length;
      fs.mkdirSync(outDir, { recursive: true });
      const file = path.join(outDir, `${p.name}-${seed - 1}.json`);
      fs.writeFileSync(file, JSON.stringify(s.findings, null, 1));
      const f0 = s.findings[0];
      console.error(`fuzz: ${p.name}: ${f0.problem.split("\n")[0]}${f0.reproducible ? "" : " (needs the earlier cases in its history)"} -> ${path.relative(root, file)}`);
    }
  }
}
console.log("plugin        cases      MiB   records  findings  memory MiB");
for (const [name, t] of totals) {
  console.log(`${name.padEnd(12)} ${String(t.cases).padStart(7)} ${(t.bytes / 2 ** 20).toFixed(1).padStart(8)} ${String(t.records).padStart(9)} ${String(t.findings).padStart(9)} ${(t.maxMemory / 2 ** 20).toFixed(1).padStart(11)}`);
}
process.exit(failed ? 1 : 0);
