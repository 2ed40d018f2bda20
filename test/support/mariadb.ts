// A throwaway MariaDB server for integration tests: a fresh data directory (mariadb-install-db),
// mariadbd on 127.0.0.1 with a free port, grant tables skipped (any user, no password), stopped
// by pid. Shared by every test that needs a real MySQL-protocol server.
import path from "node:path";
import net from "node:net";
import { execFileSync } from "node:child_process";
import { freePort, spawnTracked, tempDir } from "./servers.js";
import type { ManagedProcess } from "@wirescope/common";

export interface MariaDb {
  port: number;
  dir: string;
  proc: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts mariadbd; resolves once it accepts TCP connections (bounded by `timeoutMs`). */
export async function startMariaDb(timeoutMs = 30_000): Promise<MariaDb> {
  const dir = tempDir("wirescope-mariadb-");
  const data = path.join(dir, "data");
  execFileSync("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--skip-test-db", "--auth-root-authentication-method=normal"], {
    stdio: "ignore",
    timeout: timeoutMs,
  });
  const port = await freePort();
  const proc = await spawnTracked("mariadbd", "mariadbd", [
    "--no-defaults", `--datadir=${data}`, "--user=root", `--port=${port}`, "--bind-address=127.0.0.1",
    `--socket=${path.join(dir, "mysqld.sock")}`, `--pid-file=${path.join(dir, "mysqld.pid")}`, "--skip-grant-tables",
    "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M", `--log-error=${path.join(dir, "error.log")}`,
  ], { logFile: path.join(dir, "stdout.log") });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (ok) break;
    if (proc.hasExited || Date.now() > deadline) {
      await proc.stop();
      throw new Error(`mariadbd did not start on port ${port}: ${proc.tail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, dir, proc, stop: () => proc.stop() };
}
