// Membership over NATS itself: a JetStream KV bucket per fleet (`wirescope-parsers`,
// `wirescope-aggregators`), one key per replica.
//
//   replica ──put every heartbeatMs──▶ KV <bucket>/<id> = MemberInfo (JSON)
//   replica ◀──watch (all keys)─────── puts (alive), DEL (goodbye)
//   timer: a member not heard from for ttlMs is dead (kill -9 leaves no goodbye)
//
// The bucket's max_age equals the TTL, so a dead replica's key also disappears from the store
// and a replica starting later never sees it as alive. Liveness is judged by the local arrival
// time of heartbeats (MembershipView), so clocks of other machines do not matter, except for the
// initial snapshot where the server's timestamp filters entries older than the TTL.
import type { NatsConnection } from "@nats-io/nats-core";
import { setTimeout as delay } from "node:timers/promises";
import { Kvm, type KV } from "@nats-io/kv";
import { NatsError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { MembershipView, type MemberInfo } from "./membership.js";
import { withJetStreamRetry } from "./records-stream.js";
import { Counters } from "./counters.js";
import type { HealthGate } from "./health.js";
import { SupervisedLoop, iterateRun } from "./supervised-loop.js";

export const AGGREGATOR_MEMBERS_BUCKET = "wirescope-aggregators";

export interface NatsMembershipOptions {
  heartbeatMs: number;
  ttlMs: number;
  bucket: string;
  /** What the fleet is called in logs ("parser", "aggregator"). */
  fleet?: string;
  /** Keys `<keyPrefix>.<id>`: several fleets in one bucket, each hearing only its own members. */
  keyPrefix?: string;
  /** JetStream replicas of the bucket when this replica creates it. */
  replicas?: number;
  /** Where a watch that ended and was started again is counted (`members_watch_restarts.<reason>`). */
  counters?: Counters;
  /** The service's health: NOT_SERVING (`members_watch: <reason>`) while the watch is down. */
  health?: HealthGate;
  /** Told each entry of ours once the bucket holds it. */
  onWritten?: (info: MemberInfo) => void;
}

export class NatsMembership {
  readonly view: MembershipView;
  private kv!: KV;
  private timer: NodeJS.Timeout | undefined;
  private watch: SupervisedLoop | undefined;
  private lastPut: Promise<unknown> = Promise.resolve();
  private connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly self: () => MemberInfo,
    private readonly opts: NatsMembershipOptions,
    private readonly log: Logger,
    /** Called with the sorted member ids whenever the set changes. */
    private readonly onChange: (members: string[], died: string[]) => void,
  ) {
    this.view = new MembershipView(self().id, { ttlMs: opts.ttlMs });
  }

  /**
   * Opens the bucket and starts heartbeating and watching. JetStream calls are retried while a
   * cluster member is lost or a leader elected (a replica starting as a server dies must not fail).
   */
  async start(signal?: AbortSignal): Promise<void> {
    const retry = <T>(what: string, fn: () => Promise<T>) => withJetStreamRetry(what, fn, { log: this.log, signal });
    try {
      this.kv = await retry(`${this.opts.bucket} bucket`, () => new Kvm(this.nc).create(this.opts.bucket, { history: 1, ttl: this.opts.ttlMs, replicas: this.opts.replicas ?? 1 }));
    } catch (e) {
      throw new NatsError("kv", `cannot open KV bucket ${this.opts.bucket} (is JetStream enabled on nats-server?): ${errorMessage(e)}`, { cause: e });
    }
    await this.heartbeat();
    const prefix = this.opts.keyPrefix ? `${this.opts.keyPrefix}.` : "";
    // Partitions are assigned only once the snapshot of current members is in: a replica
    // starting beside others must not claim every partition for a moment.
    let initialized = false;
    let ready!: () => void;
    const snapshot = new Promise<void>((r) => (ready = r));
    // The watch is kept running (SupervisedLoop): one that ended (its ordered consumer could not
    // be recreated while a cluster member was lost) would leave this replica deaf to the others,
    // which it would judge dead after the TTL, taking every partition. Each run starts with a snapshot
    // of the current members, whose old entries are skipped as at the first start.
    // The first watch is waited for (retried while JetStream does not answer, as the bucket).
    let firstWatch!: (e?: unknown) => void;
    const first = new Promise<void>((resolve, reject) => (firstWatch = (e) => (e === undefined ? resolve() : reject(e))));
    this.watch = new SupervisedLoop(
      async (attempt) => {
        // The snapshot is in once an entry is marked as an update: nats.js marks the last entry of
        // the snapshot so (and every later one). Our own entry, written above, makes the snapshot
        // non-empty; were it not there (the put failed), the first later entry or the bounded wait
        // below ends the wait.
        let snapshotDone = false;
        const snapshotIn = () => {
          snapshotDone = true;
          initialized = true;
          ready();
        };
        const open = () => this.kv.watch({ key: `${prefix}>` });
        let w: Awaited<ReturnType<typeof open>>;
        try {
          w = attempt === 0 ? await retry(`${this.opts.bucket} watch`, open) : await open();
        } catch (e) {
          if (attempt === 0) firstWatch(e);
          throw e;
        }
        if (attempt === 0) firstWatch();
        return iterateRun(
          w,
          (e) => {
            const now = performance.now();
            try {
              if (e.operation === "PUT") {
                let info: MemberInfo;
                try {
                  info = e.json<MemberInfo>();
                } catch {
                  return;
                }
                if (!snapshotDone && Date.now() - e.created.getTime() > this.opts.ttlMs) return;
                if (this.view.heard(info, now) && initialized) this.changed([]);
              } else if (this.view.left(e.key.slice(prefix.length)) && initialized) {
                this.log.info({ member: e.key }, `${this.opts.fleet ?? "parser"} replica left`);
                this.changed([]);
              }
            } finally {
              if (e.isUpdate && !snapshotDone) snapshotIn();
            }
          },
          () => w.stop(),
        );
      },
      { name: "members_watch", counters: this.opts.counters ?? new Counters(), log: this.log, health: this.opts.health },
    );
    try {
      await first;
    } catch (e) {
      await this.watch.stop();
      throw e;
    }
    // While our own connection is down we hear no one: judging others dead then would make us
    // claim every partition. Freeze expiry, and give everyone a fresh TTL once we are back.
    void (async () => {
      for await (const st of this.nc.status()) {
        if (st.type === "disconnect") this.connected = false;
        else if (st.type === "reconnect") {
          this.view.touchAll(performance.now());
          this.connected = true;
          void this.heartbeat();
        }
      }
    })().catch(() => undefined);
    let lastTick = performance.now();
    this.timer = setInterval(() => {
      void this.heartbeat();
      if (!this.connected) return;
      // A late tick means this process was busy (a long ingest, the GC, a starved machine): the
      // heartbeats that arrived meanwhile are still unread. Everyone gets a fresh TTL then rather
      // than being judged by our own delay; and expiry waits for the I/O already pending
      // (setImmediate runs after the event loop's poll phase, timers before it).
      const now = performance.now();
      const late = now - lastTick > this.opts.heartbeatMs + this.opts.ttlMs / 2;
      lastTick = now;
      if (late) {
        this.view.touchAll(now);
        return;
      }
      setImmediate(() => {
        const dead = this.view.expire(performance.now());
        if (dead.length) {
          this.log.warn({ dead }, `${this.opts.fleet ?? "parser"} replicas stopped heartbeating: taking over their partitions`);
          this.changed(dead);
        }
      });
    }, this.opts.heartbeatMs);
    await Promise.race([snapshot, new Promise((r) => setTimeout(r, 5000))]);
    initialized = true;
    this.changed([]);
  }

  /** Writes our own entry now (also called after output progress advances). */
  heartbeat(): Promise<unknown> {
    // The entry is made when its turn comes, after the put before it: what it states as written
    // since the last entry (a parser's losses) is then never stated twice.
    this.lastPut = this.lastPut
      .then(async () => {
        const info = this.self();
        await this.kv.put(this.key(info.id), JSON.stringify(info));
        this.opts.onWritten?.(info);
      })
      .catch((e) => this.log.debug({ err: errorMessage(e) }, "heartbeat failed"));
    return this.lastPut;
  }

  /** Goodbye: final entry (with final progress), then delete so others rebalance at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.watch?.stop();
    if (!this.kv) return;
    await this.heartbeat();
    try {
      await this.kv.delete(this.key(this.self().id));
    } catch (e) {
      this.log.debug({ err: errorMessage(e) }, "goodbye failed");
    }
  }

  private key(id: string): string {
    return this.opts.keyPrefix ? `${this.opts.keyPrefix}.${id}` : id;
  }

  private changed(died: string[]): void {
    this.onChange(this.view.members(), died);
  }
}

/**
 * Says goodbye for members that died (kill -9, crash) and so could not: deletes the entries of
 * `bucket` (keys `<keyPrefix>.<id>` when given) whose MemberInfo `match`es, so the others take
 * their partitions at the deletion, as at a clean leave, instead of after the TTL. Their last
 * progress is kept by every watcher (MembershipView's departed members), so the handover is
 * counted as after a death. Only for a member known dead: a live one would heartbeat itself back
 * in, after the others took its partitions. Returns the keys deleted. Once `signal` is aborted
 * nothing more is deleted: a caller that gave up waiting may restart the member meanwhile, and
 * its new entry matches as the dead one's did.
 */
export async function forgetMembers(nc: NatsConnection, bucket: string, match: (info: MemberInfo) => boolean, keyPrefix?: string, signal?: AbortSignal): Promise<string[]> {
  const kv = await new Kvm(nc).open(bucket);
  const gone: string[] = [];
  for await (const key of await kv.keys(keyPrefix ? `${keyPrefix}.>` : ">")) {
    if (signal?.aborted) break;
    const e = await kv.get(key);
    if (!e || e.operation !== "PUT") continue;
    let info: MemberInfo;
    try {
      info = e.json<MemberInfo>();
    } catch {
      continue;
    }
    if (!match(info) || signal?.aborted) continue;
    await kv.delete(key);
    gone.push(key);
  }
  return gone;
}

/**
 * Opens the KV `bucket` once it exists, for a reader that may not create it (a watcher whose NATS
 * user may only read it, started before the fleet that creates it). While JetStream says the
 * bucket's stream is not found, waits `pollMs` and asks again, quietly: `onWaiting` is called
 * once, at the first miss. Any other error is thrown, as is the abort of `signal`.
 */
export async function openBucketOnceCreated(nc: NatsConnection, bucket: string, opts: { signal: AbortSignal; pollMs?: number; onWaiting?: () => void }): Promise<KV> {
  const kv = await new Kvm(nc).open(bucket); // binds without a request
  for (let waiting = false; ; waiting = true) {
    opts.signal.throwIfAborted();
    try {
      await kv.status();
      return kv;
    } catch (e) {
      if ((e as Error)?.name !== "StreamNotFoundError") throw e;
    }
    if (!waiting) opts.onWaiting?.();
    await delay(opts.pollMs ?? 1000, undefined, { signal: opts.signal });
  }
}
