// tcpdump for integration tests: started on loopback, ready once it listens, stopped by pid.
// startTcpdump takes tcpdump's own arguments; startCapture and captureWhile capture TCP ports on
// lo into a temporary directory (the protocol tests: protocol-support's captureDecoded).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { spawnTracked, tempDir, waitFor } from "./servers.js";

export interface Tcpdump {
  file: string;
  /** Stops tcpdump (SIGINT, then SIGKILL after 10 s); returns its stderr ("N packets dropped by kernel"). */
  stop(): Promise<string>;
}

/**
 * Starts `tcpdump -U --immediate-mode -B 32768 -n <args>` writing to `file`. A large buffer and
 * immediate mode keep a busy machine from losing packets; stop() is idempotent.
 */
export async function startTcpdump(file: string, args: string[]): Promise<Tcpdump> {
  const p: ChildProcess = spawn("tcpdump", ["-U", "--immediate-mode", "-B", "32768", "-n", "-w", file, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const exited = new Promise<void>((resolve) => p.on("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (p.pid && p.exitCode === null) process.kill(p.pid, "SIGKILL");
      reject(new Error(`tcpdump did not start: ${err}`));
    }, 15_000);
    p.stderr!.on("data", (b: Buffer) => {
      err += b.toString();
      if (/listening on/.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.on("error", reject);
    p.on("close", (code) => reject(new Error(`tcpdump exited ${code}: ${err}`)));
  });
  return {
    file,
    async stop() {
      if (p.exitCode === null && p.pid) process.kill(p.pid, "SIGINT");
      const t = setTimeout(() => p.pid && p.exitCode === null && process.kill(p.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
      return err;
    },
  };
}

/**
 * Waits (bounded) until `file` contains `needle` at least `count` times: tcpdump -U writes each
 * packet as it reads it, but may read late on a busy machine.
 */
export async function waitForBytes(file: string, needle: Buffer | string, timeoutMs = 15_000, count = 1): Promise<void> {
  const n = typeof needle === "string" ? Buffer.from(needle) : needle;
  const deadline = Date.now() + timeoutMs;
  const seen = (): number => {
    if (!fs.existsSync(file)) return 0;
    const b = fs.readFileSync(file);
    let k = 0;
    for (let i = b.indexOf(n); i >= 0; i = b.indexOf(n, i + n.length)) k++;
    return k;
  };
  while (seen() < count) {
    if (Date.now() > deadline) throw new Error(`${file}: ${JSON.stringify(n.toString())} never reached the capture`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once `file`'s size has not changed for `quietMs` (or after `timeoutMs` in all). */
async function settled(file: string, quietMs: number, timeoutMs: number): Promise<void> {
  const size = () => (fs.existsSync(file) ? fs.statSync(file).size : 0);
  const deadline = Date.now() + timeoutMs;
  let last = size();
  let since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = size();
    if (now !== last) [last, since] = [now, Date.now()];
  }
}

export interface Capture {
  file: string;
  /** Stops tcpdump once the file has stopped growing (every packet read) and waits for it to exit; throws when the kernel dropped packets. */
  stop(): Promise<void>;
}

/** Starts tcpdump on loopback for one TCP port (or several); resolves once it is listening. */
export async function startCapture(port: number | number[], name: string): Promise<Capture> {
  const dir = tempDir(`wirescope-${name}-`);
  const file = path.join(dir, `${name}.pcap`);
  const log = path.join(dir, "tcpdump.log");
  // -B 65536: a 64 MiB kernel buffer, room for bursts of 64 KiB loopback segments (16 MiB
  // payloads) so the kernel drops nothing; --immediate-mode + -U: every packet reaches the file
  // before SIGINT (no buffered block is lost); -Z root: keep the privileges needed to write in
  // our temp dir
  const p = await spawnTracked("tcpdump", "tcpdump", ["-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-Z", "root", "-s", "0", "-w", file, [port].flat().map((p) => `tcp port ${p}`).join(" or ")], { logFile: log });
  await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("listening on"), { timeoutMs: 10_000, what: "tcpdump to listen" });
  return {
    file,
    async stop() {
      // tcpdump -U writes each packet as it reads it, but on a busy machine it reads a burst of
      // large loopback segments late: wait until the file has stopped growing for 300 ms
      // (bounded by 15 s) so the last segments (the tail of a large response, FIN/ACK) are in
      await settled(file, 300, 15_000);
      if (!p.hasExited) process.kill(p.pid, "SIGINT");
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 5000))]);
      await p.stop(1000);
      const dropped = /[1-9]\d* packets? dropped by kernel/.exec(fs.readFileSync(log, "utf8"));
      if (dropped) throw new Error(`${file}: tcpdump lost packets (${dropped[0]}): a comparison with this capture means nothing`);
    },
  };
}

/**
 * Captures the loopback traffic of `port` (or several) while `workload` runs: tcpdump is listening
 * before the workload starts and stopped (its file complete) before this returns, also when the
 * workload fails. Returns the capture file.
 */
export async function captureWhile(port: number | number[], name: string, workload: () => Promise<unknown>): Promise<string> {
  const cap = await startCapture(port, name);
  try {
    await workload();
  } finally {
    await cap.stop();
  }
  return cap.file;
}

/**
 * Captures what goes to `port` on lo into `file` while `workload` runs: tcpdump listens before
 * the workload starts; afterwards the file is waited for until it holds `mark` twice (the last
 * request and its reply both carry it: tcpdump may read late on a busy machine), then tcpdump is
 * stopped (also when the workload fails). Throws when the kernel dropped packets: a comparison
 * with a capture that lost packets means nothing.
 */
export async function captureMarked(file: string, port: number, mark: string, workload: () => unknown): Promise<void> {
  const dump = await startTcpdump(file, ["-i", "lo", `tcp port ${port}`]);
  let log = "";
  try {
    await workload();
    await waitForBytes(file, mark, 15_000, 2);
  } finally {
    log = await dump.stop();
  }
  const dropped = /[1-9]\d* packets? dropped by kernel/.exec(log);
  if (dropped) throw new Error(`${file}: tcpdump lost packets (${dropped[0]})`);
}
