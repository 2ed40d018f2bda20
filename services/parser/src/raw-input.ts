// The parser's input from NATS: one core subscription per owned partition, each message's bytes
// handed to the pipeline inside the client's callback. No promise, copy or object of ours per
// message: nats.js already delivers from its socket-read loop, so timers and gRPC run between
// socket reads. Only while paused (output waiting on JetStream) do messages queue, bounded:
//
//   nats.js callback ──(running, queue empty)──▶ handle(bytes)
//          └──(paused or queue not empty)──▶ queue ≤ maxPending ──resume()──▶ handle, in order
//                                                 └─ full: raw_drops_sub_queue_full
//
// Each subscription is kept (SupervisedLoop): one the server or client closed while the partition
// is still ours (a permissions error; nats.js does not subscribe again after those) is made again
// after a backoff and counted, the parser NOT_SERVING (`raw_subscription.p<p>: …`) meanwhile.
//
// Counters: raw_received, raw_handler_errors, raw_sub_errors, raw_drops_sub_queue_full,
// raw_subscription_restarts.<reason>, raw_sub_pending (gauge, set by `pendingGauge`).
import type { NatsConnection } from "@nats-io/nats-core";
import { SupervisedLoop, errorMessage, rawSubject, type Counters, type HealthGate, type Logger } from "@wirescope/runtime";

export interface RawInputOptions {
  /** Messages queued while paused; beyond this they are dropped and counted. */
  maxPending: number;
  counters: Counters;
  log: Logger;
  /** The service's health: NOT_SERVING while a subscription is being made again. */
  health?: HealthGate;
}

/** Messages handled in one turn of `resume` before letting timers and I/O run. */
const RESUME_SLICE = 256;

export class RawInput {
  private readonly subs = new Map<number, SupervisedLoop>();
  private queue: Uint8Array[] = [];
  /** When each queued message arrived (wall ms), beside `queue`. */
  private queuedAt: number[] = [];
  private head = 0;
  private paused = false;
  private resuming = false;

  constructor(
    private readonly nc: NatsConnection,
    /** Handles one RawBatch message synchronously (Pipeline.onRawBytes); `arrivedMs`: when it came (wall ms). */
    private readonly handle: (data: Uint8Array, arrivedMs: number) => void,
    private readonly o: RawInputOptions,
  ) {}

  /** Starts receiving `wirescope.raw.<p>`. */
  add(p: number): void {
    if (this.subs.has(p)) return;
    const c = this.o.counters;
    const subject = rawSubject(p);
    // The first subscription is made at once (start runs synchronously up to its first await).
    const start = async () => {
      const sub = this.nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) {
            c.add("raw_sub_errors");
            this.o.log.warn({ subject, reason: errorMessage(err) }, "subscription error");
            return;
          }
          c.add("raw_received");
          if (this.paused || this.head < this.queue.length) this.enqueue(m.data);
          else this.run(m.data, Date.now());
        },
      });
      return {
        ended: sub.closed.then(() => "closed"),
        // Resolves once the server has sent what it had for it.
        stop: () => sub.drain().catch(() => sub.unsubscribe()),
      };
    };
    this.subs.set(p, new SupervisedLoop(start, { name: "raw_subscription", healthName: `raw_subscription.p${p}`, counters: c, log: this.o.log, health: this.o.health }));
  }

  /** Stops receiving `p`; resolves once the server has sent what it had for it. */
  async remove(p: number): Promise<void> {
    const s = this.subs.get(p);
    if (!s) return;
    this.subs.delete(p);
    await s.stop();
  }

  /** Stops receiving everything (shutdown); what is queued is handled by `resume`. */
  async close(): Promise<void> {
    await Promise.all([...this.subs.keys()].map((p) => this.remove(p)));
  }

  /** Holds new messages in the queue until `resume`. */
  pause(): void {
    this.paused = true;
  }

  /** Handles the queue in order, a slice per turn of the event loop, then takes messages directly. */
  resume(): void {
    this.paused = false;
    if (this.resuming) return;
    this.resuming = true;
    const step = () => {
      let n = 0;
      while (!this.paused && this.head < this.queue.length && n++ < RESUME_SLICE) {
        const data = this.queue[this.head]!;
        this.queue[this.head] = EMPTY;
        this.run(data, this.queuedAt[this.head++]!);
      }
      if (this.head === this.queue.length || this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.queuedAt = this.queuedAt.slice(this.head);
        this.head = 0;
      }
      if (!this.paused && this.head < this.queue.length) setImmediate(step);
      else this.resuming = false;
    };
    step();
  }

  /** Handles whatever is queued at once, paused or not (shutdown). */
  drainQueue(): void {
    while (this.head < this.queue.length) {
      const data = this.queue[this.head]!;
      this.queue[this.head] = EMPTY;
      this.run(data, this.queuedAt[this.head++]!);
    }
    this.queue = [];
    this.queuedAt = [];
    this.head = 0;
  }

  /** Messages waiting in the queue. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** When the oldest message waiting in the queue arrived (wall ms); Infinity when none waits. */
  oldestQueuedMs(): number {
    return this.head < this.queue.length ? this.queuedAt[this.head]! : Infinity;
  }

  private enqueue(data: Uint8Array): void {
    if (this.queue.length - this.head >= this.o.maxPending) {
      this.o.counters.add("raw_drops_sub_queue_full");
      return;
    }
    this.queue.push(data);
    this.queuedAt.push(Date.now());
  }

  private run(data: Uint8Array, arrivedMs: number): void {
    try {
      this.handle(data, arrivedMs);
    } catch (e) {
      // a bug, not bad input (the pipeline counts that): counted and logged, the input goes on
      this.o.counters.add("raw_handler_errors");
      this.o.log.warn({ reason: errorMessage(e) }, "raw batch handler failed");
    }
  }
}

const EMPTY = new Uint8Array(0);
