// Where plugins come from: the built-in directory (at start), a watched directory (this replica),
// and the NATS object store bucket (the whole fleet). Each source hands (manifest, wasm) pairs
// to one loader that validates them and puts them in the PluginSet; a refused plugin is logged
// with its reason and counted, and every other plugin keeps running.
import fs from "node:fs";
import path from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { NatsError, NATS_NAMES, SupervisedLoop, errorMessage, iterateRun, type Counters, type HealthGate, type Logger } from "@wirescope/runtime";
import { LoadedPlugin, PluginError, type PluginSet, type PluginSource } from "./wasm-plugins.js";

export type { PluginSource };

export class PluginLoader {
  /** Last refusal per plugin file/object; mirrored into `warnings` (shown by `status`). */
  readonly refused = new Map<string, string>();

  constructor(
    readonly set: PluginSet,
    private readonly redact: (protocol: string) => boolean,
    private readonly counters: Counters,
    private readonly log: Logger,
    private readonly warnings: Set<string> = new Set(),
  ) {}

  private refuse(label: string, msg: string | undefined): void {
    const old = this.refused.get(label);
    if (old) this.warnings.delete(old);
    if (msg === undefined) this.refused.delete(label);
    else {
      this.refused.set(label, msg);
      this.warnings.add(msg);
    }
  }

  /** Validates and installs one plugin; returns the refusal message instead of throwing. */
  install(label: string, manifest: unknown, wasm: Uint8Array, source: PluginSource): string | undefined {
    let p: LoadedPlugin;
    try {
      p = LoadedPlugin.load(manifest, wasm, source, this.redact, label);
    } catch (e) {
      const msg = e instanceof PluginError ? e.message : `plugin ${label}: ${errorMessage(e)}`;
      this.refuse(label, msg);
      this.counters.add(`plugins_refused.${e instanceof PluginError ? e.code : "error"}`);
      this.log.warn({ plugin: label, source, err: msg }, "plugin refused");
      return msg;
    }
    this.refuse(label, undefined);
    const current = this.set.get(p.manifest.name);
    if (current && current.sha256 === p.sha256 && current.manifest.version === p.manifest.version && current.source === p.source) return undefined;
    const old = this.set.put(p);
    this.counters.add("plugins_loaded");
    this.log.info({ plugin: p.manifest.name, version: p.manifest.version, source, replaced: old?.manifest.version }, old ? "plugin replaced (new connections use it)" : "plugin loaded");
    return undefined;
  }

  refuseFromStore(label: string, msg: string): void {
    this.refuse(label, msg);
  }

  remove(name: string, source: PluginSource): void {
    const cur = this.set.get(name);
    if (cur && cur.source === source && this.set.remove(name)) this.log.info({ plugin: name, source }, "plugin removed");
  }

  /** Loads every <name>.json + its wasm in a directory (missing directory: nothing). */
  loadDir(dir: string, source: PluginSource): void {
    if (!fs.existsSync(dir)) return;
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith(".json")) continue;
      const file = path.join(dir, f);
      let manifest: { wasm?: string; name?: string };
      try {
        manifest = JSON.parse(fs.readFileSync(file, "utf8"));
      } catch (e) {
        this.refuse(file, `${file}: manifest is not JSON: ${errorMessage(e)}`);
        this.counters.add("plugins_refused.manifest");
        continue;
      }
      const wasmPath = path.join(dir, manifest.wasm ?? f.replace(/\.json$/, ".wasm"));
      if (!fs.existsSync(wasmPath)) {
        this.refuse(file, `${file}: ${wasmPath} not found`);
        continue;
      }
      this.install(file, manifest, new Uint8Array(fs.readFileSync(wasmPath)), source);
    }
  }
}

/** Polls a plugin directory (mtimes) and reloads what changed; removed files unload. */
export function watchPluginDir(loader: PluginLoader, dir: string, everyMs: number, log: Logger): () => void {
  let last = "";
  const scan = () => {
    let sig = "";
    try {
      if (fs.existsSync(dir)) sig = fs.readdirSync(dir).sort().map((f) => `${f}:${fs.statSync(path.join(dir, f)).mtimeMs}`).join("|");
    } catch (e) {
      log.debug({ err: errorMessage(e) }, "plugin dir scan failed");
      return;
    }
    if (sig === last) return;
    last = sig;
    const before = new Set(loader.set.plugins().filter((p) => p.source === "dir").map((p) => p.manifest.name));
    loader.loadDir(dir, "dir");
    const present = new Set<string>();
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (!f.endsWith(".json")) continue;
      try {
        present.add(JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")).name);
      } catch {
        // refused above
      }
    }
    for (const n of before) if (!present.has(n)) loader.remove(n, "dir");
  };
  scan();
  const t = setInterval(scan, everyMs);
  return () => clearInterval(t);
}

// ---- Object store: fleet-wide plugins -------------------------------------------------------
// One object per plugin, named <name>.wasm, whose description holds the manifest JSON (so a
// plugin is one atomic object: never a wasm without its manifest).

export const PLUGIN_BUCKET = NATS_NAMES.pluginBucket;

export async function openPluginStore(nc: NatsConnection, bucket: string, replicas = 1): Promise<ObjectStore> {
  try {
    return await new Objm(nc).create(bucket, { replicas });
  } catch (e) {
    throw new NatsError("object_store", `cannot open object store ${bucket} (is JetStream enabled on nats-server?): ${errorMessage(e)}`, { cause: e });
  }
}

export async function storePlugin(os: ObjectStore, manifest: { name: string; [k: string]: unknown }, wasm: Uint8Array): Promise<void> {
  await os.putBlob({ name: `${manifest.name}.wasm`, description: JSON.stringify(manifest) }, wasm);
}

/**
 * Watches the bucket: every put installs, every delete removes. Kept watching
 * (`plugin_watch_restarts.<reason>`): a restarted watch lists the store again, and a plugin
 * already loaded from the same bytes is left as it is. Returns a stop function.
 */
export function watchPluginStore(loader: PluginLoader, os: ObjectStore, log: Logger, counters: Counters, health?: HealthGate): () => Promise<void> {
  const watch = new SupervisedLoop(
    async () => {
      const w = await os.watch({ includeHistory: true });
      return iterateRun(
        w,
        async (info) => {
          const name = info.name.replace(/\.wasm$/, "");
          if (info.deleted) {
            loader.remove(name, "store");
            return;
          }
          try {
            const wasm = await os.getBlob(info.name);
            if (!wasm) return;
            const manifest = JSON.parse(info.description ?? "null");
            loader.install(`store:${info.name}`, manifest, wasm, "store");
          } catch (e) {
            loader.refuseFromStore(`store:${info.name}`, `store:${info.name}: ${errorMessage(e)}`);
            log.warn({ plugin: info.name, err: errorMessage(e) }, "plugin from store refused");
          }
        },
        () => w.stop(),
      );
    },
    { name: "plugin_watch", counters, log, health },
  );
  return () => watch.stop();
}
