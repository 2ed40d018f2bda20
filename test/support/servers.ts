// Real servers for integration tests: nats-server and influxd on 127.0.0.1 with free ports and
// temporary directories. Every process started here is stopped by pid: by the test's own
// teardown (`await srv.stop()` in `after`), and as a safety net when the test process exits.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  startNatsServer,
  startInfluxd,
  natsClusterConfig,
  type NatsClusterMember,
  type NatsClusterConfigOptions,
  type RunningServer,
} from "@wirescope/cli/local-stack/index";
import {
  spawnManaged,
  freePort,
  waitFor,
  pidAlive,
  inboxPrefixFor,
  readNatsCredentials,
  type ManagedProcess,
  type NatsRole,
  type SpawnOptions,
} from "@wirescope/runtime";

export { freePort, waitFor, pidAlive };

/**
 * Connect options of one of the NATS users `up` made in `dataDir`: its name, password and its own
 * inboxes (the only ones its permissions let it subscribe to, nats-permissions.ts).
 */
export function upNatsUser(dataDir: string, role: NatsRole): { user: string; pass: string; inboxPrefix: string } {
  const creds = readNatsCredentials(dataDir);
  if (!creds) throw new Error(`no NATS credentials in ${dataDir}`);
  const c = creds[role];
  return { user: c.user, pass: c.password, inboxPrefix: inboxPrefixFor(c.user) };
}

const owned = new Set<ManagedProcess>();
const tempDirs = new Set<string>();

