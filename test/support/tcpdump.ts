// tcpdump for integration tests: started on loopback, ready once it listens, stopped by pid.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";

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
