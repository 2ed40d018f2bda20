// scripts/lint-deps.mjs (part of `npm run lint`) on a small checkout of its own: every kind of
// import it must see is named with its file and line, what is not a package import is not; a
// declared package no source uses is named, unless a string names it, it is a tool or @types.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { REPO_ROOT, tempDir } from "./support/index.js";

const run = promisify(execFile);

function write(dir: string, files: Record<string, string>): void {
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
}

async function lintDeps(dir: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, [path.join(REPO_ROOT, "scripts/lint-deps.mjs"), "--root", dir], { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}

test("lint-deps names every undeclared import by file and line and every unused dependency, and nothing else", { timeout: 60_000 }, async () => {
  const dir = tempDir("wirescope-lint-deps-");
  write(dir, {
    "package.json": JSON.stringify({ name: "r", private: true, workspaces: ["pkgs/a", "pkgs/b"], devDependencies: { typescript: "*" } }),
    "scripts/gen.mjs": 'import ts from "typescript";\nimport x from "left-pad";\n',
    "pkgs/a/package.json": JSON.stringify({ name: "@r/a", dependencies: { declared: "*", "@r/b": "*" }, devDependencies: { "dev-only": "*" } }),
    "pkgs/a/src/index.ts": [
      'import fs from "node:fs";',
      'import path from "path";',
      'import { x } from "./x.js";',
      'import { d } from "declared/sub";',
      'import { b } from "@r/b/deep";',
      'import { self } from "@r/a/other";',
      'import type { T } from "types-only";',
      'export { e } from "@scope/re-export/sub";',
      'import dev from "dev-only";',
      'const m = await import("dynamic");',
      "const n = await import(`templated`);",
      'import cjs = require("import-equals");',
      'type U = import("in-a-type").U;',
      "// import c from \"in-a-comment\";",
      'const text = `import s from "in-a-string"`;',
      'health.require("not-a-module");',
      'const dyn = await import(path.join("computed"));',
      'import "#internal";',
      'const c = createRequire(import.meta.url)("created");',
      "",
    ].join("\n"),
    "pkgs/a/src/legacy.cjs": 'const r = require("required");\nconst p = require.resolve("resolved/package.json");\n',
    "pkgs/a/dist/index.js": 'import "built-output";\n',
    "pkgs/a/node_modules/x/index.js": 'import "installed";\n',
    "pkgs/b/package.json": JSON.stringify({ name: "@r/b", dependencies: { "unused-dep": "*", "named-by-string": "*", "templated-head": "*", "a-tool": "*", "@types/things": "*" } }),
    "pkgs/b/node_modules/a-tool/package.json": JSON.stringify({ name: "a-tool", bin: "cli.js" }),
    "pkgs/b/src/meta.mts": [
      'const u = import.meta.resolve("meta-resolved");',
      'import { a } from "@r/a";',
      'const transport = { target: "named-by-string" };',
      "const m = await import(`templated-head/${u}`);",
      "",
    ].join("\n"),
  });
  const r = await lintDeps(dir);
  assert.equal(r.code, 1, r.out);
  const named = r.out.split("\n").filter((l) => / is not declared | is declared but /.test(l));
  assert.deepEqual(named.sort(), [
    'pkgs/a/src/index.ts:10: "dynamic" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:11: "templated" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:12: "import-equals" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:13: "in-a-type" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:19: "created" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:7: "types-only" is not declared in pkgs/a/package.json',
    'pkgs/a/src/index.ts:8: "@scope/re-export/sub" is not declared in pkgs/a/package.json',
    'pkgs/a/src/legacy.cjs:1: "required" is not declared in pkgs/a/package.json',
    'pkgs/a/src/legacy.cjs:2: "resolved/package.json" is not declared in pkgs/a/package.json',
    'pkgs/b/package.json: "unused-dep" is declared but no source of pkgs/b uses it',
    'pkgs/b/src/meta.mts:1: "meta-resolved" is not declared in pkgs/b/package.json',
    'pkgs/b/src/meta.mts:2: "@r/a" is not declared in pkgs/b/package.json',
    'scripts/gen.mjs:2: "left-pad" is not declared in package.json',
  ]);

  // declared, every one of them, and the unused one dropped: the check passes
  const a = JSON.parse(fs.readFileSync(path.join(dir, "pkgs/a/package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const p of ["dynamic", "templated", "import-equals", "in-a-type", "types-only", "@scope/re-export", "required", "resolved", "created"]) a.dependencies[p] = "*";
  write(dir, {
    "pkgs/a/package.json": JSON.stringify(a),
    "pkgs/b/package.json": JSON.stringify({ name: "@r/b", dependencies: { "meta-resolved": "*", "@r/a": "*", "named-by-string": "*", "templated-head": "*", "a-tool": "*", "@types/things": "*" } }),
    "package.json": JSON.stringify({ name: "r", private: true, workspaces: ["pkgs/a", "pkgs/b"], devDependencies: { typescript: "*", "left-pad": "*" } }),
  });
  const ok = await lintDeps(dir);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /lint-deps: 4 files of 3 packages, every import declared, every dependency used/);
});