process.once("exit", () => {
  // Synchronous last resort: nothing we started may outlive the test process.
  for (const p of owned) {
    if (!p.hasExited) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

function track<T extends ManagedProcess>(p: T): T {
  owned.add(p);
  const stop = p.stop.bind(p);
  p.stop = async (graceMs?: number) => {
    await stop(graceMs);
    owned.delete(p);
  };
  return p;
}

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = "wirescope-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export interface TestServer extends RunningServer {
  /** The directory holding this server's data and log. */
  dir: string;
  /** nats-server's monitoring port (startNats with `monitor: true`). */
  monitorPort?: number;
}

/**
 * Starts nats-server on 127.0.0.1 with a free port (JetStream on when asked; needed for KV).
 * `extraArgs` go straight to nats-server (e.g. ["--user", "u", "--pass", "p"]). Pass `port` and
 * `dir` of a stopped server to restart it in place (reconnect tests).
 */
export async function startNats(opts: { jetstream?: boolean; extraArgs?: string[]; port?: number; dir?: string; monitor?: boolean } = {}): Promise<TestServer> {
  const dir = opts.dir ?? tempDir("wirescope-nats-");
  const monitorPort = opts.monitor ? await freePort() : undefined;
  const srv = await startNatsServer({
    port: opts.port ?? 0,
    jetstream: opts.jetstream ?? false,
    storeDir: path.join(dir, "js"),
    logFile: path.join(dir, "nats.log"),
    extraArgs: [...(monitorPort ? ["-m", String(monitorPort)] : []), ...(opts.extraArgs ?? [])],
  });
  return Object.assign(track(srv), { dir, monitorPort });
}

/**
 * `n` nats-servers with JetStream on free loopback ports, routed into one cluster (the config of
 * `wirescope up --nats-cluster`: @wirescope/cli natsClusterConfig), ready once JetStream
 * answers through them (the meta leader elected). `urls` lists every member, for --nats-url.
 * `routeTls`: the routes over mutual TLS, as `up --nats-cluster N --nats-tls` runs them.
 */
export async function startNatsCluster(n = 3, opts: { routeTls?: NatsClusterConfigOptions["routeTls"] } = {}): Promise<{ servers: TestServer[]; urls: string[]; names: string[]; routePorts: number[]; stop(): Promise<void> }> {
  const dir = tempDir("wirescope-nats-cluster-");
  const members: NatsClusterMember[] = [];
  const picked = new Set<number>(); // all 2n ports distinct: each is free only while it is checked
  for (let i = 1; i <= n; i++) members.push({ name: `bench-${i}`, port: await freePort("127.0.0.1", picked), routePort: await freePort("127.0.0.1", picked) });
  const route = { user: "route", password: `route-${process.pid}-${Date.now()}` };
  const servers = await Promise.all(
    members.map(async (m) => {
      const d = path.join(dir, m.name);
      fs.mkdirSync(d, { recursive: true });
      const configFile = path.join(d, "nats.conf");
      fs.writeFileSync(configFile, natsClusterConfig({ host: "127.0.0.1", cluster: "bench", members, self: m.name, route, routeTls: opts.routeTls }));
      const srv = await startNatsServer({ port: m.port, jetstream: true, storeDir: path.join(d, "js"), configFile, logFile: path.join(d, "nats.log") });
      return Object.assign(track(srv), { dir: d });
    }),
  );
  const urls = servers.map((s) => s.url);
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    const nc = await connect({ servers: urls, name: "cluster-ready" });
    try {
      await waitFor(
        async () => {
          try {
            await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 250, what: "JetStream on the NATS cluster" },
      );
    } finally {
      await nc.close();
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { servers, urls, names: members.map((m) => m.name), routePorts: members.map((m) => m.routePort), stop };
}

/**
 * Waits until nats-server's monitoring (`/connz?subs=1` on `monitorPort`) lists a connection named
 * `client` subscribed to `subject`: a subscriber started as a child process is listening, so what
 * is published next reaches it. `alive` throws when the subscriber died meanwhile.
 */
export async function waitSubscribed(monitorPort: number, client: string, subject: string, alive: () => void = () => {}): Promise<void> {
  await waitFor(
    async () => {
      alive();
      const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=1`, { signal: AbortSignal.timeout(5000) });
      const connz = (await res.json()) as { connections?: { name?: string; subscriptions_list?: string[] }[] };
      return connz.connections?.some((c) => c.name === client && c.subscriptions_list?.includes(subject)) ?? false;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: `${client} subscribed to ${subject}` },
  );
}

/** Starts influxd 1.x on 127.0.0.1 with free ports and a temporary data directory. */
export async function startInflux(): Promise<TestServer> {
  const dir = tempDir("wirescope-influx-");
  const srv = await startInfluxd({ dir, logFile: path.join(dir, "influxd.log") });
  return Object.assign(track(srv), { dir });
}

/** redis-server on a free loopback port, no persistence, data in a temp dir; ready once it answers PING. */
export async function startRedis(): Promise<{ proc: ManagedProcess; port: number; dir: string }> {
  const port = await freePort();
  const dir = tempDir("wirescope-redis-");
  const proc = await spawnTracked("redis-server", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    logFile: path.join(dir, "redis.log"),
  });
  const ping = promisify(execFile);
  await waitFor(async () => (await ping("redis-cli", ["-p", String(port), "PING"], { timeout: 2000 }).catch(() => ({ stdout: "" }))).stdout.includes("PONG"), {
    timeoutMs: 15_000,
    what: "redis-server to answer PING",
  });
  return { proc, port, dir };
}

/** Spawns any process and tracks it the same way (stopped on exit). */
export async function spawnTracked(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): Promise<ManagedProcess> {
  return track(await spawnManaged(name, command, args, opts));
}

/** Runs an InfluxQL statement against a test influxd (GET /query for SELECT/SHOW, POST otherwise). */
export async function influxQuery(url: string, q: string, db?: string): Promise<unknown> {
  const params = new URLSearchParams({ q });
  if (db) params.set("db", db);
  const read = /^\s*(select|show)\b/i.test(q);
  const res = await fetch(`${url}/query?${params}`, { method: read ? "GET" : "POST", signal: AbortSignal.timeout(10_000) });
  const body = await res.json();
  if (!res.ok) throw new Error(`influx query failed (${res.status}): ${JSON.stringify(body)}`);
  return body;
}

/**
 * Sum of `requests` in `red` for one role, over every window and status, of the series whose tags
 * match `where` (service, resource, operation, ...): 0 while there is no point yet.
 */
export async function recordedRequests(influxUrl: string, role: "server" | "client", where: Record<string, string>, db = "wirescope"): Promise<number> {
  return (await influxSums(influxUrl, db, role, where, [`sum("requests")`]))[0]!;
}

/**
 * The requests of `recordedRequests` that were observed, not estimated: the `requests` of the
 * exact points and the `observed_requests` of the sampled ones (whose `requests` are scaled).
 * What was sent = this + the probe's `shed_requests_<role>.*` when nothing was lost.
 */
export async function observedRequests(influxUrl: string, role: "server" | "client", where: Record<string, string>, db = "wirescope"): Promise<number> {
  const [exact, sampled] = await influxSums(influxUrl, db, role, where, [`sum("requests")`, `sum("observed_requests")`], [` AND "sampled" = false`, ""]);
  return exact! + sampled!;
}

/** One `SELECT <aggregate> FROM red` per entry of `selects` (with `extra[i]` added to its WHERE), in one query. */
async function influxSums(influxUrl: string, db: string, role: string, where: Record<string, string>, selects: string[], extra: string[] = []): Promise<number[]> {
  const tag = (k: string, v: string) => ` AND "${k}" = '${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  const cond = `"role" = '${role}'${Object.entries(where).map(([k, v]) => tag(k, v)).join("")}`;
  const q = selects.map((sel, i) => `SELECT ${sel} FROM "red" WHERE ${cond}${extra[i] ?? ""}`).join("; ");
  const body = (await influxQuery(influxUrl, q, db)) as { results?: { series?: { values: [string, number][] }[] }[] };
  return selects.map((_, i) => Number(body.results?.[i]?.series?.[0]?.values?.[0]?.[1] ?? 0));
}
