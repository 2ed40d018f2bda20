// <data-dir>/up.state.json: what `wirescope up` runs, written by up on every change and read by
// `wirescope status` (to list every expected component, DOWN ones included, with restart counts)
// and by the next `up` (to stop children left over by an `up` that was SIGKILLed).
//
//   { "pid": <up's pid>, "startTime": <its start time>, "children": [ChildState, …] }
import fs from "node:fs";
import path from "node:path";
import { pidAlive, processStartTime } from "@wirescope/runtime/process";
import type { NatsOptions } from "@wirescope/runtime/config";
import { natsClientCert, natsTlsFiles } from "./local-stack/index.js";
import type { ChildState } from "./supervisor.js";

export interface UpState {
  pid: number;
  /** up's start time in clock ticks since boot (pid reuse guard). */
  startTime: number;
  children: ChildState[];
}

export const stateFile = (dataDir: string) => path.join(dataDir, "up.state.json");

/** Writes the state atomically (a reader never sees half a file). */
export function writeUpState(dataDir: string, children: ChildState[]): void {
  const file = stateFile(dataDir);
  const s: UpState = { pid: process.pid, startTime: processStartTime(process.pid) ?? -1, children };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 1));
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * <data-dir>/pipeline.pids: the pids of the nats-server(s) and influxd `up` runs now, one per line,
 * rewritten (atomically) on every change. The probe reads it every second (`--pipeline-pid-file`),
 * so that a server `up` started again counts toward the pipeline's CPU by its new pid.
 */
export const pipelinePidsFile = (dataDir: string) => path.join(dataDir, "pipeline.pids");

/** Writes pipeline.pids from the children's states; unchanged content is not written again. */
export function writePipelinePids(dataDir: string, children: readonly ChildState[]): void {
  const text = children.filter((c) => (c.component === "nats" || c.component === "influxdb") && c.pid).map((c) => `${c.pid}\n`).join("");
  const file = pipelinePidsFile(dataDir);
  try {
    if (fs.readFileSync(file, "utf8") === text) return;
  } catch {
    // not written yet
  }
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

/** The state file as written, or undefined when there is none or it cannot be read. */
export function readUpState(dataDir: string): UpState | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(stateFile(dataDir), "utf8")) as UpState;
    return Array.isArray(s.children) && typeof s.pid === "number" ? s : undefined;
  } catch {
    return undefined;
  }
}

/** True when the `up` that wrote this state is still the same running process. */
export function upAlive(s: UpState): boolean {
  return pidAlive(s.pid) && processStartTime(s.pid) === s.startTime;
}

/**
 * The NATS servers a command should try: the configured ones, plus every nats-server a running
 * `up` supervises on `dataDir` (the members of its cluster), so that `status`, `tail` and
 * `plugin` still reach the stack while the server named by --nats-url is down; with the CA and
 * the CLI's client certificate of `up --nats-tls` when its servers speak TLS.
 */
export function natsWithStack(nats: NatsOptions, dataDir: string): NatsOptions {
  const up = readUpState(dataDir);
  if (!up || !upAlive(up)) return nats;
  const urls = nats.url.split(",").map((u) => u.trim());
  let tls = false;
  for (const c of up.children) {
    if (c.component !== "nats") continue;
    if (!urls.includes(c.address)) urls.push(c.address);
    if (c.address.startsWith("tls://")) tls = true;
  }
  if (!tls) return { ...nats, url: urls.join(",") };
  // `up --nats-tls`: its servers are verified with the CA it made in the data dir, and take the
  // CLI's client certificate made there
  const own = nats.tls?.cert === undefined && nats.tls?.key === undefined ? natsClientCert(dataDir, "cli") : {};
  return { ...nats, url: urls.join(","), tls: { ...nats.tls, ca: nats.tls?.ca ?? natsTlsFiles(dataDir).ca, ...own } };
}

/** Addresses of the nats-servers a running `up` supervises on `dataDir` (several for a cluster). */
export function stackNatsServers(dataDir: string): string[] {
  const up = readUpState(dataDir);
  return up && upAlive(up) ? up.children.filter((c) => c.component === "nats").map((c) => c.address) : [];
}
