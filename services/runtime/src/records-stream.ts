// The JetStream stream that carries records from the parsers to the aggregators: one definition,
// created by whichever side comes first (parser or aggregator), with the replicas the deployment
// asks for (--nats-replicas: 1 on one server, 3 on a cluster so that a lost server loses nothing).
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, RetentionPolicy, DiscardPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { NatsError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { RECORDS_ALL } from "./nats.js";

export interface RecordsStreamOptions {
  name: string;
  /** Size limit; the oldest records go first. */
  maxBytes: number;
  maxAgeMs: number;
  /** JetStream replicas (1, 3 or 5). */
  replicas: number;
}

export const RECORDS_STREAM_DEFAULTS: RecordsStreamOptions = {
  name: "WIRESCOPE_RECORDS",
  maxBytes: 1024 * 1024 * 1024,
  maxAgeMs: 60 * 60_000,
  replicas: 1,
};

/**
 * How long a retried publish is recognised as a duplicate (Nats-Msg-Id): a parser retries a
 * batch whose acknowledgement was lost (a server died, the stream changed leader) for at most
 * its retry budget, well inside this window, so a batch stored before the loss is stored once.
 */
export const RECORDS_DUPLICATE_WINDOW_MS = 2 * 60_000;

/** The stream's definition (subjects wirescope.records.*, limits by bytes and age, file storage). */
export function recordsStreamConfig(o: RecordsStreamOptions): Partial<StreamConfig> & { name: string } {
  return {
    name: o.name,
    subjects: [RECORDS_ALL.replace(/\*$/, ">")],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_bytes: o.maxBytes,
    max_age: nanos(o.maxAgeMs),
    num_replicas: o.replicas,
    duplicate_window: nanos(RECORDS_DUPLICATE_WINDOW_MS),
  };
}

/**
 * Creates the records stream when missing; an existing one is kept as it is (a stream created
 * with fewer replicas than asked is logged: `nats stream edit` raises them).
 * @throws NatsError("stream") when it neither exists nor can be created.
 */
export async function ensureRecordsStream(nc: NatsConnection, options: Partial<RecordsStreamOptions>, log: Logger): Promise<void> {
  const o = { ...RECORDS_STREAM_DEFAULTS, ...options };
  const jsm = await jetstreamManager(nc);
  try {
    const existing = await jsm.streams.info(o.name);
    if (existing.config.num_replicas < o.replicas) {
      log.warn({ stream: o.name, replicas: existing.config.num_replicas, wanted: o.replicas }, "records stream has fewer replicas than asked");
    }
    return;
  } catch {
    // missing: created below
  }
  try {
    await jsm.streams.add(recordsStreamConfig(o));
    log.info({ stream: o.name, replicas: o.replicas }, "records stream created");
  } catch (e) {
    try {
      await jsm.streams.info(o.name); // created by another service meanwhile
    } catch {
      throw new NatsError("stream", `cannot create JetStream stream ${o.name} (is JetStream enabled on nats-server? a cluster needs ${o.replicas} servers for ${o.replicas} replicas): ${errorMessage(e)}`, { cause: e });
    }
  }
}

/**
 * Runs a JetStream call again while JetStream is briefly away (its server lost, a stream or
 * consumer leader being elected: timeouts, 503) for up to `budgetMs`, then fails with its last
 * error. A permission violation is not retried.
 */
export async function withJetStreamRetry<T>(what: string, fn: () => Promise<T>, opts: { log: Logger; signal?: AbortSignal; budgetMs?: number }): Promise<T> {
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const msg = errorMessage(e);
      if (/permission/i.test(msg) || opts.signal?.aborted || Date.now() - started + delay > (opts.budgetMs ?? 60_000)) throw e;
      if (attempt === 1) opts.log.warn({ what, err: msg }, "JetStream not answering; retrying");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 4000);
    }
  }
}
