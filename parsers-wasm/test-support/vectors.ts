// Test vectors as data, one harness for every decoder.
//
// A vector file is Markdown (parsers-wasm/<proto>/test/vectors/*.md), in the manner of llhttp's
// tests: each `## heading` is one vector, and its fenced blocks, in order, are the steps.
//
//   ## GET with keep-alive
//
//   ```client
//   GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n
//   ```
//
//   ```server
//   HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok
//   ```
//
//   ```records
//   {"operation":"GET","resource":"/a","status":200,"attributes":{"url.query":"x=1"}}
//   ```
//
// Blocks:
//   client / server          text; line breaks in the block are ignored, escapes \r \n \t \0 \\ \xHH
//   client-hex / server-hex  hex digits, whitespace ignored (binary protocols)
//   gap client N / gap server N    the capture missed N bytes of that direction
//   records                  the expected records, one JSON object per line, compared as a subset
//                            of recordToJson()'s output (see matches()); the COUNT must be exact.
//                            Records written at close (incomplete requests) are included.
//   options                  JSON: {"redact": true, "detect": false, "modes": ["whole", ...]}
//   counters                 JSON: what the plugin's conn_stats (ABI v2) reported for the
//                            connection, each step one chunk: {"errors": 1, "drops": 0,
//                            "bytes_dropped": 12} (plugin_errors, plugin_drops,
//                            plugin_bytes_dropped). Checked in mode whole when the suite asks for
//                            counters (vectorSuite's `counters`), where a vector without the block
//                            must report 0 for each: clean input counts nothing.
// Step i (from 0) is stamped ts_ns = 1000 × (i + 1), so startNs/durationNs can be asserted.
//
// A JSON file (*.json) holds the same as an array:
//   [{ "name": "...", "steps": [{"client": "..."}, {"serverHex": "..."}, {"gap": "client", "len": 3}],
//      "records": [{...}], "options": {...}, "counters": {...} }]
//
// Modes (all by default):
//   whole      each step in one chunk; also checks that detection (clientKnown, no port hint)
//              picks this plugin, unless options.detect is false
//   split      for every step and every byte boundary k: that step as two chunks [0,k) [k,L)
//   bytewise   every step one byte per chunk (also through detection, unless options.detect is false)
//   truncated  the input cut at every byte boundary, then close: no trap, valid records
//   gapped     at every byte boundary the rest of the step replaced by a gap: no trap, valid records
//   resync     (vectors with options.resync {steps, tail, from}) at every byte of steps
//              from..steps-1 (from defaults to 0): the
//              rest of the step lost (gap of its length, and of unknown length), or 5 bytes lost
//              and the rest delivered. The last `tail` records must match exactly; every earlier
//              record must match an expected one, or be incomplete with the operation and
//              resource of one (never a wrong pairing)
//   midstream  (likewise) the capture starts at every byte of steps 0..steps-1 (earlier steps
//              never seen), through detection with no port hint, `midstream` set, with the
//              client known and not known: same checks, and the orientation is never decided
//              wrongly from content

import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { ConnectionEngine, PluginRegistry, type Plugin } from "@wirescope/plugin-host";
import { RecordSchema, recordToJson, type RecordJson } from "@wirescope/wire";
import { PARSERS_ROOT, findPlugin } from "./plugins.js";
import { Plugin as HostPlugin } from "@wirescope/plugin-host";

export type Step = { dir: 0 | 1; bytes: Uint8Array } | { dir: 0 | 1; gap: number };

export interface VectorOptions {
  redact?: boolean;
  detect?: boolean;
  modes?: Mode[];
  /**
   * Resynchronisation: whatever is lost in steps 0..steps-1, or wherever the capture starts in
   * them, the last `tail` expected records come out exactly (modes `resync` and `midstream`).
   */
  resync?: {
    steps: number;
    tail: number;
    /**
     * First step where bytes are lost or the capture starts (default 0): state set up before it
     * (e.g. a login that negotiates compression) is always seen.
     */
    from?: number;
  };
}

