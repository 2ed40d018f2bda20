// Keeps `wirescope up`'s children (and the demo's parts) running: a child that exits while the
// stack is up is started again after a backoff (1 s, 2 s, 4 s … up to 30 s; back to 1 s once it
// has run for a minute), forever, and every restart is counted. One child dying never stops the
// others: the services reconnect to a restarted nats-server or influxd by themselves. A first
// start that fails is tried again as many times as the caller allows.
//
//   start() ─▶ running ──exit──▶ restarting ──backoff──▶ start() ─┬─ ok ─▶ running (restarts+1)
//                                                                 └─ failed ─▶ down ─▶ backoff…
//
// Each state change is reported through onChange (up writes it to <data-dir>/up.state.json,
// which `wirescope status` reads).
import { errorMessage } from "@wirescope/runtime/errors";
import { processStartTime, type ManagedProcess } from "@wirescope/runtime/process";

export type ChildStateName = "starting" | "running" | "restarting" | "down" | "disabled" | "stopped";

/** What a supervised child is and how to start it. */
export interface ChildSpec {
  /** Process name shown in up's table (nats-server, influxd, probe, parser, aggregator). */
  name: string;
  /** The component name `wirescope status` uses for its row (nats, influxdb, probe, …). */
  component: string;
  /** Where it listens (URL or host:port), for the table and status. */
  address: string;
  /** Its log file. */
  log: string;
  /**
   * Starts the child and resolves once it is ready (listening / healthy). On failure it must
   * leave no process behind and reject with a message saying why.
   */
  start(signal: AbortSignal): Promise<ManagedProcess>;
  /**
   * Called once after each unexpected exit of the child, before the backoff (a parser replica's
   * membership entry is deleted then, so the others take its partitions at once). A failure is
   * logged; the restart goes on.
   */
  onExit?(exited: ManagedProcess): Promise<void>;
}

/** One child as reported to onChange (and written to the state file). */
export interface ChildState {
  name: string;
  component: string;
  address: string;
  log: string;
  state: ChildStateName;
  /** Current pid, when a process is running. */
  pid?: number;
  /** Its start time in clock ticks since boot (with the pid, names one process despite pid reuse). */
  startTime?: number;
  /** Times it was started again after an unexpected exit. */
  restarts: number;
  /** Unexpected exits seen (restarts + the one being handled, when restarting or down). */
  exits: number;
  /** How the last unexpected exit happened ("SIGKILL", "code 1"). */
  lastExit?: string;
  /** Why it is down or disabled, and what to do about it. */
  reason?: string;
  /** When the state last changed (ms since the epoch). */
  sinceMs: number;
}

export interface SupervisorOptions {
  /** First delay before a restart. */
  initialBackoffMs: number;
  /** Longest delay between restart attempts. */
  maxBackoffMs: number;
  /** A child that ran at least this long restarts after initialBackoffMs again. */
  resetAfterMs: number;
  /** Grace period between SIGTERM and SIGKILL when stopping. */
  stopGraceMs: number;
  /** Called after every state change, with every child's state. */
  onChange: (states: ChildState[]) => void;
  /** One line for up's log. */
  log: (line: string) => void;
  /** Aborting it ends supervision (no more restarts) like stop() does, without stopping children. */
  signal?: AbortSignal;
  /** What the log lines start with ("wirescope up", "demo"). */
  who: string;
}

const DEFAULTS: SupervisorOptions = {
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  resetAfterMs: 60_000,
  stopGraceMs: 10_000,
  onChange: () => undefined,
  log: () => undefined,
  who: "wirescope up",
};

interface Entry {
  spec?: ChildSpec;
  state: ChildState;
  proc?: ManagedProcess;
  startedAtMs: number;
  /** The loop watching this child (resolves when the supervisor stops). */
  loop?: Promise<void>;
}

/** Children in start order; stop() stops them in reverse order. */
export class Supervisor {
  private readonly opts: SupervisorOptions;
  private readonly entries: Entry[] = [];
  private readonly ac = new AbortController();

  constructor(options: Partial<SupervisorOptions> = {}) {
    this.opts = { ...DEFAULTS, ...options };
    options.signal?.addEventListener("abort", () => this.ac.abort(), { once: true });
    if (options.signal?.aborted) this.ac.abort();
  }

  /** Every child's state, in start order. */
  states(): ChildState[] {
    return this.entries.map((e) => ({ ...e.state }));
  }

  /** Running processes, in start order. */
  processes(): ManagedProcess[] {
    return this.entries.flatMap((e) => (e.proc && !e.proc.hasExited ? [e.proc] : []));
  }

  get stopping(): boolean {
    return this.ac.signal.aborted;
  }

  /**
   * Starts a child for the first time and supervises it from then on. A failed start is tried
   * again after the backoff, `attempts` times in all; then this rejects (the caller decides
   * whether the stack can go on without it) and the child is listed as down with the reason.
   */
  async start(spec: ChildSpec, attempts = 1): Promise<ManagedProcess> {
    const e: Entry = { spec, state: this.fresh(spec, "starting"), startedAtMs: Date.now() };
    this.entries.push(e);
    this.changed();
    const { proc } = await this.startWithBackoff(e, this.opts.initialBackoffMs, attempts, false);
    if (this.stopping) {
      await proc.stop(this.opts.stopGraceMs);
      throw new Error(`${spec.name}: stopped while starting`);
    }
    e.loop = this.watch(e);
    return proc;
  }

