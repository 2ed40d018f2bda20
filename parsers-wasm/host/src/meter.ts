// Runaway protection by fuel metering: the host rewrites a plugin's WebAssembly binary so that
// every loop iteration decrements a global counter and traps (`unreachable`) when it reaches 0.
// Before each call the host sets the counter to a budget proportional to the input size, so a
// call that loops for ever (or just far too long) traps instead of hanging the thread, and the
// host tells a runaway from other traps by the counter being 0. Straight-line code cannot run
// long, and unbounded recursion ends in a stack overflow (a RangeError the host also catches).
//
// Why not a worker with a watchdog: every feed would cross threads (microseconds each, against a
// budget of ~2 µs per record) and the host API would have to become asynchronous. Metering keeps
// calls synchronous; its cost is measured by the decode benchmark (metered vs unmetered).
//
// The same pass lowers the module's memory maximum to the host's cap and collects what the
// loader validates (imports, memory limits). It understands the instruction set AssemblyScript,
// Rust, C and TinyGo emit (MVP, sign-extension, saturating conversions, bulk memory, reference
// types, SIMD, relaxed SIMD, threads, exceptions, tail calls, multi-value); GC instructions are
// refused with a clear error.
//
//   in every function that has a loop, the count lives in a new local $f (a register):
//     on entry and after each call:         global.get $fuel  local.set $f
//     before each call, return and exit:    local.get $f  global.set $fuel
//     at the start of every loop body:      local.get $f  i32.eqz  if  i32.const 0  global.set $fuel  unreachable  end
//                                           local.get $f  i32.const 1  i32.sub  local.set $f
//   (functions without loops are left as they are)

import { PluginError } from "./errors.js";

/**
 * Exports through which the host sets and reads the fuel counter. Functions rather than an
 * exported global: V8 keeps an exported mutable global boxed, which makes every loop check pay
 * an extra load, and a call into wasm is cheaper than the Global.value accessor.
 */
export const FUEL_SET_EXPORT = "__wirescope_fuel_set";
export const FUEL_GET_EXPORT = "__wirescope_fuel_get";

export interface MeterResult {
  /** The rewritten module (metered when asked). */
  binary: Uint8Array;
  imports: { module: string; name: string; kind: number }[];
  /** Declared memory limits in 64 KiB pages (max undefined when the module declared none). */
  memory?: { min: number; max?: number };
  loops: number;
}

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly end = b.length,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw new PluginError("not_wasm", "truncated WebAssembly binary");
    return this.b[this.pos++]!;
  }
  u32(): number {
    let r = 0;
    let shift = 0;
    for (;;) {
      const x = this.byte();
      r += (x & 0x7f) * 2 ** shift;
      if (!(x & 0x80)) break;
      shift += 7;
      if (shift > 35) throw new PluginError("not_wasm", "malformed LEB128 in WebAssembly binary");
    }
    return r;
  }
  /** Skips a signed or unsigned LEB of any length up to `max` bytes. */
  skipLeb(max = 10): void {
    for (let i = 0; i < max; i++) if (!(this.byte() & 0x80)) return;
    throw new PluginError("not_wasm", "malformed LEB128 in WebAssembly binary");
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new PluginError("not_wasm", "truncated WebAssembly binary");
    this.pos += n;
  }
  name(): string {
    const n = this.u32();
    const s = Buffer.from(this.b.subarray(this.pos, this.pos + n)).toString("utf8");
    this.skip(n);
    return s;
  }
}

class Writer {
  private buf = new Uint8Array(1024);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let c = this.buf.length * 2;
    while (c < this.len + n) c *= 2;
    const nb = new Uint8Array(c);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }
  byte(x: number): void {
    this.room(1);
    this.buf[this.len++] = x;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  u32(v: number): void {
    do {
      let x = v % 128;
      v = Math.floor(v / 128);
      if (v) x |= 0x80;
      this.byte(x);
    } while (v);
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function leb(v: number): Uint8Array {
  const w = new Writer();
  w.u32(v);
  return w.done();
}

/** Signed LEB128 of a non-negative 32-bit value (i32.const immediate). */
function sleb32(v: number): Uint8Array {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v === 0 && !(b & 0x40)) {
      out.push(b);
      return Uint8Array.from(out);
    }
    out.push(b | 0x80);
  }
}

