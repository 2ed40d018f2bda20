// Runs protocol plugins (docs/plugin-abi.md) in this process and implements the connection
// table's DecoderHost over them: detection across every loaded plugin, then one plugin per
// connection. Validation refuses a bad plugin with a clear message; a trap ends that plugin's
// instance (its connections are dropped, counted) and a fresh instance serves new connections.
// Replacing a plugin (same name, new version) affects new connections only: open sessions keep
// the instance they started with.
import crypto from "node:crypto";
import { WirescopeError, type Counters } from "@wirescope/common";
import type { DecoderHost, DecoderSession, Dir, StepResult } from "./decoder.js";

/** A plugin that cannot be loaded; `code` says which check failed. */
export class PluginError extends WirescopeError {}

export interface PluginManifest {
  name: string;
  version: string;
  abi: number;
  protocols?: string[];
  ports?: number[];
  wasm?: string;
}

const ABI_VERSION = 1;
const MAX_PAGES = 1024; // 64 MiB
const REQUIRED = ["memory", "abi_version", "input_buffer", "detect", "conn_new", "conn_free", "feed", "gap", "close", "out_ptr", "out_len", "out_clear", "configure"];
const CLAIM = 50;

interface Exports {
  memory: WebAssembly.Memory;
  abi_version(): number;
  input_buffer(len: number): number;
  detect(dir: number, ptr: number, len: number): number;
  conn_new(): number;
  conn_free(h: number): void;
  feed(h: number, dir: number, ptr: number, len: number, ts: bigint): number;
  gap(h: number, dir: number, len: number, ts: bigint): number;
  close(h: number, ts: bigint): number;
  out_ptr(): number;
  out_len(): number;
  out_clear(): void;
  configure(flags: number): void;
}

/** Checks a manifest's shape; throws PluginError. */
export function validateManifest(m: unknown): PluginManifest {
  const o = m as Partial<PluginManifest> | null;
  if (!o || typeof o !== "object") throw new PluginError("manifest", "manifest is not a JSON object");
  if (typeof o.name !== "string" || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(o.name)) throw new PluginError("manifest", `manifest name ${JSON.stringify(o.name)} is not a plugin name ([a-z0-9_-], at most 64)`);
  if (typeof o.version !== "string" || !o.version) throw new PluginError("manifest", "manifest has no version");
  if (o.abi !== ABI_VERSION) throw new PluginError("abi", `plugin ${o.name} declares ABI ${JSON.stringify(o.abi)}; this host speaks ABI ${ABI_VERSION}`);
  return o as PluginManifest;
}

/** One instance of a compiled plugin. */
class Instance {
  readonly x: Exports;
  dead = false;
  constructor(module: WebAssembly.Module, flags: number) {
    const inst = new WebAssembly.Instance(module, {
      env: {
        abort: () => {
          throw new WebAssembly.RuntimeError("plugin called abort");
        },
      },
    });
    this.x = inst.exports as unknown as Exports;
    this.x.configure(flags);
  }
  /** Copies bytes into the plugin's input buffer; returns the pointer (0: no room). */
  input(bytes: Uint8Array): number {
    const ptr = this.x.input_buffer(bytes.length);
    if (!ptr) return 0;
    new Uint8Array(this.x.memory.buffer, ptr, bytes.length).set(bytes);
    return ptr;
  }
  /** Takes the output buffer's records (copies), then clears it. */
  take(): Uint8Array[] {
    const len = this.x.out_len();
    if (!len) return [];
    const base = this.x.out_ptr();
    const mem = new Uint8Array(this.x.memory.buffer, base, len);
    const out: Uint8Array[] = [];
    let i = 0;
    while (i + 4 <= len) {
      const n = mem[i]! | (mem[i + 1]! << 8) | (mem[i + 2]! << 16) | (mem[i + 3]! << 24);
      i += 4;
      if (n < 0 || i + n > len) break;
      out.push(mem.slice(i, i + n));
      i += n;
    }
    this.x.out_clear();
    return out;
  }
}

export class LoadedPlugin {
  private instance: Instance;
  traps = 0;
  constructor(
    readonly manifest: PluginManifest,
    readonly module: WebAssembly.Module,
    readonly sha256: string,
    readonly source: string,
    readonly flags: number,
  ) {
    this.instance = new Instance(module, flags);
  }