/** What a plugin's conn_stats reported for a vector's connection (ABI v2); absent keys are 0. */
export interface VectorCounters {
  errors?: number;
  drops?: number;
  bytes_dropped?: number;
}

export interface Vector {
  name: string;
  file: string;
  steps: Step[];
  records: Partial<RecordJson>[];
  options: VectorOptions;
  counters?: VectorCounters;
}

export type Mode = "whole" | "split" | "bytewise" | "truncated" | "gapped" | "resync" | "midstream";
export const ALL_MODES: Mode[] = ["whole", "split", "bytewise", "truncated", "gapped", "resync", "midstream"];

/** Decodes the text escapes of a client/server block. */
export function unescapeText(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "\n") continue;
    if (c !== "\\") {
      for (const b of Buffer.from(c, "utf8")) out.push(b);
      continue;
    }
    const n = s[++i];
    if (n === "r") out.push(13);
    else if (n === "n") out.push(10);
    else if (n === "t") out.push(9);
    else if (n === "0") out.push(0);
    else if (n === "\\") out.push(92);
    else if (n === "x") {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new Error(`unknown escape \\${n}`);
  }
  return Uint8Array.from(out);
}

function hexBytes(s: string): Uint8Array {
  const h = s.replace(/\s+/g, "");
  if (h.length % 2 || /[^0-9a-fA-F]/.test(h)) throw new Error("bad hex block");
  return Uint8Array.from(Buffer.from(h, "hex"));
}

const dirOf = (s: string): 0 | 1 => (s === "client" ? 0 : s === "server" ? 1 : (() => { throw new Error(`unknown direction ${s}`); })());

/** Parses one vector file (.md or .json). */
export function parseVectorFile(file: string): Vector[] {
  const text = fs.readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    const arr = JSON.parse(text) as { name: string; steps: Record<string, unknown>[]; records?: Partial<RecordJson>[]; options?: VectorOptions; counters?: VectorCounters }[];
    return arr.map((v) => ({
      name: v.name,
      file,
      options: v.options ?? {},
      counters: v.counters,
      records: v.records ?? [],
      steps: v.steps.map((s): Step => {
        if (typeof s.gap === "string") return { dir: dirOf(s.gap), gap: Number(s.len ?? 0) };
        if (typeof s.client === "string") return { dir: 0, bytes: unescapeText(s.client) };
        if (typeof s.server === "string") return { dir: 1, bytes: unescapeText(s.server) };
        if (typeof s.clientHex === "string") return { dir: 0, bytes: hexBytes(s.clientHex) };
        if (typeof s.serverHex === "string") return { dir: 1, bytes: hexBytes(s.serverHex) };
        throw new Error(`${file}: ${v.name}: unknown step ${JSON.stringify(s)}`);
      }),
    }));
  }
  const out: Vector[] = [];
  let cur: Vector | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const h = /^##\s+(.*\S)\s*$/.exec(line);
    if (h) {
      cur = { name: h[1]!, file, steps: [], records: [], options: {} };
      out.push(cur);
      continue;
    }
    const f = /^```\s*(.*?)\s*$/.exec(line);
    if (!f || !f[1]) continue;
    const info = f[1].split(/\s+/);
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (!cur) throw new Error(`${file}: block before the first ## heading`);
    const kind = info[0]!;
    const where = `${file}: ${cur.name}`;
    if (kind === "client" || kind === "server") cur.steps.push({ dir: dirOf(kind), bytes: unescapeText(body.join("\n")) });
    else if (kind === "client-hex" || kind === "server-hex") cur.steps.push({ dir: dirOf(kind.slice(0, -4)), bytes: hexBytes(body.join("")) });
    else if (kind === "gap") cur.steps.push({ dir: dirOf(info[1] ?? ""), gap: Number(info[2] ?? 0) });
    else if (kind === "records") {
      for (const l of body) if (l.trim()) cur.records.push(JSON.parse(l) as Partial<RecordJson>);
    } else if (kind === "options") cur.options = JSON.parse(body.join("\n")) as VectorOptions;
    else if (kind === "counters") cur.counters = JSON.parse(body.join("\n")) as VectorCounters;
    else if (kind === "close") {
      /* implicit at the end */
    } else throw new Error(`${where}: unknown block \`\`\`${kind}`);
  }
  return out;
}

