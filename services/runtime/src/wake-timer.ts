// A timer armed only while there is work for it: a flush or an age check that used to run from a
// setInterval woke its process every few milliseconds whether or not anything waited. At a
// moderate rate, and between bursts, those wake-ups were most of an idle service's CPU (the
// parser's 20 ms flush tick and the probe's 10 ms ager: 50 and 100 a second, docs/benchmarks.md
// "Fixed costs at moderate rates"). Armed from the path that adds the work, it costs a field check
// there and no wake-up when nothing waits; the bound on how late work goes out is the same as the
// interval's.

/** The two timer calls the WakeTimer uses (injectable, so tests count wake-ups without waiting). */
export interface TimerCalls {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: TimerCalls = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * One pending timeout at most. `arm(ms)` starts it unless one is pending (an earlier deadline is
 * kept: callers arm when work arrives, so the first piece of work sets the deadline);
 * `fire` runs when it expires, and may arm again when work is left.
 */
export class WakeTimer {
  private handle: unknown;
  private stopped = false;
  /** Timeouts started (for tests and counters: wake-ups are bounded by what was armed). */
  armings = 0;

  constructor(
    private readonly fire: () => void,
    private readonly timers: TimerCalls = realTimers,
  ) {}

  /** True while a timeout is pending. */
  get armed(): boolean {
    return this.handle !== undefined;
  }

  /** Starts a timeout of `ms` unless one is pending or the timer is stopped. */
  arm(ms: number): void {
    if (this.handle !== undefined || this.stopped) return;
    this.armings++;
    this.handle = this.timers.set(this.expired, Math.max(0, ms));
  }

  /** Cancels the pending timeout, and every later `arm`. */
  stop(): void {
    this.stopped = true;
    if (this.handle !== undefined) this.timers.clear(this.handle);
    this.handle = undefined;
  }

  private readonly expired = (): void => {
    this.handle = undefined;
    this.fire();
  };
}
