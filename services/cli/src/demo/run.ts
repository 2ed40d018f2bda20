// `wirescope demo`: starts the shop's databases (mariadbd, redis-server, from the distribution's
// packages, data under <dir>) and its parts as separate processes, restarts a part that dies
// (with backoff, counted), and stops everything on SIGINT/SIGTERM, parts first.
import fs from "node:fs";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { GiveUp, pidAlive, spawnManaged, tcpReachable, waitFor, type ManagedProcess } from "@wirescope/runtime/process";
import { prepareLocalTls } from "../local-stack/index.js";
import { Supervisor } from "../supervisor.js";
import { PARTS, demoTlsDir, ports, type Part } from "./spec.js";

const WIRESCOPE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../bin/wirescope.js");
export const DB_USER = "shop";
export const DB_PASSWORD = "shop-demo";

export interface DemoOptions {
  dir: string;
  basePort: number;
  rate: number;
  /** The load generator stops after this many requests (0 = never). */
  requests: number;
  log: (line: string) => void;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`)) : resolve(stdout)));
  });
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && fs.existsSync(path.join(d, bin)));
}

/** What the demo needs that this machine lacks, as a one-line hint; undefined when all is there. */
export function missingForDemo(): string | undefined {
  const need = [
    ["mariadbd", "mariadb-server"],
    ["redis-server", "redis-server"],
  ].filter(([bin]) => !onPath(bin!));
  if (!need.length) return undefined;
  return `the demo needs ${need.map(([b]) => b).join(" and ")}: apt-get install -y ${need.map(([, p]) => p).join(" ")} (or run with --no-demo)`;
}

async function waitPort(proc: ManagedProcess, port: number, what: string, timeoutMs = 60_000): Promise<void> {
  try {
    await waitFor(
      async () => {
        if (proc.hasExited) throw new GiveUp(await exitedHow(proc));
        return tcpReachable("127.0.0.1", port);
      },
      { timeoutMs, intervalMs: 100, what },
    );
  } catch (e) {
    throw new Error(`${what} did not come up on port ${port}: ${(e as Error).message}\n${proc.tail(10)}`);
  }
}

async function exitedHow(proc: ManagedProcess): Promise<string> {
  const { code, signal } = await proc.exited;
  return `it exited (${signal ?? `code ${code}`})`;
}

/** Times a part is started before the demo gives up on it (1 s, 2 s, 4 s apart). */
const PART_START_ATTEMPTS = 4;

/**
 * Starts one part and resolves once it says it runs (after it listens or has connected), or
 * rejects, leaving nothing behind, when it exits first or takes over 30 s.
 */
async function startPart(part: Part, args: string[], log: string): Promise<ManagedProcess> {
  // The log is appended to across starts: only what this process wrote counts.
  const written = appendedTo(log);
  const proc = await spawnManaged(part, process.execPath, args, { logFile: log });
  const running = `demo ${part}: running (pid ${proc.pid})`;
  try {
    await waitFor(
      async () => {
        if (proc.hasExited) throw new GiveUp(await exitedHow(proc));
        return written().includes(running);
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `demo part ${part} to run` },
    );
    return proc;
  } catch (e) {
    await proc.stop(3000);
    const tail = written().trimEnd().split("\n").slice(-3).join(" | ");
    throw new Error(`${(e as Error).message}${tail ? `; it wrote: ${tail}` : " (it wrote nothing)"}`);
  }
}

/**
 * What is appended to a file from now on, as one string that grows: each call reads only the
 * bytes added since the last (the file may not exist yet).
 */
export function appendedTo(file: string): () => string {
  let pos = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  const decoder = new StringDecoder("utf8");
  let text = "";
  return () => {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch {
      return text;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size > pos) {
        const buf = Buffer.allocUnsafe(size - pos);
        const n = fs.readSync(fd, buf, 0, buf.length, pos);
        pos += n;
        text += decoder.write(buf.subarray(0, n));
      }
    } catch {
      // read again on the next call
    } finally {
      fs.closeSync(fd);
    }
    return text;
  };
}

/**
 * Stops a server a previous demo left running (its demo was killed with SIGKILL): the pid file
 * names it, and its comm must match, so a reused pid is never signalled.
 */
async function stopLeftover(pidFile: string, comm: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  } catch {
    return;
  }
  const name = (() => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  })();
  if (!pid || !pidAlive(pid) || !name.startsWith(comm.slice(0, 15))) return;
  process.kill(pid, "SIGTERM");
  await waitFor(() => !pidAlive(pid), { timeoutMs: 15_000, intervalMs: 100, what: `the previous ${comm} (pid ${pid}) to stop` });
}

/** mariadbd with the shop schema (fresh `orders` table each start, 50 items). */
async function startMariaDb(dir: string, port: number): Promise<ManagedProcess> {
  const data = path.join(dir, "mariadb");
  const socket = path.join(dir, "mariadb.sock");
  await stopLeftover(path.join(dir, "mariadbd.pid"), "mariadbd");
  if (!fs.existsSync(path.join(data, "mysql"))) {
    fs.mkdirSync(data, { recursive: true });
    await run("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"], 120_000);
  }
  const proc = await spawnManaged(
    "mariadbd",
    "mariadbd",
    ["--no-defaults", `--datadir=${data}`, `--port=${port}`, "--bind-address=127.0.0.1", `--socket=${socket}`, "--user=root", `--pid-file=${path.join(dir, "mariadbd.pid")}`, "--skip-log-bin", "--innodb-buffer-pool-size=32M"],
    { logFile: path.join(dir, "mariadbd.log") },
  );
  await waitPort(proc, port, "mariadbd");
  const items = Array.from({ length: 50 }, (_, i) => `(${i + 1}, 'item ${i + 1}', ${(i + 1) * 3})`).join(",");
  // Over the socket: setup is not part of the traffic the demo shows.
  await run("mariadb", [
    "--no-defaults", "-S", socket, "-uroot", "-e",
    `CREATE DATABASE IF NOT EXISTS shop;
     CREATE USER IF NOT EXISTS '${DB_USER}'@'127.0.0.1' IDENTIFIED BY '${DB_PASSWORD}';
     GRANT ALL ON shop.* TO '${DB_USER}'@'127.0.0.1';
     DROP TABLE IF EXISTS shop.orders;
     CREATE TABLE shop.orders (id INT PRIMARY KEY, item_id INT NOT NULL, qty INT NOT NULL);
     CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, price INT NOT NULL);
     INSERT IGNORE INTO shop.items VALUES ${items};`,
  ]);
  return proc;
}

async function startRedis(dir: string, port: number): Promise<ManagedProcess> {
  const pidFile = path.join(dir, "redis.pid");
  await stopLeftover(pidFile, "redis-server");
  const proc = await spawnManaged("redis-server", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--pidfile", pidFile], { logFile: path.join(dir, "redis.log") });
  await waitPort(proc, port, "redis-server");
  return proc;
}

/** Runs the shop until `signal` aborts; resolves once everything it started has stopped. */
export async function runDemo(o: DemoOptions, signal: AbortSignal): Promise<void> {
  const missing = missingForDemo();
  if (missing) throw new Error(missing);
  fs.mkdirSync(path.join(o.dir, "logs"), { recursive: true });
  fs.rmSync(path.join(o.dir, "counts"), { recursive: true, force: true });
  const p = ports(o.basePort);
  // api's certificate (web → api is HTTPS): made once, kept with the demo's data.
  prepareLocalTls(demoTlsDir(o.dir), "wirescope demo api");
  const servers: ManagedProcess[] = [];
  // Each part is started, waited for and kept running like `up`'s children: a part that dies is
  // started again (with backoff, counted), and one that dies while starting (a port taken for a
  // moment, a kill from outside) is tried again before the demo gives up.
  const parts = new Supervisor({ signal, log: o.log, who: "demo", stopGraceMs: 3000 });
  // The parts in reverse order (each ends its connections at once), then the servers: well inside
  // the grace period `up` gives the demo as a whole.
  const stopAll = async () => {
    await parts.stop();
    await Promise.all(servers.map((s) => s.stop(5000)));
  };
  try {
    servers.push(await startMariaDb(o.dir, p.mariadb));
    servers.push(await startRedis(o.dir, p.redis));
    for (const part of PARTS) {
      if (signal.aborted) break;
      const log = path.join(o.dir, "logs", `${part}.log`);
      const args = [WIRESCOPE, "demo", "--part", part, "--demo-port", String(o.basePort), "--dir", o.dir, "--rate", String(o.rate), "--requests", String(o.requests)];
      try {
        await parts.start({ name: part, component: "demo", address: "", log, start: () => startPart(part, args, log) }, PART_START_ATTEMPTS);
      } catch (e) {
        if (signal.aborted) break; // stopped while starting: not a failure
        throw new Error(`demo part ${part} did not start (${PART_START_ATTEMPTS} attempts): ${(e as Error).message}`);
      }
    }
    if (!signal.aborted) o.log(`demo: web http://127.0.0.1:${p.web} ← loadgen ${o.rate} req/s; api h2 over TLS :${p.api}, orders gRPC :${p.orders}, mariadb :${p.mariadb}, redis :${p.redis}, kafka :${p.kafka}; logs ${path.join(o.dir, "logs")}`);
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
  } finally {
    await stopAll();
  }
}
