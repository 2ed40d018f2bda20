// Fuzzing every plugin: random and mutated inputs (mutations of each plugin's test vectors and
// of the other plugins' vectors), cut into random chunks with random gaps and random direction
// orientation, fed through the real host. A finding is: a trap of any kind (including a runaway
// loop caught by the fuel meter, which is how "no hang" is enforced), an exception escaping the
// host, a record that is not a valid wirescope.v1.Record, or instance memory beyond the cap.
// Deterministic for a given seed: the cases of a run are a fixed sequence, so a finding that
// only shows after earlier cases on the same instance (state corrupted by an earlier input) is
// replayed exactly by regenerating the run up to it (Finding.run, replayRun()).

import { fromBinary } from "@bufbuild/protobuf";
import { ConnectionEngine, Plugin, PluginRegistry } from "@wirescope/plugin-host";
import { RecordSchema } from "@wirescope/wire";
import { builtPlugins, type BuiltPlugin } from "./plugins.js";
import { pluginVectors, type Step } from "./vectors.js";

/** xorshift128+: small, fast, seedable. */
export class Rng {
  private a: bigint;
  private b: bigint;
  constructor(seed: number) {
    this.a = BigInt(seed >>> 0) * 0x9e3779b97f4a7c15n + 1n;
    this.b = (BigInt(seed >>> 0) ^ 0x5deece66dn) * 0xbf58476d1ce4e5b9n + 7n;
    for (let i = 0; i < 8; i++) this.next();
  }
  private next(): bigint {
    let s1 = this.a;
    const s0 = this.b;
    this.a = s0;
    s1 ^= (s1 << 23n) & 0xffffffffffffffffn;
    this.b = s1 ^ s0 ^ (s1 >> 17n) ^ (s0 >> 26n);
    return (this.b + s0) & 0xffffffffffffffffn;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Number(this.next() % BigInt(Math.max(1, n)));
  }
  chance(p: number): boolean {
    return this.int(1_000_000) < p * 1_000_000;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

export interface FuzzCase {
  plugin: string;
  seed: number;
  /** Chunks as fed: dir, hex bytes or gap length. */
  chunks: { dir: 0 | 1; hex?: string; gap?: number }[];
  detect: boolean;
  clientKnown: boolean;
  /** Fed through an EngineBatch (ABI v2 batches), flushed every `flushEvery` steps; absent: one call per step. */
  batched?: boolean;
  flushEvery?: number;
}

export interface Finding {
  case: FuzzCase;
  problem: string;
  /** False when the case alone, on a fresh instance, does not fail: it depends on `history`. */
  reproducible: boolean;
  /** The last cases run on the same instance just before (at most 50; for reading). */
  history: FuzzCase[];
  /** The run that found it: its seed and the case's index in it (replayRun() regenerates it). */
  run: { seed: number; index: number };
}

export interface FuzzStats {
  plugin: string;
  cases: number;
  bytes: number;
  records: number;
  maxMemory: number;
  findings: Finding[];
}

type Seed = { dir: 0 | 1; bytes: Uint8Array }[];

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x0d, 0x0a, 0x20, 0x3a, 0x2a, 0x24, 0x30, 0x39];

function mutate(rng: Rng, b: Uint8Array, donors: Uint8Array[]): Uint8Array {
  const x = Array.from(b);
  const n = 1 + rng.int(8);
  for (let i = 0; i < n; i++) {
    const op = rng.int(9);
    const at = rng.int(x.length + 1);
    switch (op) {
      case 0: // bit flip
        if (x.length) x[at % x.length]! ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (x.length) x[at % x.length] = rng.pick(INTERESTING);
        break;
      case 2: // random byte
        if (x.length) x[at % x.length] = rng.int(256);
        break;
      case 3: // delete a range
        x.splice(at, 1 + rng.int(16));
        break;
      case 4: // insert random bytes
        x.splice(at, 0, ...Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
        break;
      case 5: {
        // duplicate a range
        const len = 1 + rng.int(64);
        x.splice(at, 0, ...x.slice(at, at + len));
        break;
      }
      case 6: {
        // splice in a piece of another seed
        const d = donors.length ? rng.pick(donors) : new Uint8Array();
        const s = rng.int(d.length + 1);
        x.splice(at, 0, ...d.subarray(s, s + 1 + rng.int(256)));
        break;
      }
      case 7: {
        // big or boundary length-like numbers in 4 bytes
        const v = rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 0, 1, 0x10000, 0xffff]);
        if (x.length >= 4) {
          const p = at % (x.length - 3);
          x[p] = v >>> 24;
          x[p + 1] = (v >>> 16) & 0xff;
          x[p + 2] = (v >>> 8) & 0xff;
          x[p + 3] = v & 0xff;
        }
        break;
      }
      case 8: // truncate
        x.length = Math.min(x.length, at);
        break;
    }
  }
  return Uint8Array.from(x.slice(0, 1 << 16));
}