/** All vector files under `dir` (absolute, or relative to parsers-wasm/). */
export function vectorFiles(dir: string): string[] {
  const abs = path.isAbsolute(dir) ? dir : path.join(PARSERS_ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs)
    .filter((f) => f.endsWith(".md") || f.endsWith(".json"))
    .sort()
    .map((f) => path.join(abs, f));
}

/** Every vector of a plugin (its source folder's test/vectors). */
export function pluginVectors(sourceDir: string): Vector[] {
  return vectorFiles(path.join(sourceDir, "test/vectors")).flatMap((f) => parseVectorFile(f));
}

export interface RunResult {
  /** How the engine oriented the connection (see EngineConnection.orientation). */
  flipped?: boolean;
  orientation?: string;
  records: RecordJson[];
  /** Raw record bytes, as the plugin wrote them. */
  raw: Uint8Array[];
  states: string[];
  reason?: string;
  counters: Record<string, number>;
  plugin?: string;
  /** The first step (not the close) that wrote records while the connection went on decoding; -1: none. */
  firstRecordStep?: number;
}

/** Chunks: a step list already cut into the chunks to feed (same ts for pieces of one step). */
export type Chunk = { dir: 0 | 1; bytes?: Uint8Array; gap?: number; ts: bigint };

function stepChunks(steps: Step[]): Chunk[][] {
  return steps.map((s, i) => ["gap" in s ? { dir: s.dir, gap: s.gap, ts: BigInt(1000 * (i + 1)) } : { dir: s.dir, bytes: s.bytes, ts: BigInt(1000 * (i + 1)) }]);
}

/** Feeds chunks through a fresh engine connection; `detect` false forces the plugin. */
export function runChunks(registry: PluginRegistry, plugin: string, chunks: Chunk[], opts: RunOpts = {}): RunResult {
  const engine = new ConnectionEngine(registry);
  const midstream = opts.midstream ?? false;
  const conn = engine.openConnection(opts.detect ? { clientKnown: opts.clientKnown ?? true, midstream } : { protocol: plugin, midstream });
  const raw: Uint8Array[] = [];
  const states: string[] = [];
  let reason: string | undefined;
  let lastTs = 0n;
  let firstRecordStep = -1;
  for (const c of chunks) {
    lastTs = c.ts;
    const r = c.bytes ? conn.data(c.dir, c.bytes, c.ts) : conn.gap(c.dir, c.gap ?? 0, c.ts);
    if (firstRecordStep < 0 && r.records.length && r.state === "decoding") firstRecordStep = states.length;
    raw.push(...r.records);
    states.push(r.state);
    reason ??= r.reason;
  }
  const r = conn.close(opts.closeTs ?? lastTs + 1000n);
  raw.push(...r.records);
  states.push(r.state);
  reason ??= r.reason;
  const counters = engine.counters.snapshot();
  return {
    records: raw.map((b) => recordToJson(fromBinary(RecordSchema, b))),
    raw,
    states,
    reason,
    counters,
    // after a switch (CONNECT, 101) the plugin that decoded the vector handed the connection back
    plugin: conn.plugin?.name ?? (conn.switches > 0 ? Object.keys(counters).find((k) => k.startsWith("conn_switched."))?.slice(14) : undefined),
    flipped: conn.flipped,
    orientation: conn.orientation,
    firstRecordStep,
  };
}

/** Options of runChunks (one connection). */
type RunOpts = { detect?: boolean; closeTs?: bigint; midstream?: boolean; clientKnown?: boolean };

/**
 * The same runs as runChunks, each on its own connection, but all on one engine and through one
 * EngineBatch (ABI v2: one feed_batch call per instance for many connections' chunks), their
 * steps interleaved round-robin and flushed every few rounds.
 */