  /** Validates and instantiates: bad bytes, wrong imports, missing exports, too much memory,
   *  a wrong ABI version or a trap at start are refused with a PluginError. */
  static load(manifestJson: unknown, wasm: Uint8Array, source: string, redact: (protocol: string) => boolean): LoadedPlugin {
    const m = validateManifest(manifestJson);
    const what = `plugin ${m.name} ${m.version}`;
    if (!WebAssembly.validate(wasm)) throw new PluginError("not_wasm", `${what}: not a valid WebAssembly module`);
    const module = new WebAssembly.Module(wasm);
    for (const imp of WebAssembly.Module.imports(module)) {
      if (!(imp.module === "env" && imp.name === "abort")) throw new PluginError("imports", `${what}: imports ${imp.module}.${imp.name}; only env.abort is allowed`);
    }
    const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    const missing = REQUIRED.filter((n) => !exported.has(n));
    if (missing.length) throw new PluginError("exports", `${what}: missing exports ${missing.join(", ")}`);
    const maxPages = declaredMaxPages(wasm);
    if (maxPages === undefined || maxPages > MAX_PAGES) throw new PluginError("memory", `${what}: memory maximum ${maxPages ?? "unbounded"} pages exceeds the ${MAX_PAGES}-page (64 MiB) cap`);
    const flags = (m.protocols ?? [m.name]).some((p) => redact(p)) ? 1 : 0;
    let p: LoadedPlugin;
    try {
      p = new LoadedPlugin(m, module, crypto.createHash("sha256").update(wasm).digest("hex"), source, flags);
      const v = p.instance.x.abi_version();
      if (v !== ABI_VERSION) throw new PluginError("abi", `${what}: abi_version() returned ${v}, expected ${ABI_VERSION}`);
    } catch (e) {
      if (e instanceof PluginError) throw e;
      throw new PluginError("start_trap", `${what}: trapped at start: ${(e as Error).message}`, { cause: e });
    }
    return p;
  }

  get current(): Instance {
    if (this.instance.dead) this.instance = new Instance(this.module, this.flags);
    return this.instance;
  }
}

/** Reads the maximum page count of the first memory the module defines (or exports). */
function declaredMaxPages(wasm: Uint8Array): number | undefined {
  let i = 8;
  const u = () => {
    let r = 0;
    let s = 0;
    for (;;) {
      const b = wasm[i++]!;
      r += (b & 0x7f) * 2 ** s;
      if (b < 0x80) return r;
      s += 7;
    }
  };
  while (i < wasm.length) {
    const id = wasm[i++]!;
    const size = u();
    const end = i + size;
    if (id === 5) {
      const count = u();
      if (count < 1) return undefined;
      const flag = u();
      u(); // min
      return flag & 1 ? u() : undefined;
    }
    i = end;
  }
  return undefined;
}

interface Chunk {
  dir: Dir;
  bytes: Uint8Array;
  ts: bigint;
}

/** The set of loaded plugins; the DecoderHost of the connection table. */
export class PluginSet implements DecoderHost {
  private readonly byName = new Map<string, LoadedPlugin>();
  private list: LoadedPlugin[] = [];

  constructor(
    private readonly counters: Counters,
    private readonly maxDetectBytes = 16 * 1024,
  ) {}

  /** Adds or replaces (by name) a plugin; returns the one it replaced. */
  put(p: LoadedPlugin): LoadedPlugin | undefined {
    const old = this.byName.get(p.manifest.name);
    this.byName.set(p.manifest.name, p);
    this.list = [...this.byName.values()];
    return old;
  }

  remove(name: string): boolean {
    const ok = this.byName.delete(name);
    this.list = [...this.byName.values()];
    return ok;
  }

  get(name: string): LoadedPlugin | undefined {
    return this.byName.get(name);
  }

  plugins(): LoadedPlugin[] {
    return this.list;
  }

  open(hint: { roleKnown: boolean }): DecoderSession {
    return new WasmSession(this, hint.roleKnown);
  }

  /** Best claim over all plugins for these first bytes; flips when the other direction fits better. */
  detect(chunks: Chunk[], roleKnown: boolean): { plugin: LoadedPlugin; flip: boolean } | undefined {
    let best: { plugin: LoadedPlugin; flip: boolean } | undefined;
    let bestScore = CLAIM - 1;
    const joined: [Uint8Array, Uint8Array] = [concat(chunks, 0, this.maxDetectBytes), concat(chunks, 1, this.maxDetectBytes)];
    for (const p of this.list) {
      for (const dir of [0, 1] as Dir[]) {
        const bytes = joined[dir];
        if (!bytes.length) continue;
        for (const flip of roleKnown ? [false] : [false, true]) {
          const score = this.call(p, (x) => {
            const ptr = x.input(bytes);
            return ptr ? x.x.detect(flip ? 1 - dir : dir, ptr, bytes.length) : 0;
          });
          if (score !== undefined && score > bestScore) {
            bestScore = score;
            best = { plugin: p, flip };
          }
        }
      }
    }
    return best;
  }

