#!/usr/bin/env node
// Runs every benchmark (compiled *.bench.js under services/*/dist, parsers-wasm/dist, test/dist),
// one after another so they do not compete for the 2 cores. Each prints its own table of figures
// and ratios measured side by side in the same run.
// Usage: node scripts/bench.mjs [name-filter...] [--flag...]
// Arguments before the first one starting with "-" select benchmarks by path; that one and all
// after it are passed to every selected benchmark (e.g. `npm run bench -- pipeline --quick`).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const firstFlag = args.findIndex((a) => a.startsWith("-"));
const filters = firstFlag < 0 ? args : args.slice(0, firstFlag);
const benchArgs = firstFlag < 0 ? [] : args.slice(firstFlag);
const dirs = ["services/wire", "services/runtime", "services/capture", "parsers-wasm/host", "parsers-wasm", "services/probe", "services/parser", "services/aggregator", "test"];
const files = dirs
  .flatMap((d) => {
    const dist = path.join(root, d, "dist");
    if (!fs.existsSync(dist)) return [];
    return fs.readdirSync(dist, { recursive: true }).map((f) => path.join(dist, f.toString()));
  })
  .filter((p) => p.endsWith(".bench.js"))
  // matched inside the checkout only: a checkout's own path (e.g. a worktree named "cluster-bench")
  // would match every benchmark
  .filter((p) => !filters.length || filters.some((x) => path.relative(root, p).includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n## ${path.relative(root, f)}\n`);
  const r = spawnSync(process.execPath, ["--expose-gc", f, ...benchArgs], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) failed++;
}
if (!files.length) console.log("no benchmarks found (build first)");
process.exit(failed ? 1 : 0);
