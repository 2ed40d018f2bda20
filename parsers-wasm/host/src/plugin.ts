// A loaded plugin: its manifest, the validated (and fuel-metered) compiled module, and the
// instances that run it. Loading does every check up front so that a bad plugin is refused with
// one clear message: not WASM, bad manifest, wrong ABI, missing export, forbidden import, memory
// above the cap, trap in its start function.

import fs from "node:fs";
import path from "node:path";
import { PluginError } from "./errors.js";
import { BATCH_ENTRY, BATCH_PENDING, type BatchStage } from "./batch.js";
import { meterModule, FUEL_GET_EXPORT, FUEL_SET_EXPORT } from "./meter.js";
import { Wasm, type WasmMemory, type WasmModule } from "./wasm-api.js";

/** The newest ABI version this host speaks (docs/plugin-abi.md); it loads every version in ABI_VERSIONS. */
export const ABI_VERSION = 2;
export const ABI_VERSIONS: readonly number[] = [1, 2];

/** Exports every plugin has (ABI version 1). */
export const REQUIRED_EXPORTS = ["memory", "abi_version", "input_buffer", "detect", "conn_new", "conn_free", "feed", "gap", "close", "out_ptr", "out_len", "out_clear", "configure"] as const;
/** Exports a version 2 plugin has besides REQUIRED_EXPORTS. */
export const REQUIRED_EXPORTS_V2 = ["feed_batch", "conn_stats"] as const;

/** `<name>.json` beside `<name>.wasm`. */
export interface PluginManifest {
  name: string;
  version: string;
  abi: number;
  /** Values the plugin may write into Record.protocol (default: [name]). */
  protocols: string[];
  /** Server ports that hint at this protocol (detection is by content). */
  ports: number[];
  /** File name of the module, relative to the manifest (default `<name>.wasm`). */
  wasm: string;
}

export interface PluginOptions {
  /** Memory cap per instance, MiB (default 64): a larger declared maximum is lowered to it. */
  maxMemoryMiB: number;
  /** Fuel-meter loops so that runaway calls trap instead of hanging (default true). */
  meter: boolean;
  /** Loop iterations allowed per call: fuelBase + fuelPerByte × input bytes. */
  fuelBase: number;
  fuelPerByte: number;
  /** configure() flags: bit 0 = redact (bits 8..31 are set by the host: the memory cap in pages). */
  flags: number;
}

export const DEFAULT_PLUGIN_OPTIONS: PluginOptions = {
  maxMemoryMiB: 64,
  meter: true,
  fuelBase: 50_000_000,
  fuelPerByte: 256,
  flags: 0,
};

/** Why an instance died. */
export type TrapKind = "runaway" | "abort" | "stack" | "trap" | "memory" | "bad_output";

/** Thrown by PluginInstance calls when the instance traps; the instance is dead afterwards. */
export class PluginTrap extends Error {
  constructor(
    readonly kind: TrapKind,
    message: string,
    options?: { cause?: unknown },
    /** True for the call that killed the instance; false for later calls into the dead instance. */
    readonly first = true,
  ) {
    super(message, options);
    this.name = "PluginTrap";
  }
}

interface Exports {
  memory: WasmMemory;
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
  /** ABI v2: runs n batch entries at ptr (batch.ts); returns n. */
  feed_batch?(ptr: number, n: number): number;
  /** ABI v2: pointer to the growth of connection h's counters since their last report. */
  conn_stats?(h: number): number;
  /** Optional: the bytes a connection did not consume before it answered -4 (switched). */
  conn_tail?(h: number, dir: number): number;
}

