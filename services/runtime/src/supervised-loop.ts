// A long-lived loop over NATS (a JetStream consumer, a subscription, a KV or object-store watch)
// kept running: when it ends or reports a stall it is started again after a backoff, each restart
// counted by reason, and the service is NOT_SERVING, with the reason, until it runs again.
//
//   start() ──ok──▶ running ──ended(reason) / stalled──▶ down: <name>_restarts.<reason> += 1,
//      ▲                │                                 health "<name>: <reason>; …"
//      │                └─ restart() (planned: partitions moved): no count, no backoff
//      └──── backoff 250 ms, 500 ms … 10 s (back to 250 ms once a run lasted 30 s) ◀──┘
//   start() ──throws──▶ down (<name>_restarts.start_failed) ──backoff──▶ start() …
//
// nats.js leaves these loops to their owner: a pull consumer's `consume()` keeps retrying, unseen,
// while its consumer is deleted or its stream gone (ConsumerEvents, docs/reliability.md); an
// iterator whose body throws, or an ordered consumer that cannot be recreated, just ends. Before
// this, such an end was at best one log line, and the data behind it waited for a process restart.
import type { Counters } from "./counters.js";
import type { Dependency, HealthGate } from "./health.js";
import type { Logger } from "./log.js";
import { errorMessage } from "./errors.js";

/** One run of a supervised loop, as its `start` returns it. */
export interface LoopRun {
  /**
   * Settles when the run ends by itself: resolves with why (a short snake_case reason, e.g.
   * "consumer_deleted", "ended"), or rejects with the error that ended it (reason "error").
   */
  readonly ended: Promise<string>;
  /** Ends the run (shutdown or a restart asked for); need not settle `ended`. */
  stop(): Promise<void> | void;
}

export interface SupervisedLoopOptions {
  /** Names the counters (`<name>_restarts.<reason>`), the health dependency and log lines. */
  name: string;
  counters: Counters;
  log: Logger;
  /** The service's health: dependency `<healthName>` is down while the loop is not running. */
  health?: HealthGate;
  /** Its dependency's name when several loops share `name` (default: `name`). */
  healthName?: string;
  /** Aborting it stops the loop for good. */
  signal?: AbortSignal;
  /** First delay before starting again; doubles up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A run that lasted this long starts again after initialBackoffMs. */
  resetAfterMs: number;
}

const DEFAULTS = { initialBackoffMs: 250, maxBackoffMs: 10_000, resetAfterMs: 30_000 };

/** A reason as a counter name part: lower snake case, at most 40 characters. */
export function loopReason(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 40) || "unknown"
  );
}

/**
 * Runs `start` until the signal aborts or `stop()` is called, starting it again whenever a run
 * ends by itself (counted) or `restart()` asks (not counted). Construction starts the first run.
 */
export class SupervisedLoop {
  private readonly o: SupervisedLoopOptions;
  private readonly dep: Dependency | undefined;
  private current: LoopRun | undefined;
  private stopped = false;
  /** Resolves the wait of the supervising task early: a planned restart or stop. */
  private wake: (() => void) | undefined;
  private planned: string | undefined;
  private restartCount = 0;
  /** Settles once the loop is stopped and its last run stopped. */
  readonly done: Promise<void>;

  constructor(
    private readonly start: (attempt: number) => Promise<LoopRun>,
    options: Partial<SupervisedLoopOptions> & Pick<SupervisedLoopOptions, "name" | "counters" | "log">,
  ) {
    this.o = { ...DEFAULTS, ...options };
    this.dep = this.o.health?.require(this.o.healthName ?? this.o.name);
    this.dep?.down("starting");
    if (this.o.signal?.aborted) this.stopped = true;
    this.o.signal?.addEventListener("abort", () => void this.stop(), { once: true });
    this.done = this.supervise();
  }

  /** Times the loop was started again after it ended by itself or failed to start. */
  get restarts(): number {
    return this.restartCount;
  }

  /** True while a run is going. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /** Ends the current run and starts the next at once (a planned change; not counted). */
  restart(why = "restart"): void {
    if (this.stopped) return;
    this.planned = why;
    this.wake?.();
  }

  /** Ends the current run and starts no other; resolves once it is stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.done;
  }

  private async supervise(): Promise<void> {
    const { name, log, counters } = this.o;
    let delay = this.o.initialBackoffMs;
    for (let attempt = 0; !this.stopped; attempt++) {
      this.planned = undefined;
      const woken = new Promise<"woken">((r) => (this.wake = () => r("woken")));
      let reason: string;
      let detail: string | undefined;
      const startedAt = Date.now();
      try {
        const run = await this.start(attempt);
        if (this.stopped) {
          await this.stopRun(run);
          break;
        }
        this.current = run;
        this.dep?.up();
        const end = await Promise.race([run.ended.then(loopReason, (e: unknown) => ((detail = errorMessage(e)), "error")), woken]);
        this.current = undefined;
        if (end === "woken") {
          await this.stopRun(run);
          if (this.stopped) break;
          log.info({ loop: name, why: this.planned }, "loop restarted");
          delay = this.o.initialBackoffMs;
          continue;
        }
        reason = end;
        await this.stopRun(run);
      } catch (e) {
        reason = "start_failed";
        detail = errorMessage(e);
      }
      if (this.stopped) break;
      if (Date.now() - startedAt >= this.o.resetAfterMs) delay = this.o.initialBackoffMs;
      this.restartCount++;
      counters.add(`${name}_restarts.${reason}`);
      const why = detail ? `${reason}: ${detail}` : reason;
      this.dep?.down(`${why}; starting again in ${delay} ms (restart ${this.restartCount})`);
      log.warn({ loop: name, reason, err: detail, backoff_ms: delay, restarts: this.restartCount }, "loop ended; starting it again");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => (timer = setTimeout(r, delay))), woken]);
      clearTimeout(timer);
      delay = Math.min(delay * 2, this.o.maxBackoffMs);
    }
    this.wake = undefined;
    this.dep?.up(); // a stopped loop is no longer a reason not to serve
  }

  private async stopRun(run: LoopRun): Promise<void> {
    try {
      await run.stop();
    } catch (e) {
      this.o.log.debug({ loop: this.o.name, err: errorMessage(e) }, "stopping a loop run failed");
    }
  }
}

/** A run over an async iterable (a watch, a subscription): it ends when the iteration does. */
export function iterateRun<T>(iterable: AsyncIterable<T>, each: (item: T) => void | Promise<void>, stop: () => void): LoopRun {
  const ended = (async () => {
    for await (const item of iterable) await each(item);
    return "ended";
  })();
  return { ended, stop };
}
