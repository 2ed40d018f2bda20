// `wirescope plugin add|list|remove`: fleet-wide protocol plugins in the NATS object store
// bucket every parser replica watches (they load a new plugin within seconds, no restart).
import fs from "node:fs";
import path from "node:path";
import { loadConfig, optionsHelp, OPTIONS } from "@wirescope/runtime/config";
import { errorMessage } from "@wirescope/runtime/errors";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { NATS_NAMES } from "@wirescope/runtime/nats-permissions";
import { natsWithStack } from "../stack-state.js";
import { UsageError, type Command } from "../command.js";

/** plugin's own flags (after the shared ones): --help, the completions and its parser read this table. */
export const PLUGIN_FLAGS: readonly FlagSpec[] = withEnv("plugin", [
  { flag: "manifest", value: "M.json", description: "add: the plugin's manifest" },
  { flag: "bucket", value: "B", default: NATS_NAMES.pluginBucket, description: "NATS object store bucket of the plugins" },
  { flag: "json", description: "list: print JSON" },
]);

/** Parses plugin's own flags (`--flag value` or `--flag=value`) and its words (subcommand, argument). */
export function parsePluginArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): { bucket: string; manifestPath?: string; json: boolean; sub?: string; arg?: string } {
  const p = parseFlags(args, PLUGIN_FLAGS, { command: "plugin", env, positionals: true });
  const [sub, arg] = p.positionals;
  return { bucket: p.get("bucket") ?? NATS_NAMES.pluginBucket, manifestPath: p.get("manifest"), json: p.has("json"), sub, arg };
}

const USAGE = `usage: wirescope plugin add FILE.wasm --manifest M.json [--bucket B] [options]
       wirescope plugin list [--json] [--bucket B] [options]
       wirescope plugin remove NAME [--bucket B] [options]

Manages the protocol plugins shared by every parser replica (NATS object store bucket
${NATS_NAMES.pluginBucket}). 'add' validates the plugin here first (ABI version, exports, imports, memory
cap, a trap at start) and refuses a bad one with the reason. A plugin with the name of a loaded
one replaces it for new connections.

plugin options:
${flagsHelp(PLUGIN_FLAGS)}

options:
${optionsHelp()}`;

const command: Command = {
  name: "plugin",
  summary: "add, list or remove protocol plugins for every parser replica",
  usage: USAGE,
  flags: [...OPTIONS, ...PLUGIN_FLAGS],
  words: ["add", "list", "remove"],
  async run(argv) {
    const { config, rest } = loadConfig({ argv, command: "plugin" });
    const { bucket, manifestPath, json, sub, arg } = parsePluginArgs(rest);
    if (!sub) throw new UsageError("plugin: say add, list or remove");
    const { connectNats, silentLogger, openPluginStore, storePlugin, validateManifest, LoadedPlugin } = await import("../clients.js");
    const nc = await connectNats(natsWithStack(config.nats, config.dataDir), silentLogger(), { retry: false, name: "wirescope-plugin" });
    try {
      const os = await openPluginStore(nc, bucket, config.nats.replicas);
      if (sub === "add") {
        if (!arg || !manifestPath) throw new UsageError("plugin add FILE.wasm --manifest M.json");
        const wasm = new Uint8Array(fs.readFileSync(arg));
        let manifest: unknown;
        try {
          manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
        } catch (e) {
          throw new Error(`${manifestPath}: not a JSON manifest: ${errorMessage(e)}`);
        }
        const m = validateManifest(manifest);
        const p = LoadedPlugin.load(m, wasm, "store", () => true); // same checks the replicas run
        await storePlugin(os, { ...m, wasm: path.basename(arg) }, wasm);
        process.stdout.write(`added ${m.name} ${m.version} (sha256 ${p.sha256.slice(0, 12)}) to ${bucket}\n`);
        return 0;
      }
      if (sub === "list") {
        const items = (await os.list()).filter((i) => !i.deleted);
        const rows = items.map((i) => {
          let m: { name?: string; version?: string; abi?: number } = {};
          try {
            m = JSON.parse(i.description ?? "{}");
          } catch {
            // shown without manifest
          }
          return { name: m.name ?? i.name, version: m.version ?? "?", abi: m.abi ?? 0, bytes: i.size, digest: i.digest };
        });
        if (json) process.stdout.write(JSON.stringify(rows) + "\n");
        else {
          process.stdout.write(`${"NAME".padEnd(20)} ${"VERSION".padEnd(12)} ABI  BYTES\n`);
          for (const r of rows) process.stdout.write(`${r.name.padEnd(20)} ${r.version.padEnd(12)} ${String(r.abi).padEnd(4)} ${r.bytes}\n`);
        }
        return 0;
      }
      if (sub === "remove") {
        if (!arg) throw new UsageError("plugin remove NAME");
        const info = await os.info(`${arg}.wasm`);
        if (!info || info.deleted) throw new Error(`no plugin named ${arg} in ${bucket}`);
        await os.delete(`${arg}.wasm`);
        process.stdout.write(`removed ${arg} from ${bucket}\n`);
        return 0;
      }
      throw new UsageError(`plugin: unknown subcommand ${sub}`);
    } finally {
      await nc.close();
    }
  },
};
export default command;