/** Checks a manifest's shape and fills defaults; throws PluginError("bad_manifest" | "bad_abi"). */
export function validateManifest(m: unknown, where = "manifest"): PluginManifest {
  const o = m as Record<string, unknown> | null;
  if (!o || typeof o !== "object" || Array.isArray(o)) throw new PluginError("bad_manifest", `${where}: not a JSON object`);
  const name = o.name;
  if (typeof name !== "string" || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) {
    throw new PluginError("bad_manifest", `${where}: name ${JSON.stringify(name)} is not a plugin name (a-z, 0-9, _ and -, at most 64)`);
  }
  if (typeof o.version !== "string" || !o.version || o.version.length > 64) throw new PluginError("bad_manifest", `${where}: plugin ${name} has no version string`);
  if (typeof o.abi !== "number" || !ABI_VERSIONS.includes(o.abi)) throw new PluginError("bad_abi", `${where}: plugin ${name} declares ABI ${JSON.stringify(o.abi)}; this host speaks ABI ${ABI_VERSIONS.join(" and ")}`);
  const protocols = o.protocols ?? [name];
  if (!Array.isArray(protocols) || !protocols.every((p) => typeof p === "string" && p.length > 0 && p.length <= 64)) {
    throw new PluginError("bad_manifest", `${where}: protocols must be a list of names`);
  }
  const ports = o.ports ?? [];
  if (!Array.isArray(ports) || !ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
    throw new PluginError("bad_manifest", `${where}: ports must be a list of port numbers`);
  }
  const wasm = o.wasm ?? `${name}.wasm`;
  if (typeof wasm !== "string" || !wasm.endsWith(".wasm") || wasm.includes("/") || wasm.includes("\\")) {
    throw new PluginError("bad_manifest", `${where}: wasm must be a file name ending in .wasm beside the manifest`);
  }
  return { name, version: o.version, abi: o.abi, protocols: protocols as string[], ports: ports as number[], wasm };
}

let nextInstanceId = 1;

/** One instance of a plugin: linear memory and handle table shared by many connections. */
export class PluginInstance {
  readonly id = nextInstanceId++;
  private readonly x: Exports;
  private readonly fuelSet?: (v: number) => void;
  private readonly fuelGet?: () => number;
  private abortMessage?: string;
  /** Set once the instance trapped: every later call throws. */
  dead?: TrapKind;
  /** The plugin's ABI version: 2 takes batches (feedBatch) and reports counters (connStats). */
  readonly abi: number;
  /** Connection handles currently open on this instance. */
  live = 0;
  private u8 = new Uint8Array(0);
  private inPtr = 0;
  private inCap = 0;
  private readonly fuelBase: number;
  private readonly fuelPerByte: number;

  constructor(
    readonly plugin: Plugin,
    module: WasmModule,
  ) {
    const env = {
      abort: (msg: number, file: number, line: number, col: number) => {
        if (this) this.abortMessage = `${this.readString(msg) ?? "abort"} at ${this.readString(file) ?? "?"}:${line}:${col}`;
        throw new Wasm.RuntimeError("plugin called abort");
      },
    };
    let inst;
    try {
      inst = new Wasm.Instance(module, { env });
    } catch (e) {
      throw new PluginError("start_trap", `plugin ${plugin.name}: trapped while starting: ${(e as Error).message}`, { cause: e });
    }
    this.fuelBase = Math.min(0x7fffffff, plugin.options.fuelBase);
    this.fuelPerByte = plugin.options.fuelPerByte;
    this.x = inst.exports as unknown as Exports;
    this.abi = plugin.manifest.abi;
    this.fuelSet = inst.exports[FUEL_SET_EXPORT] as ((v: number) => void) | undefined;
    this.fuelGet = inst.exports[FUEL_GET_EXPORT] as (() => number) | undefined;
    // bits 8..31: the memory cap in 64 KiB pages, so that conn_new can refuse before it is reached
    const capPages = Math.min(0xffffff, Math.floor((plugin.options.maxMemoryMiB * 1024 * 1024) / 65536));
    this.call(0, () => this.x.configure((plugin.options.flags & 0xff) | (capPages << 8)));
  }

  /** An AssemblyScript string (UTF-16, byte length at ptr-4) for abort messages; undefined if implausible. */
  private readString(ptr: number): string | undefined {
    try {
      const buf = this.x.memory.buffer;
      if (!ptr || ptr < 4 || ptr + 4 > buf.byteLength) return undefined;
      const len = new DataView(buf).getUint32(ptr - 4, true);
      if (len > 4096 || ptr + len > buf.byteLength || len % 2) return undefined;
      return Buffer.from(buf, ptr, len).toString("utf16le");
    } catch {
      return undefined;
    }
  }

  /** Sets the fuel budget for a call with `len` input bytes; throws if the instance is dead. */
  private enter(len: number): void {
    if (this.dead) throw new PluginTrap(this.dead, `plugin ${this.plugin.name} instance ${this.id} is dead (${this.dead})`, undefined, false);
    if (this.fuelSet) this.fuelSet(Math.min(0x7fffffff, this.fuelBase + this.fuelPerByte * len));
  }