function seedsOf(b: BuiltPlugin): Seed[] {
  try {
    return pluginVectors(b.sourceDir).map((v) => v.steps.filter((s): s is Extract<Step, { bytes: Uint8Array }> => "bytes" in s).map((s) => ({ dir: s.dir, bytes: s.bytes })));
  } catch {
    return [];
  }
}

/** One fuzz case from `rng`: a seed (own or another plugin's) mutated, or random bytes. */
function makeCase(rng: Rng, plugin: string, own: Seed[], others: Seed[], seed: number): FuzzCase {
  const donors = [...own, ...others].flatMap((s) => s.map((c) => c.bytes));
  let base: Seed;
  const r = rng.int(10);
  if (own.length && r < 7) base = rng.pick(own);
  else if (others.length && r < 9) base = rng.pick(others);
  else base = [{ dir: 0, bytes: Uint8Array.from({ length: rng.int(512) }, () => rng.int(256)) }, { dir: 1, bytes: Uint8Array.from({ length: rng.int(512) }, () => rng.int(256)) }];
  const chunks: FuzzCase["chunks"] = [];
  for (const s of base) {
    const bytes = rng.chance(0.8) ? mutate(rng, s.bytes, donors) : s.bytes;
    // random chunking
    let off = 0;
    while (off < bytes.length) {
      const len = rng.chance(0.3) ? 1 + rng.int(4) : 1 + rng.int(Math.max(1, bytes.length));
      const piece = bytes.subarray(off, off + len);
      if (rng.chance(0.03)) chunks.push({ dir: s.dir, gap: rng.chance(0.5) ? 0 : piece.length });
      else chunks.push({ dir: s.dir, hex: Buffer.from(piece).toString("hex") });
      off += len;
    }
  }
  if (rng.chance(0.1)) chunks.reverse();
  return { plugin, seed, chunks, detect: rng.chance(0.3), clientKnown: rng.chance(0.7), batched: rng.chance(0.5), flushEvery: 1 + rng.int(16) };
}

