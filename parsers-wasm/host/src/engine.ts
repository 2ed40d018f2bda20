// The connection engine: the one piece of code that turns a connection's bytes into records,
// used by the parser service and by `wirescope decode` alike.
//
//   open ──▶ detecting ──(a plugin claims: score ≥ 50)──▶ decoding ──▶ closed
//               │  replay log of chunks and gaps, both directions, in order
//               └──(detectLimit bytes and no claim)──▶ rejected "unclaimed"
//
// Detection offers each direction's first bytes to every plugin's detect(). When the caller does
// not know which end is the client, each plugin is also asked with the directions swapped, and the
// better hypothesis wins (`flipped`). Ties go to the plugin whose manifest ports include the
// server port hint, then to registry order. Each direction has two windows: one from its start
// (or the last gap) and, once nobody recognises that one, a fresh one restarted at a later chunk:
// a connection picked up mid-way is usually recognised at its next message, which normally starts
// a write(). Bytes before the window that won are not replayed; the plugin gets a gap for them
// first (so it knows it started mid-way).
//
// The winner then receives the replay log and everything after it. A plugin that says "not mine"
// (-1) while the log is still held is excluded and detection runs again over the log. A plugin
// that says "switched" (-4: a CONNECT tunnel, 101 Switching Protocols) hands back the bytes it did
// not consume (conn_tail), and detection starts afresh from them for what the connection now
// carries, with the orientation already known.
// Every byte that is not decoded is counted under a reason.

import { Counters } from "@wirescope/runtime/counters";
import { DetectMemo } from "./detect-memo.js";
import { BATCH_CLOSE, BATCH_FEED, BATCH_GAP, BATCH_MAX_CHUNK, BatchStage } from "./batch.js";
import { Plugin, PluginInstance, PluginTrap } from "./plugin.js";
import type { PluginRegistry } from "./registry.js";

/** dir 0 = bytes the client sent (requests), 1 = bytes the server sent (docs/plugin-abi.md). */
export type Dir = 0 | 1;

export interface EngineOptions {
  /** Bytes (both directions) seen without a claim before a connection is given up as unclaimed. */
  detectLimit: number;
  /** Bytes of a direction offered to detect() at most. */
  detectWindow: number;
  /** Score at or above which a plugin claims a connection. */
  claimScore: number;
  /** Bytes fed to one connection at most (0 = no limit); beyond, it is dropped as "limit_bytes". */
  maxConnBytes: number;
  /** Largest piece handed to one feed() call; bigger chunks are split. */
  maxFeed: number;
  /**
   * EngineBatch stages the steps of ABI v2 plugins and runs them in one feed_batch call per
   * instance (default true); false: every step is its own call, as for version 1 plugins.
   */
  batch: boolean;
  counters: Counters;
}

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, "counters"> = {
  detectLimit: 32 * 1024,
  detectWindow: 4096,
  claimScore: 50,
  maxConnBytes: 0,
  maxFeed: 1 << 20,
  batch: true,
};

export interface OpenOptions {
  /** True when dir 0 is known to be the client (default true). */
  clientKnown: boolean;
  /** The server's port (or the port believed to be the server's): a tie-break hint. */
  portHint: number;
  /** Skip detection and use this plugin (by name or protocol), e.g. `--proto 8080=http1`. */
  protocol: string;
  /**
   * The connection's start was not seen (it predates the capture, or its state was lost): the
   * plugin gets gap(dir, 0) before the first bytes of each direction, so it searches for the
   * next message start instead of taking the first byte for one.
   */
  midstream: boolean;
}

/** What one call produced. */
export interface StepResult {
  /** Records (wirescope.v1.Record wire format, plugin fields only), in order. */
  records: Uint8Array[];
  state: ConnState;
  /** Why the connection is rejected, when it is. */
  reason?: string;
}

/**
 * detecting: no plugin has claimed the connection yet; decoding: a plugin owns it; rejected: no
 * plugin can decode it (any more), `reason` says why; closed: after close() or free().
 */
export type ConnState = "detecting" | "decoding" | "rejected" | "closed";

/** A direction's detection window restarts at the next chunk only once it holds this many bytes. */
const REANCHOR_MIN = 32;
/** At most this many fresh windows per direction and connection. */
const MAX_REANCHORS = 8;
/** Chunks (of at least CHUNK_MIN bytes) offered alone to detection, per direction. */
const MAX_CHUNK_ROUNDS = 64;
const CHUNK_MIN = 8;

/**
 * How the engine knows which end is the client: `given` by the caller (clientKnown), decided by
 * `content` (the winning plugin scored the two orientations differently), or `guessed` (both
 * orientations scored the same: the caller's was kept, and nothing says it is right).
 */
export type Orientation = "given" | "content" | "guessed";

/** Plugin calls made through EngineConnection.call (no closure per call: hot path). */
const FEED = 0;
const GAP = 1;
const CLOSE = 2;
type Op = typeof FEED | typeof GAP | typeof CLOSE;

const NEG_REASON: Record<number, string> = { [-1]: "not_mine", [-2]: "broken", [-3]: "limit" };

/** Scratch for conn_stats answers: [errors, drops, dropped bytes]. */
const STATS = [0, 0, 0];

interface LogEntry {
  dir: Dir;
  /** Undefined for a gap. */
  bytes?: Uint8Array;
  len: number;
  ts: bigint;
}

export class ConnectionEngine {
  readonly options: EngineOptions;
  readonly counters: Counters;

  constructor(
    readonly registry: PluginRegistry,
    options: Partial<EngineOptions> = {},
  ) {
    this.counters = options.counters ?? new Counters();
    this.options = { ...DEFAULT_ENGINE_OPTIONS, ...options, counters: this.counters };
  }

  /** A new connection in state "detecting" (or "decoding" when `protocol` forces a plugin). */
  openConnection(opts: Partial<OpenOptions> = {}): EngineConnection {
    this.counters.add("conn_opened");
    return new EngineConnection(this, { clientKnown: opts.clientKnown ?? true, portHint: opts.portHint ?? 0, protocol: opts.protocol ?? "", midstream: opts.midstream ?? false });
  }

  /** The last trap seen (plugin, kind, message), for logs and fuzz reports. */
  lastTrap?: { plugin: string; kind: string; message: string; where: string };

  /**
   * The parser service's DecoderHost shape (services/parser/src/decoder.ts): `roleKnown` is
   * clientKnown, `serverPort` the port hint.
   */
  open(hint: { roleKnown: boolean; serverPort: number; protocol?: string; midstream?: boolean }): EngineConnection {
    return this.openConnection({ clientKnown: hint.roleKnown, portHint: hint.serverPort, protocol: hint.protocol ?? "", midstream: hint.midstream ?? false });
  }

