// The parser's plugins: @wirescope/plugin-host (validation, fuel-metered instances,
// trap isolation, detection and per-connection decoding in ConnectionEngine) plus what the
// fleet needs on top: where each plugin came from and its digest, for ListPlugins and for
// telling an upgrade (same name, new bytes or version) from a repeated notification.
import crypto from "node:crypto";
import { ConnectionEngine, Plugin, PluginError, PluginRegistry, validateManifest, type EngineOptions, type PluginManifest, type StepResult } from "@wirescope/plugin-host";
import { Counters } from "@wirescope/runtime/counters";
import type { DecoderBatch, DecoderHost, DecoderSession } from "./decoder.js";

export { PluginError, validateManifest, type PluginManifest };

export type PluginSource = "builtin" | "dir" | "store";

/** A validated, compiled plugin with its provenance. */
export class LoadedPlugin {
  private constructor(
    readonly plugin: Plugin,
    readonly sha256: string,
    readonly source: PluginSource,
  ) {}

  get manifest(): PluginManifest {
    return this.plugin.manifest;
  }

  /**
   * Validates and compiles: not WASM, wrong imports, missing exports, memory over the cap, a bad
   * manifest or ABI version, a trap at start — each a PluginError with a one-line message.
   * `redact(protocol)` decides the configure() redact flag from the plugin's protocols.
   */
  static load(manifestJson: unknown, wasm: Uint8Array, source: PluginSource, redact: (protocol: string) => boolean, label: string = source): LoadedPlugin {
    const m = validateManifest(manifestJson, label);
    const flags = [m.name, ...m.protocols].some((p) => redact(p)) ? 1 : 0;
    const plugin = Plugin.fromBytes(m, wasm, { flags }, label);
    return new LoadedPlugin(plugin, crypto.createHash("sha256").update(wasm).digest("hex"), source);
  }
}

/** Bytes of a connection the parser offers to detection before the engine gives it up as
 *  unclaimed (`--max-detect-bytes`; the engine's own default, for `decode`, is larger). */
export const DEFAULT_MAX_DETECT_BYTES = 16 * 1024;

/** The loaded plugins and the engine that decodes connections with them (the DecoderHost). */
export class PluginSet implements DecoderHost {
  readonly registry = new PluginRegistry();
  readonly engine: ConnectionEngine;
  /** The engine's own counters (detection, traps, bytes by reason), reported with a prefix. */
  readonly engineCounters = new Counters();
  private readonly loaded = new Map<string, LoadedPlugin>();

  /** `engine`: options of the ConnectionEngine beyond the detection budget (tests: `batch: false`). */
  constructor(maxDetectBytes = DEFAULT_MAX_DETECT_BYTES, engine: Partial<Omit<EngineOptions, "counters" | "detectLimit">> = {}) {
    this.engine = new ConnectionEngine(this.registry, { ...engine, detectLimit: maxDetectBytes, counters: this.engineCounters });
  }

  /** Adds or replaces (by name) a plugin: new connections use it, open ones keep theirs. */
  put(p: LoadedPlugin): LoadedPlugin | undefined {
    const old = this.loaded.get(p.manifest.name);
    this.loaded.set(p.manifest.name, p);
    this.registry.add(p.plugin);
    return old;
  }

  remove(name: string): boolean {
    this.loaded.delete(name);
    return this.registry.remove(name);
  }

  get(name: string): LoadedPlugin | undefined {
    return this.loaded.get(name);
  }

  plugins(): LoadedPlugin[] {
    return [...this.loaded.values()];
  }

  open(hint: { roleKnown: boolean; serverPort: number; midstream?: boolean }): DecoderSession {
    return this.engine.open(hint);
  }

  /** A raw batch's steps in one feed_batch call per plugin instance (the sessions are the engine's). */
  batch<T>(onResult: (tag: T, r: StepResult) => void, opts: { eager: boolean }): DecoderBatch<T> {
    return this.engine.batch(onResult, opts);
  }
}