/** Reads a value type (possibly a GC reference type with a heap type). */
function skipValType(r: Reader): void {
  const t = r.byte();
  if (t === 0x63 || t === 0x64) r.skipLeb(5);
}

function skipBlockType(r: Reader): void {
  const t = r.b[r.pos];
  if (t === 0x63 || t === 0x64) {
    r.byte();
    r.skipLeb(5);
  } else r.skipLeb(5);
}

function skipMemarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory index
  r.skipLeb(10);
}

/** Where the rewriter inserts code in one function body. */
interface BodyPlan {
  /** End of the locals declarations (where the body's instructions start). */
  localsEnd: number;
  /** Locals declared (not counting parameters). */
  declared: number;
  /** Offsets just after each `loop` header. */
  loops: number[];
  /** Offsets of instructions before which the local fuel is written back to the global. */
  saves: number[];
  /** Offsets just after calls, where the local fuel is reloaded from the global. */
  loads: number[];
}

/**
 * Walks one function body's instructions and plans the insertions: the loop checks, and (for the
 * local-counter scheme) write-backs before calls and function exits and reloads after calls.
 * Throws PluginError on an instruction it does not know.
 */
function walkBody(r: Reader): BodyPlan {
  const plan: BodyPlan = { localsEnd: 0, declared: 0, loops: [], saves: [], loads: [] };
  const groups = r.u32();
  for (let i = 0; i < groups; i++) {
    plan.declared += r.u32();
    skipValType(r);
  }
  plan.localsEnd = r.pos;
  let depth = 0; // open blocks inside the function; the function's own label is `depth`
  while (r.pos < r.end) {
    const at = r.pos;
    const op = r.byte();
    switch (true) {
      case op === 0x02 || op === 0x04 || op === 0x06:
        skipBlockType(r);
        depth++;
        break;
      case op === 0x03:
        skipBlockType(r);
        depth++;
        plan.loops.push(r.pos);
        break;
      case op === 0x0b:
        if (depth === 0) plan.saves.push(at); // the function's end
        else depth--;
        break;
      case op === 0x0f: // return
        plan.saves.push(at);
        break;
      case op === 0x00 || op === 0x01 || op === 0x05 || op === 0x0a || op === 0x19 || op === 0x1a || op === 0x1b:
        break;
      case op === 0x0c || op === 0x0d || op === 0xd5 || op === 0xd6: {
        // br, br_if, br_on_null, br_on_non_null: an exit when aimed at the function's label
        if (r.u32() === depth) plan.saves.push(at);
        break;
      }
      case op === 0x18: // delegate ends a try
        r.u32();
        depth--;
        break;
      case op === 0x07 || op === 0x08 || op === 0x09:
        r.u32();
        break;
      case op === 0x10 || op === 0x14: // call, call_ref
        r.u32();
        plan.saves.push(at);
        plan.loads.push(r.pos);
        break;
      case op === 0x12 || op === 0x15: // return_call, return_call_ref
        r.u32();
        plan.saves.push(at);
        break;
      case op === 0x0e: {
        const n = r.u32();
        let exits = false;
        for (let i = 0; i <= n; i++) if (r.u32() === depth) exits = true;
        if (exits) plan.saves.push(at);
        break;
      }
      case op === 0x11: // call_indirect
        r.u32();
        r.u32();
        plan.saves.push(at);
        plan.loads.push(r.pos);
        break;
      case op === 0x13: // return_call_indirect
        r.u32();
        r.u32();
        plan.saves.push(at);
        break;
      case op === 0x1c: {
        const n = r.u32();
        for (let i = 0; i < n; i++) skipValType(r);
        break;
      }
      case op === 0x1f: {
        skipBlockType(r);
        depth++;
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const k = r.byte();
          if (k === 0x00 || k === 0x01) r.u32();
          r.u32();
        }
        break;
      }
      case op >= 0x20 && op <= 0x26:
        r.u32();
        break;
      case op >= 0x28 && op <= 0x3e:
        skipMemarg(r);
        break;
      case op === 0x3f || op === 0x40:
        r.u32();
        break;
      case op === 0x41:
        r.skipLeb(5);
        break;
      case op === 0x42:
        r.skipLeb(10);
        break;
      case op === 0x43:
        r.skip(4);
        break;
      case op === 0x44:
        r.skip(8);
        break;
      case op >= 0x45 && op <= 0xc4:
        break;
      case op === 0xd0:
        r.skipLeb(5);
        break;
      case op === 0xd1 || op === 0xd3 || op === 0xd4:
        break;
      case op === 0xd2:
        r.u32();
        break;
      case op === 0xfc: {
        const s = r.u32();
        if (s <= 7) break;
        if (s === 8 || s === 10 || s === 12 || s === 14) {
          r.u32();
          r.u32();
        } else if (s === 9 || s === 11 || s === 13 || (s >= 15 && s <= 17)) r.u32();
        else throw new PluginError("unsupported", `unsupported instruction 0xfc ${s}`);
        break;
      }
      case op === 0xfd: {
        const s = r.u32();
        if (s <= 11 || s === 92 || s === 93) skipMemarg(r);
        else if (s === 12 || s === 13) r.skip(16);
        else if (s >= 21 && s <= 34) r.skip(1);
        else if (s >= 84 && s <= 91) {
          skipMemarg(r);
          r.skip(1);
        }
        break;
      }
      case op === 0xfe: {
        const s = r.u32();
        if (s === 3) r.skip(1);
        else skipMemarg(r);
        break;
      }
      default:
        throw new PluginError("unsupported", `unsupported WebAssembly instruction 0x${op.toString(16)} (GC and other proposals are not accepted in plugins)`);
    }
  }
  return plan;
}