  /**
   * Counts the growth of a connection's counters that an ABI v2 plugin reported:
   * `plugin_errors.<plugin>`, `plugin_drops.<plugin>`, `plugin_bytes_dropped.<plugin>`.
   */
  countStats(plugin: Plugin, errors: number, drops: number, bytes: number): void {
    const names = plugin.statsCounters;
    if (errors > 0) this.counters.add(names[0], errors);
    if (drops > 0) this.counters.add(names[1], drops);
    if (bytes > 0) this.counters.add(names[2], bytes);
  }

  // ---- ABI v2 batches (EngineBatch) ----

  /** Per instance, the entries staged and not yet run. */
  private readonly pending = new Map<PluginInstance, Pending>();
  /** Stages whose run finished, for reuse (each holds 300 KiB of staging), with their item lists. */
  private readonly spare: Pending[] = [];
  private runs = 0;
  /** feed_batch calls made and the steps they carried (for tests and benchmarks). */
  readonly batched = { calls: 0, entries: 0 };

  /**
   * A batch of steps of any connections: steps of connections that an ABI v2 plugin is
   * decoding are staged and handed to the plugin in one feed_batch call per instance; the
   * others run at once, as data()/gap()/close() do. Results come out of flush() in the order
   * the steps went in, each exactly what the step alone would have returned; with `eager`, those
   * of steps that ran at once come out at once (BatchOptions).
   */
  batch<T>(onResult: BatchResultFn<T>, opts: Partial<BatchOptions> = {}): EngineBatch<T> {
    return new EngineBatch(this, onResult, opts.eager ?? false);
  }

  /** @internal Stages step `it` of its connection on the connection's instance. */
  stage(inst: PluginInstance, handle: number, pdir: number, it: BatchItem<unknown>): void {
    let p = this.pending.get(inst);
    if (p && !p.stage.fits(it.len)) {
      this.run(p);
      p = undefined;
    }
    if (!p) {
      p = this.spare.pop() ?? { inst, stage: new BatchStage(), items: [], n: 0 };
      p.inst = inst;
      p.stage.reset();
      this.pending.set(inst, p);
    }
    const op = it.op === FEED ? BATCH_FEED : it.op === GAP ? BATCH_GAP : BATCH_CLOSE;
    const at = p.stage.add(handle, op, pdir, it.op === FEED ? it.len : it.op === GAP ? Math.max(0, Math.min(Math.trunc(it.len) || 0, 0x7fffffff)) : 0, it.ts, it.op === FEED ? it.bytes : undefined);
    if (at >= 0) {
      // the caller's buffer may be reused: a step run again reads the copy
      it.bytes = undefined;
      it.staged = p.stage;
      it.at = at;
    }
    p.items[p.n++] = it;
  }

  /** @internal Runs the staged steps of `conn`'s instance (before a step of it that cannot wait). */
  runStaged(conn: EngineConnection): void {
    for (const p of this.pending.values()) {
      for (let i = 0; i < p.n; i++) {
        if (p.items[i]!.conn === conn) {
          this.run(p);
          return;
        }
      }
    }
  }

  /** @internal Runs every staged step. */
  runAll(): void {
    // run() takes each out of the map (iteration goes on past a deleted entry)
    for (const p of this.pending.values()) this.run(p);
  }

  /** One feed_batch call for an instance's staged steps, then each step's answer in order. */
  private run(p: Pending): void {
    const inst = p.inst!;
    this.pending.delete(inst);
    const { stage, items, n } = p;
    const runId = ++this.runs;
    for (let i = 0; i < n; i++) items[i]!.conn.queued = 0;
    inst.feedBatch(stage);
    this.batched.calls++;
    this.batched.entries += stage.n;
    const plugin = inst.plugin;
    // a switched connection's unconsumed bytes, fetched before anything else runs on the
    // instance (the last chunk's rest is still in its input buffer)
    let tails: Map<EngineConnection, (Uint8Array | undefined)[] | PluginTrap> | undefined;
    for (let i = 0; i < stage.done; i++) {
      if (stage.status[i] !== -4) continue;
      const conn = items[i]!.conn;
      tails ??= new Map();
      if (tails.has(conn)) continue;
      try {
        const h = conn.handleOf();
        tails.set(conn, [inst.connTail(h, 0), inst.connTail(h, 1)]);
      } catch (e) {
        if (!(e instanceof PluginTrap)) throw e;
        tails.set(conn, e);
      }
    }
    let from = 0;
    for (let i = 0; i < n; i++) {
      const it = items[i]!;
      const conn = it.conn;
      if (conn.diverted === runId || i > stage.done || (i === stage.done && !stage.trap)) {
        // its connection stopped decoding with this handle at an earlier step (or the
        // instance died before this one): the step runs as it would have on its own
        it.runAlone();
        continue;
      }
      if (i === stage.done) {
        conn.batchTrapped(it, plugin, stage.trap!);
        conn.diverted = runId;
        continue;
      }
      const to = stage.recEnd[i]!;
      const records = stage.records.slice(from, to);
      from = to;
      if (stage.errors[i]! > 0 || stage.drops[i]! > 0 || stage.dropped[i]! > 0) this.countStats(plugin, stage.errors[i]!, stage.drops[i]!, stage.dropped[i]!);
      if (!conn.batchAnswer(it, inst, plugin, stage.status[i]!, records, tails?.get(conn))) conn.diverted = runId;
    }
    stage.reset();
    items.fill(undefined, 0, n);
    p.n = 0;
    p.inst = undefined;
    this.spare.push(p);
  }

  /** Per plugin, the detection scores of openings seen before (detect is stateless). */
  private readonly memos = new WeakMap<Plugin, DetectMemo>();
  /** detect() calls made into plugins, and answers taken from the memo instead (tests, benchmarks). */
  readonly detects = { calls: 0, remembered: 0 };

  /** @internal `plugin`'s score for these first bytes of plugin direction `dir`. Throws PluginTrap. */
  detect(plugin: Plugin, inst: PluginInstance, dir: number, bytes: Uint8Array): number {
    let memo = this.memos.get(plugin);
    if (!memo) this.memos.set(plugin, (memo = new DetectMemo()));
    const known = memo.get(dir, bytes);
    if (known >= 0) {
      this.detects.remembered++;
      return known;
    }
    this.detects.calls++;
    const score = inst.detect(dir, bytes);
    memo.set(dir, bytes, score);
    return score;
  }

  /** Counts a trap once per instance death. */
  countTrap(plugin: Plugin, e: PluginTrap, where: string): void {
    if (!e.first) return;
    this.lastTrap = { plugin: plugin.name, kind: e.kind, message: e.message, where };
    this.counters.add(`plugin_traps.${plugin.name}`);
    this.counters.add(`plugin_traps.${plugin.name}.${e.kind}`);
    if (where === "detect") this.counters.add(`detect_traps.${plugin.name}`);
  }
}

