#!/usr/bin/env node
// Runs every test with node's own runner:
//   unit tests:        services/*/dist/**/*.test.js, grafana/dist/**/*.test.js (pure, run in parallel)
//   integration tests: test/dist/**/*.test.js (start real servers; run one file at a time)
// Usage: node scripts/test.mjs [--unit|--integration] [--long|--faults] [name-filter...]
//   --faults: the fault suite (`*.faults.test.js`: each fault under a steady workload, loss counted;
//             `npm run test:faults`, never part of `npm test`)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith("--"));

function find(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, f.toString());
    if (p.endsWith(".test.js") && !p.includes("node_modules")) out.push(p);
  }
  return out.sort();
}

const pick = (files) => (filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files);
const unit = pick(
  ["services/wire", "services/runtime", "services/capture", "parsers-wasm/host", "parsers-wasm", "services/probe", "services/parser", "services/aggregator", "services/cli", "grafana"].flatMap((d) =>
    find(path.join(root, d, "dist")),
  ),
);
// Long suites (`*.long.test.js`: the image build steps) run only when asked (`--long`), from
// their own npm scripts and their own CI step, so `npm test` stays well inside CI's limit.
const long = args.includes("--long");
const faults = args.includes("--faults");
const integration = pick(
  find(path.join(root, "test/dist")).filter((f) => long === f.endsWith(".long.test.js") && faults === f.endsWith(".faults.test.js")),
);

// The real captures live beside the repository (../shared/captures); tests read this variable.
process.env.WIRESCOPE_CAPTURES ??= path.resolve(root, "../shared/captures");

let failed = false;
function runSet(files, concurrency) {
  if (!files.length) return;
  // A safety net only: a test with no timeout of its own fails after 5 minutes instead of hanging CI.
  const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, `--test-timeout=${long || faults ? 25 * 60_000 : 300_000}`, ...files], {
    cwd: root,
    stdio: "inherit",
  });
  if (r.status !== 0) failed = true;
}
if (!args.includes("--integration") && !faults) runSet(unit, 2);
if (!args.includes("--unit")) runSet(integration, 1);
process.exit(failed ? 1 : 0);