/**
 * Parses a plugin binary, lowers its memory maximum to `maxPages` (refusing a module whose
 * initial memory is larger), and, when `meter` is true, adds the fuel counter and the loop checks.
 */
export function meterModule(input: Uint8Array, opts: { maxPages: number; meter: boolean; startFuel?: number }): MeterResult {
  if (input.length < 8 || input[0] !== 0 || input[1] !== 0x61 || input[2] !== 0x73 || input[3] !== 0x6d) {
    throw new PluginError("not_wasm", "not a WebAssembly module (no \\0asm magic)");
  }
  if (input[4] !== 1 || input[5] !== 0 || input[6] !== 0 || input[7] !== 0) {
    throw new PluginError("not_wasm", `unsupported WebAssembly binary version ${input[4]}`);
  }
  const sections: { id: number; body: Uint8Array }[] = [];
  const r = new Reader(input);
  r.pos = 8;
  while (r.pos < input.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    r.skip(size);
    sections.push({ id, body: input.subarray(start, start + size) });
  }

  const imports: MeterResult["imports"] = [];
  let importedGlobals = 0;
  let definedGlobals = 0;
  let importedFuncs = 0;
  let definedFuncs = -1;
  let types = -1;
  /** Parameter count of each type, and the type of each defined function. */
  const typeParams: number[] = [];
  const funcTypes: number[] = [];
  let memory: MeterResult["memory"];
  let loops = 0;

  for (const s of sections) {
    const sr = new Reader(s.body);
    if (s.id === 2) {
      const n = sr.u32();
      for (let i = 0; i < n; i++) {
        const module = sr.name();
        const name = sr.name();
        const kind = sr.byte();
        imports.push({ module, name, kind });
        if (kind === 0) {
          sr.u32();
          importedFuncs++;
        }
        else if (kind === 1) {
          skipValType(sr);
          const f = sr.byte();
          sr.u32();
          if (f & 1) sr.u32();
        } else if (kind === 2) {
          const f = sr.byte();
          const min = sr.u32();
          const max = f & 1 ? sr.u32() : undefined;
          memory = { min, max };
        } else if (kind === 3) {
          skipValType(sr);
          sr.byte();
          importedGlobals++;
        } else if (kind === 4) {
          sr.byte();
          sr.u32();
        } else throw new PluginError("not_wasm", `unknown import kind ${kind}`);
      }
    } else if (s.id === 6) {
      definedGlobals = sr.u32();
    } else if (s.id === 3) {
      definedFuncs = sr.u32();
      for (let i = 0; i < definedFuncs; i++) funcTypes.push(sr.u32());
    } else if (s.id === 1) {
      types = sr.u32();
      for (let i = 0; i < types; i++) {
        const form = sr.byte();
        if (form !== 0x60) throw new PluginError("unsupported", `type section entry 0x${form.toString(16)} (GC types) is not supported in plugins`);
        for (let k = 0; k < 2; k++) {
          const n = sr.u32();
          if (k === 0) typeParams.push(n);
          for (let j = 0; j < n; j++) skipValType(sr);
        }
      }
    }
  }
  if (opts.meter && (types < 0 || definedFuncs < 0)) throw new PluginError("missing_export", "the module defines no functions");
  const fuelIndex = importedGlobals + definedGlobals;
  const setType = types;
  const getType = types + 1;
  const setFunc = importedFuncs + definedFuncs;
  const getFunc = setFunc + 1;

  const out = new Writer();
  out.bytes(input.subarray(0, 8));
  const emit = (id: number, body: Uint8Array) => {
    out.byte(id);
    out.u32(body.length);
    out.bytes(body);
  };
  // The fuel global: (global (mut i32) (i32.const startFuel)); appended, so no index moves. Its
  // initial value is the budget of the start function.
  const fuelGlobal = (() => {
    const w = new Writer();
    w.bytes(Uint8Array.of(0x7f, 0x01, 0x41));
    w.bytes(sleb32(Math.min(0x7fffffff, opts.startFuel ?? 100_000_000)));
    w.byte(0x0b);
    return w.done();
  })();
  const fuelExport = (() => {
    const w = new Writer();
    for (const [name, index] of [
      [FUEL_SET_EXPORT, setFunc],
      [FUEL_GET_EXPORT, getFunc],
    ] as const) {
      const b = Buffer.from(name);
      w.u32(b.length);
      w.bytes(b);
      w.byte(0x00);
      w.u32(index);
    }
    return w.done();
  })();
  // Canonical section order, used to place a global/export section the module lacked.
  const order = (id: number) => [0, 1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11].indexOf(id);
  let wroteGlobal = false;
  let wroteExport = false;
  const ensureBefore = (id: number) => {
    if (!opts.meter || id === 0) return;
    if (!wroteGlobal && order(id) > order(6)) {
      const w = new Writer();
      w.u32(1);
      w.bytes(fuelGlobal);
      emit(6, w.done());
      wroteGlobal = true;
    }
    if (!wroteExport && order(id) > order(7)) {
      const w = new Writer();
      w.u32(2);
      w.bytes(fuelExport);
      emit(7, w.done());
      wroteExport = true;
    }
  };

  for (const s of sections) {
    ensureBefore(s.id);
    if (s.id === 5) {
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(n);
      for (let i = 0; i < n; i++) {
        const flags = sr.byte();
        if (flags & 4) throw new PluginError("unsupported", "64-bit memories are not supported");
        if (flags & 2) throw new PluginError("unsupported", "shared memories are not supported");
        const min = sr.u32();
        const max = flags & 1 ? sr.u32() : undefined;
        memory = { min, max };
        // A larger (or missing) maximum is lowered to the cap; a module that needs more than the
        // cap just to start is refused.
        if (min > opts.maxPages) {
          throw new PluginError("memory_cap", `needs ${min} pages (${min / 16} MiB) of memory at start, above the cap of ${opts.maxPages} pages (${opts.maxPages / 16} MiB)`);
        }
        w.byte(flags | 1);
        w.u32(min);
        w.u32(Math.min(max ?? opts.maxPages, opts.maxPages));
      }
      emit(5, w.done());
    } else if (s.id === 1 && opts.meter) {
      // two more function types: (i32) -> () and () -> i32
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(n + 2);
      w.bytes(s.body.subarray(sr.pos));
      w.bytes(Uint8Array.of(0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x01, 0x7f));
      emit(1, w.done());
    } else if (s.id === 3 && opts.meter) {
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(n + 2);
      w.bytes(s.body.subarray(sr.pos));
      w.u32(setType);
      w.u32(getType);
      emit(3, w.done());
    } else if (s.id === 6 && opts.meter) {
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(n + 1);
      w.bytes(s.body.subarray(sr.pos));
      w.bytes(fuelGlobal);
      emit(6, w.done());
      wroteGlobal = true;
    } else if (s.id === 7 && opts.meter) {
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(n + 2);
      w.bytes(s.body.subarray(sr.pos));
      w.bytes(fuelExport);
      emit(7, w.done());
      wroteExport = true;
    } else if (s.id === 10) {
      const sr = new Reader(s.body);
      const n = sr.u32();
      const w = new Writer();
      w.u32(opts.meter ? n + 2 : n);
      const g = leb(fuelIndex);
      for (let i = 0; i < n; i++) {
        const size = sr.u32();
        const start = sr.pos;
        const body = s.body.subarray(start, start + size);
        const plan = walkBody(new Reader(body));
        sr.skip(size);
        loops += plan.loops.length;
        if (!opts.meter || !plan.loops.length) {
          w.u32(size);
          w.bytes(body);
          continue;
        }
        // Functions with loops count in a local (a register), not in the global: the global is
        // loaded on entry and after calls, and written back before calls and exits, so callees
        // and the host see the right value. At zero the local is stored (the host reads 0:
        // "runaway") and the function traps.
        const params = typeParams[funcTypes[i] ?? -1] ?? 0;
        const L = leb(params + plan.declared);
        const load = Uint8Array.from([0x23, ...g, 0x21, ...L]); // global.get F; local.set L
        const save = Uint8Array.from([0x20, ...L, 0x24, ...g]); // local.get L; global.set F
        const check = Uint8Array.from([
          0x20, ...L, 0x45, 0x04, 0x40, 0x41, 0x00, 0x24, ...g, 0x00, 0x0b, // if (L == 0) { F = 0; unreachable }
          0x20, ...L, 0x41, 0x01, 0x6b, 0x21, ...L, // L = L - 1
        ]);
        // locals: the original groups plus one i32
        const lr = new Reader(body);
        const groups = lr.u32();
        const bw = new Writer();
        bw.u32(groups + 1);
        bw.bytes(body.subarray(lr.pos, plan.localsEnd));
        bw.bytes(Uint8Array.of(0x01, 0x7f));
        bw.bytes(load);
        const ins: [number, number, Uint8Array][] = [
          ...plan.loops.map((p): [number, number, Uint8Array] => [p, 2, check]),
          ...plan.saves.map((p): [number, number, Uint8Array] => [p, 1, save]),
          ...plan.loads.map((p): [number, number, Uint8Array] => [p, 0, load]),
        ].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        let last = plan.localsEnd;
        for (const [p, , code] of ins) {
          bw.bytes(body.subarray(last, p));
          bw.bytes(code);
          last = p;
        }
        bw.bytes(body.subarray(last));
        const nb = bw.done();
        w.u32(nb.length);
        w.bytes(nb);
      }
      if (opts.meter) {
        // set: (local.get 0) (global.set $fuel); get: (global.get $fuel)
        const setBody = [0x00, 0x20, 0x00, 0x24, ...g, 0x0b];
        const getBody = [0x00, 0x23, ...g, 0x0b];
        w.u32(setBody.length);
        w.bytes(Uint8Array.from(setBody));
        w.u32(getBody.length);
        w.bytes(Uint8Array.from(getBody));
      }
      emit(10, w.done());
    } else {
      emit(s.id, s.body);
    }
  }
  ensureBefore(11); // a module with no section after the export section
  return { binary: out.done(), imports, memory, loops };
}