export class EngineConnection {
  state: ConnState = "detecting";
  reason?: string;
  /** The plugin decoding this connection. */
  plugin?: Plugin;
  /** True when the engine decided that dir 0 as given by the caller is the server. */
  flipped = false;
  /** Where `flipped` comes from (set when a plugin claims the connection). */
  orientation: Orientation = "given";
  /** Plugin-state restarts after a per-connection limit (see call()). */
  restarts = 0;
  private inst?: PluginInstance;
  private handle = 0;
  private log: LogEntry[] | null = [];
  private logBytes = 0;
  private seen = 0;
  private fed = 0;
  /** Plugins that retracted a claim (made at the first retraction). */
  private excluded: Set<Plugin> | undefined;
  /**
   * Detection windows and replay anchors, made when first needed and dropped with the replay log
   * (`dropLog`): a connection that never sends, or that a plugin decodes, holds none (~0.9 KB of
   * heap each: a parser holds 100,000 idle connections under a flood of half-open ones).
   */
  private det: Detection | undefined;
  private get dt(): Detection {
    return (this.det ??= new Detection());
  }
  private out: Uint8Array[] = [];
  /** Bumped by every claim, so that a replay interrupted by a re-detection stops. */
  private epoch = 0;
  /** Per plugin direction: gap(dir, 0) is due before its next bytes (mid-stream start, restart). */
  private gapDue: [boolean, boolean] = [false, false];
  /**
   * The ts_ns those gaps carry: bytes lost before a mid-stream start were sent before anything
   * seen (the first chunk's stamp); after a restart, before the chunk that hit the limit. A
   * plugin writes requests sent before a gap's stamp as incomplete, so a later stamp would
   * cost the request whose response is the first bytes seen.
   */
  private gapDueTs = 0n;
  /** ts_ns of the first chunk or gap of the connection. */
  private firstTs: bigint | undefined;
  /** Records produced since the last restart: a restart needs progress in between. */
  private sinceRestart = 0;
  /** A plugin won, but which end is the client waits for the silent direction (decide()). */
  private postponed = false;
  /**
   * The connection switched protocols (a plugin answered -4): which end is the client is known
   * from then on (`flipped` as decided before), and its new start was seen (not mid-stream).
   */
  switches = 0;
  /** @internal Steps of this connection staged in a batch and not yet run. */
  queued = 0;
  /** @internal The batch run in which this connection stopped decoding with its handle. */
  diverted = 0;
  /** @internal Steps of this connection in an EngineBatch whose results are not handed out yet. */
  held = 0;
  /** A close is staged: later steps must wait for it. */
  private closing = false;

  constructor(
    private readonly engine: ConnectionEngine,
    private readonly opts: OpenOptions,
  ) {
    if (opts.protocol) {
      const p = engine.registry.get(opts.protocol) ?? engine.registry.byProtocol(opts.protocol);
      if (!p) this.reject(`unknown_protocol`);
      else this.claim(p, false);
    }
  }

  /** Bytes of direction `dir` (as the caller sees it), in order, stamped `tsNs`. */
  data(dir: Dir, bytes: Uint8Array, tsNs: bigint): StepResult {
    if (this.queued > 0) this.engine.runStaged(this);
    this.out = [];
    if (!bytes.length) return this.result();
    const c = this.engine.counters;
    if (this.state === "rejected" || this.state === "closed") {
      c.add(`bytes_dropped.${this.state === "closed" ? "after_close" : this.reason ?? "rejected"}`, bytes.length);
      return this.result();
    }
    this.firstTs ??= tsNs;
    if (this.state === "detecting") {
      // While detecting, every chunk is kept for the replay (a first chunk may be large).
      this.detectChunk(dir, bytes.slice(), tsNs);
      return this.result();
    }
    this.seen += bytes.length;
    if (this.log) {
      // Held until the plugin proves itself, for a fallback if it retracts (-1).
      if (this.logBytes + bytes.length <= this.engine.options.detectLimit) {
        this.log.push({ dir, bytes: bytes.slice(), len: bytes.length, ts: tsNs });
        this.logBytes += bytes.length;
      } else this.dropLog();
    }
    this.feed(dir, bytes, tsNs);
    return this.result();
  }

  /** A chunk (owned: not the caller's buffer) while detecting. */
  private detectChunk(dir: Dir, bytes: Uint8Array, tsNs: bigint): void {
    const c = this.engine.counters;
    this.seen += bytes.length;
    this.log!.push({ dir, bytes, len: bytes.length, ts: tsNs });
    this.logBytes += bytes.length;
    this.offer(this.log!.length - 1);
    if (this.state === "detecting" && this.seen >= this.engine.options.detectLimit) {
      this.settleDetection();
      this.claimPostponed();
    }
    if (this.state === "detecting" && this.seen >= this.engine.options.detectLimit) {
      c.add("unclaimed");
      c.add("bytes_dropped.unclaimed", this.seen);
      this.reject("unclaimed");
    }
  }

  /** The capture missed `len` bytes of direction `dir` (0 = unknown). */
  gap(dir: Dir, len: number, tsNs: bigint): StepResult {
    return this.gapStep(dir, len, tsNs, true);
  }

  /** @internal gap(); `count` false for a batch's gap run again on its own (counted when staged). */
  gapStep(dir: Dir, len: number, tsNs: bigint, count: boolean): StepResult {
    if (this.queued > 0) this.engine.runStaged(this);
    this.out = [];
    if (count) this.engine.counters.add("gaps");
    this.firstTs ??= tsNs;
    this.gapIn(dir, len, tsNs);
    return this.result();
  }

  private gapIn(dir: Dir, len: number, tsNs: bigint): void {
    if (this.state === "rejected" || this.state === "closed") return;
    this.settleDetection();
    this.claimPostponed();
    if (this.log) this.log.push({ dir, len, ts: tsNs });
    if (this.state === "detecting") {
      // the windows of this direction restart after the gap
      const next = this.log ? this.log.length : 0;
      this.dt.base[dir].reset(next);
      this.dt.fresh[dir].reset(next);
      this.dt.chunk[dir].reset(next);
      return;
    }
    this.call(GAP, dir, tsNs, undefined, len);
  }

  /** The connection ended: the plugin writes waiting requests as incomplete. Frees the handle. */
  close(tsNs: bigint): StepResult {
    if (this.queued > 0) this.engine.runStaged(this);
    this.out = [];
    this.settleDetection();
    this.claimPostponed();
    if (this.state === "detecting") {
      this.engine.counters.add(this.seen > 0 ? "unclaimed" : "conn_empty");
      if (this.seen > 0) this.engine.counters.add("bytes_dropped.unclaimed", this.seen);
    }
    if (this.state === "decoding") this.call(CLOSE, 0, tsNs);
    this.closed();
    return this.result();
  }

