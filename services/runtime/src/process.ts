// Child processes we own: spawned with their output in a log file, stopped by pid, never by name.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { WirescopeError, errorMessage } from "./errors.js";

/** A child process started by us: stop() sends SIGTERM, then SIGKILL after a grace period. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Where the child's stdout and stderr go (undefined when inherited or piped). */
  readonly logFile?: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  readonly hasExited: boolean;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of the log file (for error messages). */
  tail(lines?: number): string;
}

export class ProcessError extends WirescopeError {}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append stdout+stderr to this file. Default: "ignore" unless `stdio` is given. */
  logFile?: string;
  stdio?: "inherit" | "pipe" | "ignore";
  /**
   * Own process group: a Ctrl-C in the terminal reaches only us, so we can stop children in
   * order instead of having them all die at once.
   */
  detached?: boolean;
}

/** Spawns `command` and tracks it. Fails (ProcessError "spawn_failed") if it cannot start at all. */
export async function spawnManaged(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): Promise<ManagedProcess> {
  let out: number | "inherit" | "pipe" | "ignore" = opts.stdio ?? "ignore";
  let fd: number | undefined;
  if (opts.logFile) {
    fd = fs.openSync(opts.logFile, "a");
    out = fd;
  }
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", out, out], detached: opts.detached ?? false });
  if (fd !== undefined) fs.closeSync(fd); // the child has its own copy
  let exitedFlag = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal });
    });
    child.once("error", () => {
      exitedFlag = true;
      resolve({ code: null, signal: null });
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (e) => reject(new ProcessError("spawn_failed", `${name}: cannot start ${command}: ${errorMessage(e)}`, { cause: e })));
  });
  const pid = child.pid!;
  const tail = (lines = 20) => {
    if (!opts.logFile) return "";
    try {
      return fs.readFileSync(opts.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };
  return {
    name,
    pid,
    child,
    logFile: opts.logFile,
    exited,
    get hasExited() {
      return exitedFlag;
    },
    tail,
    async stop(graceMs = 5000) {
      if (exitedFlag) return;
      signalPid(pid, "SIGTERM");
      const timer = setTimeout(() => signalPid(pid, "SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** True when a process with this pid exists (and is not a zombie we could still reap). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // state is the field after the parenthesised comm
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined
 * when it does not exist. A pid plus its start time names one process even after pid reuse.
 */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]); // fields after comm start at field 3
  } catch {
    return undefined;
  }
}

/**
 * A TCP port free on `host` right now (the OS picks it), none of `avoid`: the ports a caller has
 * planned for other processes but not yet bound, and its own earlier picks (a port is free only
 * while it is checked, so the OS may hand the same one out twice). The port picked is added to
 * `avoid`.
 */
export async function freePort(host = "127.0.0.1", avoid?: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await osFreePort(host);
    if (!avoid) return port;
    if (avoid.has(port)) continue;
    avoid.add(port);
    return port;
  }
  throw new Error(`no free TCP port on ${host} apart from the ${avoid?.size} already planned`);
}

async function osFreePort(host: string): Promise<number> {
  const srv = net.createServer();
  srv.unref();
  const { port } = await listenOn(srv, 0, host);
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * Starts a server listening on host:port (0: the OS picks) and resolves with where it listens.
 * A port in use or a host not here rejects with the listen error (EADDRINUSE, EADDRNOTAVAIL),
 * and leaves no error listener behind.
 */
export function listenOn(server: net.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

/** True when something accepts TCP connections on host:port. */
export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export interface WaitForOptions {
  timeoutMs: number;
  intervalMs: number;
  /** What we wait for, for the error message. */
  what: string;
  signal?: AbortSignal;
}

/**
 * Thrown by a `waitFor` check when waiting longer cannot help (the process it waits for has
 * exited): `waitFor` rejects with it at once instead of retrying until its timeout.
 */
export class GiveUp extends WirescopeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("gave_up", message, options);
  }
}

/**
 * Polls `check` until it returns a truthy value, and returns that value.
 * Rejects with a WirescopeError("timeout") naming `what` and the last error seen, or at once with
 * a `GiveUp` that `check` throws; any other error thrown by `check` counts as "not yet".
 */
export async function waitFor<T>(check: () => Promise<T | undefined | null | false> | T | undefined | null | false, options: Partial<WaitForOptions> = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 100, what = "condition", signal } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    if (signal?.aborted) throw new WirescopeError("aborted", `aborted while waiting for ${what}`);
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new WirescopeError("timeout", `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${errorMessage(last)}` : ""}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
