#!/usr/bin/env node
// One build for every part, incremental: each step skips work whose inputs did not change.
//   proto/ -> services/wire/src/gen   (buf + protoc-gen-es, only when a .proto is newer)
//   parsers-wasm/ -> *.wasm              (asc, parsers-wasm/build.mjs)
//   bpf/ -> *.bpf.o + generated header   (clang, make -C bpf)
//   services/probe/native -> .node       (node-gyp, services/probe/native/build.mjs)
//   TypeScript                           (tsc -b, project references)
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");

function newest(dir, filter) {
  let t = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, f.toString());
    if (filter(p)) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

function step(name, fn) {
  if (only && !only.includes(name)) return;
  const t0 = Date.now();
  try {
    fn();
  } catch (e) {
    console.error(`build: ${name} failed: ${e.message.split("\n")[0]}`);
    process.exit(1);
  }
  if (!quiet) console.error(`build: ${name} ok (${Date.now() - t0} ms)`);
}

function run(cmd, args, cwd = root) {
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
}

step("proto", () => {
  const src = newest(path.join(root, "proto"), (p) => p.endsWith(".proto"));
  const gen = newest(path.join(root, "services/wire/src/gen"), (p) => p.endsWith(".ts"));
  if (src > gen) run(process.execPath, [path.join(root, "scripts/gen-proto.mjs")]);
});

step("wasm", () => {
  const script = path.join(root, "parsers-wasm/build.mjs");
  if (fs.existsSync(script)) run(process.execPath, [script]);
});

step("bpf", () => {
  if (fs.existsSync(path.join(root, "bpf/Makefile"))) run("make", ["-s", "-C", path.join(root, "bpf")]);
});

step("native", () => {
  const script = path.join(root, "services/probe/native/build.mjs");
  if (fs.existsSync(script)) run(process.execPath, [script]);
});

step("ts", () => run(path.join(root, "node_modules/.bin/tsc"), ["-b"]));