  /** Turns whatever a call threw into a PluginTrap and marks the instance dead. */
  private fail(e: unknown): PluginTrap {
    if (e instanceof PluginTrap) return e;
    let kind: TrapKind = "trap";
    const cap = this.plugin.options.maxMemoryMiB * 1024 * 1024;
    if (this.fuelGet && this.fuelGet() === 0) kind = "runaway";
    else if (this.x.memory.buffer.byteLength + 65536 * 16 > cap) kind = "memory"; // allocation failed at (near) the cap
    else if (this.abortMessage) kind = /out of memory|allocation too large/i.test(this.abortMessage) ? "memory" : "abort";
    else if (e instanceof RangeError) kind = /call stack/i.test(e.message) ? "stack" : "trap";
    this.dead = kind;
    const detail = this.abortMessage ?? (e as Error)?.message ?? String(e);
    return new PluginTrap(kind, `plugin ${this.plugin.name}: ${kind}: ${detail}`, { cause: e });
  }

  /** Runs one call (cold paths); hot paths inline enter/try/fail. */
  private call<T>(len: number, fn: () => T): T {
    this.enter(len);
    try {
      return fn();
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** A byte view of linear memory, renewed when memory grew (the old buffer is detached). */
  private mem(end: number): Uint8Array {
    // Memory only grows, and growing detaches the old buffer (length 0): a view that still
    // covers `end` is current. The Memory.buffer getter is not free on hot paths.
    if (this.u8.length < end) this.u8 = new Uint8Array(this.x.memory.buffer);
    return this.u8;
  }

  /**
   * Copies `bytes` into the plugin's input buffer and returns its address. The buffer is asked
   * for only when a larger one is needed: the ABI keeps it valid until the next input_buffer call.
   */
  private input(bytes: Uint8Array): number {
    const ptr = this.inputSpace(bytes.length);
    this.u8.set(bytes, ptr);
    return ptr;
  }

  /** The input buffer's address, at least `len` bytes long (this.u8 covers it). */
  private inputSpace(len: number): number {
    if (len > this.inCap || !this.inPtr) {
      this.enter(0);
      let ptr: number;
      try {
        ptr = this.x.input_buffer(Math.max(len, 4096));
      } catch (e) {
        throw this.fail(e);
      }
      this.inPtr = ptr;
      this.inCap = ptr ? Math.max(len, 4096) : 0;
    }
    const ptr = this.inPtr;
    const mem = this.mem(ptr + len);
    if (!ptr || ptr + len > mem.length) {
      this.dead = "memory";
      throw new PluginTrap("memory", `plugin ${this.plugin.name}: input_buffer(${len}) gave no usable buffer`);
    }
    return ptr;
  }

  abiVersion(): number {
    return this.call(0, () => this.x.abi_version());
  }

  /** Confidence 0..100 (clamped) that `bytes`, the first of direction `dir`, are this protocol. */
  detect(dir: number, bytes: Uint8Array): number {
    if (!bytes.length) return 0;
    const ptr = this.input(bytes);
    const s = this.call(bytes.length, () => this.x.detect(dir, ptr, bytes.length));
    return s < 0 ? 0 : s > 100 ? 100 : s | 0;
  }

  connNew(): number {
    const h = this.call(0, () => this.x.conn_new());
    if (h > 0) this.live++;
    return h;
  }

  connFree(h: number): void {
    if (this.dead) return;
    this.call(0, () => this.x.conn_free(h));
    this.live--;
  }

  /**
   * ABI v2: the growth of connection h's counters since their last report (conn_stats), written
   * into `out` as [errors, drops, dropped bytes]; false for a version 1 plugin or a dead instance.
   */
  connStats(h: number, out: number[]): boolean {
    const f = this.x.conn_stats;
    if (this.dead || typeof f !== "function") return false;
    return this.call(0, () => {
      const p = f.call(this.x, h);
      const mem = this.mem(p + 16);
      if (p <= 0 || p + 16 > mem.length) return false;
      const dv = new DataView(mem.buffer, p, 16);
      out[0] = dv.getUint32(0, true);
      out[1] = dv.getUint32(4, true);
      out[2] = dv.getUint32(8, true) + dv.getInt32(12, true) * 4294967296;
      return true;
    });
  }

  /**
   * ABI v2: runs the entries staged in `s` in one feed_batch call and leaves the answers in `s`
   * (status, records, counters per entry; s.done entries completed). A trap does not throw: it
   * is left in s.trap, the entries before the one that trapped keep their answers and records
   * (as if each had been its own call), the rest have none. The fuel budget of the call is
   * fuelBase + fuelPerByte × the batch's bytes.
   */
  feedBatch(s: BatchStage): void {
    s.done = 0;
    s.trap = undefined;
    s.records.length = 0;
    const headLen = s.n * BATCH_ENTRY;
    let ptr: number;
    try {
      ptr = this.inputSpace(headLen + s.dataLen);
      this.enter(s.dataLen);
    } catch (e) {
      s.trap = e instanceof PluginTrap ? e : this.fail(e);
      return;
    }
    const mem0 = this.u8;
    mem0.set(s.headBytes.subarray(0, headLen), ptr);
    mem0.set(s.data.subarray(0, s.dataLen), ptr + headLen);
    try {
      this.x.feed_batch!(ptr, s.n);
    } catch (e) {
      s.trap = this.fail(e);
    }
    const mem = this.mem(ptr + headLen);
    const dv = new DataView(mem.buffer, ptr, headLen);
    let done = 0;
    let outEnd = 0;
    for (; done < s.n; done++) {
      const o = done * BATCH_ENTRY;
      const st = dv.getInt32(o + 24, true);
      if (st === BATCH_PENDING) break;
      const end = dv.getInt32(o + 28, true);
      if (end < outEnd) break; // output that shrank cannot be split: checked below
      s.status[done] = st;
      s.outEnd[done] = outEnd = end;
      s.errors[done] = dv.getUint32(o + 32, true);
      s.drops[done] = dv.getUint32(o + 36, true);
      s.dropped[done] = dv.getUint32(o + 40, true) + dv.getInt32(o + 44, true) * 4294967296;
    }
    if (!s.trap && done < s.n) {
      this.dead = "bad_output";
      s.trap = new PluginTrap("bad_output", `plugin ${this.plugin.name}: feed_batch left entry ${done} of ${s.n} unanswered or its output shrank`);
    }
    if (done > 0) done = this.splitBatchOutput(s, done, outEnd);
    s.done = done;
  }

  /** Copies the batch's output once and cuts it into records per entry; returns the entries whose records are whole. */
  private splitBatchOutput(s: BatchStage, done: number, len: number): number {
    let base = 0;
    if (len > 0) {
      try {
        base = this.x.out_ptr();
      } catch {
        base = 0;
      }
    }
    const mem = this.mem(base + len);
    if (len > 0 && (base <= 0 || base + len > mem.length)) {
      this.dead = "bad_output";
      s.trap ??= new PluginTrap("bad_output", `plugin ${this.plugin.name}: output buffer [${base}, +${len}) outside memory`);
      return 0;
    }
    const bytes = Buffer.allocUnsafe(len);
    if (len > 0) bytes.set(new Uint8Array(mem.buffer, base, len));
    const copy = bytes.buffer;
    const at = bytes.byteOffset;
    let o = 0;
    for (let i = 0; i < done; i++) {
      const end = s.outEnd[i]!;
      while (o + 4 <= end) {
        const l = bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24);
        if (l < 0 || o + 4 + l > end) break;
        s.records.push(new Uint8Array(copy, at + o + 4, l));
        o += 4 + l;
      }
      if (o !== end) {
        this.dead = "bad_output";
        s.trap ??= new PluginTrap("bad_output", `plugin ${this.plugin.name}: output buffer holds a truncated record frame`);
        return i;
      }
      s.recEnd[i] = s.records.length;
    }
    if (!this.dead) {
      try {
        this.x.out_clear();
      } catch (e) {
        s.trap = this.fail(e);
      }
    }
    return done;
  }

  feed(h: number, dir: number, bytes: Uint8Array, ts: bigint): number {
    const ptr = this.input(bytes);
    // a number where an i64 is expected would throw inside the call and look like a trap
    if (typeof ts !== "bigint") ts = BigInt(Math.trunc(Number(ts) || 0));
    this.enter(bytes.length);
    try {
      return this.x.feed(h, dir, ptr, bytes.length, ts);
    } catch (e) {
      throw this.fail(e);
    }
  }

  gap(h: number, dir: number, len: number, ts: bigint): number {
    const t = typeof ts === "bigint" ? ts : BigInt(Math.trunc(Number(ts) || 0));
    const n = Number.isFinite(len) ? Math.max(0, Math.min(Math.trunc(len), 0x7fffffff)) : 0;
    return this.call(0, () => this.x.gap(h, dir, n, t));
  }

  close(h: number, ts: bigint): number {
    const t = typeof ts === "bigint" ? ts : BigInt(Math.trunc(Number(ts) || 0));
    return this.call(0, () => this.x.close(h, t));
  }

  /**
   * After a feed answered -4 (switched): the bytes of plugin direction `dir` the plugin did not
   * consume, copied out (they are the first of what the connection now carries); undefined when
   * the plugin does not export conn_tail. Call take() first: conn_tail reuses the output buffer.
   */
  connTail(h: number, dir: number): Uint8Array | undefined {
    const f = this.x.conn_tail;
    if (typeof f !== "function") return undefined;
    return this.call(0, () => {
      const n = f.call(this.x, h, dir);
      const base = this.x.out_ptr();
      const mem = this.mem(base + Math.max(0, n));
      if (n < 0 || (n > 0 && (base <= 0 || base + n > mem.length))) {
        this.dead = "bad_output";
        throw new PluginTrap("bad_output", `plugin ${this.plugin.name}: conn_tail gave [${base}, +${n}) outside memory`);
      }
      const out = Uint8Array.from(mem.subarray(base, base + n));
      this.x.out_clear();
      return out;
    });
  }

  /**
   * Takes the records waiting in the output buffer and clears it. The buffer is copied out once;
   * each record is a view into that copy. A malformed frame kills the instance (its output
   * cannot be trusted).
   */
  take(out: Uint8Array[]): number {
    this.enter(0);
    let len: number;
    let base: number;
    try {
      len = this.x.out_len();
      if (len === 0) return 0;
      base = this.x.out_ptr();
    } catch (e) {
      throw this.fail(e);
    }
    if (len < 0) {
      // a plugin whose output length went negative has been writing outside its buffer
      this.dead = "bad_output";
      throw new PluginTrap("bad_output", `plugin ${this.plugin.name}: negative output length ${len}`);
    }
    const mem = this.mem(base + len);
    if (base <= 0 || base + len > mem.length) {
      this.dead = "bad_output";
      throw new PluginTrap("bad_output", `plugin ${this.plugin.name}: output buffer [${base}, +${len}) outside memory`);
    }
    // TypedArray slice/subarray go through the species protocol and are slow in V8; plain
    // constructors over one copied buffer are not.
    // Buffer.allocUnsafe takes small sizes from a shared slab: no ArrayBuffer per call.
    const bytes = Buffer.allocUnsafe(len);
    bytes.set(new Uint8Array(mem.buffer, base, len));
    const copy = bytes.buffer;
    const at = bytes.byteOffset;
    let o = 0;
    let n = 0;
    while (o + 4 <= len) {
      const l = bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24);
      if (l < 0 || o + 4 + l > len) break;
      out.push(new Uint8Array(copy, at + o + 4, l));
      o += 4 + l;
      n++;
    }
    try {
      this.x.out_clear();
    } catch (e) {
      throw this.fail(e);
    }
    if (o !== len) {
      this.dead = "bad_output";
      throw new PluginTrap("bad_output", `plugin ${this.plugin.name}: output buffer holds a truncated record frame`);
    }
    return n;
  }