export function runChunksBatched(registry: PluginRegistry, plugin: string, runs: { chunks: Chunk[]; opts: RunOpts }[]): { raw: Uint8Array[][]; states: string[][]; reasons: (string | undefined)[]; plugins: (string | undefined)[]; flipped: boolean[]; counters: Record<string, number>; batched: { calls: number; entries: number } } {
  const engine = new ConnectionEngine(registry);
  const raw: Uint8Array[][] = runs.map(() => []);
  const states: string[][] = runs.map(() => []);
  const reasons: (string | undefined)[] = runs.map(() => undefined);
  const batch = engine.batch<number>((i, r) => {
    raw[i]!.push(...r.records);
    states[i]!.push(r.state);
    reasons[i] ??= r.reason;
  });
  const conns = runs.map(({ opts }) => {
    const midstream = opts.midstream ?? false;
    return engine.openConnection(opts.detect ? { clientKnown: opts.clientKnown ?? true, midstream } : { protocol: plugin, midstream });
  });
  const longest = Math.max(...runs.map((r) => r.chunks.length));
  for (let k = 0; k <= longest; k++) {
    runs.forEach((run, i) => {
      const conn = conns[i]!;
      const c = run.chunks[k];
      if (c) {
        if (c.bytes) batch.data(conn, c.dir, c.bytes, c.ts, i);
        else batch.gap(conn, c.dir, c.gap ?? 0, c.ts, i);
      } else if (k === run.chunks.length) batch.close(conn, run.opts.closeTs ?? (run.chunks.at(-1)?.ts ?? 0n) + 1000n, i);
    });
    if (k % 5 === 4) batch.flush();
  }
  batch.flush();
  const counters = engine.counters.snapshot();
  return {
    raw,
    states,
    reasons,
    plugins: conns.map((c) => c.plugin?.name ?? (c.switches > 0 ? "(switched)" : undefined)),
    flipped: conns.map((c) => c.flipped),
    counters,
    batched: engine.batched,
  };
}

/**
 * Runs `runs` one connection and one engine each (one call per chunk), then all together
 * through one batch, and asserts the same records (byte for byte), states, reasons, orientation
 * and counters (summed) from both.
 */
export function assertBatchSame(registry: PluginRegistry, plugin: string, runs: { chunks: Chunk[]; opts: RunOpts }[], what: string): void {
  const alone = runs.map((r) => runChunks(registry, plugin, r.chunks, r.opts));
  const together = runChunksBatched(registry, plugin, runs);
  const sum: Record<string, number> = {};
  alone.forEach((a, i) => {
    const w = `${what}, run ${i} in a batch`;
    assert.deepEqual(together.raw[i]!.map((b) => Buffer.from(b).toString("hex")), a.raw.map((b) => Buffer.from(b).toString("hex")), `${w}: records`);
    assert.deepEqual(together.states[i], a.states, `${w}: states`);
    assert.equal(together.reasons[i], a.reason, `${w}: reason`);
    assert.equal(together.flipped[i], a.flipped, `${w}: orientation`);
    for (const [k, v] of Object.entries(a.counters)) sum[k] = (sum[k] ?? 0) + v;
  });
  assert.deepEqual(together.counters, sum, `${what}: counters of the batched runs`);
  // a version 2 plugin decoding more than one chunk got some of them batched
  // (a step after the first record: the replay log is no longer held)
  if (registry.get(plugin)?.manifest.abi === 2 && alone.some((a) => (a.firstRecordStep ?? -1) >= 0)) {
    assert.ok(together.batched.entries > 0, `${what}: no step went through feed_batch`);
  }
}

/** True when `actual` has every key of `expected` with an equal value (attributes: subset; null = absent). */
export function matches(actual: RecordJson, expected: Partial<RecordJson>): string | undefined {
  for (const [k, v] of Object.entries(expected)) {
    if (k === "attributes") {
      for (const [ak, av] of Object.entries(v as Record<string, unknown>)) {
        const got = actual.attributes[ak];
        if (av === null) {
          if (got !== undefined) return `attribute ${ak}: expected absent, got ${JSON.stringify(got)}`;
        } else if (!deepEq(got, av)) return `attribute ${ak}: expected ${JSON.stringify(av)}, got ${JSON.stringify(got)}`;
      }
      continue;
    }
    const got = (actual as unknown as Record<string, unknown>)[k];
    if (!deepEq(got, v)) return `${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(got)}`;
  }
  return undefined;
}

