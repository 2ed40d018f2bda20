// Runtime filters: the wirescope.v1.Filter message applied to the kernel maps, plus the pipeline's
// own processes, which are always denied whatever the user asks.
import type { NativeProbe } from "./native.js";

export interface FilterSpec {
  allowPids: number[];
  denyPids: number[];
  allowPorts: number[];
  denyPorts: number[];
  allowComms: string[];
  denyComms: string[];
  allowCgroups: bigint[];
  denyCgroups: bigint[];
}

export const EMPTY_FILTER: FilterSpec = {
  allowPids: [], denyPids: [], allowPorts: [], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [],
};

/** The pipeline's own programs, never traced (their pids are added when known). */
export const PIPELINE_COMMS = ["nats-server", "influxd"];

type Kind = "pid" | "comm" | "cgroup" | "port";

/** An announced pipeline process, as the registry holds it (see @wirescope/runtime registry.ts). */
export interface PipelineMember {
  node: string;
  pid: number;
  cgroupId?: string;
  pidNs?: string;
}

/**
 * How to deny the pipeline's own processes on this node: by pid when they share the probe's pid
 * namespace (`wirescope up`, systemd units: pids mean what the kernel means), by cgroup when they
 * do not (a pod's pid is its container's, and would deny some unrelated host process).
 */
export function pipelineExclusions(members: readonly PipelineMember[], self: { node: string; pid: number; pidNs: string }): { pids: number[]; cgroups: bigint[] } {
  const pids: number[] = [];
  const cgroups: bigint[] = [];
  for (const m of members) {
    if (m.node !== self.node) continue;
    if (!m.pidNs || m.pidNs === self.pidNs) {
      if (m.pid !== self.pid && m.pid > 0) pids.push(m.pid);
    } else if (m.cgroupId && /^\d+$/.test(m.cgroupId) && BigInt(m.cgroupId) > 1n) cgroups.push(BigInt(m.cgroupId));
  }
  return { pids, cgroups };
}
type Key = number | string | bigint;

/** Checks a filter; returns the problems (empty when valid). */
export function validateFilter(f: FilterSpec): string[] {
  const errs: string[] = [];
  for (const p of [...f.allowPids, ...f.denyPids]) if (!Number.isInteger(p) || p <= 0 || p > 0x7fffffff) errs.push(`bad pid ${p}`);
  for (const p of [...f.allowPorts, ...f.denyPorts]) if (!Number.isInteger(p) || p <= 0 || p > 65535) errs.push(`bad port ${p}`);
  for (const c of [...f.allowComms, ...f.denyComms]) if (!c || Buffer.byteLength(c) > 15) errs.push(`bad process name "${c}" (1..15 bytes, as in /proc/PID/comm)`);
  return errs;
}

/** How long a pipeline cgroup no longer announced stays denied (excludeCgroups, nextCgroupForgetMs). */
const CGROUP_GRACE_MS = 60_000;

/** Keeps the kernel's filter maps equal to (user filter ∪ pipeline denials). */
export class KernelFilter {
  private current = new Map<string, { kind: Kind; key: Key; action: "allow" | "deny" }>();
  private user: FilterSpec = EMPTY_FILTER;
  private readonly pipelinePids = new Set<number>();
  /** The pipeline's processes announced in the registry now (replaced as members come and go). */
  private announcedPids = new Set<number>();
  /** Pipeline containers' cgroup ids → when last announced (ms). */
  private readonly pipelineCgroups = new Map<bigint, number>();
  private cfgKey = "";

  constructor(private readonly probe: NativeProbe) {}

  get filter(): FilterSpec {
    return this.user;
  }

  /** Processes that must never be traced, for the probe's life (`--exclude-pid`). */
  excludePids(pids: number[]): void {
    for (const p of pids) if (p > 0) this.pipelinePids.add(p);
    this.apply(this.user);
  }

