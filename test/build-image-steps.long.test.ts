// The container image builds on a clean clone: the Dockerfile runs nothing but
// scripts/build-image-steps.sh, and this test runs that script's steps on a clean copy of the
// repository (no Docker engine needed), then checks that the result runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./support/index.js";

const SCRIPT = "scripts/build-image-steps.sh";

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let cur = "";
  for (const line of text.split("\n")) {
    if (!cur && /^\s*(#|$)/.test(line)) continue;
    cur += line.replace(/\\$/, " ");
    if (line.endsWith("\\")) continue;
    const m = /^\s*(\w+)\s+(.*)$/s.exec(cur);
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
    cur = "";
  }
  return out;
}

/** The steps the script accepts (its `case` labels). */
function scriptSteps(): string[] {
  const s = fs.readFileSync(path.join(REPO_ROOT, SCRIPT), "utf8");
  return [...s.matchAll(/^\s{2}([a-z-]+)\)\s*$/gm)].map((m) => m[1]);
}

test("the Dockerfile runs only scripts/build-image-steps.sh, each step one the script has", () => {
  const ins = instructions(fs.readFileSync(path.join(REPO_ROOT, "Dockerfile"), "utf8"));
  const steps = scriptSteps();
  assert.deepEqual(steps.sort(), ["build", "runtime-deps"]);
  const runs = ins.filter((i) => i.op === "RUN");
  assert.ok(runs.length >= 2);
  const used: string[] = [];
  for (const r of runs) {
    const m = /^bash\s+(\S*build-image-steps\.sh)\s+([a-z-]+)$/.exec(r.args);
    assert.ok(m, `RUN ${r.args}: the Dockerfile's build steps belong in ${SCRIPT}`);
    assert.ok(steps.includes(m[2]), `RUN ${r.args}: no step ${m[2]} in ${SCRIPT}`);
    used.push(m[2]);
  }
  assert.deepEqual(used.sort(), ["build", "runtime-deps"]);
  const froms = ins.filter((i) => i.op === "FROM").map((i) => i.args);
  assert.ok(froms.every((f) => /^node:20-/.test(f)), `Node 20 images: ${froms.join(", ")}`);
  assert.ok(ins.some((i) => i.op === "COPY" && /^--from=build\s/.test(i.args)), "the runtime stage takes the built tree");
  assert.ok(ins.some((i) => i.op === "USER" && !/^(0|root)\b/.test(i.args)), "the image runs as a non-root user by default");
  assert.deepEqual(JSON.parse(ins.find((i) => i.op === "ENTRYPOINT")!.args), ["node", "/app/bin/wirescope.js"]);
});

test(".dockerignore leaves out everything .gitignore does, so a dirty checkout builds like a clean clone", () => {
  const docker = new Set(fs.readFileSync(path.join(REPO_ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")));
  for (const raw of fs.readFileSync(path.join(REPO_ROOT, ".gitignore"), "utf8").split("\n").map((l) => l.trim())) {
    if (!raw || raw.startsWith("#")) continue;
    const neg = raw.startsWith("!");
    const p = raw.replace(/^!/, "").replace(/\/$/, "");
    // gitignore: a pattern without a leading slash matches at any depth
    const want = p.startsWith("/") ? p.slice(1) : p.startsWith("**/") || p.includes("/") ? p : `**/${p}`;
    assert.ok(docker.has(`${neg ? "!" : ""}${want}`) || docker.has(`${neg ? "!" : ""}${p.replace(/^\//, "")}`), `.dockerignore lacks ${neg ? "!" : ""}${want} (from .gitignore ${raw})`);
  }
});

test("the image's build steps work on a clean copy of the repository, and the result runs", { timeout: 20 * 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wirescope-image-"));
  try {
    // what a clean clone holds: the tracked files, plus new ones not yet committed (not ignored)
    const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, maxBuffer: 64 << 20 })
      .toString().split("\0").filter((f) => f && fs.existsSync(path.join(REPO_ROOT, f)));
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.copyFileSync(path.join(REPO_ROOT, f), path.join(dir, f));
    }
    fs.chmodSync(path.join(dir, SCRIPT), 0o755);
    assert.ok(!fs.existsSync(path.join(dir, "node_modules")));

    const run = (step: string) => {
      const r = spawnSync("bash", [SCRIPT, step], { cwd: dir, encoding: "utf8", timeout: 18 * 60_000, maxBuffer: 64 << 20, env: { ...process.env, CI: "true" } });
      assert.equal(r.status, 0, `${step} failed (${r.signal ?? r.status}):\n${(r.stdout + r.stderr).slice(-4000)}`);
    };
    run("build");
    run("runtime-deps");

    // every built part is there, and what only building needs is gone
    for (const f of ["services/probe/native/build/wirescope_probe.node", "services/cli/dist/main.js", "services/parser/dist/index.js", "services/aggregator/dist/index.js", "services/wire/src/gen"]) {
      assert.ok(fs.existsSync(path.join(dir, f)), `${f} built`);
    }
    const wasm = fs.readdirSync(path.join(dir, "parsers-wasm/build")).filter((f) => f.endsWith(".wasm"));
    assert.ok(wasm.length >= 4, `protocol plugins built: ${wasm.join(", ")}`);
    assert.ok(!fs.existsSync(path.join(dir, "node_modules/typescript")), "dev dependencies pruned");
    assert.ok(!fs.existsSync(path.join(dir, "services/probe/native/build/libbpf-src")), "libbpf sources removed");

    // the result runs: the CLI, and the probe's addon links against the runtime libraries
    const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: dir, encoding: "utf8", timeout: 60_000 });
    const version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).version;
    assert.equal(node(["bin/wirescope.js", "--version"]).trim(), version);
    assert.match(node(["bin/wirescope.js", "parser", "--help"]), /usage: wirescope parser/);
    node(["-e", `require(${JSON.stringify(path.join(dir, "services/probe/native/build/wirescope_probe.node"))})`]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
