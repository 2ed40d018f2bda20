// Finding and loading built plugins from tests, benchmarks and the fuzzer.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Plugin, PluginRegistry, type PluginOptions } from "@wirescope/plugin-host";

/** parsers-wasm/ (this file is compiled to parsers-wasm/dist/test-support/). */
export const PARSERS_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface BuiltPlugin {
  name: string;
  /** Path of the manifest beside the .wasm. */
  manifest: string;
  /** Source folder (parsers-wasm/<name>, examples/<name> or test-support/fixtures/<name>). */
  sourceDir: string;
  kind: "builtin" | "example" | "fixture";
}

/** Every plugin built by parsers-wasm/build.mjs (fixtures only when asked). */
export function builtPlugins(opts: { fixtures?: boolean } = {}): BuiltPlugin[] {
  const out: BuiltPlugin[] = [];
  const build = path.join(PARSERS_ROOT, "build");
  if (fs.existsSync(build)) {
    for (const f of fs.readdirSync(build).filter((f) => f.endsWith(".json")).sort()) {
      const name = f.slice(0, -5);
      out.push({ name, manifest: path.join(build, f), sourceDir: path.join(PARSERS_ROOT, name), kind: "builtin" });
    }
  }
  const groups: [string, BuiltPlugin["kind"]][] = [["examples", "example"]];
  if (opts.fixtures) groups.push(["test-support/fixtures", "fixture"]);
  for (const [g, kind] of groups) {
    const base = path.join(PARSERS_ROOT, g);
    if (!fs.existsSync(base)) continue;
    for (const d of fs.readdirSync(base).sort()) {
      const m = path.join(base, d, "build", `${d}.json`);
      if (fs.existsSync(m)) out.push({ name: d, manifest: m, sourceDir: path.join(base, d), kind });
    }
  }
  return out;
}

/** The built plugin called `name`; throws a clear error when it was not built. */
export function findPlugin(name: string, opts: { fixtures?: boolean } = { fixtures: true }): BuiltPlugin {
  const p = builtPlugins(opts).find((b) => b.name === name);
  if (!p) throw new Error(`plugin ${name} is not built: run \`node parsers-wasm/build.mjs ${name}\``);
  return p;
}

/** Loads (validates, meters) the built plugin called `name`. */
export function loadBuiltPlugin(name: string, options: Partial<PluginOptions> = {}): Plugin {
  return Plugin.fromFile(findPlugin(name).manifest, options);
}

/** A registry holding the named built plugins (all built-in ones and examples when none named). */
export function registryOf(names?: string[], options: Partial<PluginOptions> = {}): PluginRegistry {
  const reg = new PluginRegistry();
  for (const b of names ? names.map((n) => findPlugin(n)) : builtPlugins()) reg.add(Plugin.fromFile(b.manifest, options));
  return reg;
}
