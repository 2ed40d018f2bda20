// A real MariaDB server for integration tests: mariadb-install-db into a temporary directory,
// mariadbd on 127.0.0.1 with a free port and its socket in that directory, run as root, stopped
// by pid. Shared by every test that needs a real MySQL-protocol server. SQL for setup goes
// through the mariadb command-line client over the socket (never over the captured TCP port).
import path from "node:path";
import { execFile } from "node:child_process";
import { freePort, spawnTracked, tempDir, waitFor } from "./servers.js";
import { tcpReachable, type ManagedProcess } from "@wirescope/runtime";

export interface MariaDb {
  port: number;
  socket: string;
  dir: string;
  proc: ManagedProcess;
  /** Runs SQL as root over the socket (setup only: not on the captured port). */
  sql(statements: string): Promise<string>;
  /** Runs the mariadb command-line client over TCP (captured), returns stdout. */
  client(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface MariaDbOptions {
  /**
   * Any user, no password (--skip-grant-tables): for tests that only need a server to talk to.
   * Off, accounts and auth plugins (ed25519 loaded) work as on a real server.
   */
  skipGrantTables?: boolean;
  /** A throw-away self-signed certificate (openssl) lets clients upgrade with an SSL request. */
  tls?: boolean;
  extraArgs?: string[];
  timeoutMs?: number;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Starts mariadbd; resolves once it accepts TCP connections (bounded by `timeoutMs`). */
export async function startMariaDb(opts: MariaDbOptions = {}): Promise<MariaDb> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const dir = tempDir("wirescope-mariadb-");
  const data = path.join(dir, "data");
  const socket = path.join(dir, "mysqld.sock");
  await run("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"], timeoutMs);
  const extraArgs = [...(opts.extraArgs ?? [])];
  if (opts.skipGrantTables) extraArgs.push("--skip-grant-tables", "--skip-name-resolve");
  else extraArgs.push("--plugin-load-add=auth_ed25519");
  if (opts.tls) {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"]);
    extraArgs.push(`--ssl-cert=${cert}`, `--ssl-key=${key}`);
  }
  const port = await freePort();
  const proc = await spawnTracked(
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
      ...extraArgs,
    ],
    { logFile: path.join(dir, "mariadbd.log") },
  );
  try {
    await waitFor(async () => !proc.hasExited && (await tcpReachable("127.0.0.1", port)), { timeoutMs, what: "mariadbd to accept connections" });
  } catch (e) {
    await proc.stop();
    throw new Error(`mariadbd did not start on port ${port}: ${(e as Error).message}\n${proc.tail()}`);
  }
  return {
    port,
    socket,
    dir,
    proc,
    sql: (s) => run("mariadb", ["--no-defaults", "-S", socket, "-uroot", "-e", s]),
    client: (args) => run("mariadb", ["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", String(port), ...args]),
    stop: () => proc.stop(10_000),
  };
}