  /**
   * Reports what the plugin counted on this connection since its last report (ABI v2
   * conn_stats) into the engine's counters, while the connection lives: a long-lived
   * connection's errors and drops are otherwise reported only when it ends. Costs one plugin
   * call; nothing for a version 1 plugin or a connection not decoding.
   */
  reportCounters(): void {
    const inst = this.inst;
    const plugin = this.plugin;
    if (this.state !== "decoding" || this.queued > 0 || !inst || !plugin || inst.abi < 2 || inst.dead || this.handle <= 0) return;
    try {
      if (inst.connStats(this.handle, STATS)) this.engine.countStats(plugin, STATS[0]!, STATS[1]!, STATS[2]!);
    } catch (e) {
      // the instance is dead now: the connection is dropped at its next step, as after any trap
      if (e instanceof PluginTrap) this.engine.countTrap(plugin, e, "stats");
      else throw e;
    }
  }

  /** Forgets the connection without flushing (moved partition, eviction). */
  free(): void {
    if (this.queued > 0) this.engine.runStaged(this);
    if (this.inst && this.handle > 0) {
      try {
        if (this.plugin) this.freeHandle(this.inst, this.plugin);
        else this.inst.connFree(this.handle);
      } catch (e) {
        if (e instanceof PluginTrap && this.plugin) this.engine.countTrap(this.plugin, e, "free");
      }
    }
    this.handle = 0;
    this.inst = undefined;
    this.dropLog();
    if (this.state === "detecting" || this.state === "decoding") this.state = "closed";
  }

  // ---- batches (ABI v2) ----

  /**
   * @internal Stages a step in a batch when it can wait: the connection is decoding with an
   * ABI v2 plugin and no longer holds its replay log, the step needs no gap first and no byte
   * limit applies. Does the step's bookkeeping here, in order; false: run it alone now.
   */
  tryStage(it: BatchItem<unknown>): boolean {
    const inst = this.inst;
    const o = this.engine.options;
    if (!o.batch || this.state !== "decoding" || this.closing || this.log !== null || !inst || inst.abi < 2 || inst.dead || this.handle <= 0 || !this.plugin) return false;
    const dir = it.dir;
    if (it.op === FEED) {
      if (this.gapDue[dir] || it.len === 0 || it.len > BATCH_MAX_CHUNK || it.len > o.maxFeed || o.maxConnBytes) return false;
      this.seen += it.len;
      this.fed += it.len;
    } else if (it.op === GAP) {
      this.engine.counters.add("gaps");
      it.gapCounted = true;
      this.gapDue[dir] = false;
    } else {
      this.closing = true;
      this.gapDue[0] = false;
    }
    if (typeof it.ts !== "bigint") it.ts = BigInt(Math.trunc(Number(it.ts) || 0));
    this.engine.stage(inst, this.handle, this.flipped ? 1 - dir : dir, it);
    this.queued++;
    return true;
  }

  /** @internal The handle this connection decodes with. */
  handleOf(): number {
    return this.handle;
  }

  /** @internal The plugin's answer to a staged step, its records in hand. False: the handle is done. */
  batchAnswer(it: BatchItem<unknown>, inst: PluginInstance, plugin: Plugin, r: number, records: Uint8Array[], tails: (Uint8Array | undefined)[] | PluginTrap | undefined): boolean {
    this.out = records;
    const h = this.handle;
    const restarts = this.restarts;
    let ok: boolean;
    if (tails instanceof PluginTrap && r === -4) {
      this.trapped(plugin, tails);
      ok = false;
    } else {
      try {
        ok = this.answer(inst, plugin, r < 0 ? r : records.length, r < 0 ? 0 : records.length, it.ts, r === -4 ? (tails as (Uint8Array | undefined)[]) : undefined);
      } catch (e) {
        if (!(e instanceof PluginTrap)) throw e;
        this.trapped(plugin, e);
        ok = false;
      }
    }
    if (it.op === CLOSE) this.closed();
    it.finish(this.result(), this.flipped);
    // a restart (-3) keeps decoding with a new state (perhaps under the same handle number): the
    // steps staged for the old one were answered by its latched status and run again
    return ok && this.handle === h && this.inst === inst && this.restarts === restarts;
  }

  /** @internal The instance trapped at this connection's staged step. */
  batchTrapped(it: BatchItem<unknown>, plugin: Plugin, e: PluginTrap): void {
    this.out = [];
    this.trapped(plugin, e);
    if (it.op === CLOSE) this.closed();
    it.finish(this.result(), this.flipped);
  }

  /** The end of close(): the handle freed, the state closed (unless rejected). */
  private closed(): void {
    this.free();
    if (this.state !== "rejected") this.state = "closed";
  }

  private result(): StepResult {
    return this.reason ? { records: this.out, state: this.state, reason: this.reason } : { records: this.out, state: this.state };
  }

  private reject(reason: string): void {
    this.state = "rejected";
    this.reason = reason;
    this.engine.counters.add(`conn_dropped.${reason}`);
    if (this.inst && this.handle > 0) {
      try {
        if (this.plugin) this.freeHandle(this.inst, this.plugin);
        else this.inst.connFree(this.handle);
      } catch {
        // the instance is dead: nothing to free
      }
    }
    this.inst = undefined;
    this.handle = 0;
    this.dropLog();
  }

  // ---- detection ----

  /** Stops holding the replay log, and with it the detection state (no detection without it). */
  private dropLog(): void {
    this.log = null;
    this.det = undefined;
  }

  /** Every detection window empty, anchored at 0. */
  private resetWindows(): void {
    for (const d of DIRS) {
      this.dt.base[d].reset(0);
      this.dt.fresh[d].reset(0);
      this.dt.chunk[d].reset(0);
    }
  }

  /** Adds log entry `i` to its direction's windows and asks the plugins when they grew enough. */
  private offer(i: number): void {
    const e = this.log![i]!;
    if (!e.bytes) return;
    const d = e.dir;
    const cap = this.engine.options.detectWindow;
    this.dt.base[d].add(e.bytes, cap);
    const distinct = this.dt.fresh[d].anchor > this.dt.base[d].anchor;
    if (distinct) this.dt.fresh[d].add(e.bytes, cap);
    this.dt.chunk[d].reset(i);
    this.dt.chunk[d].add(e.bytes, cap);
    let due = this.dt.base[d].due() || (distinct && this.dt.fresh[d].due());
    if (!due && this.chunkAlone(d) && this.dt.chunkRounds[d] < MAX_CHUNK_ROUNDS) {
      this.dt.chunkRounds[d]++;
      due = true;
    }
    if (due) this.decide(d, i);
  }

