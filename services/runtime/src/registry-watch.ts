// The registry's live announcements, kept current by a KV watch instead of read again and again.
//
//   wirescope-services (KV) ── watch (ordered push consumer) ─▶ AnnouncedTable ─▶ onChange(list)
//     put: a member (re)announced     delete/purge: a member that stopped     (no event): its TTL ran out
//
// A watch costs the server one consumer creation when it starts and the client nothing while
// nothing changes; reading the bucket every second (listAnnounced: a stream info, then one get per
// key) cost two JetStream API requests a second plus one per announced member, forever, per reader
// (30 in 10 s for an idle probe beside one member, docs/benchmarks.md). The bucket's entries
// expire by the stream's max age (REGISTRY_TTL_MS), which the watch does not report (nats-server
// 2.9 writes no delete marker for it): the table expires them itself, by a local timer armed at the
// next expiry, which reads nothing from the server.
import { setTimeout as delay } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KvWatchEntry } from "@nats-io/kv";
import { REGISTRY_BUCKET, REGISTRY_TTL_MS, byComponentInstance, parseAnnouncement, type Announcement } from "./registry.js";

/**
 * The live announcements by key, fed by a watch's entries (pure: time is passed in). An entry lives
 * `ttlMs` after it was last written, as in the bucket.
 */
export class AnnouncedTable {
  private readonly live = new Map<string, { a: Announcement; text: string; writtenMs: number }>();

  constructor(private readonly ttlMs = REGISTRY_TTL_MS) {}

  get size(): number {
    return this.live.size;
  }

  /**
   * A put of `key` written at `writtenMs`. True when the list changed
   * (a member joined, left, or changed what it announces), not for a refresh of the same value.
   */
  put(key: string, value: Uint8Array, writtenMs: number): boolean {
    const a = parseAnnouncement(value);
    if (!a) return this.delete(key);
    const text = new TextDecoder().decode(value);
    const old = this.live.get(key);
    this.live.set(key, { a, text, writtenMs: Math.max(writtenMs, old?.writtenMs ?? 0) });
    return old?.text !== text;
  }

  /** A delete or purge of `key`; true when it was live. */
  delete(key: string): boolean {
    return this.live.delete(key);
  }

  /** Forgets the entries not written for `ttlMs`; true when any was. */
  expire(nowMs: number): boolean {
    let changed = false;
    for (const [k, e] of this.live) {
      if (nowMs - e.writtenMs >= this.ttlMs) {
        this.live.delete(k);
        changed = true;
      }
    }
    return changed;
  }

  /** When the next entry expires (ms, the clock of `put`), or -1 when none is live. */
  nextExpiryMs(): number {
    let next = Infinity;
    for (const e of this.live.values()) next = Math.min(next, e.writtenMs + this.ttlMs);
    return next === Infinity ? -1 : next;
  }

  /** The live announcements, sorted by component then instance (as listAnnounced). */
  list(): Announcement[] {
    return [...this.live.values()].map((e) => e.a).sort(byComponentInstance);
  }

  /**
   * Applies one watch entry; true when the list changed. An entry expires by when the server wrote
   * it (a value read when the watch (re)started may be old), never counted from later than now.
   */
  apply(e: Pick<KvWatchEntry, "key" | "operation" | "value" | "created">, nowMs: number): boolean {
    if (e.operation !== "PUT") return this.delete(e.key);
    return this.put(e.key, e.value, Math.min(nowMs, e.created.getTime()));
  }
}

export interface AnnouncedWatchOptions {
  /** Called with the whole live list whenever it changes (and once the watch has started). */
  onChange(list: Announcement[]): void;
  /** A watch that could not start or ended: counted by the caller; the watch is made again. */
  onError?(e: unknown): void;
  /** A watch made again (after an error, its end, or a reconnect to NATS). */
  onRestart?(): void;
  signal: AbortSignal;
  /** First and longest wait before making a watch again (it doubles in between). */
  backoffMs?: { min: number; max: number };
  ttlMs?: number;
  now?: () => number;
}

/**
 * Follows the registry with a KV watch until `signal` aborts. The current values come at once,
 * then every put and delete as it happens; entries whose TTL runs out leave the list by a local
 * timer. A bucket that does not exist yet, a watch that ends, and NATS reconnects (after which the
 * server may have lost the watch's consumer, or be a new server with a new bucket) make it watch
 * again from the current values, after a wait that grows from `backoff.min` to `backoff.max` while
 * attempts keep failing. No JetStream API request is made while nothing goes wrong.
 */
export function watchAnnounced(nc: NatsConnection, opts: AnnouncedWatchOptions): { done: Promise<void> } {
  const now = opts.now ?? Date.now;
  const { min, max } = opts.backoffMs ?? { min: 500, max: 30_000 };
  const table = new AnnouncedTable(opts.ttlMs);
  const signal = opts.signal;
  let current: { stop(): void } | undefined;
  let reconnected = false;
  let expiry: NodeJS.Timeout | undefined;
  let expiryDue = Infinity;

  const changed = () => opts.onChange(table.list());
  // one timeout, at the next expiry; a refresh that moves it later lets it fire early and re-arm
  const armExpiry = () => {
    const due = table.nextExpiryMs();
    if (due < 0 || signal.aborted || due >= expiryDue) return;
    if (expiry) clearTimeout(expiry);
    expiryDue = due;
    expiry = setTimeout(() => {
      expiry = undefined;
      expiryDue = Infinity;
      if (signal.aborted) return;
      if (table.expire(now())) changed();
      armExpiry();
    }, Math.max(0, due - now()) + 1);
    expiry.unref();
  };

  // a reconnect may have cost the watch its consumer (or the server its bucket): watch again
  const statuses = nc.status() as AsyncIterable<{ type: string }> & { stop?(): void };
  void (async () => {
    for await (const s of statuses) {
      if (s.type !== "reconnect") continue;
      reconnected = true;
      current?.stop();
    }
  })().catch(() => {});

  // a wait that the abort ends early
  const sleep = (ms: number) => delay(ms, undefined, { signal }).catch(() => {});

  const run = async () => {
    let failures = 0;
    let first = true;
    while (!signal.aborted && !nc.isClosed()) {
      if (!first) opts.onRestart?.();
      first = false;
      const started = now();
      try {
        // open binds without a request; the watch's consumer creation fails if the bucket is missing
        const kv = await new Kvm(nc).open(REGISTRY_BUCKET);
        const w = await kv.watch();
        current = w;
        if (signal.aborted) {
          w.stop();
          break;
        }
        // the values read when the watch starts (num_pending of them) are applied as they come:
        // the list only grows until the first live update, and the expiry drops what is gone
        changed();
        for await (const e of w) {
          if (signal.aborted) break;
          if (table.apply(e, now())) changed();
          armExpiry();
        }
        if (signal.aborted) break;
        if (!reconnected) throw new Error("registry watch ended");
      } catch (e) {
        if (signal.aborted) break;
        opts.onError?.(e);
      } finally {
        current = undefined;
      }
      // a watch that ran a while, or one stopped for a reconnect, starts the backoff over
      if (now() - started > max || reconnected) failures = 0;
      reconnected = false;
      await sleep(Math.min(max, min * 2 ** failures++));
    }
  };
  const onAbort = () => {
    current?.stop();
    statuses.stop?.();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const done = run().finally(() => {
    signal.removeEventListener("abort", onAbort);
    if (expiry) clearTimeout(expiry);
  });
  return { done };
}
