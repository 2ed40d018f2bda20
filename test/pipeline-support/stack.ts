// The whole pipeline exactly as `wirescope up` runs it, for the pipeline benchmark: one `up` per
// measured run, with a fresh data directory, on up's fixed ports (nats 4222, influxd 8086, gRPC
// 7701-7703). Those ports and the probe's single-instance lock are machine-wide, so the benchmark
// holds /tmp/wirescope-stack.lock (the lock every fixed-port stack on this machine takes) from its
// start to its end. CPU of each pipeline process comes from /proc; counters from each service's
// Status over gRPC; records from InfluxDB.
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import {
  createClient,
  pidAlive,
  processStartTime,
  waitFor,
  COMPONENT_SERVICES,
  COMPONENTS,
  DEFAULT_GRPC_PORTS,
  type ManagedProcess,
} from "@wirescope/runtime";
import {
  ProbeService,
} from "@wirescope/wire";
import { REPO_ROOT, spawnTracked, influxQuery, WIRESCOPE_BIN } from "../support/index.js";
import { cpuTicks } from "../probe-support.js";

export const STACK_LOCK = "/tmp/wirescope-stack.lock";
export const INFLUX_URL = "http://127.0.0.1:8086";
export const INFLUX_DB = "wirescope";
/** The pipeline's processes, in the order data flows through them. */
export const PIPELINE = ["probe", "nats-server", "parser", "aggregator", "influxd"] as const;
export type PipelineProcess = (typeof PIPELINE)[number];
export type Ticks = Record<PipelineProcess, number>;
/** Counters of every service, keyed "component/name". */
export type Counters = Map<string, number>;

/**
 * Takes /tmp/wirescope-stack.lock and holds it until `release()` or until this process exits (a
 * `flock` child holds it while its stdin, our pipe, stays open: even a SIGKILL of this process
 * releases it). `onWait` is called once when the lock is busy.
 */
export async function holdStackLock(onWait: () => void): Promise<() => void> {
  const p = spawn("flock", [STACK_LOCK, "-c", "echo locked; exec cat >/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = setTimeout(onWait, 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      p.stdout.on("data", (d: Buffer) => d.toString().includes("locked") && resolve());
      p.once("exit", (code) => reject(new Error(`flock ${STACK_LOCK} exited (${code}) before taking the lock`)));
      p.once("error", reject);
    });
  } finally {
    clearTimeout(waiting);
  }
  p.unref();
  (p.stdout as unknown as { unref(): void }).unref();
  (p.stdin as unknown as { unref(): void }).unref();
  return () => p.stdin.end();
}

interface ChildRecord {
  name: string;
  pid: number;
  start: number;
}

/** up's children as its state file (<data-dir>/up.state.json) lists them. */
function upChildren(dir: string): { name: string; state: string; pid?: number; startTime?: number; restarts: number }[] {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, "up.state.json"), "utf8")) as { children: [] }).children ?? [];
  } catch {
    return []; // not written yet (or being replaced)
  }
}