  /**
   * One detection round over every window. Claims when the best score reaches claimScore.
   * Otherwise, when nobody sees anything in direction `d`'s latest window (and it is long enough
   * for that to mean something: detectors may answer 0 to a 1-byte prefix), a fresh window for
   * `d` starts at the next chunk: a connection picked up mid-way is usually recognised at its
   * next message. The window from the start is kept, for detectors that need a whole header.
   */
  private decide(d: Dir, i: number): void {
    this.engine.counters.add("detect_rounds");
    for (const dd of DIRS) {
      this.dt.base[dd].evaluated = this.dt.base[dd].len;
      this.dt.fresh[dd].evaluated = this.dt.fresh[dd].len;
      this.dt.chunk[dd].evaluated = this.dt.chunk[dd].len;
    }
    const best = this.evaluate();
    if (best && best.score >= this.engine.options.claimScore) {
      // Which end is the client is open and one direction has said nothing yet: its first
      // bytes may decide it (a reply that only fits one hypothesis). close(), a gap and the
      // detection limit claim with the guess.
      // Mid-stream, a window may begin inside a message and look like anything: both
      // directions must have spoken before content decides.
      if (!this.known && (!best.decided || this.opts.midstream) && (this.dt.base[0].len === 0 || this.dt.base[1].len === 0)) {
        this.postponed = true;
        return;
      }
      this.dt.anchor[0] = best.anchors[0];
      this.dt.anchor[1] = best.anchors[1];
      this.claim(best.plugin!, best.flipped, best.decided ? "content" : "guessed");
      return;
    }
    const latest = this.dt.fresh[d].anchor > this.dt.base[d].anchor ? this.dt.fresh[d] : this.dt.base[d];
    if ((best?.latestMax[d] ?? 0) === 0 && latest.len >= REANCHOR_MIN && this.dt.reanchors[d] < MAX_REANCHORS) {
      this.dt.reanchors[d]++;
      this.dt.fresh[d].reset(i + 1);
    }
  }

  /** Which end is the client is settled: given by the caller, or decided before a switch. */
  private get known(): boolean {
    return this.opts.clientKnown || this.switches > 0;
  }

  /** The start of what is being detected was not seen (a switch starts at a known point). */
  private get midstream(): boolean {
    return this.opts.midstream && this.switches === 0;
  }

  /** Claims a postponed winner with the orientation it has (see decide()). */
  private claimPostponed(): void {
    if (this.state !== "detecting" || !this.postponed || !this.log) return;
    this.postponed = false;
    const best = this.evaluate();
    if (!best || best.score < this.engine.options.claimScore) return;
    this.dt.anchor[0] = best.anchors[0];
    this.dt.anchor[1] = best.anchors[1];
    this.claim(best.plugin!, best.flipped, best.decided ? "content" : "guessed");
  }

  /** True when direction `d`'s newest chunk starts after both of its windows and is long enough to judge. */
  private chunkAlone(d: Dir): boolean {
    const k = this.dt.chunk[d];
    return k.len >= CHUNK_MIN && k.anchor > this.dt.base[d].anchor && k.anchor > this.dt.fresh[d].anchor;
  }

  /** Asks about windows that grew since the last round (before a gap, the close, giving up). */
  private settleDetection(): void {
    if (this.state !== "detecting" || !this.log || !this.det) return; // no windows: nothing seen to settle
    for (const d of [0, 1] as Dir[]) {
      if (this.state !== "detecting") return;
      const distinct = this.dt.fresh[d].anchor > this.dt.base[d].anchor;
      if (this.dt.base[d].len !== this.dt.base[d].evaluated || (distinct && this.dt.fresh[d].len !== this.dt.fresh[d].evaluated)) this.decide(d, this.log.length - 1);
    }
  }

  /**
   * Best (plugin, orientation) over both directions' windows, with the window (anchor) that
   * scored best in each direction, and per direction the best score any plugin gave its latest
   * window.
   */
  private evaluate(): Evaluation | undefined {
    const ev = EVAL;
    ev.plugin = undefined;
    ev.latestMax[0] = 0;
    ev.latestMax[1] = 0;
    // candidate windows per direction: the base one, and the fresh one when it starts later
    for (const d of DIRS) {
      let n = 0;
      const o = d * 3;
      const distinct = this.dt.fresh[d].anchor > this.dt.base[d].anchor;
      const b = this.dt.base[d].bytes();
      if (b) n = ev.cand(o + n, this.dt.base[d], b, !distinct);
      const f = distinct ? this.dt.fresh[d].bytes() : undefined;
      if (f) n = ev.cand(o + n, this.dt.fresh[d], f, true);
      // the newest chunk alone is evidence, not a window to restart from (latest: false)
      const k = this.chunkAlone(d) ? this.dt.chunk[d].bytes() : undefined;
      if (k) n = ev.cand(o + n, this.dt.chunk[d], k, false);
      ev.candN[d] = n;
    }
    const claimScore = this.engine.options.claimScore;
    const plugins = this.engine.registry.list();
    for (let pi = 0; pi < plugins.length; pi++) {
      const p = plugins[pi]!;
      if (this.excluded?.has(p)) continue;
      let inst: PluginInstance;
      try {
        inst = p.detectInstance();
      } catch {
        continue;
      }
      // This plugin's two orientation hypotheses: the better one by its best score, then by the
      // sum over both directions (a reply that fits only one hypothesis decides between two
      // equally good requests). Decided by content only when they differ; otherwise the
      // caller's orientation is kept and called a guess.
      let mine = false;
      let mFlipped = false;
      let mScore = 0;
      let mSum = 0;
      let mA0 = 0;
      let mA1 = 0;
      let decided = false;
      const hypotheses = this.known ? 1 : 2;
      for (let h = 0; h < hypotheses; h++) {
        const flipped = this.known ? this.flipped : h === 1;
        let score = 0;
        let sum = 0;
        let a0 = this.dt.base[0].anchor;
        let a1 = this.dt.base[1].anchor;
        for (const d of DIRS) {
          let dirBest = -1;
          for (let j = d * 3, end = j + ev.candN[d]!; j < end; j++) {
            let sc = 0;
            try {
              sc = this.engine.detect(p, inst, flipped ? 1 - d : d, ev.candBytes[j]!);
            } catch (e) {
              if (e instanceof PluginTrap) this.engine.countTrap(p, e, "detect");
            }
            if (ev.candLatest[j] && sc > ev.latestMax[d]) ev.latestMax[d] = sc;
            if (sc > dirBest) {
              dirBest = sc;
              if (d === 0) a0 = ev.candWin[j]!.anchor;
              else a1 = ev.candWin[j]!.anchor;
            }
          }
          score = Math.max(score, dirBest);
          // mid-stream, a window may start inside a message: only a claim-strength score is
          // evidence of orientation there ("-1\r\n" cut from a request looks like a reply)
          if (!this.midstream || dirBest >= claimScore) sum += Math.max(0, dirBest);
        }
        if (mine) decided = score !== mScore || sum !== mSum;
        if (!mine || score > mScore || (score === mScore && sum > mSum)) {
          mine = true;
          mFlipped = flipped;
          mScore = score;
          mSum = sum;
          mA0 = a0;
          mA1 = a1;
        }
      }
      if (!mine) continue;
      const hint = p.hints(this.opts.portHint);
      if (!ev.plugin || mScore > ev.score || (mScore === ev.score && hint && !ev.hint)) {
        ev.plugin = p;
        ev.flipped = mFlipped;
        ev.score = mScore;
        ev.hint = hint;
        ev.anchors[0] = mA0;
        ev.anchors[1] = mA1;
        ev.decided = decided;
      }
    }
    // the windows' bytes are this connection's: not held past the round
    ev.candBytes.fill(undefined);
    ev.candWin.fill(undefined);
    return ev.plugin ? ev : undefined;
  }