  /** Bytes of linear memory in use (grows, never shrinks). */
  memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }
}

/** A validated plugin: manifest + compiled module. Instances are made on demand. */
export class Plugin {
  readonly name: string;
  readonly version: string;
  /** Loops the meter instrumented (0 when unmetered). */
  readonly loops: number;
  private current?: PluginInstance;
  private detector?: PluginInstance;
  /** Instances made after a trap (counted by the engine as well). */
  restarts = 0;
  /** Counter name for records decoded by this plugin (built once: hot path). */
  readonly recordsCounter: string;
  /** Counter names for what an ABI v2 plugin reports per connection: errors, drops, bytes dropped. */
  readonly statsCounters: readonly [string, string, string];

  private constructor(
    readonly manifest: PluginManifest,
    readonly module: WasmModule,
    readonly options: PluginOptions,
    loops: number,
    readonly source: string,
  ) {
    this.name = manifest.name;
    this.version = manifest.version;
    this.loops = loops;
    this.recordsCounter = `records.${manifest.name}`;
    this.statsCounters = [`plugin_errors.${manifest.name}`, `plugin_drops.${manifest.name}`, `plugin_bytes_dropped.${manifest.name}`];
  }

  /**
   * Validates and compiles a plugin from its manifest object and module bytes. Throws
   * PluginError with a code and a one-line message.
   */
  static fromBytes(manifest: unknown, wasm: Uint8Array, options: Partial<PluginOptions> = {}, source = "<bytes>"): Plugin {
    const opts = { ...DEFAULT_PLUGIN_OPTIONS, ...options };
    const m = validateManifest(manifest, source);
    const maxPages = Math.floor((opts.maxMemoryMiB * 1024 * 1024) / 65536);
    let metered;
    try {
      metered = meterModule(wasm, { maxPages, meter: opts.meter, startFuel: opts.fuelBase });
    } catch (e) {
      if (e instanceof PluginError) throw new PluginError(e.code, `plugin ${m.name} (${source}): ${e.message}`, { cause: e });
      throw new PluginError("not_wasm", `plugin ${m.name} (${source}): not a valid WebAssembly module: ${(e as Error).message}`, { cause: e });
    }
    const bad = metered.imports.filter((i) => !(i.module === "env" && i.name === "abort" && i.kind === 0));
    if (bad.length) {
      throw new PluginError("bad_import", `plugin ${m.name} (${source}): imports ${bad.map((i) => `${i.module}.${i.name}`).join(", ")}; only env.abort is allowed`);
    }
    let module: WasmModule;
    try {
      module = new Wasm.Module(metered.binary);
    } catch (e) {
      throw new PluginError("not_wasm", `plugin ${m.name} (${source}): not a valid WebAssembly module: ${(e as Error).message.split("\n")[0]}`, { cause: e });
    }
    const exports = new Map(Wasm.Module.exports(module).map((e) => [e.name, e.kind]));
    for (const name of m.abi >= 2 ? [...REQUIRED_EXPORTS, ...REQUIRED_EXPORTS_V2] : REQUIRED_EXPORTS) {
      const kind = exports.get(name);
      const want = name === "memory" ? "memory" : "function";
      if (kind !== want) throw new PluginError("missing_export", `plugin ${m.name} (${source}): missing export ${name} (${want})`);
    }
    const p = new Plugin(m, module, opts, metered.loops, source);
    const inst = p.instance(); // start function, configure, abi_version: traps here are load errors
    let v;
    try {
      v = inst.abiVersion();
    } catch (e) {
      throw new PluginError("start_trap", `plugin ${m.name} (${source}): abi_version trapped: ${(e as Error).message}`, { cause: e });
    }
    if (v !== m.abi) throw new PluginError("bad_abi", `plugin ${m.name} (${source}): abi_version() returned ${v}; its manifest declares ABI ${m.abi}`);
    return p;
  }

