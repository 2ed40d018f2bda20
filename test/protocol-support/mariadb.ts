// A real MariaDB server for integration tests: mariadb-install-db into a temporary directory,
// mariadbd on 127.0.0.1 with a free port and its socket in that directory, run as root, stopped
// by pid. SQL for setup goes through the mariadb command-line client over the socket.
import path from "node:path";
import { execFile } from "node:child_process";
import { freePort, spawnTracked, tempDir, waitFor } from "../support/index.js";
import { tcpReachable, type ManagedProcess } from "@wirescope/common";

export interface MariaDb {
  port: number;
  socket: string;
  dir: string;
  /** Runs SQL as root over the socket (setup only: not on the captured port). */
  sql(statements: string): Promise<string>;
  /** Runs the mariadb command-line client over TCP (captured), returns stdout. */
  client(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Starts MariaDB. With `tls`, a throw-away self-signed certificate (made with openssl in the
 * temporary directory) lets clients upgrade connections with an SSL request.
 */
export async function startMariaDb(opts: { tls?: boolean; extraArgs?: string[] } = {}): Promise<MariaDb> {
  const dir = tempDir("wirescope-mariadb-");
  const data = path.join(dir, "data");
  const socket = path.join(dir, "mysqld.sock");
  await run("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"]);
  const extraArgs = [...(opts.extraArgs ?? [])];
  if (opts.tls) {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"]);
    extraArgs.push(`--ssl-cert=${cert}`, `--ssl-key=${key}`);
  }
  const port = await freePort();
  const proc: ManagedProcess = await spawnTracked(
    "mariadbd",
    "mariadbd",
    [
      "--no-defaults",
      `--datadir=${data}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--socket=${socket}`,
      "--user=root",
      `--pid-file=${path.join(dir, "mariadbd.pid")}`,
      "--skip-log-bin",
      "--innodb-buffer-pool-size=32M",
      "--max-allowed-packet=64M",
      "--plugin-load-add=auth_ed25519",
      ...extraArgs,
    ],
    { logFile: path.join(dir, "mariadbd.log") },
  );
  try {
    await waitFor(async () => !proc.hasExited && (await tcpReachable("127.0.0.1", port)), { timeoutMs: 30_000, what: "mariadbd to accept connections" });
  } catch (e) {
    await proc.stop();
    throw new Error(`mariadbd did not start: ${(e as Error).message}\n${proc.tail()}`);
  }
  return {
    port,
    socket,
    dir,
    sql: (s) => run("mariadb", ["--no-defaults", "-S", socket, "-uroot", "-e", s]),
    client: (args) => run("mariadb", ["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", String(port), ...args]),
    stop: () => proc.stop(10_000),
  };
}
