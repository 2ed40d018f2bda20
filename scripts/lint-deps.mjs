#!/usr/bin/env node
// Every package a workspace's sources import is declared in that workspace's package.json, and
// every package it declares is used. npm hoists every workspace's dependencies into the root
// node_modules, so an undeclared import resolves here by luck and breaks wherever the workspace
// is installed on its own (an image, a published package, a changed hoisting); an unused one is
// installed and audited for nothing. Part of `npm run lint`.
//
// Sources are parsed with the TypeScript parser (the one the build uses), not matched by pattern:
// static imports and re-exports (type-only ones too: the types come from the package),
// `import x = require()`, `import()`, `require()` and `createRequire(…)()` with a literal
// specifier, `import("x").T` in types, `require.resolve()` and `import.meta.resolve()`. A specifier that is relative,
// absolute, a URL (node:, data:), a package.json "#imports" name or a Node builtin needs nothing.
// A workspace may import its own name. Files in node_modules, dist and build folders, and in
// hidden folders, are not read; the root package (bin/, scripts/) is checked like a workspace.
// A declared package counts as used when a source imports it or names it in a string literal
// (`"pino-pretty"` as a logger transport) or a template's head (`kubernetes-models/${v}`), when it is a tool (its package.json has a "bin": run
// by the build or scripts), or when it is `@types/…` (read by the compiler).
//
// Usage: node scripts/lint-deps.mjs [--root DIR] [--quiet] (DIR: another checkout, e.g. a test's). Exit 1 with one line per undeclared import:
//   services/cli/src/commands/tail.ts:5: "@bufbuild/protobuf" is not declared in services/cli/package.json
//   services/probe/package.json: "@grpc/grpc-js" is declared but no source of services/probe uses it
import fs from "node:fs";
import path from "node:path";
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const rootArg = process.argv.indexOf("--root");
const root = rootArg > 0 ? path.resolve(process.argv[rootArg + 1]) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE = /\.(?:[cm]?[jt]s|tsx)$/;
const SKIP = new Set(["node_modules", "dist", "build"]);
const builtins = new Set(builtinModules);

/** The package a bare specifier names: `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageOf(specifier) {
  if (/^[./]/.test(specifier) || specifier.startsWith("#") || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return builtins.has(name) ? undefined : name;
}

/** Every module specifier of one source text, with its 1-based line; `strings` gets every string literal and template head. */
function specifiersOf(file, text, strings) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, /\.[cm]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS);
  const out = [];
  const add = (node) => {
    if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) out.push({ specifier: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };
  const visit = (node) => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) strings.add(node.text);
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const e = node.expression;
      const isImport = e.kind === ts.SyntaxKind.ImportKeyword;
      // require("x"), createRequire(url)("x")
      const isRequire = (ts.isIdentifier(e) && e.text === "require") || (ts.isCallExpression(e) && ts.isIdentifier(e.expression) && e.expression.text === "createRequire");
      // require.resolve("x"), import.meta.resolve("x")
      const isResolve =
        ts.isPropertyAccessExpression(e) &&
        e.name.text === "resolve" &&
        ((ts.isIdentifier(e.expression) && e.expression.text === "require") || (ts.isMetaProperty(e.expression) && e.expression.keywordToken === ts.SyntaxKind.ImportKeyword));
      if (isImport || isRequire || isResolve) add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function* sources(dir, nested) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".") || SKIP.has(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      // another workspace's folder is checked against its own package.json
      if (!nested.has(p)) yield* sources(p, nested);
    } else if (SOURCE.test(e.name) && !e.name.endsWith(".d.ts")) yield p;
  }
}

/** A tool: the installed package has a "bin" (resolved as node would from `dir`). */
function isTool(dir, name) {
  for (let d = dir; ; d = path.dirname(d)) {
    const f = path.join(d, "node_modules", name, "package.json");
    if (fs.existsSync(f)) return JSON.parse(fs.readFileSync(f, "utf8")).bin !== undefined;
    if (d === path.dirname(d)) return false;
  }
}

/** The undeclared imports and unused declarations of every workspace (and the root package), as report lines. */
function checkPackages() {
  const rootPkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  const dirs = [root, ...(rootPkg.workspaces ?? []).map((w) => path.join(root, w))];
  const nested = new Set(dirs);
  const problems = [];
  let files = 0;
  for (const dir of dirs) {
    const pkgFile = path.join(dir, "package.json");
    const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
    const deps = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"].flatMap((k) => Object.keys(pkg[k] ?? {}));
    const declared = new Set([pkg.name, ...deps]);
    const used = new Set();
    const strings = new Set();
    for (const file of sources(dir, new Set([...nested].filter((d) => d !== dir)))) {
      files++;
      for (const { specifier, line } of specifiersOf(file, fs.readFileSync(file, "utf8"), strings)) {
        const name = packageOf(specifier);
        if (name) used.add(name);
        if (name && !declared.has(name)) problems.push(`${path.relative(root, file)}:${line}: "${specifier}" is not declared in ${path.relative(root, pkgFile)}`);
      }
    }
    const named = new Set([...strings].map(packageOf));
    for (const name of deps) {
      if (used.has(name) || named.has(name) || name.startsWith("@types/") || isTool(dir, name)) continue;
      problems.push(`${path.relative(root, pkgFile)}: "${name}" is declared but no source of ${path.relative(root, dir) || "the root package"} uses it`);
    }
  }
  return { problems, files, packages: dirs.length };
}

const { problems, files, packages } = checkPackages();
for (const p of problems) console.error(p);
if (problems.length) {
  console.error(`lint-deps: ${problems.length} problem(s); declare each package a source imports in its package.json, drop what none uses`);
  process.exit(1);
}
if (!process.argv.includes("--quiet")) console.log(`lint-deps: ${files} files of ${packages} packages, every import declared, every dependency used`);