  /**
   * Hands the connection to `plugin` and replays the log, each direction from its window's
   * anchor (earlier bytes become a gap).
   */
  private claim(plugin: Plugin, flipped: boolean, orientation: Orientation = "given"): void {
    const c = this.engine.counters;
    const epoch = ++this.epoch;
    this.plugin = plugin;
    this.flipped = flipped;
    if (this.switches === 0) {
      this.orientation = this.opts.clientKnown ? "given" : orientation;
      if (this.orientation === "guessed") c.add("orientation_guessed");
    }
    this.state = "decoding";
    this.gapDue = [this.midstream, this.midstream];
    this.gapDueTs = this.firstTs ?? 0n;
    const got = this.connNew(plugin);
    if (typeof got === "string") {
      this.reject(got);
      return;
    }
    c.add(`conn_claimed.${plugin.name}`);
    if (!this.log) return;
    const log = this.log;
    const skipped = [0, 0];
    for (let i = 0; i < log.length; i++) {
      const e = log[i]!;
      if (this.state !== "decoding" || this.epoch !== epoch) {
        // switched during the replay: the rest of the log is the new protocol's
        if ((this.state as ConnState) === "detecting" && this.log !== log) this.ingest(log.slice(i));
        return;
      }
      if (i < this.dt.anchor[e.dir]) {
        if (e.bytes) skipped[e.dir] += e.len;
        continue;
      }
      if (skipped[e.dir]) {
        // bytes before the winning window: the plugin starts mid-way
        c.add("bytes_dropped.before_detect", skipped[e.dir]!);
        const n = skipped[e.dir]!;
        skipped[e.dir] = 0;
        if (!this.call(GAP, e.dir, e.ts, undefined, n, epoch)) return;
      }
      if (e.bytes) this.feedPieces(e.dir, e.bytes, e.ts, epoch);
      else this.call(GAP, e.dir, e.ts, undefined, e.len, epoch);
    }
    // Replayed: the windows are not read again unless the claim is retracted, and redetect()
    // builds them again from the log it still holds.
    if (this.state === "decoding" && this.epoch === epoch) this.det = undefined;
  }

  // ---- decoding ----

  private feed(dir: Dir, bytes: Uint8Array, ts: bigint): void {
    const o = this.engine.options;
    if (o.maxConnBytes && this.fed + bytes.length > o.maxConnBytes) {
      this.engine.counters.add("bytes_dropped.limit_bytes", bytes.length);
      this.reject("limit_bytes");
      return;
    }
    this.fed += bytes.length;
    this.feedPieces(dir, bytes, ts, this.epoch);
  }

  private feedPieces(dir: Dir, bytes: Uint8Array, ts: bigint, epoch: number): void {
    const max = this.engine.options.maxFeed;
    for (let off = 0; off < bytes.length; off += max) {
      const piece = off === 0 && bytes.length <= max ? bytes : bytes.subarray(off, off + max);
      if (!this.call(FEED, dir, ts, piece, 0, epoch)) {
        // switched inside a chunk larger than one piece: the pieces not fed are the new protocol's
        if (this.state === "detecting" && off + max < bytes.length) this.ingest([{ dir, bytes: bytes.slice(off + max), len: bytes.length - off - max, ts }]);
        return;
      }
    }
  }

  /** Chunks and gaps that arrived (or were logged) after a switch, in order. */
  private ingest(entries: LogEntry[]): void {
    for (const e of entries) {
      if (this.state === "rejected" || this.state === "closed") return;
      if (!e.bytes) this.gapIn(e.dir, e.len, e.ts);
      else if (this.state === "detecting") this.detectChunk(e.dir, e.bytes, e.ts);
      else {
        this.seen += e.len;
        this.feed(e.dir, e.bytes, e.ts);
      }
    }
  }

  /**
   * Runs one plugin call for direction `dir` (caller's orientation; flipped here), takes its
   * records, and handles negative returns and traps. Returns false when the connection ended.
   */
  private call(op: Op, dir: Dir, ts: bigint, bytes?: Uint8Array, len = 0, epoch = this.epoch): boolean {
    const inst = this.inst;
    const plugin = this.plugin;
    if (!inst || !plugin || this.handle <= 0 || this.state !== "decoding" || epoch !== this.epoch) return false;
    if (this.gapDue[dir]) {
      // the plugin has not seen where this direction starts: say so before its first bytes
      this.gapDue[dir] = false;
      if (op === FEED && !this.call(GAP, dir, this.gapDueTs, undefined, 0, epoch)) return false;
      if (this.inst !== inst) return this.call(op, dir, ts, bytes, len, epoch);
    }
    try {
      const d = this.flipped ? 1 - dir : dir;
      const r = op === FEED ? inst.feed(this.handle, d, bytes!, ts) : op === GAP ? inst.gap(this.handle, d, len, ts) : inst.close(this.handle, ts);
      return this.answer(inst, plugin, r, r > 0 ? inst.take(this.out) : 0, ts);
    } catch (e) {
      if (!(e instanceof PluginTrap)) throw e;
      this.trapped(plugin, e);
      return false;
    }
  }

  /**
   * What the plugin answered to one call, its `n` records already in this.out: counts them and
   * handles a negative answer. Returns false when the connection no longer decodes with this
   * handle. Throws PluginTrap (the caller counts it). `tails`: the switched connection's
   * unconsumed bytes when they were fetched already (a batch).
   */
  private answer(inst: PluginInstance, plugin: Plugin, r: number, n: number, ts: bigint, tails?: (Uint8Array | undefined)[]): boolean {
    const c = this.engine.counters;
    if (n > 0) {
      c.add(plugin.recordsCounter, n);
      this.sinceRestart += n;
      // the plugin has proven itself: stop holding the replay log
      this.dropLog();
    }
    if (r === -4) {
      this.switchOver(inst, plugin, ts, tails);
      return false;
    }
    if (r < 0) {
      const reason = NEG_REASON[r] ?? "plugin_error";
      if (r === -3 && this.sinceRestart > 0 && this.restart(inst, plugin, ts)) return true;
      if (r === -1 && this.log) {
        // wrong guess while the log is still held: exclude this plugin and detect again
        c.add(`detect_retracted.${plugin.name}`);
        try {
          inst.take(this.out);
          this.freeHandle(inst, plugin);
        } catch (e) {
          if (e instanceof PluginTrap) this.engine.countTrap(plugin, e, "free");
        }
        this.handle = 0;
        this.inst = undefined;
        this.plugin = undefined;
        (this.excluded ??= new Set()).add(plugin);
        this.redetect();
        return false;
      }
      try {
        inst.take(this.out);
      } catch {
        // dead instance: its output is not trusted
      }
      this.reject(reason);
      return false;
    }
    return true;
  }