  /** Loads `<name>.json` (or the `.wasm` beside it) from disk. */
  static fromFile(file: string, options: Partial<PluginOptions> = {}): Plugin {
    const manifestPath = file.endsWith(".wasm") ? file.replace(/\.wasm$/, ".json") : file;
    let manifest: unknown;
    try {
      manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code) throw new PluginError("io", `${manifestPath}: cannot read manifest: ${code}`, { cause: e });
      throw new PluginError("bad_manifest", `${manifestPath}: manifest is not JSON: ${(e as Error).message}`, { cause: e });
    }
    const m = validateManifest(manifest, manifestPath);
    const wasmPath = path.join(path.dirname(manifestPath), m.wasm);
    let wasm: Uint8Array;
    try {
      wasm = fs.readFileSync(wasmPath);
    } catch (e) {
      throw new PluginError("io", `${wasmPath}: cannot read plugin module: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    return Plugin.fromBytes(manifest, wasm, options, wasmPath);
  }

  /** The instance new connections go to (made afresh after a trap or when full). */
  instance(): PluginInstance {
    if (!this.current || this.current.dead) {
      if (this.current) this.restarts++;
      this.current = new PluginInstance(this, this.module);
    }
    return this.current;
  }

  /** Starts a new current instance (the old one keeps its connections). */
  freshInstance(): PluginInstance {
    this.current = new PluginInstance(this, this.module);
    return this.current;
  }

  /** A separate instance for detect(), so that a detector trap never costs live connections. */
  detectInstance(): PluginInstance {
    if (!this.detector || this.detector.dead) this.detector = new PluginInstance(this, this.module);
    return this.detector;
  }

  /** Figures for status pages: the current instance's memory and open handles, restarts after traps. */
  stats(): { name: string; version: string; memoryBytes: number; connections: number; restarts: number; loops: number } {
    const i = this.current && !this.current.dead ? this.current : undefined;
    return { name: this.name, version: this.version, memoryBytes: i?.memoryBytes() ?? 0, connections: i?.live ?? 0, restarts: this.restarts, loops: this.loops };
  }

  /** True when `port` is one of the manifest's hint ports. */
  hints(port: number | undefined): boolean {
    return port !== undefined && this.manifest.ports.includes(port);
  }
}
