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
//
// A second budget covers the whole local pipeline (the probe, the parsers and aggregators on this
// node, nats-server, influxd: `pipelineMillicores`), and binds only while the node has no spare
// CPU (`nodeIdle` under `idleMin` of its cores): on one machine those processes compete with the
// apps for the same cores, and what they use of an idle node costs nobody. It cuts and raises as
// the probe's own budget does; with idle above twice `idleMin` the pipeline may go over it.

export interface SamplingOptions {
  /** CPU the probe may use, in millicores (1000 = one core); 0 = no budget of its own. */
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
  /** CPU the whole local pipeline may use while the node has no spare CPU, millicores; 0 = off. */
  pipelineBudgetMillicores: number;
  /** The node's idle share (0..1 of all its cores) under which it has no spare CPU. */
  idleMin: number;
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
  pipelineBudgetMillicores: 0,
  idleMin: 0.05,
};

/** One tick's measurements. */
export interface SamplingInput {
  /** The probe's CPU over the tick, millicores. */
  cpuMillicores: number;
  /** Ring buffer fill now, 0..1. */
  ringFill: number;
  /** Events lost since the last tick (ring full, JS behind, NATS queue full). */
  lost: number;
  /** The whole local pipeline's CPU over the tick (the probe's included), millicores. */
  pipelineMillicores?: number;
  /** The node's idle share over the tick, 0..1 of all its cores. */
  nodeIdle?: number;
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
    // the pipeline's budget, in force while the node has no spare CPU
    const pBudget = this.o.pipelineBudgetMillicores;
    const pCpu = pBudget > 0 ? (m.pipelineMillicores ?? 0) : 0;
    const idle = m.nodeIdle ?? 1;
    const pipelineOver = pBudget > 0 && pCpu > pBudget && idle < this.o.idleMin;
    const ownOver = budget > 0 && m.cpuMillicores > budget;
    const cpuOver = ownOver || pipelineOver;
    this.hot = cpuOver ? this.hot + 1 : 0;
    const over = pressed || this.hot >= this.o.overTicks;
    if (pressed || this.hot > 0) this.calm = 0;
    if (over) {
      this.stats.overTicks++;
      this.calm = 0;
      // in proportion to the CPU's excess (the larger of the two budgets' excesses); loss or a
      // filling ring (CPU not the cause) halves
      const byOwn = ownOver ? budget / m.cpuMillicores : 1;
      const byPipeline = pipelineOver ? pBudget / pCpu : 1;
      const factor = Math.max(this.o.maxCut, Math.min(byOwn, byPipeline, m.lost > 0 || m.ringFill > this.o.ringHigh ? 0.5 : 1, 0.9));
      const next = Math.max(min, this.lvl * factor);
      if (next < this.lvl) this.stats.cuts++;
      this.lvl = next;
      return this.lvl;
    }
    // calm: the probe well under its budget, and the pipeline well under its own or the node idle
    const pipelineCalm = pBudget === 0 || pCpu < this.o.lowWater * pBudget || idle >= 2 * this.o.idleMin;
    if ((budget === 0 || m.cpuMillicores < this.o.lowWater * budget) && pipelineCalm && m.ringFill < this.o.ringHigh / 2) {
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
