// A real PostgreSQL server for integration tests: Debian's postgresql, initdb into a temporary
// directory, postgres on 127.0.0.1 with a free port and its socket in that directory, stopped by
// pid. PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres`
// system user (setpriv execs in place, so the pid we track is the postmaster's). Setup SQL goes
// through psql over the socket (never over the captured TCP port).
//
// Authentication (pg_hba.conf): over TCP `trustuser` needs no password, `md5user` uses MD5 and
// every other role SCRAM-SHA-256; over the socket everyone is trusted.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { freePort, spawnTracked, tempDir, waitFor } from "./servers.js";
import { tcpReachable, type ManagedProcess } from "@wirescope/runtime";

export interface Postgres {
  port: number;
  /** Directory holding the server's socket (`psql -h <socketDir>`). */
  socketDir: string;
  dir: string;
  bin: string;
  proc: ManagedProcess;
  /** Runs SQL as the superuser `postgres` over the socket (setup only: not on the captured port). */
  sql(statements: string): Promise<string>;
  /** Runs psql over TCP (captured) with `args`; `input` goes to its stdin. Returns stdout. */
  psql(args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<string>;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  /** A throw-away self-signed certificate (openssl): SSLRequest is answered 'S' (else 'N'). */
  tls?: boolean;
  timeoutMs?: number;
}

/** The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin on Debian). */
export function postgresBinDir(): string {
  const base = "/usr/lib/postgresql";
  const majors = fs.existsSync(base) ? fs.readdirSync(base).filter((d) => fs.existsSync(path.join(base, d, "bin/postgres"))) : [];
  if (majors.length === 0) throw new Error("postgresql is not installed (scripts/install-deps.sh --test installs it)");
  majors.sort((a, b) => Number(b) - Number(a));
  return path.join(base, majors[0]!, "bin");
}

function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const asRoot = process.getuid?.() === 0;

/** `cmd args` as the postgres user when we are root (setpriv replaces itself with cmd). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return asRoot ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", cmd, ...args]] : [cmd, args];
}

/** Starts postgres; resolves once it accepts sessions over TCP (bounded by `timeoutMs`). */
export async function startPostgres(opts: PostgresOptions = {}): Promise<Postgres> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const bin = postgresBinDir();
  const dir = tempDir("wirescope-postgres-");
  const data = path.join(dir, "data");
  if (asRoot) {
    // the data directory and the socket live in our temp dir: the postgres user must own it
    fs.chownSync(dir, Number((await run("id", ["-u", "postgres"])).trim()), Number((await run("id", ["-g", "postgres"])).trim()));
  }
  const [initCmd, initArgs] = asPostgres(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
  await run(initCmd, initArgs, { timeoutMs });
  fs.writeFileSync(
    path.join(data, "pg_hba.conf"),
    ["local all all trust", "host all trustuser 127.0.0.1/32 trust", "host all md5user 127.0.0.1/32 md5", "host all all 127.0.0.1/32 scram-sha-256", ""].join("\n"),
  );
  const tls: Record<string, string> = {};
  if (opts.tls) {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"]);
    if (asRoot) for (const f of [key, cert]) fs.chownSync(f, fs.statSync(dir).uid, fs.statSync(dir).gid);
    fs.chmodSync(key, 0o600);
    Object.assign(tls, { ssl: "on", ssl_cert_file: cert, ssl_key_file: key });
  }
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dir,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    shared_buffers: "16MB",
    max_connections: "40",
    ssl: "off",
    logging_collector: "off",
    ...tls,
    ...(opts.settings ?? {}),
  };
  const [cmd, args] = asPostgres(path.join(bin, "postgres"), ["-D", data, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])]);
  const proc = await spawnTracked("postgres", cmd, args, { logFile: path.join(dir, "postgres.log") });
  try {
    // the port listens before the server accepts sessions ("the database system is starting up"):
    // pg_isready answers 0 only once it does
    const ready = () => run(path.join(bin, "pg_isready"), ["-q", "-h", dir, "-p", String(port)], { timeoutMs: 5000 }).then(() => true, () => false);
    await waitFor(async () => !proc.hasExited && (await tcpReachable("127.0.0.1", port)) && (await ready()), { timeoutMs, what: "postgres to accept sessions" });
  } catch (e) {
    await proc.stop();
    throw new Error(`postgres did not start on port ${port}: ${(e as Error).message}\n${proc.tail()}`);
  }
  const psqlBin = path.join(bin, "psql");
  return {
    port,
    socketDir: dir,
    dir,
    bin,
    proc,
    sql: (s) => run(psqlBin, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", s]),
    psql: (a, input, env) => run(psqlBin, ["-X", "-h", "127.0.0.1", "-p", String(port), ...a], { input, env: { ...process.env, ...(env ?? {}) } }),
    // SIGTERM is postgres's "smart shutdown": it waits for sessions to end (tests end their
    // clients first), SIGKILL after 10 s
    stop: () => proc.stop(10_000),
  };
}