  /** Runs `fn` on the plugin's current instance; a trap kills the instance and returns undefined. */
  call<T>(p: LoadedPlugin, fn: (i: Instance) => T, inst: Instance = p.current): T | undefined {
    if (inst.dead) return undefined;
    try {
      return fn(inst);
    } catch (e) {
      if (!(e instanceof WebAssembly.RuntimeError) && !(e instanceof RangeError)) throw e;
      inst.dead = true;
      p.traps++;
      this.counters.add(`plugin_traps.${p.manifest.name}`);
      return undefined;
    }
  }
}

function concat(chunks: Chunk[], dir: Dir, max: number): Uint8Array {
  const parts = chunks.filter((c) => c.dir === dir).map((c) => c.bytes);
  const n = Math.min(max, parts.reduce((a, b) => a + b.length, 0));
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    if (i >= n) break;
    const take = p.subarray(0, n - i);
    out.set(take, i);
    i += take.length;
  }
  return out;
}

const DETECTING: StepResult = { records: [], state: "detecting" };

class WasmSession implements DecoderSession {
  private chunks: Chunk[] = [];
  private plugin: LoadedPlugin | undefined;
  private inst: { x: Exports; dead: boolean; input(b: Uint8Array): number; take(): Uint8Array[] } | undefined;
  private handle = 0;
  private flip = false;
  private broken: string | undefined;

  constructor(
    private readonly set: PluginSet,
    private readonly roleKnown: boolean,
  ) {}

  data(dir: Dir, bytes: Uint8Array, ts: bigint): StepResult {
    if (!this.plugin) {
      this.chunks.push({ dir, bytes: bytes.slice(), ts });
      const found = this.set.detect(this.chunks, this.roleKnown);
      if (!found) return DETECTING;
      return this.claim(found.plugin, found.flip);
    }
    return this.step((i) => {
      const ptr = i.input(bytes);
      if (!ptr) return -3;
      return i.x.feed(this.handle, this.d(dir), ptr, bytes.length, ts);
    });
  }

  gap(dir: Dir, len: number, ts: bigint): StepResult {
    if (!this.plugin) {
      // Nothing claimed yet: forget what we held, detection starts over after the hole.
      this.chunks = this.chunks.filter((c) => c.dir !== dir);
      return DETECTING;
    }
    return this.step((i) => i.x.gap(this.handle, this.d(dir), len, ts));
  }

  close(ts: bigint): StepResult {
    if (!this.plugin) return DETECTING;
    return this.step((i) => i.x.close(this.handle, ts));
  }

  free(): void {
    if (this.plugin && this.inst && !this.inst.dead && this.handle > 0) this.set.call(this.plugin, (i) => i.x.conn_free(this.handle), this.inst as never);
    this.handle = 0;
  }

  private d(dir: Dir): number {
    return this.flip ? 1 - dir : dir;
  }

  private claim(p: LoadedPlugin, flip: boolean): StepResult {
    this.plugin = p;
    this.flip = flip;
    this.inst = p.current;
    const h = this.set.call(p, (i) => i.x.conn_new(), this.inst as never);
    if (h === undefined) return { records: [], state: "rejected", reason: "plugin_trap" };
    if (h <= 0) return { records: [], state: "rejected", reason: "plugin_full" };
    this.handle = h;
    const held = this.chunks;
    this.chunks = [];
    const records: Uint8Array[] = [];
    for (const c of held) {
      const r = this.step((i) => {
        const ptr = i.input(c.bytes);
        if (!ptr) return -3;
        return i.x.feed(this.handle, this.d(c.dir), ptr, c.bytes.length, c.ts);
      });
      records.push(...r.records);
      if (r.state === "rejected") return { ...r, records };
    }
    return { records, state: "decoding" };
  }

  private step(fn: (i: Instance) => number): StepResult {
    if (this.broken) return { records: [], state: "rejected", reason: this.broken };
    const inst = this.inst as Instance;
    let records: Uint8Array[] = [];
    const n = this.set.call(this.plugin!, (i) => {
      const r = fn(i);
      if (r > 0) records = i.take();
      return r;
    }, inst);
    if (n === undefined) {
      this.broken = "plugin_trap";
      this.handle = 0;
      return { records: [], state: "rejected", reason: "plugin_trap" };
    }
    if (n < 0) {
      this.broken = n === -1 ? "not_this_protocol" : n === -2 ? "plugin_unrecoverable" : "plugin_conn_limit";
      return { records, state: "rejected", reason: this.broken };
    }
    return { records, state: "decoding" };
  }
}
