// Who owns a socket: read once per process from /proc, cached, read again after the process runs
// exec (the kernel says when: WS_EV_PROC_EXEC), forgotten when the process exits.
// Container ids come from the process's cgroup path; Kubernetes pod/namespace/container from a
// PodResolver (k8s.ts) when running in a cluster.
import fs from "node:fs";
import { Generations, redactCommandLine } from "@wirescope/runtime";

export interface ProcInfo {
  pid: number;
  name: string;
  exe: string;
  cmdline: string;
  containerId: string;
  pod: string;
  namespace: string;
  container: string;
  workload: string;
}

/** Looks up the pod of a container id; implemented by k8s.ts, absent outside a cluster. */
export interface PodResolver {
  lookup(containerId: string): { pod: string; namespace: string; container: string; workload: string } | undefined;
}

// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, /docker/<id>, /kubepods/.../<id>
const CONTAINER_ID = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$/;

/** The container id in a /proc/<pid>/cgroup text, or "" when the process is not in a container. */
export function containerIdFromCgroup(text: string): string {
  for (const line of text.split("\n")) {
    const p = line.split(":").slice(2).join(":").trim();
    for (const seg of p.split("/").reverse()) {
      const m = CONTAINER_ID.exec(seg);
      if (m) return m[1];
    }
  }
  return "";
}

const MAX_CMDLINE = 4096;

function readText(p: string): string {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

/** Reads one process's identity from /proc (best effort: a vanished process gives empty fields). */
export function readProcInfo(pid: number, procRoot = "/proc", pods?: PodResolver): ProcInfo {
  const base = `${procRoot}/${pid}`;
  const name = readText(`${base}/comm`).trim();
  let exe = "";
  try {
    exe = fs.readlinkSync(`${base}/exe`);
  } catch {
    // kernel thread, gone, or no permission
  }
  // (at most 64 KiB of it is read: what is kept after redaction is shorter still)
  const argv = readText(`${base}/cmdline`).slice(0, 64 * 1024).split("\0").filter((s, i, a) => s !== "" || i < a.length - 1);
  // Secrets on command lines (curl -H 'Authorization: …', --password=…, user:pass@ URLs, …) never
  // leave the node: masked here, before anything is published (@wirescope/runtime redact.ts).
  let cmdline = redactCommandLine(argv);
  if (cmdline.length > MAX_CMDLINE) cmdline = cmdline.slice(0, MAX_CMDLINE);
  const containerId = containerIdFromCgroup(readText(`${base}/cgroup`));
  const k = containerId && pods ? pods.lookup(containerId) : undefined;
  return {
    pid, name, exe, cmdline, containerId,
    pod: k?.pod ?? "", namespace: k?.namespace ?? "", container: k?.container ?? "", workload: k?.workload ?? "",
  };
}

export interface ProcessCacheOptions {
  procRoot: string;
  /** Most processes remembered (two generations of half as many, `Generations`): the last
   *  maxEntries/2 processes read or looked up are always kept, the others forgotten together. */
  maxEntries: number;
  pods?: PodResolver;
}

/**
 * Process identities by pid, read once, and again after the process runs exec (`exec`).
 * `sweep()` forgets processes that exited (call it periodically); `forget(pid)` drops one at once.
 */
export class ProcessCache {
  private readonly opts: ProcessCacheOptions;
  /** Oldest-first eviction from one Map cost ~10-35 µs per new process once 65,536 were cached
   *  (V8 walks the deleted entries before the first live key); a generation is dropped whole. */
  private readonly map: Generations<number, ProcInfo>;
  /** Cached processes that ran exec, not read again yet: when (the events' clock, ns). */
  private readonly execs = new Map<number, bigint>();
  /** Identities read again because their process ran exec. */
  execRefreshed = 0;

  constructor(options: Partial<ProcessCacheOptions> = {}) {
    this.opts = { procRoot: "/proc", maxEntries: 65536, ...options };
    this.map = new Generations(Math.max(1, Math.floor(this.opts.maxEntries / 2)));
  }

  get size(): number {
    return this.map.size;
  }

  /**
   * `pid` ran exec at `tsMono`: the identity cached from before is the old program's. Events from
   * `tsMono` on read it again (once); earlier ones (still on their way) keep the old one.
   */
  exec(pid: number, tsMono: bigint): void {
    if (this.map.has(pid)) this.execs.set(pid, tsMono);
  }

  /**
   * The identity of `pid` for an event at `tsMono` (the kernel's clock; absent: now);
   * `commHint` (from the kernel event) fills in a name when /proc has none.
   */
  get(pid: number, commHint = "", tsMono?: bigint): ProcInfo {
    let info = this.map.get(pid);
    if (info && this.execs.size) {
      const at = this.execs.get(pid);
      if (at !== undefined && (tsMono === undefined || tsMono >= at)) {
        this.execs.delete(pid);
        this.map.delete(pid);
        info = undefined;
        this.execRefreshed++;
      }
    }
    if (!info) {
      info = readProcInfo(pid, this.opts.procRoot, this.opts.pods);
      if (!info.name) info.name = commHint;
      this.map.set(pid, info);
    } else {
      this.map.touch(pid);
      if (!info.pod && info.containerId && this.opts.pods) {
        const k = this.opts.pods.lookup(info.containerId);
        if (k) Object.assign(info, k);
      }
    }
    return info;
  }

  forget(pid: number): void {
    this.map.delete(pid);
    this.execs.delete(pid);
  }

  /** Forgets every process whose /proc entry is gone. Returns how many were removed. */
  sweep(): number {
    let n = 0;
    for (const pid of this.map.keys()) {
      if (!fs.existsSync(`${this.opts.procRoot}/${pid}`)) {
        this.forget(pid);
        n++;
      }
    }
    // Exec notes of processes forgotten with a generation.
    for (const pid of this.execs.keys()) if (!this.map.has(pid)) this.execs.delete(pid);
    return n;
  }
}
