// The raw progress each parser replica committed (docs/parser.md, "Membership protocol"): its
// own key in the JetStream KV bucket `wirescope-parser-progress`, which nobody watches.
//
//   replica ──put after each flush whose progress changed (one in flight, the latest wins)──▶ KV <id>
//   successor ──get at a takeover, again until it settles──▶ the previous owner's progress
//
// Progress used to ride in the membership entry, which every parser replica and aggregator
// watches: at a hundred nodes that entry held ~150 KiB put up to 50 times a second, and each
// watcher received ~20 MiB/s and spent a quarter of a core parsing it (docs/benchmarks.md,
// "Parser membership entries as the fleet grows"). Only a successor reads it, once per takeover.
//
// Entries live PROGRESS_MAX_AGE_MS (a dead replica's progress is read seconds after its death,
// when the membership TTL has passed); a live replica puts its own again at least every
// PROGRESS_REFRESH_MS, so an idle one's does not expire.
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import { NatsError, errorMessage, withJetStreamRetry, type Counters, type Logger } from "@wirescope/runtime";
import { HANDOVER_READ_WAIT_MS, HANDOVER_SETTLE_MS, type Progress } from "./pipeline.js";

export const PROGRESS_MAX_AGE_MS = 10 * 60_000;
export const PROGRESS_REFRESH_MS = 60_000;
/** A successor reads a previous owner's progress at the takeover and then at these delays (ms): the last read before the handover settles is what it counts against. */
export const PROGRESS_READS_MS = [0, 400, 800, HANDOVER_SETTLE_MS - 50, HANDOVER_SETTLE_MS + 500];
/** Reads again while none has answered (every 1 s up to the takeover's wait, HANDOVER_READ_WAIT_MS). */
const PROGRESS_RETRY_MS = 1000;

export class ProgressStore {
  private kv!: KV;
  /** Our latest progress, and whether it was put since it last changed. */
  private mine: Progress = {};
  private dirty = false;
  private putting = false;
  private lastPutAt = 0;
  /** What was read of other replicas' progress (the latest read of each). */
  private readonly others = new Map<string, Progress>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly id: string,
    private readonly opts: { bucket: string; replicas?: number },
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  async start(signal?: AbortSignal): Promise<void> {
    try {
      this.kv = await withJetStreamRetry(`${this.opts.bucket} bucket`, () => new Kvm(this.nc).create(this.opts.bucket, { history: 1, ttl: PROGRESS_MAX_AGE_MS, replicas: this.opts.replicas ?? 1 }), { log: this.log, signal });
    } catch (e) {
      throw new NatsError("kv", `cannot open KV bucket ${this.opts.bucket}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * Our committed progress (merged into what we hold; released partitions' last values stay):
   * put when it changed, one put in flight at a time. Returns whether it changed.
   */
  committed(p: Progress): boolean {
    let changed = false;
    for (const k in p) {
      const v = p[k]!;
      if (this.mine[k] !== v) {
        this.mine[k] = v;
        changed = true;
      }
    }
    if (changed) {
      this.dirty = true;
      this.put();
    }
    return changed;
  }

  /** Called with each heartbeat: puts our progress again when it has not been put for PROGRESS_REFRESH_MS. */
  refresh(now = Date.now()): void {
    if (now - this.lastPutAt >= PROGRESS_REFRESH_MS) {
      this.dirty = true;
      this.put();
    }
  }

  /** Puts what we hold now, and again after each put while it changed meanwhile. */
  private put(): void {
    if (this.putting || !this.dirty || this.stopped || !this.kv) return;
    this.putting = true;
    this.dirty = false;
    const text = JSON.stringify(this.mine);
    this.kv
      .put(this.id, text)
      .then(
        () => {
          this.lastPutAt = Date.now();
          this.counters.add("progress_puts");
        },
        (e: unknown) => {
          this.dirty = true; // put again with the next change, or the next heartbeat
          this.counters.add("progress_put_errors");
          this.log.debug({ err: errorMessage(e) }, "progress put failed");
        },
      )
      .finally(() => {
        this.putting = false;
        if (this.dirty && !this.stopped) setImmediate(() => this.put());
      });
  }

  /** Our final progress, put before a goodbye (waited for). */
  async flush(): Promise<void> {
    if (!this.kv) return;
    await this.kv.put(this.id, JSON.stringify(this.mine)).catch((e: unknown) => this.log.debug({ err: errorMessage(e) }, "final progress put failed"));
  }

  /**
   * A partition of `prev` was taken over: read its progress now and at PROGRESS_READS_MS, so
   * that `of(prev)` holds its latest when the handover settles (Pipeline HANDOVER_SETTLE_MS).
   */
  want(prev: string): void {
    const at = (ms: number, then: () => void) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        then();
      }, ms);
      this.timers.add(t);
    };
    for (const ms of PROGRESS_READS_MS) at(ms, () => void this.read(prev));
    // none answered by the last of those (a loaded machine, a NATS failover): again until one does
    const again = (waited: number) => {
      if (this.others.has(prev) || waited >= HANDOVER_READ_WAIT_MS) return;
      void this.read(prev);
      at(PROGRESS_RETRY_MS, () => again(waited + PROGRESS_RETRY_MS));
    };
    at(PROGRESS_READS_MS.at(-1)! + PROGRESS_RETRY_MS, () => again(PROGRESS_READS_MS.at(-1)! + PROGRESS_RETRY_MS));
  }

  /** The latest progress read of replica `id`, or undefined when none was. */
  of(id: string): Progress | undefined {
    return this.others.get(id);
  }

  private async read(id: string): Promise<void> {
    if (this.stopped || !this.kv) return;
    try {
      const e = await this.kv.get(id);
      if (e && e.operation === "PUT") this.others.set(id, e.json<Progress>());
    } catch (err) {
      this.counters.add("progress_read_errors");
      this.log.debug({ err: errorMessage(err), replica: id }, "progress read failed");
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