// Processes of the running stack, killed by pid (start time checked) if this process exits
// without stopping them: `up`'s children run in their own process groups and would outlive us.
const live = new Set<ChildRecord>();
process.once("exit", () => {
  for (const c of live) {
    if (pidAlive(c.pid) && processStartTime(c.pid) === c.start) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
});

export interface Stack {
  readonly pids: Record<PipelineProcess, number>;
  readonly logs: string;
  /** CPU ticks (user + system) each pipeline process has used so far. */
  ticks(): Ticks;
  /** Every service's counters now (a service that does not answer contributes none). */
  counters(): Promise<Counters>;
  stop(): Promise<void>;
}

/**
 * Runs `wirescope up --no-build --no-install --data-dir <dir>` and waits for its "ready" line.
 * Fails if any of the five processes, the probe included, is not running.
 */
export async function startStack(dir: string): Promise<Stack> {
  fs.mkdirSync(dir, { recursive: true });
  const upLog = path.join(dir, "up.log");
  const up: ManagedProcess = await spawnTracked("wirescope up", process.execPath, [WIRESCOPE_BIN, "up", "--no-build", "--no-install", "--no-demo", "--start-timeout", "30000", "--data-dir", dir], {
    logFile: upLog,
    cwd: REPO_ROOT,
  });
  const remember = () => {
    for (const c of upChildren(dir)) {
      if (c.pid && c.startTime !== undefined && ![...live].some((l) => l.pid === c.pid)) live.add({ name: c.name, pid: c.pid, start: c.startTime });
    }
  };
  const log = () => (fs.existsSync(upLog) ? fs.readFileSync(upLog, "utf8") : "");
  // the three services answer the same Status call; one client (one connection) each per stack
  const clients = COMPONENTS.map((c) => [c, createClient(COMPONENT_SERVICES[c] as typeof ProbeService, `127.0.0.1:${DEFAULT_GRPC_PORTS[c]}`)] as const);
  const stop = async () => {
    for (const [, cl] of clients) cl.close();
    remember();
    await up.stop(60_000); // SIGTERM: up stops its children in reverse order, then exits
    for (const c of live) {
      if (pidAlive(c.pid) && processStartTime(c.pid) === c.start) {
        process.kill(c.pid, "SIGKILL");
        await waitFor(() => !pidAlive(c.pid), { timeoutMs: 10_000, what: `${c.name} (pid ${c.pid}) to exit` });
      }
    }
    live.clear();
  };
  try {
    // ready, or up's exit (waitFor would take a thrown error for "not yet" and wait it out)
    await waitFor(
      () => {
        remember();
        return up.hasExited || /^ready: /m.test(log());
      },
      { timeoutMs: 120_000, intervalMs: 200, what: "wirescope up to print ready" },
    ).catch(() => undefined);
    if (up.hasExited || !/^ready: /m.test(log())) {
      const how = up.hasExited ? await up.exited.then(({ code, signal }) => `exited (${signal ?? `code ${code}`})`) : "not ready after 120 s";
      throw new Error(`wirescope up ${how}; the end of its log:\n${log().trimEnd().split("\n").slice(-8).join("\n")}`);
    }
    remember();
    const children = upChildren(dir);
    const pids = {} as Record<PipelineProcess, number>;
    for (const name of PIPELINE) {
      const c = children.find((x) => x.name === name && x.state === "running" && x.pid);
      if (!c) throw new Error(`wirescope up did not start ${name}:\n${log().trimEnd().split("\n").slice(-10).join("\n")}`);
      pids[name] = c.pid!;
    }
    return {
      pids,
      logs: path.join(dir, "logs"),
      // NaN once a process is gone (up restarts a process that exits: a new pid, not counted)
      ticks: () => Object.fromEntries(PIPELINE.map((n) => [n, pidAlive(pids[n]) ? cpuTicks(pids[n]) : NaN])) as Ticks,
      counters: async () => {
        const all: Counters = new Map();
        await Promise.all(
          clients.map(async ([c, cl]) => {
            try {
              const s = await cl.status({}, { timeoutMs: 3000 });
              for (const [k, v] of Object.entries(s.counters)) all.set(`${c}/${k}`, v);
            } catch {
              // a busy service may miss one poll; the next one sees the same counters
            }
          }),
        );
        return all;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Services that have `red` points, for the diagnosis when a run records nothing. */
export async function recordedServices(): Promise<string[]> {
  const body = (await influxQuery(INFLUX_URL, `SHOW TAG VALUES FROM "red" WITH KEY = "service"`, INFLUX_DB)) as { results: { series?: { values: [string, string][] }[] }[] };
  return (body.results[0]?.series?.[0]?.values ?? []).map((v) => v[1]);
}

/**
 * Counters that mean lost data: drops, missed batches, forced gaps, evictions, traps. Not the
 * parser's `*.unclaimed` counters (connections no decoder recognises: other traffic on the
 * machine, not records lost) nor the aggregator's `spans_dropped` (trace sampling by design).
 */
export function isLossCounter(name: string): boolean {
  const words = name.split(/[/._]/);
  if (words.includes("unclaimed") || name === "aggregator/spans_dropped") return false;
  return words.some((w) => /^(drops?|dropped|missed|lost|shed|evicted|traps?|forced)$/.test(w));
}
