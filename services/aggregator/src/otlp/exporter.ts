// OTLP/HTTP span export: a bounded queue of spans, sent in batches by one sender at a time.
// Spans come from closed windows (Pipeline.onSpans); export never holds up the InfluxDB path or
// the JetStream acks: when the collector is slow or down the queue fills, and spans that do not
// fit are dropped and counted (drops_otlp_queue_full), like batches that failed every try
// (drops_otlp_failed) or were refused (drops_otlp_rejected, a 4xx other than 408/429).
// A window rebuilt after a crash is exported again (same span ids).
import type { SpanRec } from "../core/spans.js";
import { encodeExport } from "./encode.js";

export interface OtlpOptions {
  /** Collector URL: `http://host:4318` (then /v1/traces is added) or the full traces URL. "" = off. */
  endpoint: string;
  /** Spans per request at most. */
  batchSize: number;
  /** Spans waiting at most; beyond, new spans are dropped and counted. */
  queueSize: number;
  /** A partial batch is sent after this long. */
  flushMs: number;
  /** Tries per batch (network error, 5xx, 408, 429) before it is dropped and counted. */
  maxTries: number;
  /** Per request. */
  timeoutMs: number;
}

export const defaultOtlpOptions: OtlpOptions = { endpoint: "", batchSize: 512, queueSize: 20_000, flushMs: 1000, maxTries: 3, timeoutMs: 10_000 };

/** What sending one request did: sent, worth retrying, or refused for good. */
export type SendResult = "ok" | "retry" | "rejected";
export type Sender = (body: Uint8Array) => Promise<SendResult>;

/** The traces URL of an endpoint given as a base URL. */
export function tracesUrl(endpoint: string): string {
  const u = new URL(endpoint);
  if (u.pathname === "/" || u.pathname === "") u.pathname = "/v1/traces";
  return u.toString();
}

/** POSTs protobuf bodies to an OTLP/HTTP receiver (fetch; no retries of its own). */
export function httpSender(endpoint: string, timeoutMs: number): Sender {
  const url = tracesUrl(endpoint);
  return async (body) => {
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body, signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return "ok";
      return res.status >= 500 || res.status === 408 || res.status === 429 ? "retry" : "rejected";
    } catch {
      return "retry";
    }
  };
}

export interface OtlpCounters {
  /** Spans offered by closed windows. */
  spansIn: number;
  spansExported: number;
  requests: number;
  /** Failed tries (each retried batch counts once per failure). */
  exportErrors: number;
  dropsQueueFull: number;
  dropsFailed: number;
  dropsRejected: number;
}

export class OtlpExporter {
  readonly counters: OtlpCounters = { spansIn: 0, spansExported: 0, requests: 0, exportErrors: 0, dropsQueueFull: 0, dropsFailed: 0, dropsRejected: 0 };
  private queue: SpanRec[] = [];
  private head = 0;
  private pumping: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly send: Sender,
    readonly opts: OtlpOptions,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** Spans waiting to be sent (the batch in flight included). */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Queues the spans of a closed window; what does not fit is dropped and counted. */
  offer(spans: readonly SpanRec[]): void {
    this.counters.spansIn += spans.length;
    const room = Math.max(0, this.opts.queueSize - this.queued);
    const take = Math.min(room, spans.length);
    for (let i = 0; i < take; i++) this.queue.push(spans[i]!);
    this.counters.dropsQueueFull += spans.length - take;
    if (this.queued >= this.opts.batchSize) void this.pump();
    else if (this.queued > 0 && !this.timer && !this.stopped) this.timer = setTimeout(() => ((this.timer = undefined), void this.pump()), this.opts.flushMs);
  }

  /** Sends batches until the queue is empty; one request at a time. */
  private pump(): Promise<void> {
    if (this.pumping || this.stopped) return this.pumping ?? Promise.resolve();
    this.pumping = this.sendAll().finally(() => {
      this.pumping = undefined;
      if (this.queued === 0) for (const r of this.idle.splice(0)) r();
    });
    return this.pumping;
  }

  private async sendAll(): Promise<void> {
      while (this.queued > 0 && !this.stopped) {
        const n = Math.min(this.opts.batchSize, this.queued);
        const batch = this.queue.slice(this.head, this.head + n);
        const body = encodeExport(batch);
        let result: SendResult = "retry";
        for (let attempt = 1; attempt <= this.opts.maxTries && !this.stopped; attempt++) {
          this.counters.requests++;
          result = await this.send(body);
          if (result !== "retry") break;
          this.counters.exportErrors++;
          if (attempt < this.opts.maxTries) await this.sleep(Math.min(5000, 250 * 2 ** (attempt - 1)));
        }
        if (this.stopped && result === "retry") break; // stop() counts it
        if (result === "ok") this.counters.spansExported += n;
        else if (result === "rejected") {
          this.counters.exportErrors++;
          this.counters.dropsRejected += n;
        } else this.counters.dropsFailed += n;
        this.head += n;
        if (this.head > 4096 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
      }
  }

  /** Resolves when the queue is empty (or after `ms`). */
  async drain(ms: number): Promise<void> {
    if (this.queued === 0) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.pump();
    }
    await Promise.race([new Promise<void>((r) => this.idle.push(r)), new Promise((r) => setTimeout(r, ms))]);
  }

  /** Stops sending (the request in flight may finish within `ms`); spans still queued are counted as dropped (failed). */
  async stop(ms = 2000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.pumping) await Promise.race([this.pumping, new Promise((r) => setTimeout(r, ms))]);
    this.counters.dropsFailed += this.queued;
    this.head = this.queue.length;
  }
}