  /**
   * The pipeline's processes announced in the registry now (parser, aggregator): denied while
   * announced, traced again once their member has left (a later process may reuse the pid).
   */
  setAnnouncedPids(pids: number[]): void {
    const next = new Set(pids.filter((p) => p > 0));
    if (next.size === this.announcedPids.size && [...next].every((p) => this.announcedPids.has(p))) return;
    this.announcedPids = next;
    this.apply(this.user);
  }

  /** When a cgroup no longer announced is to be forgotten (ms, the clock of `excludeCgroups`), or -1. */
  nextCgroupForgetMs(announced: readonly bigint[], graceMs = CGROUP_GRACE_MS): number {
    const now = new Set(announced);
    let next = Infinity;
    for (const [c, seen] of this.pipelineCgroups) if (!now.has(c)) next = Math.min(next, seen + graceMs + 1);
    return next === Infinity ? -1 : next;
  }

  /**
   * Containers of the pipeline (parser, aggregator pods) that must never be traced: the ids
   * announced now. One that stays unannounced for `graceMs` is forgotten, so replaced pods do
   * not fill the kernel map (WS_MAX_FILTER entries) while a registry read that briefly comes
   * back empty does not let the pipeline trace itself.
   */
  excludeCgroups(ids: bigint[], nowMs = Date.now(), graceMs = CGROUP_GRACE_MS): void {
    for (const c of ids) if (c > 1n) this.pipelineCgroups.set(c, nowMs);
    for (const [c, seen] of this.pipelineCgroups) if (nowMs - seen > graceMs) this.pipelineCgroups.delete(c);
    this.apply(this.user);
  }

  /** Replaces the user filter. @throws Error listing what is invalid. */
  apply(f: FilterSpec): void {
    const errs = validateFilter(f);
    if (errs.length) throw new Error(`invalid filter: ${errs.join("; ")}`);
    const want = new Map<string, { kind: Kind; key: Key; action: "allow" | "deny" }>();
    const put = (kind: Kind, key: Key, action: "allow" | "deny") => want.set(`${kind}:${String(key)}`, { kind, key, action });
    f.allowPids.forEach((k) => put("pid", k, "allow"));
    f.allowPorts.forEach((k) => put("port", k, "allow"));
    f.allowComms.forEach((k) => put("comm", k, "allow"));
    f.allowCgroups.forEach((k) => put("cgroup", k, "allow"));
    // denials after allows: deny wins when both name the same key
    f.denyPids.forEach((k) => put("pid", k, "deny"));
    f.denyPorts.forEach((k) => put("port", k, "deny"));
    f.denyComms.forEach((k) => put("comm", k, "deny"));
    f.denyCgroups.forEach((k) => put("cgroup", k, "deny"));
    this.pipelinePids.forEach((k) => put("pid", k, "deny"));
    this.announcedPids.forEach((k) => put("pid", k, "deny"));
    this.pipelineCgroups.forEach((_, k) => put("cgroup", k, "deny"));
    PIPELINE_COMMS.forEach((k) => put("comm", k, "deny"));
    // Order matters while the maps change under live traffic: new entries first, then the allow
    // switches, then removals. An allow list changing from {A} to {B} briefly allows both; it
    // never allows everything, and nothing is toggled when the filter did not change.
    for (const [id, e] of want) {
      const old = this.current.get(id);
      if (!old || old.action !== e.action) this.probe.setFilterEntry(e.kind, e.key, e.action);
    }
    const cfg = {
      allowPids: f.allowPids.length > 0,
      allowComms: f.allowComms.length > 0,
      allowCgroups: f.allowCgroups.length > 0,
      allowPorts: f.allowPorts.length > 0,
    };
    const cfgKey = JSON.stringify(cfg);
    if (cfgKey !== this.cfgKey) {
      this.probe.setFilterConfig(cfg);
      this.cfgKey = cfgKey;
    }
    for (const [id, e] of this.current) if (!want.has(id)) this.probe.setFilterEntry(e.kind, e.key, "remove");
    this.current = want;
    this.user = { ...f };
  }
}
