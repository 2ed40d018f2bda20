// The sampling level: which fraction of new connections the probe observes, driven by a CPU
// budget for the node share. Pure: the service feeds it one measurement per tick (the probe's
// own CPU from /proc, the ring buffer's fill, the events lost since the last tick) and writes the
// level it returns into the kernel (bpf/wirescope.h ws_shed_cfg.sample_level).
//
//   level
//     1 ┤────────╮                 ╭──────   loss or a filling ring: cut at once; CPU over
//       │        ╰─╮             ╭─╯         budget two ticks in a row: cut, in proportion to
//       │          │             │           the excess (one tick's spike, GC or start-up, is not load);
//       │          ╰───────────╮╭╯           under `lowWater` of the budget for `holdTicks`
//   min ┤                      ╰╯            ticks in a row: raise by `raise`; in between: hold.
//       └─────────────────────────────────▶ ticks
//
// The band between lowWater and 1 is the hysteresis: a level that brings the CPU just under the
// budget is kept, not raised back over it and cut again. The level applies to connections that
// start after it is set; a connection keeps the decision taken at its start for its whole life.

export interface SamplingOptions {
  /** CPU the probe may use, in millicores (1000 = one core). */
  budgetMillicores: number;
  /** Lowest level (fraction of new connections observed). */
  min: number;
  /** Raise only below this share of the budget... */
  lowWater: number;
  /** ...for this many ticks in a row. */
  holdTicks: number;
  /** Factor of a raise. */
  raise: number;
  /** Ring buffer fill (0..1) that counts as over budget. */
  ringHigh: number;
  /** Cut at most to this factor of the level per tick (a spike of one tick does not go to min). */
  maxCut: number;
  /** CPU over budget this many ticks in a row before a cut (loss and ring fill cut at once). */
  overTicks: number;
}

/** For a tick of 250 ms (the service's): a cut after 0.5 s over budget, a raise after 2 s calm. */
export const SAMPLING_DEFAULTS: SamplingOptions = {
  budgetMillicores: 500,
  min: 1 / 64,
  lowWater: 0.6,
  holdTicks: 8,
  raise: 1.25,
  ringHigh: 0.5,
  maxCut: 0.25,
  overTicks: 2,
};

/** One tick's measurements. */
export interface SamplingInput {
  /** The probe's CPU over the tick, millicores. */
  cpuMillicores: number;
  /** Ring buffer fill now, 0..1. */
  ringFill: number;
  /** Events lost since the last tick (ring full, JS behind, NATS queue full). */
  lost: number;
}

export class SamplingController {
  readonly o: SamplingOptions;
  private lvl = 1;
  private calm = 0;
  private hot = 0;
  /** Ticks spent over budget, and raises/cuts made (for status). */
  readonly stats = { overTicks: 0, cuts: 0, raises: 0 };

  constructor(o: Partial<SamplingOptions> = {}) {
    this.o = { ...SAMPLING_DEFAULTS, ...o };
  }

  get level(): number {
    return this.lvl;
  }

  /** Takes one tick's measurements; returns the level to apply. */
  update(m: SamplingInput): number {
    const { budgetMillicores: budget, min } = this.o;
    const pressed = m.ringFill > this.o.ringHigh || m.lost > 0;
    this.hot = m.cpuMillicores > budget ? this.hot + 1 : 0;
    const over = pressed || this.hot >= this.o.overTicks;
    if (pressed || this.hot > 0) this.calm = 0;
    if (over) {
      this.stats.overTicks++;
      this.calm = 0;
      // in proportion to the CPU's excess; loss or a filling ring (CPU not the cause) halves
      const byCpu = m.cpuMillicores > budget ? budget / m.cpuMillicores : 1;
      const factor = Math.max(this.o.maxCut, Math.min(byCpu, m.lost > 0 || m.ringFill > this.o.ringHigh ? 0.5 : 1, 0.9));
      const next = Math.max(min, this.lvl * factor);
      if (next < this.lvl) this.stats.cuts++;
      this.lvl = next;
      return this.lvl;
    }
    if (m.cpuMillicores < this.o.lowWater * budget && m.ringFill < this.o.ringHigh / 2) {
      if (++this.calm >= this.o.holdTicks && this.lvl < 1) {
        this.lvl = Math.min(1, this.lvl * this.o.raise);
        this.stats.raises++;
        this.calm = 0;
      }
    } else this.calm = 0;
    return this.lvl;
  }
}

/** CPU time of this process (user + system), µs: process.cpuUsage reads getrusage, as /proc does. */
export function ownCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