  /** Lists a child that is not started at all (disabled on purpose, or impossible here). */
  notStarted(spec: Pick<ChildSpec, "name" | "component" | "address" | "log">, state: "disabled" | "down", reason: string): void {
    const e: Entry = { state: { ...this.fresh(spec, state), reason }, startedAtMs: 0 };
    this.entries.push(e);
    this.changed();
  }

  /** Stops supervising and stops every child, last started first. */
  async stop(forceNow = false, onStopped?: (name: string, pid: number) => void): Promise<void> {
    this.ac.abort();
    // A restart under way finishes (or gives up) first, so that what it started is stopped too.
    await Promise.all(this.entries.map((e) => e.loop));
    for (const e of [...this.entries].reverse()) {
      const p = e.proc;
      if (p && !p.hasExited) {
        await p.stop(forceNow ? 0 : this.opts.stopGraceMs);
        onStopped?.(e.state.name, p.pid);
      }
      if (e.state.state !== "disabled") this.set(e, { state: "stopped", pid: undefined, startTime: undefined });
    }
  }

  /** SIGKILL to every running child at once (a second Ctrl-C). */
  killAll(): void {
    for (const p of this.processes()) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  }

  private fresh(spec: Pick<ChildSpec, "name" | "component" | "address" | "log">, state: ChildStateName): ChildState {
    return { name: spec.name, component: spec.component, address: spec.address, log: spec.log, state, restarts: 0, exits: 0, sinceMs: Date.now() };
  }

  private set(e: Entry, patch: Partial<ChildState>): void {
    const stateChanged = patch.state !== undefined && patch.state !== e.state.state;
    Object.assign(e.state, patch);
    if (stateChanged) e.state.sinceMs = Date.now();
    this.changed();
  }

  private changed(): void {
    try {
      this.opts.onChange(this.states());
    } catch (err) {
      this.opts.log(`${this.opts.who}: could not record the state of the stack: ${errorMessage(err)}`);
    }
  }

  /** Waits for the child to exit, then restarts it with backoff until it runs again or we stop. */
  private async watch(e: Entry): Promise<void> {
    const spec = e.spec!;
    const signal = this.ac.signal;
    const aborted = new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
    let delay = this.opts.initialBackoffMs;
    while (!signal.aborted) {
      const proc = e.proc!;
      const exit = await Promise.race([proc.exited, aborted.then(() => undefined)]);
      if (!exit || signal.aborted) return;
      const how = exit.signal ?? `code ${exit.code}`;
      if (Date.now() - e.startedAtMs >= this.opts.resetAfterMs) delay = this.opts.initialBackoffMs;
      this.set(e, { state: "restarting", pid: undefined, startTime: undefined, exits: e.state.exits + 1, lastExit: how, reason: `exited (${how}); see ${spec.log}` });
      this.opts.log(`${this.opts.who}: ${spec.name} (pid ${proc.pid}) exited unexpectedly (${how}); restarting in ${fmtMs(delay)} (see ${spec.log})`);
      if (spec.onExit) {
        try {
          await spec.onExit(proc);
        } catch (err) {
          this.opts.log(`${this.opts.who}: after ${spec.name} exited: ${errorMessage(err)}`);
        }
      }
      await sleep(delay, signal);
      if (signal.aborted) return;
      try {
        ({ delay } = await this.startWithBackoff(e, Math.min(delay * 2, this.opts.maxBackoffMs), Number.POSITIVE_INFINITY, true));
      } catch {
        return; // only when supervision stops: a restart has no last attempt
      }
      // stop() is waiting for this loop: what was just started is stopped with the rest
      if (signal.aborted) return;
      this.opts.log(`${this.opts.who}: restarted ${spec.name} (pid ${e.proc!.pid}), restart #${e.state.restarts}`);
    }
  }

  /**
   * Calls spec.start until it succeeds, `attempts` times at most, the delay between tries
   * doubling from `delay` up to maxBackoffMs; a failure lists the child as down with the reason.
   * The process it returns is e's, running (or about to be stopped, when supervision stopped
   * meanwhile); with it comes the delay the next restart starts from. It rejects with the last
   * failure after the last attempt, or after any failure once supervision stops.
   */
  private async startWithBackoff(e: Entry, delay: number, attempts: number, restart: boolean): Promise<{ proc: ManagedProcess; delay: number }> {
    const spec = e.spec!;
    const signal = this.ac.signal;
    for (let attempt = 1; ; attempt++) {
      try {
        const proc = await spec.start(signal);
        e.proc = proc;
        if (!signal.aborted) {
          e.startedAtMs = Date.now();
          const restarts = e.state.restarts + (restart ? 1 : 0);
          this.set(e, { state: "running", pid: proc.pid, startTime: processStartTime(proc.pid), restarts, reason: undefined });
        }
        return { proc, delay };
      } catch (err) {
        this.set(e, { state: "down", reason: errorMessage(err), pid: undefined, startTime: undefined });
        if (attempt >= attempts || signal.aborted) throw err;
        const which = Number.isFinite(attempts) ? ` (attempt ${attempt + 1} of ${attempts})` : "";
        this.opts.log(`${this.opts.who}: ${spec.name} did not start${restart ? " again" : ""}: ${errorMessage(err)}; trying again in ${fmtMs(delay)}${which}`);
        await sleep(delay, signal);
        delay = Math.min(delay * 2, this.opts.maxBackoffMs);
        if (signal.aborted) throw err;
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s` : `${ms} ms`;
}
