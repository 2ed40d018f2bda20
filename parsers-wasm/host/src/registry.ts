// The set of plugins an engine detects with. Adding a plugin whose name is already present
// replaces it for NEW connections only: open connections keep the Plugin (and instance) they
// started with, because per-connection state lives in that instance.

import fs from "node:fs";
import path from "node:path";
import { PluginError } from "./errors.js";
import { Plugin, type PluginOptions } from "./plugin.js";

export interface LoadDirResult {
  loaded: Plugin[];
  /** One entry per file that could not be loaded (the others still are). */
  errors: { file: string; error: PluginError }[];
}

export class PluginRegistry {
  private readonly plugins = new Map<string, Plugin>();
  /** Bumped on every change, so engines can notice. */
  generation = 0;

  /** Adds a plugin, replacing one of the same name. Returns the replaced plugin, if any. */
  add(plugin: Plugin): Plugin | undefined {
    const old = this.plugins.get(plugin.name);
    // keep insertion order stable for replacements (tie-break order in detection)
    this.plugins.set(plugin.name, plugin);
    this.generation++;
    this.listed = undefined;
    return old;
  }

  /** Removes a plugin by name (open connections keep decoding with it). */
  remove(name: string): boolean {
    const had = this.plugins.delete(name);
    if (had) {
      this.generation++;
      this.listed = undefined;
    }
    return had;
  }

  get(name: string): Plugin | undefined {
    return this.plugins.get(name);
  }

  /** list()'s answer, made again after a change (detection asks for it every round). */
  private listed: readonly Plugin[] | undefined;

  /** Plugins in the order they were first added (the detection tie-break order). */
  list(): readonly Plugin[] {
    return (this.listed ??= [...this.plugins.values()]);
  }

  /** Plugin whose manifest lists `protocol` (or whose name is it). */
  byProtocol(protocol: string): Plugin | undefined {
    return this.plugins.get(protocol) ?? this.list().find((p) => p.manifest.protocols.includes(protocol));
  }

  /**
   * Loads every `<name>.json` manifest in `dir` (with its `.wasm`). A bad plugin is reported in
   * `errors` and skipped; the good ones are added.
   */
  loadDir(dir: string, options: Partial<PluginOptions> = {}): LoadDirResult {
    const res: LoadDirResult = { loaded: [], errors: [] };
    let files: string[];
    try {
      files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
    } catch (e) {
      throw new PluginError("io", `${dir}: cannot read plugin directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    for (const f of files) {
      const file = path.join(dir, f);
      try {
        const p = Plugin.fromFile(file, options);
        this.add(p);
        res.loaded.push(p);
      } catch (e) {
        res.errors.push({ file, error: e instanceof PluginError ? e : PluginError.from(e) });
      }
    }
    return res;
  }
}
