#!/usr/bin/env node
// Compiles every protocol plugin with asc (AssemblyScript):
//   parsers-wasm/<name>/plugin.ts           -> parsers-wasm/build/<name>.wasm + build/<name>.json (its manifest.json)
//   parsers-wasm/examples/<name>/plugin.ts  -> parsers-wasm/examples/<name>/build/<name>.wasm + .json
//   parsers-wasm/test-support/fixtures/<name>/plugin.ts -> .../fixtures/<name>/build/ (host tests only)
// Incremental: a plugin is rebuilt only when a .ts file in its folder or in common/ (or this
// script) is newer than its .wasm. After compiling, each module is checked against the ABI: it may
// import only env.abort, and must declare a memory maximum within the cap.
//
// Usage: node parsers-wasm/build.mjs [--examples|--builtin] [--force] [--quiet] [name...]
// (no flag: built-in plugins, examples and test fixtures)
import { spawn } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const args = process.argv.slice(2);
const force = args.includes("--force");
const quiet = args.includes("--quiet");
const names = args.filter((a) => !a.startsWith("--"));
const doBuiltin = !args.includes("--examples");
const doExamples = !args.includes("--builtin");

/** Memory cap in 64 KiB pages (64 MiB); the host refuses larger maxima. */
const MAX_PAGES = 1024;
const asc = path.join(root, "node_modules/.bin/asc");

function newestTs(dir) {
  let t = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const rel = f.toString();
    if (rel.split(path.sep).some((s) => s === "build" || s === "test" || s === "node_modules" || s === "dist")) continue;
    const p = path.join(dir, rel);
    if (rel.endsWith(".ts") || rel.endsWith(".json")) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Plugin folders outside `dir` whose sources `dir` imports (`from "../http1/..."`, or
 * `import "../../../examples/redis/plugin"` in a fixture): their edits rebuild it too.
 */
function importedDirs(dir) {
  const out = new Set();
  const common = path.join(here, "common");
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const rel = f.toString();
    if (!rel.endsWith(".ts") || rel.split(path.sep).some((s) => s === "test" || s === "build" || s === "dist")) continue;
    for (const m of fs.readFileSync(path.join(dir, rel), "utf8").matchAll(/(?:from|import)\s+"(\.\.\/[^"]+)"/g)) {
      const target = path.dirname(path.resolve(path.dirname(path.join(dir, rel)), m[1]));
      if (target !== common && !target.startsWith(common + path.sep) && target !== dir && !target.startsWith(dir + path.sep)) out.add(target);
    }
  }
  return [...out];
}

/** Plugins: folders holding plugin.ts and manifest.json. */
function plugins(base, outOf) {
  if (!fs.existsSync(base)) return [];
  return fs
    .readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(base, d.name, "plugin.ts")))
    .filter((d) => !names.length || names.includes(d.name))
    .map((d) => ({ name: d.name, dir: path.join(base, d.name), out: outOf(d.name) }));
}

const list = [
  ...(doBuiltin ? plugins(here, () => path.join(here, "build")) : []),
  ...(doExamples ? plugins(path.join(here, "examples"), (n) => path.join(here, "examples", n, "build")) : []),
  ...(doBuiltin && doExamples ? plugins(path.join(here, "test-support/fixtures"), (n) => path.join(here, "test-support/fixtures", n, "build")) : []),
].filter((p) => !["common", "examples", "test-support", "build", "dist", "node_modules"].includes(p.name));

const libTs = Math.max(newestTs(path.join(here, "common")), fs.statSync(fileURLToPath(import.meta.url)).mtimeMs);
let failed = 0;
let built = 0;

/** Runs asc; resolves with its exit code (output passes through). */
function asc_(args) {
  return new Promise((resolve) => {
    const child = spawn(asc, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
    child.on("exit", (code) => resolve(code ?? 1));
    child.on("error", (e) => {
      console.error(`wasm: cannot run asc: ${e.message}`);
      resolve(1);
    });
  });
}

async function buildOne(p) {
  const manifestPath = path.join(p.dir, "manifest.json");
  if (!fs.existsSync(manifestPath)) {
    console.error(`wasm: ${p.name}: missing manifest.json`);
    failed++;
    return;
  }
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
  } catch (e) {
    console.error(`wasm: ${p.name}: manifest.json is not JSON: ${e.message}`);
    failed++;
    return;
  }
  const wasmName = manifest.wasm ?? `${manifest.name ?? p.name}.wasm`;
  const wasm = path.join(p.out, wasmName);
  const json = path.join(p.out, wasmName.replace(/\.wasm$/, ".json"));
  const srcTs = Math.max(libTs, newestTs(p.dir), ...importedDirs(p.dir).map(newestTs));
  if (!force && fs.existsSync(wasm) && fs.existsSync(json) && fs.statSync(wasm).mtimeMs >= srcTs) return;
  fs.mkdirSync(p.out, { recursive: true });
  const t0 = Date.now();
  const tmp = `${wasm}.${process.pid}.tmp`;
  try {
    const code = await asc_([
      path.join(p.dir, "plugin.ts"),
      "-O3",
      "--runtime", "incremental",
      "--initialMemory", "2",
      "--maximumMemory", String(MAX_PAGES),
      "--noAssert",
      "--enable", "simd",
      "--outFile", tmp,
    ]);
    if (code !== 0) throw new Error(`asc exited with ${code}`);
    check(tmp, p.name, manifest.abi);
    fs.renameSync(tmp, wasm);
    fs.writeFileSync(json, JSON.stringify({ ...manifest, wasm: wasmName }, null, 2) + "\n");
    built++;
    if (!quiet) console.error(`wasm: ${p.name} -> ${path.relative(root, wasm)} (${fs.statSync(wasm).size} bytes, ${Date.now() - t0} ms)`);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    console.error(`wasm: ${p.name}: ${e.message.split("\n")[0]}`);
    failed++;
  }
}

// asc is single-threaded: build as many plugins at once as there are cores.
const queue = [...list];
const workers = Array.from({ length: Math.max(1, Math.min(queue.length, os.availableParallelism?.() ?? os.cpus().length)) }, async () => {
  while (queue.length) await buildOne(queue.shift());
});
await Promise.all(workers);
if (!quiet && !built && !failed) console.error(`wasm: ${list.length} plugin(s) up to date`);
process.exit(failed ? 1 : 0);

/** The ABI's promises that the compiler flags should already guarantee; checked anyway. */
function check(file, name, abi) {
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const bad = WebAssembly.Module.imports(mod).filter((i) => !(i.module === "env" && i.name === "abort"));
  if (bad.length) throw new Error(`${name}: imports other than env.abort: ${bad.map((i) => `${i.module}.${i.name}`).join(", ")} (a std feature such as Math.random, Date or console was used)`);
  const exp = new Set(WebAssembly.Module.exports(mod).map((e) => e.name));
  const v2 = ["feed_batch", "conn_stats"];
  for (const e of ["memory", "abi_version", "input_buffer", "detect", "conn_new", "conn_free", "feed", "gap", "close", "out_ptr", "out_len", "out_clear", "configure", ...(abi >= 2 ? v2 : [])]) {
    if (!exp.has(e)) throw new Error(`${name}: missing export ${e} (does plugin.ts \`export * from "../common/abi"\`?)`);
  }
}