function deepEq(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Asserts that `res` holds exactly the expected records (each matched as a subset, in order). */
export function assertRecords(res: RunResult, expected: Partial<RecordJson>[], what: string): void {
  const lines = () => res.records.map((r) => JSON.stringify(r)).join("\n");
  assert.equal(res.records.length, expected.length, `${what}: expected ${expected.length} record(s), got ${res.records.length}:\n${lines()}\nstates ${res.states.join(",")} ${res.reason ?? ""}`);
  expected.forEach((e, i) => {
    const why = matches(res.records[i]!, e);
    assert.equal(why, undefined, `${what}: record ${i}: ${why}\n${JSON.stringify(res.records[i])}`);
  });
}

/** Asserts the run did not trap and every record is a valid Record. */
export function assertNoTrap(res: RunResult, what: string): void {
  const traps = Object.entries(res.counters).filter(([k, v]) => k.startsWith("plugin_traps") && v > 0);
  assert.deepEqual(traps, [], `${what}: plugin trapped: ${JSON.stringify(res.counters)}`);
  assert.notEqual(res.reason, "plugin_trap", `${what}: connection dropped by a trap`);
}

/**
 * After lost bytes: the last `tail` records match the expected tail exactly; every earlier one
 * matches an expected record, or is incomplete and names the operation and resource of one.
 */
export function assertResynced(res: RunResult, expected: Partial<RecordJson>[], tail: number, what: string): void {
  const lines = () => res.records.map((r) => JSON.stringify(r)).join("\n");
  assert.ok(res.records.length >= tail, `${what}: expected at least the last ${tail} record(s), got ${res.records.length}:\n${lines()}\nstates ${res.states.join(",")} ${res.reason ?? ""}`);
  const head = expected.slice(0, expected.length - tail);
  const got = res.records.length - tail;
  for (let i = 0; i < tail; i++) {
    const why = matches(res.records[got + i]!, expected[expected.length - tail + i]!);
    assert.equal(why, undefined, `${what}: record ${got + i} (tail ${i}): ${why}\n${lines()}`);
  }
  for (let i = 0; i < got; i++) {
    const r = res.records[i]!;
    // an incomplete record names the request, and the status only when its response was seen
    const named = (e: Partial<RecordJson>) => {
      const keys: (keyof RecordJson)[] = r.status === null ? ["operation", "resource"] : ["operation", "resource", "status"];
      return Object.fromEntries(keys.filter((k) => e[k] !== undefined).map((k) => [k, e[k]])) as Partial<RecordJson>;
    };
    const ok = head.some((e) => matches(r, e) === undefined || (r.incomplete === true && matches(r, named(e)) === undefined));
    assert.ok(ok, `${what}: record ${i} matches no expected record (a wrong pairing?): ${JSON.stringify(r)}\n${lines()}`);
  }
}

/** The plugin's conn_stats counters (ABI v2) in an engine's counters, as a vector states them. */
export function pluginCounters(counters: Record<string, number>, plugin: string): Required<VectorCounters> {
  return {
    errors: counters[`plugin_errors.${plugin}`] ?? 0,
    drops: counters[`plugin_drops.${plugin}`] ?? 0,
    bytes_dropped: counters[`plugin_bytes_dropped.${plugin}`] ?? 0,
  };
}

/** Options of runVector / vectorSuite. */
export interface SuiteOptions {
  /** Check every vector's counters in mode whole (a vector without a counters block: all 0). */
  counters?: boolean;
}

/** Runs one vector in one mode; throws (assert) on a mismatch. */
export function runVector(registry: PluginRegistry, plugin: string, v: Vector, mode: Mode, opts: SuiteOptions = {}): void {
  const base = stepChunks(v.steps);
  const flat = (cs: Chunk[][]) => cs.flat();
  const label = `${path.basename(v.file)}: ${v.name} [${mode}]`;
  if (mode === "whole") {
    const res = runChunks(registry, plugin, flat(base));
    assertNoTrap(res, label);
    assertRecords(res, v.records, label);
    if (opts.counters) {
      const want = { errors: v.counters?.errors ?? 0, drops: v.counters?.drops ?? 0, bytes_dropped: v.counters?.bytes_dropped ?? 0 };
      assert.deepEqual(pluginCounters(res.counters, plugin), want, `${label}: the plugin's counters (conn_stats)`);
    }
    if (v.options.detect !== false) {
      const det = runChunks(registry, plugin, flat(base), { detect: true });
      assert.equal(det.plugin, plugin, `${label}: detection chose ${det.plugin ?? "nothing"} (${JSON.stringify(det.counters)})`);
      assertRecords(det, v.records, `${label} with detection`);
    }
    // the same vector cut several ways, all at once through one batch: what one call per
    // chunk gives, byte for byte
    const cuts: Chunk[][] = [flat(base), flat(base.map((st) => (st[0]!.bytes ? [...st[0]!.bytes].map((b) => ({ ...st[0]!, bytes: Uint8Array.of(b) })) : st)))];
    base.forEach((st, si) => {
      const c = st[0]!;
      if (!c.bytes || c.bytes.length < 2) return;
      const k = c.bytes.length >> 1;
      cuts.push(flat(base.map((s, j) => (j === si ? [{ ...c, bytes: c.bytes!.subarray(0, k) }, { ...c, bytes: c.bytes!.subarray(k) }] : s))));
      if (si < 3) cuts.push(flat(base.map((s, j) => (j === si ? [{ ...c, bytes: c.bytes!.subarray(0, k) }, { dir: c.dir, gap: c.bytes!.length - k, ts: c.ts }] : s))));
    });
    const runs = cuts.map((chunks) => ({ chunks, opts: {} as RunOpts }));
    if (v.options.detect !== false) runs.push({ chunks: flat(base), opts: { detect: true } }, { chunks: flat(base), opts: { detect: true, clientKnown: false, midstream: true } });
    assertBatchSame(registry, plugin, runs, label);
    return;
  }
  if (mode === "split") {
    base.forEach((step, si) => {
      const c = step[0]!;
      if (!c.bytes) return;
      for (let k = 1; k < c.bytes.length; k++) {
        const cs = base.map((s, j) => (j === si ? [{ ...c, bytes: c.bytes!.subarray(0, k) }, { ...c, bytes: c.bytes!.subarray(k) }] : s));
        const res = runChunks(registry, plugin, flat(cs));
        assertNoTrap(res, `${label} step ${si} at ${k}`);
        assertRecords(res, v.records, `${label} step ${si} split at ${k}`);
      }
    });
    return;
  }
  if (mode === "bytewise") {
    const cs = base.map((s) => {
      const c = s[0]!;
      return c.bytes ? [...c.bytes].map((b) => ({ ...c, bytes: Uint8Array.of(b) })) : s;
    });
    const res = runChunks(registry, plugin, flat(cs));
    assertNoTrap(res, label);
    assertRecords(res, v.records, label);
    if (v.options.detect !== false) {
      // detection on a connection that dribbles in one byte at a time
      const det = runChunks(registry, plugin, flat(cs), { detect: true });
      assert.equal(det.plugin, plugin, `${label}: detection chose ${det.plugin ?? "nothing"} (${JSON.stringify(det.counters)})`);
      assertRecords(det, v.records, `${label} with detection`);
    }
    return;
  }
  if (mode === "resync" || mode === "midstream") {
    const rs = v.options.resync;
    if (!rs) return;
    for (let si = rs.from ?? 0; si < rs.steps && si < base.length; si++) {
      const c = base[si]![0]!;
      if (!c.bytes) continue;
      const b = c.bytes;
      for (let k = 0; k < b.length; k++) {
        if (mode === "resync") {
          const lost = Math.min(5, b.length - k);
          const variants: [string, Chunk[]][] = [
            ["rest lost", [{ ...c, bytes: b.subarray(0, k) }, { dir: c.dir, gap: b.length - k, ts: c.ts }]],
            ["rest lost, length unknown", [{ ...c, bytes: b.subarray(0, k) }, { dir: c.dir, gap: 0, ts: c.ts }]],
            [`${lost} bytes lost`, [{ ...c, bytes: b.subarray(0, k) }, { dir: c.dir, gap: lost, ts: c.ts }, { ...c, bytes: b.subarray(k + lost) }]],
          ];
          for (const [name, repl] of variants) {
            const cs = base.map((s, j) => (j === si ? repl : s));
            const res = runChunks(registry, plugin, flat(cs).filter((x) => !x.bytes || x.bytes.length));
            const w = `${label} step ${si} at ${k}, ${name}`;
            assertNoTrap(res, w);
            assertResynced(res, v.records, rs.tail, w);
          }
        } else {
          const cs = [[{ ...c, bytes: b.subarray(k) }], ...base.slice(si + 1)];
          for (const clientKnown of [true, false]) {
            const res = runChunks(registry, plugin, flat(cs), { detect: true, midstream: true, clientKnown });
            const w = `${label} from step ${si} byte ${k}${clientKnown ? "" : ", client not known"}`;
            assertNoTrap(res, w);
            assert.equal(res.plugin, plugin, `${w}: detection chose ${res.plugin ?? "nothing"} (${JSON.stringify(res.counters)})`);
            assert.ok(!(res.flipped && res.orientation === "content"), `${w}: client and server swapped by content`);
            assertResynced(res, v.records, rs.tail, w);
          }
        }
      }
    }
    return;
  }
  // truncated / gapped: every cut point of every data step
  base.forEach((step, si) => {
    const c = step[0]!;
    if (!c.bytes) return;
    for (let k = 0; k < c.bytes.length; k++) {
      let cs: Chunk[][];
      if (mode === "truncated") {
        cs = [...base.slice(0, si), [{ ...c, bytes: c.bytes.subarray(0, k) }]];
      } else {
        cs = base.map((s, j) => (j === si ? [{ ...c, bytes: c.bytes!.subarray(0, k) }, { dir: c.dir, gap: c.bytes!.length - k, ts: c.ts }] : s));
      }
      const res = runChunks(registry, plugin, flat(cs).filter((x) => !x.bytes || x.bytes.length));
      assertNoTrap(res, `${label} step ${si} at ${k}`);
    }
  });
}

const registries = new Map<string, PluginRegistry>();
function registryFor(plugin: string, redact: boolean): PluginRegistry {
  const key = `${plugin}/${redact}`;
  let r = registries.get(key);
  if (!r) {
    r = new PluginRegistry();
    r.add(HostPlugin.fromFile(findPlugin(plugin).manifest, { flags: redact ? 1 : 0 }));
    registries.set(key, r);
  }
  return r;
}

/**
 * Registers node:test suites for every vector of `plugin` in `dir` (relative to parsers-wasm/,
 * e.g. "http1/test/vectors"): one test per vector and mode.
 */
export function vectorSuite(plugin: string, dir: string, modes: Mode[] = ALL_MODES, opts: SuiteOptions = {}): void {
  const files = vectorFiles(dir);
  describe(`${plugin} vectors`, () => {
    test("has vector files", () => {
      assert.ok(files.length > 0, `no vector files in parsers-wasm/${dir}`);
    });
    for (const f of files) {
      const vectors = parseVectorFile(f);
      describe(path.basename(f), () => {
        for (const v of vectors) {
          for (const m of v.options.modes ?? modes) {
            if (!modes.includes(m)) continue;
            if ((m === "resync" || m === "midstream") && !v.options.resync) continue;
            test(`${v.name} [${m}]`, { timeout: 120_000 }, () => runVector(registryFor(plugin, !!v.options.redact), plugin, v, m, opts));
          }
        }
      });
    }
  });
}

export type { Plugin };