  /** The instance trapped in a call for this connection: counted once, the connection dropped. */
  private trapped(plugin: Plugin, e: PluginTrap): void {
    this.engine.countTrap(plugin, e, "feed");
    this.handle = 0;
    this.inst = undefined;
    this.reject("plugin_trap");
  }

  /**
   * conn_free for the current handle, after reading the connection's counters (ABI v2) into the
   * engine's: the last growth since the plugin last reported them. Throws PluginTrap.
   */
  private freeHandle(inst: PluginInstance, plugin: Plugin): void {
    if (inst.abi >= 2 && inst.connStats(this.handle, STATS)) this.engine.countStats(plugin, STATS[0]!, STATS[1]!, STATS[2]!);
    inst.connFree(this.handle);
  }

  /**
   * A new connection state in the plugin's current instance, or in a fresh one when the current
   * one is full (connections or memory). Sets inst and handle; the reason on failure.
   */
  private connNew(plugin: Plugin): PluginInstance | "plugin_trap" | "plugin_full" {
    let inst: PluginInstance;
    try {
      inst = plugin.instance();
      this.handle = inst.connNew();
      if (this.handle <= 0) {
        inst = plugin.freshInstance();
        this.engine.counters.add(`plugin_instances_added.${plugin.name}`);
        this.handle = inst.connNew();
      }
    } catch (e) {
      if (e instanceof PluginTrap) this.engine.countTrap(plugin, e, "conn_new");
      this.handle = 0;
      return "plugin_trap";
    }
    if (this.handle <= 0) return "plugin_full";
    this.inst = inst;
    return inst;
  }

  /**
   * A per-connection limit (-3) on a connection that decoded records since its last restart:
   * the plugin's state for it starts afresh and both directions get gap(dir, 0), so the plugin
   * resynchronises at the next message instead of the connection being dropped for the rest
   * of its life. Needing a record in between keeps a hostile stream from restarting for ever.
   * Counted as conn_restarted.limit; false when no new state could be had.
   */
  private restart(inst: PluginInstance, plugin: Plugin, ts: bigint): boolean {
    const c = this.engine.counters;
    try {
      inst.take(this.out);
      this.freeHandle(inst, plugin);
    } catch (e) {
      if (e instanceof PluginTrap) this.engine.countTrap(plugin, e, "free");
      return false;
    }
    this.handle = 0;
    this.inst = undefined;
    if (typeof this.connNew(plugin) === "string") return false;
    this.dropLog();
    this.restarts++;
    this.sinceRestart = 0;
    this.gapDue = [true, true];
    this.gapDueTs = ts;
    c.add("conn_restarted.limit");
    return true;
  }

  /**
   * The plugin answered -4: the connection now carries another protocol (a CONNECT tunnel, 101
   * Switching Protocols). Its records are taken, the bytes it did not consume come back through
   * conn_tail, and detection starts over from them, with the same orientation. A plugin without
   * conn_tail hands back nothing: its unconsumed bytes are a gap of unknown size.
   */
  private switchOver(inst: PluginInstance, plugin: Plugin, ts: bigint, fetched?: (Uint8Array | undefined)[]): void {
    const c = this.engine.counters;
    // a trap here is call()'s to count (this runs inside its try)
    inst.take(this.out);
    const tails = fetched ?? [inst.connTail(this.handle, 0), inst.connTail(this.handle, 1)];
    this.freeHandle(inst, plugin);
    c.add(`conn_switched.${plugin.name}`);
    this.handle = 0;
    this.inst = undefined;
    this.plugin = undefined;
    this.switches++;
    this.epoch++;
    this.state = "detecting";
    this.postponed = false;
    this.excluded?.clear();
    this.det = undefined; // anchors, windows and their counts start again
    this.gapDue = [false, false];
    this.sinceRestart = 0;
    this.seen = 0;
    this.log = [];
    this.logBytes = 0;
    const entries: LogEntry[] = [];
    for (const pd of [0, 1] as Dir[]) {
      const b = tails[pd];
      const d = (this.flipped ? 1 - pd : pd) as Dir;
      if (b === undefined) entries.push({ dir: d, len: 0, ts });
      else if (b.length) entries.push({ dir: d, bytes: b, len: b.length, ts });
    }
    this.ingest(entries);
  }

  /** Runs detection again over the held log (after a plugin retracted its claim). */
  private redetect(): void {
    const log = this.log!;
    this.state = "detecting";
    this.flipped = false;
    this.dt.anchor[0] = 0;
    this.dt.anchor[1] = 0;
    this.resetWindows();
    for (let i = 0; i < log.length; i++) {
      const e = log[i]!;
      if (!e.bytes) {
        this.dt.base[e.dir].reset(i + 1);
        this.dt.fresh[e.dir].reset(i + 1);
        this.dt.chunk[e.dir].reset(i + 1);
        continue;
      }
      this.offer(i);
      if (this.state !== "detecting") return;
    }
    this.settleDetection();
  }
}

/** What a batch hands back for each step, in order: `flipped` as it was after the step. */
export type BatchResultFn<T> = (tag: T, result: StepResult, conn: EngineConnection, flipped: boolean) => void;

/** How an EngineBatch hands out results (ConnectionEngine.batch). */
export interface BatchOptions {
  /**
   * false (the default): every result comes out of flush(), in the order the steps came, so
   * the output of a batch reads as that of one call per step (`wirescope decode`).
   * true: a step that is not staged runs at once and its result is handed out at once; staged
   * steps' results come out of flush(). A connection's results still come out in the order of
   * its steps (a step that runs at once while one of its connection's results is held back
   * runs after a flush). For a caller that acts on each answer as it comes: the parser stops
   * feeding a connection that a plugin gave up or that detection rejected, as it did with one
   * call per step; only the results of connections that were decoding wait for flush().
   */
  eager: boolean;
}

/** An instance's staged steps: `n` items (the list is kept for the next batch, not emptied). */
interface Pending {
  inst: PluginInstance | undefined;
  stage: BatchStage;
  items: (BatchItem<unknown> | undefined)[];
  n: number;
}

/** @internal One step of a batch and, once it ran, its result. */
export class BatchItem<T> {
  result?: StepResult;
  flipped = false;
  /** A staged feed step's bytes: `len` bytes at `at` in this stage's data. */
  staged?: BatchStage;
  at = 0;
  /** A gap step counted in `gaps` when it was staged (run again on its own, it is not counted twice). */
  gapCounted = false;

  constructor(
    readonly conn: EngineConnection,
    readonly tag: T,
    readonly op: Op,
    readonly dir: Dir,
    public bytes: Uint8Array | undefined,
    readonly len: number,
    public ts: bigint,
  ) {}

  finish(r: StepResult, flipped: boolean): void {
    this.result = r;
    this.flipped = flipped;
  }