/** Runs one case against a registry holding the plugin; returns the problem found, if any. */
export function runCase(reg: PluginRegistry, c: FuzzCase): { problem?: string; records: number; bytes: number } {
  const engine = new ConnectionEngine(reg);
  const conn = engine.openConnection(c.detect ? { clientKnown: c.clientKnown } : { protocol: c.plugin });
  let records = 0;
  let bytes = 0;
  const check = (recs: Uint8Array[]) => {
    for (const r of recs) {
      fromBinary(RecordSchema, r); // throws on an invalid record
      records++;
    }
  };
  try {
    let ts = 1000n;
    const batch = c.batched ? engine.batch<null>((_t, r) => check(r.records)) : undefined;
    const every = c.flushEvery ?? 1;
    c.chunks.forEach((ch, k) => {
      ts += 1000n;
      if (ch.hex !== undefined) {
        const b = Uint8Array.from(Buffer.from(ch.hex, "hex"));
        bytes += b.length;
        if (batch) batch.data(conn, ch.dir, b, ts, null);
        else check(conn.data(ch.dir, b, ts).records);
      } else if (batch) batch.gap(conn, ch.dir, ch.gap ?? 0, ts, null);
      else check(conn.gap(ch.dir, ch.gap ?? 0, ts).records);
      if (batch && k % every === every - 1) batch.flush();
    });
    if (batch) {
      batch.close(conn, ts + 1000n, null);
      batch.flush();
    } else check(conn.close(ts + 1000n).records);
  } catch (e) {
    return { problem: `exception: ${(e as Error).stack ?? e}`, records, bytes };
  }
  const traps = Object.entries(engine.counters.snapshot()).filter(([k, v]) => k.startsWith("plugin_traps.") && v > 0);
  if (traps.length) return { problem: `trap: ${traps.map(([k, v]) => `${k}=${v}`).join(" ")}: ${engine.lastTrap?.message ?? ""} (in ${engine.lastTrap?.where ?? "?"})`, records, bytes };
  return { records, bytes };
}

/**
 * Fuzzes one built plugin for `ms` milliseconds (or `maxCases`). Seeds: its own vectors and,
 * for cross-protocol confusion, every other plugin's.
 */
export function fuzzPlugin(b: BuiltPlugin, opts: { ms: number; seed: number; maxCases?: number; all?: BuiltPlugin[] }): FuzzStats {
  const plugin = Plugin.fromFile(b.manifest);
  const reg = new PluginRegistry();
  reg.add(plugin);
  const own = seedsOf(b);
  const others = (opts.all ?? builtPlugins()).filter((o) => o.name !== b.name).flatMap(seedsOf);
  const stats: FuzzStats = { plugin: b.name, cases: 0, bytes: 0, records: 0, maxMemory: 0, findings: [] };
  const t0 = Date.now();
  const rng = new Rng(opts.seed);
  const history: FuzzCase[] = [];
  while (Date.now() - t0 < opts.ms && stats.cases < (opts.maxCases ?? Infinity)) {
    const caseSeed = rng.int(2 ** 31);
    const c = makeCase(new Rng(caseSeed), b.name, own, others, caseSeed);
    const index = stats.cases;
    const r = runCase(reg, c);
    stats.cases++;
    stats.bytes += r.bytes;
    stats.records += r.records;
    if (r.problem) {
      const alone = new PluginRegistry();
      alone.add(Plugin.fromFile(b.manifest));
      const again = runCase(alone, c);
      stats.findings.push({ case: c, problem: r.problem, reproducible: !!again.problem, history: history.slice(), run: { seed: opts.seed, index } });
    }
    history.push(c);
    if (history.length > 50) history.shift();
    if (stats.findings.length >= 5) break;
  }
  stats.maxMemory = Math.max(stats.maxMemory, plugin.instance().memoryBytes());
  return stats;
}

/**
 * Replays case `index` of the run with `seed` on one instance, after every case before it in
 * that run (generated again from the seed, so nothing needs to be stored): returns its problem,
 * if any. Cases before it that fail are reported too, since they change the instance's state.
 */
export function replayRun(b: BuiltPlugin, seed: number, index: number, all?: BuiltPlugin[]): { problem?: string; earlier: number } {
  const reg = new PluginRegistry();
  reg.add(Plugin.fromFile(b.manifest));
  const own = seedsOf(b);
  const others = (all ?? builtPlugins()).filter((o) => o.name !== b.name).flatMap(seedsOf);
  const rng = new Rng(seed);
  let earlier = 0;
  for (let i = 0; i <= index; i++) {
    const caseSeed = rng.int(2 ** 31);
    const r = runCase(reg, makeCase(new Rng(caseSeed), b.name, own, others, caseSeed));
    if (i === index) return { problem: r.problem, earlier };
    if (r.problem) earlier++;
  }
  return { earlier };
}
