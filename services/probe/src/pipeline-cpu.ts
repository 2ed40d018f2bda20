// The CPU of the local pipeline and the node's spare CPU, per steering tick, from /proc: what the
// sampling level's pipeline budget (sampling.ts) is fed on one machine that runs everything.
//
//   /proc/stat "cpu " line          ─▶ node idle share over the tick (idle + iowait of all cores)
//   /proc/<pid>/stat utime + stime  ─▶ CPU of each pipeline process over the tick (every thread)
//
// A pid is named by the process's start time too: a pid that exited and was reused by another
// process (an app) is not counted as the pipeline's. A process seen for the first time gives its
// baseline (it counts from the next tick on); one gone is forgotten.
import fs from "node:fs";

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux ABI node runs on). */
const USER_HZ = 100;

/** Idle (idle + iowait) and total ticks of all cores, from /proc/stat's text; undefined if unreadable. */
export function nodeCpuTicks(procStat: string): { idle: number; total: number } | undefined {
  const line = /^cpu\s+([\d\s]+)$/m.exec(procStat)?.[1];
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).map(Number);
  if (f.length < 5) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is inside user already)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle: f[3]! + f[4]!, total };
}

/** utime + stime (every thread) and the start time of a process, from /proc/<pid>/stat's text. */
export function processCpuTicks(pidStat: string): { ticks: number; start: number } | undefined {
  // the name (field 2) may hold spaces and parentheses: fields are counted after the last ')'
  const rest = pidStat.slice(pidStat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const start = Number(rest[19]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(start)) return undefined;
  return { ticks: utime + stime, start };
}

/**
 * The pids a pipeline pid file lists (`up`'s <data-dir>/pipeline.pids: one per line; blank lines
 * and anything that is not a pid are skipped). A file that cannot be read lists none.
 */
export function readPidFile(file: string): number[] {
  const out: number[] = [];
  for (const line of read(file).split("\n")) {
    const t = line.trim();
    if (/^\d+$/.test(t) && Number(t) > 0 && Number(t) <= 0x7fffffff) out.push(Number(t));
  }
  return out;
}

function read(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** One tick's figures: the pipeline's processes' CPU (millicores) and the node's idle share (0..1). */
export interface PipelineCpuSample {
  millicores: number;
  nodeIdle: number;
  /** Processes counted (for status). */
  processes: number;
}

export class PipelineCpu {
  private last = new Map<number, { ticks: number; start: number }>();
  private node: { idle: number; total: number } | undefined;
  private t = 0;

  constructor(private readonly proc = "/proc") {
    this.node = nodeCpuTicks(read(`${proc}/stat`));
    this.t = Date.now();
  }

  /** CPU of `pids` and the node's idle share since the previous call. */
  sample(pids: Iterable<number>): PipelineCpuSample {
    const now = Date.now();
    const dt = Math.max(1, now - this.t) / 1000;
    this.t = now;
    let ticks = 0;
    const next = new Map<number, { ticks: number; start: number }>();
    for (const pid of pids) {
      if (next.has(pid)) continue;
      const s = processCpuTicks(read(`${this.proc}/${pid}/stat`));
      if (!s) continue;
      const was = this.last.get(pid);
      if (was && was.start === s.start) ticks += Math.max(0, s.ticks - was.ticks);
      next.set(pid, s);
    }
    this.last = next;
    const node = nodeCpuTicks(read(`${this.proc}/stat`));
    let nodeIdle = 1;
    if (node && this.node && node.total > this.node.total) nodeIdle = Math.max(0, Math.min(1, (node.idle - this.node.idle) / (node.total - this.node.total)));
    this.node = node ?? this.node;
    return { millicores: (ticks / USER_HZ / dt) * 1000, nodeIdle, processes: next.size };
  }
}