  /** Runs the step on its own (data(), gap(), close()). */
  runAlone(): void {
    const c = this.conn;
    if (this.op === FEED && this.staged) this.bytes = new Uint8Array(this.staged.data.buffer, this.at, this.len);
    this.finish(this.op === FEED ? c.data(this.dir, this.bytes!, this.ts) : this.op === GAP ? c.gapStep(this.dir, this.len, this.ts, !this.gapCounted) : c.close(this.ts), c.flipped);
  }
}

/**
 * Steps of many connections collected and run together (ConnectionEngine.batch): a connection
 * an ABI v2 plugin decodes has its steps staged, and each plugin instance gets them in one
 * feed_batch call at flush() (or when its stage is full); every other step runs at once. flush()
 * hands every step's result to the callback in the order the steps came, each the same as the
 * step alone would have given (docs/plugin-abi.md, "feed_batch"); an eager batch hands out the
 * result of a step that ran at once right away (BatchOptions.eager).
 */
export class EngineBatch<T> {
  /**
   * Steps whose results are not handed out yet (`n` of them), and a second list for the next
   * batch while flush() hands these out: lists are reused, not made per raw batch.
   */
  private items: (BatchItem<T> | undefined)[] = [];
  private n = 0;
  private other: (BatchItem<T> | undefined)[] | undefined = [];

  constructor(
    private readonly engine: ConnectionEngine,
    private readonly onResult: BatchResultFn<T>,
    private readonly eager = false,
  ) {}

  /** Bytes of direction `dir` (see EngineConnection.data). */
  data(conn: EngineConnection, dir: Dir, bytes: Uint8Array, tsNs: bigint, tag: T): void {
    this.push(new BatchItem(conn, tag, FEED, dir, bytes, bytes.length, tsNs));
  }

  /** Missed bytes (see EngineConnection.gap). */
  gap(conn: EngineConnection, dir: Dir, len: number, tsNs: bigint, tag: T): void {
    this.push(new BatchItem(conn, tag, GAP, dir, undefined, len, tsNs));
  }

  /** The connection ended (see EngineConnection.close). */
  close(conn: EngineConnection, tsNs: bigint, tag: T): void {
    this.push(new BatchItem(conn, tag, CLOSE, 0, undefined, 0, tsNs));
  }

  /** Runs whatever is staged and hands out every result, in order. */
  flush(): void {
    this.engine.runAll();
    const items = this.items;
    const n = this.n;
    // a flush from inside a callback (the list in hand is busy) gets a list of its own
    this.items = this.other ?? [];
    this.other = undefined;
    this.n = 0;
    for (let i = 0; i < n; i++) {
      const it = items[i]!;
      it.conn.held--;
      this.onResult(it.tag, it.result!, it.conn, it.flipped);
    }
    items.fill(undefined, 0, n);
    this.other = items;
  }

  private push(it: BatchItem<T>): void {
    const c = it.conn;
    if (c.tryStage(it)) {
      c.held++;
      this.items[this.n++] = it;
    } else if (this.eager) {
      // its connection's earlier results first
      if (c.held > 0) this.flush();
      it.runAlone();
      this.onResult(it.tag, it.result!, c, it.flipped);
      return;
    } else {
      c.held++;
      this.items[this.n++] = it;
      it.runAlone();
    }
    if (this.n >= 8192) this.flush();
  }
}

const DIRS: readonly Dir[] = [0, 1];

/**
 * What one detection round found (EngineConnection.evaluate): the best plugin and orientation,
 * the window (anchor) that scored best in each direction, and per direction the best score any
 * plugin gave its latest window. One scratch object for every round: detection runs one
 * connection at a time and a round is read before the next one starts.
 */
class Evaluation {
  plugin: Plugin | undefined;
  flipped = false;
  score = 0;
  hint = false;
  decided = false;
  readonly anchors: [number, number] = [0, 0];
  readonly latestMax: [number, number] = [0, 0];
  /** Candidate windows of the round, three slots per direction (d * 3 + k); candN per direction. */
  readonly candWin: (Win | undefined)[] = new Array<Win | undefined>(6).fill(undefined);
  readonly candBytes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(6).fill(undefined);
  readonly candLatest: boolean[] = new Array<boolean>(6).fill(false);
  readonly candN: [number, number] = [0, 0];

  /** Sets candidate slot `j`; returns the direction's count after it. */
  cand(j: number, win: Win, bytes: Uint8Array, latest: boolean): number {
    this.candWin[j] = win;
    this.candBytes[j] = bytes;
    this.candLatest[j] = latest;
    return (j % 3) + 1;
  }
}

const EVAL = new Evaluation();

/** A detection window: the first bytes of one direction from log entry `anchor` on. */
/** One connection's detection state, per direction as the caller gives it (see `det`). */
class Detection {
  /** The log index the replay starts from. */
  readonly anchor: [number, number] = [0, 0];
  /** The window from the start (or the last gap), and the one restarted at a later chunk. */
  readonly base: [Win, Win] = [new Win(), new Win()];
  readonly fresh: [Win, Win] = [new Win(), new Win()];
  /**
   * The newest chunk alone. Mid-stream, a window that began inside a message may keep a weak
   * score as it grows over several writes and never be restarted; a message that starts a later
   * write is still found here. Asked for at most MAX_CHUNK_ROUNDS chunks.
   */
  readonly chunk: [Win, Win] = [new Win(), new Win()];
  readonly chunkRounds: [number, number] = [0, 0];
  /** Fresh windows started (bounded: each costs detection rounds). */
  readonly reanchors: [number, number] = [0, 0];
}

class Win {
  anchor = 0;
  parts: Uint8Array[] = [];
  len = 0;
  /** `len` at the last detection round. */
  evaluated = 0;

  reset(anchor: number): void {
    this.anchor = anchor;
    this.parts.length = 0;
    this.len = 0;
    this.evaluated = 0;
  }

  add(b: Uint8Array, cap: number): void {
    if (this.len >= cap) return;
    const t = b.length <= cap - this.len ? b : b.subarray(0, cap - this.len);
    this.parts.push(t);
    this.len += t.length;
  }

  bytes(): Uint8Array | undefined {
    if (!this.len) return undefined;
    // joined once and kept joined, so many small chunks do not cost a copy each round
    if (this.parts.length > 1) this.parts = [concat(this.parts, this.len)];
    return this.parts[0];
  }

  /**
   * Grew enough since the last round to ask again: every chunk while small, then every
   * min(256 bytes, 25 %), so a connection dribbling one byte at a time costs O(log n) rounds.
   */
  due(): boolean {
    const last = this.evaluated;
    const now = this.len;
    if (now === last) return false;
    return last < 64 || now - last >= Math.min(256, last / 4);
  }
}

function concat(parts: Uint8Array[], len: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const b = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    b.set(p, o);
    o += p.length;
  }
  return b;
}
