// NATS: connection with reconnect and credentials, and a typed publish/subscribe layer for the
// protobuf batches.
//
//   publish(subject, msg) ──encode──▶ bounded queue ──window of bytes──▶ nc.publish … socket drained
//        │ full / too big: counted drop, never an exception      ▲ paused while disconnected
//
// nats.js buffers without limit (nc.publish never refuses), so the bound lives here: messages wait
// in our queue (at most maxQueue messages / maxQueueBytes) and are handed to the client only while
// it is connected, at most windowBytes at a time; the next window waits until the bytes the client
// holds (its outbound buffer and the socket's) are below windowBytes again, i.e. until the kernel
// took them. A server that reads slowly fills the TCP window, the socket stops draining, our queue
// fills and what does not fit is a counted drop. No PING/PONG per window: core NATS has no acks,
// and a round trip per window cost a write, a read and a wake-up of both processes (when the
// client's internals are not reachable, each window still waits for a flush).
import fs from "node:fs";
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node";
import { credsAuthenticator, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import { toBinary, fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { NatsOptions } from "./config.js";
import { redactUrl } from "./redact.js";
import { NATS_NAMES, inboxPrefixFor } from "./nats-permissions.js";
import type { Logger } from "./log.js";
import { Counters } from "./counters.js";
import { NatsError, errorMessage } from "./errors.js";
import type { Dependency } from "./health.js";

export type { NatsConnection };

/** Subject carrying RawBatch messages for one partition (probe → parser). */
export const rawSubject = (partition: number): string => `wirescope.raw.${partition}`;
/** Subject carrying RecordBatch messages for one partition (parser → aggregator). */
export const recordsSubject = (partition: number): string => `wirescope.records.${partition}`;
/** Subject carrying ShedReport messages (probe → aggregator): requests served while shed. */
export const SHED_SUBJECT = NATS_NAMES.shedSubject;
/** Wildcards for every partition. */
export const RAW_ALL = "wirescope.raw.*";
export const RECORDS_ALL = "wirescope.records.*";

/**
 * The inbox prefix a client with these options uses (configured, else its user's: replies to it
 * only where that user may subscribe, nats-permissions.ts). A service that reads replies to its
 * own publishes by subject (the probe's unheard batches) matches them against it.
 */
export function inboxPrefixOf(opts: NatsOptions): string {
  return opts.inboxPrefix ?? inboxPrefixFor(opts.user);
}

/** Builds nats.js connection options from our config (credentials, TLS, reconnect forever). */
export function natsConnectionOptions(opts: NatsOptions, name: string): NodeConnectionOptions {
  const co: NodeConnectionOptions = {
    servers: opts.url.split(",").map((s) => s.trim()),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 200,
    pingInterval: 10_000,
    timeout: 5_000,
    // nats.js otherwise builds an Error (a stack capture) up front for every request, so that a
    // failure could show its caller: one per JetStream publish and per pull, on the hot path.
    // Failures still carry their message and cause.
    noAsyncTraces: true,
    inboxPrefix: inboxPrefixOf(opts),
  };
  if (opts.user !== undefined) co.user = opts.user;
  if (opts.password !== undefined) co.pass = opts.password;
  if (opts.token !== undefined) co.token = opts.token;
  if (opts.credsFile) {
    let creds: Uint8Array;
    try {
      creds = fs.readFileSync(opts.credsFile);
    } catch (e) {
      throw new NatsError("bad_creds", `cannot read NATS creds file ${opts.credsFile}: ${errorMessage(e)}`, { cause: e });
    }
    co.authenticator = credsAuthenticator(creds);
  }
  if (opts.tls || opts.url.startsWith("tls://")) {
    co.tls = { caFile: opts.tls?.ca, certFile: opts.tls?.cert, keyFile: opts.tls?.key };
  }
  return co;
}

export interface ConnectNatsOptions {
  /** Connection name shown by the server (e.g. "wirescope-parser host-parser-12"). */
  name: string;
  /** Keep retrying the first connection until connected or aborted (default true). */
  retry: boolean;
  signal?: AbortSignal;
  /** Marked up/down as the connection comes and goes. */
  dependency?: Dependency;
  counters?: Counters;
  /** Told the name of the server connected to, on connect and on every reconnect (a cluster member). */
  onServer?: (serverName: string) => void;
}

/**
 * Connects to NATS. With `retry` (default), keeps trying until connected or `signal` aborts;
 * afterwards the client reconnects by itself forever. Authorization failures are not retried.
 * @throws NatsError ("aborted", "auth", "connect")
 */
export async function connectNats(opts: NatsOptions, log: Logger, options: Partial<ConnectNatsOptions> = {}): Promise<NatsConnection> {
  const co = natsConnectionOptions(opts, options.name ?? "wirescope");
  const where = redactUrl(opts.url);
  let delay = 250;
  let warned = false;
  for (;;) {
    if (options.signal?.aborted) throw new NatsError("aborted", `gave up connecting to NATS at ${where}: aborted`);
    try {
      const nc = await connect(co);
      log.info({ nats: where, server: nc.info?.server_name }, "connected to NATS");
      watchNats(nc, log, options.dependency, options.counters, options.onServer);
      return nc;
    } catch (e) {
      const msg = errorMessage(e);
      // nats.js 3 rejects with an AuthorizationError ("'Authorization Violation'")
      if (/authori[sz]ation/i.test(msg)) {
        throw new NatsError("auth", `NATS at ${where} refused our credentials: ${msg}`, { cause: e });
      }
      if (options.retry === false) throw new NatsError("connect", `cannot connect to NATS at ${where}: ${msg}`, { cause: e });
      options.dependency?.down(`cannot connect to ${where}: ${msg}`);
      if (!warned) log.warn({ nats: where, reason: msg }, "NATS not reachable yet; retrying");
      warned = true;
      await sleep(delay, options.signal);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/** Logs connection events and keeps `dependency` in step with the connection. */
function watchNats(nc: NatsConnection, log: Logger, dep?: Dependency, counters?: Counters, onServer?: (name: string) => void): void {
  dep?.up();
  onServer?.(nc.info?.server_name ?? "");
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          log.warn({ server: s.server }, "NATS disconnected");
          counters?.add("nats_disconnects");
          dep?.down(`disconnected from ${s.server}`);
          break;
        case "reconnect":
          log.info({ server: s.server, server_name: nc.info?.server_name }, "NATS reconnected");
          counters?.add("nats_reconnects");
          onServer?.(nc.info?.server_name ?? "");
          dep?.up();
          break;
        case "error":
          log.warn({ reason: errorMessage(s.error) }, "NATS async error");
          counters?.add("nats_errors");
          break;
        case "ldm":
          log.warn("NATS server entering lame duck mode");
          break;
        case "staleConnection":
          log.warn("NATS connection stale");
          break;
      }
    }
  })().catch(() => {});
  void nc.closed().then((err) => {
    dep?.down("connection closed");
    if (err) log.error({ reason: errorMessage(err) }, "NATS connection closed with an error");
  });
}

export interface PublisherOptions {
  /** Most messages waiting in the queue; beyond this a publish is dropped and counted. */
  maxQueue: number;
  /** Most bytes waiting in the queue. */
  maxQueueBytes: number;
  /** Most bytes the client may hold unwritten (its buffer and its socket's) before the next window waits. */
  windowBytes: number;
  /** Where published/dropped counts go; names are prefixed with `prefix`. */
  counters: Counters;
  prefix: string;
}

const PUBLISHER_DEFAULTS: Omit<PublisherOptions, "counters"> = {
  maxQueue: 10_000,
  maxQueueBytes: 64 * 1024 * 1024,
  windowBytes: 1024 * 1024,
  prefix: "nats_",
};

interface Pending {
  subject: string;
  data: Uint8Array;
  reply: string | undefined;
}

/** What nats.js 3.x (nats-core's ProtocolHandler and the Node transport) keeps of a connection's output: not in its typings, read defensively. */
interface ClientOutput {
  protocol?: { outbound?: { size(): number }; transport?: { socket?: Writable } };
}
interface Writable {
  writableLength: number;
  writableNeedDrain: boolean;
  destroyed: boolean;
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
}

/** Longest wait for a socket to drain before the caller looks again (a stale socket is closed by the client's pings). */
const DRAIN_WAIT_MS = 1000;
/** Wait when the client holds bytes its socket has not been given yet (not connected, or not ready). */
const NOT_WRITTEN_WAIT_MS = 5;

/**
 * Bytes the client holds that the kernel has not taken yet (its outbound buffer and its socket's
 * write queue), and a wait for them to go down: until the socket drained or closed, bounded in
 * time, never a busy loop. Undefined when the client's internals are not as expected (another
 * nats.js version): the caller then waits for a flush.
 */
export function clientOutput(nc: NatsConnection): { pending(): number; drained(): Promise<void> } | undefined {
  const proto = (nc as unknown as ClientOutput).protocol;
  const socket = () => proto?.transport?.socket;
  if (typeof proto?.outbound?.size !== "function" || typeof socket()?.writableLength !== "number") return undefined;
  return {
    pending: () => proto.outbound!.size() + (socket()?.writableLength ?? 0),
    drained: () =>
      new Promise<void>((resolve) => {
        const s = socket();
        if (!s || s.destroyed || !s.writableNeedDrain) {
          setTimeout(resolve, NOT_WRITTEN_WAIT_MS);
          return;
        }
        const done = () => {
          clearTimeout(timer);
          s.off("drain", done);
          s.off("close", done);
          resolve();
        };
        const timer = setTimeout(done, DRAIN_WAIT_MS);
        s.once("drain", done);
        s.once("close", done);
      }),
  };
}

/**
 * Publishes protobuf messages of one type with a bounded queue and counted drops.
 * `publish` never throws and never blocks; `flush` waits until everything queued so far has
 * reached the server.
 *
 * Counters (with the prefix, default "nats_"): published, published_bytes, drops_queue_full,
 * drops_too_large, drops_closed, queue_depth (gauge).
 */
export class BatchPublisher<Desc extends DescMessage> {
  private readonly opts: PublisherOptions;
  private queue: Pending[] = [];
  private head = 0;
  private queuedBytes = 0;
  private pumping = false;
  private connected: boolean;
  private closed = false;
  private wake: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly output: ReturnType<typeof clientOutput>;
  readonly counters: Counters;

  constructor(
    private readonly nc: NatsConnection,
    private readonly schema: Desc,
    options: Partial<PublisherOptions> = {},
  ) {
    this.opts = { ...PUBLISHER_DEFAULTS, ...options, counters: options.counters ?? new Counters() };
    this.counters = this.opts.counters;
    this.connected = !nc.isClosed();
    this.output = clientOutput(nc);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") this.connected = false;
        if (s.type === "reconnect") {
          this.connected = true;
          this.wake?.();
        }
      }
    })().catch(() => {});
    void nc.closed().then(() => {
      this.connected = false;
      this.wake?.();
    });
  }

  /** Messages waiting to be handed to the client. */
  get depth(): number {
    return this.queue.length - this.head;
  }

  /** Encodes and queues `message` on `subject`. Returns false when it was dropped (counted). */
  publish(subject: string, message: MessageShape<Desc>): boolean {
    return this.publishBytes(subject, toBinary(this.schema, message));
  }

  /**
   * Queues an already encoded message. Returns false when it was dropped (counted). `reply`: a
   * reply subject (with nobody subscribed to `subject`, the server answers it at once with a 503
   * no-responders status: the probe counts such batches, services/probe/src/unheard.ts).
   */
  publishBytes(subject: string, data: Uint8Array, reply?: string): boolean {
    const c = this.counters;
    const p = this.opts.prefix;
    if (this.closed || this.nc.isClosed()) {
      c.add(`${p}drops_closed`);
      return false;
    }
    const max = this.nc.info?.max_payload ?? 1024 * 1024;
    if (data.length > max) {
      c.add(`${p}drops_too_large`);
      return false;
    }
    if (this.depth >= this.opts.maxQueue || this.queuedBytes + data.length > this.opts.maxQueueBytes) {
      c.add(`${p}drops_queue_full`);
      return false;
    }
    this.queue.push({ subject, data, reply });
    this.queuedBytes += data.length;
    c.set(`${p}queue_depth`, this.depth);
    void this.pump();
    return true;
  }

  /**
   * Resolves when every message queued before the call has been confirmed by the server.
   * @throws NatsError("flush_timeout") after `timeoutMs` (e.g. while disconnected), ("closed").
   */
  async flush(timeoutMs = 10_000): Promise<void> {
    const idle = new Promise<void>((resolve) => {
      if (!this.pumping && this.depth === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NatsError("flush_timeout", `NATS flush timed out after ${timeoutMs} ms with ${this.depth} messages queued`)), timeoutMs);
    });
    try {
      await Promise.race([idle.then(() => this.nc.flush()), timeout]);
    } catch (e) {
      if (e instanceof NatsError) throw e;
      throw new NatsError("flush_failed", `NATS flush failed: ${errorMessage(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Flushes what is queued (bounded by timeoutMs), then refuses new messages. */
  async close(timeoutMs = 5_000): Promise<void> {
    try {
      if (!this.nc.isClosed()) await this.flush(timeoutMs);
    } finally {
      this.closed = true;
      const left = this.depth;
      if (left) this.counters.add(`${this.opts.prefix}drops_closed`, left);
      this.queue = [];
      this.head = 0;
      this.queuedBytes = 0;
      this.wake?.();
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const c = this.counters;
    const p = this.opts.prefix;
    try {
      while (this.depth > 0 && !this.closed && !this.nc.isClosed()) {
        if (!this.connected) {
          await new Promise<void>((r) => (this.wake = r));
          this.wake = undefined;
          continue;
        }
        let sent = this.output?.pending() ?? 0;
        while (this.depth > 0 && sent < this.opts.windowBytes && this.connected) {
          const m = this.queue[this.head];
          this.queue[this.head++] = undefined as unknown as Pending;
          this.queuedBytes -= m.data.length;
          try {
            this.nc.publish(m.subject, m.data, m.reply === undefined ? undefined : { reply: m.reply });
            c.add(`${p}published`);
            c.add(`${p}published_bytes`, m.data.length);
          } catch {
            // e.g. a subject the client rejects: a counted drop, the rest goes on.
            c.add(`${p}drops_publish_error`);
          }
          sent += m.data.length;
        }
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        c.set(`${p}queue_depth`, this.depth);
        try {
          if (this.output) {
            // the client hands its buffer to the socket in a microtask: let it, then wait while
            // a window's worth is still unwritten (a socket closed on disconnect ends the wait)
            await Promise.resolve();
            if (this.output.pending() >= this.opts.windowBytes) await this.output.drained();
          } else await this.nc.flush();
        } catch {
          // disconnected or closed mid-window; the loop re-checks the state
        }
      }
    } finally {
      this.pumping = false;
      if (this.depth === 0 || this.closed || this.nc.isClosed()) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }
}

export interface SubscribeOptions<Desc extends DescMessage> {
  /** Messages waiting for the handler; beyond this they are dropped and counted. */
  maxPending: number;
  /** NATS queue group (only for data where any member may take any message). */
  queue?: string;
  counters: Counters;
  /** Counter name prefix (default "nats_"). */
  prefix: string;
  log?: Logger;
  /** Called once per message, in arrival order, never concurrently. */
  onBatch(message: MessageShape<Desc>, raw: { subject: string; data: Uint8Array }): void | Promise<void>;
}

export interface BatchSubscription {
  readonly subject: string;
  /** Stops receiving; messages already received are still handled. Resolves when handled. */
  drain(): Promise<void>;
  /** Resolves when the subscription has ended and its handler queue is empty. */
  readonly done: Promise<void>;
}

/**
 * Subscribes to `subject` and decodes each message as `schema`. A message that does not decode
 * is counted (`decode_errors`) and skipped; a handler error is counted (`handler_errors`) and
 * logged. Messages wait in a bounded queue (`drops_sub_queue_full` when full).
 */
export function subscribeBatches<Desc extends DescMessage>(
  nc: NatsConnection,
  subject: string,
  schema: Desc,
  options: Partial<SubscribeOptions<Desc>> & Pick<SubscribeOptions<Desc>, "onBatch">,
): BatchSubscription {
  const maxPending = options.maxPending ?? 10_000;
  const counters = options.counters ?? new Counters();
  const p = options.prefix ?? "nats_";
  const pending: { subject: string; data: Uint8Array }[] = [];
  let head = 0;
  let working = false;
  let ended = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const work = async () => {
    if (working) return;
    working = true;
    try {
      while (head < pending.length) {
        const raw = pending[head];
        pending[head++] = undefined as unknown as { subject: string; data: Uint8Array };
        if (head > 1024 && head * 2 > pending.length) {
          pending.splice(0, head);
          head = 0;
        }
        let msg: MessageShape<Desc>;
        try {
          msg = fromBinary(schema, raw.data);
        } catch (e) {
          counters.add(`${p}decode_errors`);
          options.log?.debug({ subject: raw.subject, reason: errorMessage(e) }, "undecodable message dropped");
          continue;
        }
        try {
          await options.onBatch(msg, raw);
          counters.add(`${p}received`);
        } catch (e) {
          counters.add(`${p}handler_errors`);
          options.log?.warn({ subject: raw.subject, reason: errorMessage(e) }, "batch handler failed");
        }
      }
    } finally {
      working = false;
      counters.set(`${p}sub_pending`, pending.length - head);
      if (ended && head >= pending.length) resolveDone();
    }
  };

  const sub: Subscription = nc.subscribe(subject, {
    queue: options.queue,
    callback: (err, m) => {
      if (err) {
        counters.add(`${p}sub_errors`);
        options.log?.warn({ subject, reason: errorMessage(err) }, "subscription error");
        return;
      }
      if (pending.length - head >= maxPending) {
        counters.add(`${p}drops_sub_queue_full`);
        return;
      }
      pending.push({ subject: m.subject, data: m.data });
      void work();
    },
  });
  void sub.closed.then(() => {
    ended = true;
    if (!working && head >= pending.length) resolveDone();
  });
  return {
    subject,
    done,
    async drain() {
      if (!sub.isClosed()) {
        try {
          await sub.drain();
        } catch {
          sub.unsubscribe();
        }
      }
      await done;
    },
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
