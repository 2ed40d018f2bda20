// `wirescope up` (what `npm start` runs): the whole pipeline on this machine, on loopback.
//
//   install-deps.sh ─▶ build ─▶ nats-server (JetStream) ─▶ influxd ─▶ probe ─▶ parser ─▶ aggregator
//                                                           each waited for: TCP / ping / gRPC health
//   Ctrl-C / SIGTERM: children stopped in reverse order (SIGTERM, then SIGKILL after a grace period).
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import {
  loadConfig,
  optionsHelp,
  startNatsServer,
  startInfluxd,
  spawnManaged,
  checkHealth,
  waitFor,
  tcpReachable,
  pidAlive,
  processStartTime,
  errorMessage,
  ServingStatus,
  DEFAULT_GRPC_PORTS,
  type Component,
  type Config,
  type ManagedProcess,
} from "@wirescope/common";
import { UsageError, type Command } from "../command.js";
import { ROOT } from "../version.js";

const USAGE = `usage: wirescope up [--no-install] [--no-build] [--no-probe] [--probe-port N] [--parser-port N] [--aggregator-port N] [options]

Starts the local stack on loopback and stays in the foreground until Ctrl-C / SIGTERM:
nats-server (JetStream, data in <data-dir>/nats), influxd (config and data in <data-dir>/influxdb),
then the probe, parser and aggregator (\`wirescope probe|parser|aggregator\`). Each is waited for
(gRPC health for the services), then a table shows where everything listens. Logs of every
process go to <data-dir>/logs/<name>.log.

Before starting it runs scripts/install-deps.sh (installs missing Debian packages as root, or
prints the apt-get line and stops) and the incremental build (node scripts/build.mjs).

nats-server listens where --nats-url points, influxd where --influx-url points (both must be on
this machine). The probe needs root and a kernel with BTF; without them the rest still starts.

options:
  --no-install         skip the Debian package check
  --no-build           skip the build step
  --no-probe           do not start the probe
  --probe-port N       probe gRPC port (default ${DEFAULT_GRPC_PORTS.probe})
  --parser-port N      parser gRPC port (default ${DEFAULT_GRPC_PORTS.parser})
  --aggregator-port N  aggregator gRPC port (default ${DEFAULT_GRPC_PORTS.aggregator})
  --start-timeout ms   how long each process may take to become healthy (default 60000)
${optionsHelp()}`;

interface UpOptions {
  install: boolean;
  build: boolean;
  probe: boolean;
  ports: Record<Component, number>;
  startTimeoutMs: number;
}

function parseUpArgs(rest: string[]): UpOptions {
  const o: UpOptions = { install: true, build: true, probe: true, ports: { ...DEFAULT_GRPC_PORTS }, startTimeoutMs: 60_000 };
  const num = (flag: string, v: string | undefined, max: number) => {
    const n = Number(v);
    if (v === undefined || !/^\d+$/.test(v) || n < 1 || n > max) throw new UsageError(`${flag}: expected an integer in [1, ${max}], got "${v ?? ""}"`);
    return n;
  };
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = rest[i].split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : rest[++i]);
    switch (flag) {
      case "--no-install": o.install = false; break;
      case "--no-build": o.build = false; break;
      case "--no-probe": o.probe = false; break;
      case "--probe-port": o.ports.probe = num(flag, value(), 65535); break;
      case "--parser-port": o.ports.parser = num(flag, value(), 65535); break;
      case "--aggregator-port": o.ports.aggregator = num(flag, value(), 65535); break;
      case "--start-timeout": o.startTimeoutMs = num(flag, value(), 3_600_000); break;
      default: throw new UsageError(`unknown argument "${rest[i]}" (see wirescope up --help)`);
    }
  }
  return o;
}

/** Why eBPF cannot be used here, or undefined when it can. */
export function ebpfUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return "eBPF needs root: run `sudo npm start` (or `sudo npx wirescope up`)";
  if (!fs.existsSync("/sys/kernel/btf/vmlinux")) {
    return "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): use a kernel built with CONFIG_DEBUG_INFO_BTF=y";
  }
  return undefined;
}

/** host:port of a URL, refusing anything that is not this machine (we start the server). */
function localEndpoint(what: string, url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url.split(",")[0]);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (!["127.0.0.1", "localhost", "::1", "0.0.0.0"].includes(host)) {
    throw new UsageError(`${what} ${url} is not on this machine; \`up\` starts its own on loopback (unset the URL, or run the services one by one)`);
  }
  return { host: host === "localhost" ? "127.0.0.1" : host, port: Number(u.port) || defaultPort };
}

interface Row {
  name: string;
  pid: string;
  listen: string;
  state: string;
  log: string;
}

function table(rows: Row[]): string {
  const head: Row = { name: "PROCESS", pid: "PID", listen: "LISTENS ON", state: "STATE", log: "LOG" };
  const all = [head, ...rows];
  const keys: (keyof Row)[] = ["name", "pid", "listen", "state", "log"];
  const w = keys.map((k) => Math.max(...all.map((r) => r[k].length)));
  return all.map((r) => keys.map((k, i) => (i === keys.length - 1 ? r[k] : r[k].padEnd(w[i]))).join("  ")).join("\n") + "\n";
}

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Refuses to start twice on one data dir; a stale lock (dead pid) is taken over. */
function takeLock(dataDir: string): () => void {
  const lock = path.join(dataDir, "up.pid");
  try {
    const pid = Number(fs.readFileSync(lock, "utf8"));
    if (pid && pid !== process.pid && pidAlive(pid)) {
      throw new UsageError(`another \`wirescope up\` (pid ${pid}) is using ${dataDir}; stop it first or pass --data-dir`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  fs.writeFileSync(lock, String(process.pid));
  return () => {
    try {
      if (fs.readFileSync(lock, "utf8") === String(process.pid)) fs.unlinkSync(lock);
    } catch {
      // already gone
    }
  };
}

interface ChildRecord {
  name: string;
  pid: number;
  start: number;
}

/**
 * Children of a previous `up` that was killed without a chance to stop them (SIGKILL, power
 * loss of the terminal...): stopped now, identified by pid and start time so that a reused pid
 * is never touched.
 */
async function reapLeftovers(file: string): Promise<void> {
  let old: ChildRecord[];
  try {
    old = JSON.parse(fs.readFileSync(file, "utf8")) as ChildRecord[];
  } catch {
    return;
  }
  for (const c of old.reverse()) {
    if (!pidAlive(c.pid) || processStartTime(c.pid) !== c.start) continue;
    say(`stopping ${c.name} (pid ${c.pid}) left over from a previous \`wirescope up\``);
    try {
      process.kill(c.pid, "SIGTERM");
      await waitFor(() => !pidAlive(c.pid), { timeoutMs: 10_000, intervalMs: 100, what: `${c.name} to exit` }).catch(() => process.kill(c.pid, "SIGKILL"));
    } catch {
      // gone meanwhile
    }
  }
  fs.rmSync(file, { force: true });
}

async function up(argv: string[]): Promise<number> {
  const { config, rest } = loadConfig({ argv });
  const opts = parseUpArgs(rest);
  const nats = localEndpoint("--nats-url", config.nats.url, 4222);
  const influx = localEndpoint("--influx-url", config.influx.url, 8086);
  const logs = path.join(config.dataDir, "logs");
  fs.mkdirSync(logs, { recursive: true });
  const unlock = takeLock(config.dataDir);

  const childrenFile = path.join(config.dataDir, "up.children.json");
  await reapLeftovers(childrenFile);
  const children: ManagedProcess[] = [];
  const remember = (c: ManagedProcess) => {
    children.push(c);
    const records: ChildRecord[] = children.map((x) => ({ name: x.name, pid: x.pid, start: processStartTime(x.pid) ?? -1 }));
    fs.writeFileSync(childrenFile, JSON.stringify(records));
  };
  const rows: Row[] = [];
  const stopping = new AbortController();
  let forced = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping.signal.aborted) {
      // Second Ctrl-C: no more patience.
      forced = true;
      for (const c of children) {
        try {
          if (!c.hasExited) process.kill(c.pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      return;
    }
    say(`\n${sig}: stopping…`);
    stopping.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  const stopAll = async () => {
    // Reverse order: the services first (they flush into NATS/InfluxDB), the servers last.
    for (const c of [...children].reverse()) {
      if (c.hasExited) continue;
      await c.stop(forced ? 0 : 10_000);
      say(`stopped ${c.name} (pid ${c.pid})`);
    }
  };

  try {
    if (opts.install) {
      const r = spawnSync("bash", [path.join(ROOT, "scripts/install-deps.sh")], { stdio: ["ignore", "inherit", "inherit"] });
      if (r.status !== 0) {
        process.stderr.write(`wirescope up: missing system packages (see above); nothing was started\n`);
        return r.status ?? 1;
      }
    }
    if (opts.build) {
      const r = spawnSync(process.execPath, [path.join(ROOT, "scripts/build.mjs"), "--quiet"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
      if (r.status !== 0) {
        process.stderr.write(`wirescope up: the build failed (see above); nothing was started\n`);
        return 1;
      }
    }
    const check = (what: string, host: string, port: number) =>
      tcpReachable(host, port, 500).then((busy) => {
        if (busy) throw new UsageError(`${host}:${port} (${what}) is already in use: another stack running? (\`npx wirescope status\`), or pick another port`);
      });
    await check("nats-server", nats.host, nats.port);
    await check("influxd", influx.host, influx.port);
    for (const c of ["probe", "parser", "aggregator"] as const) await check(`${c} gRPC`, config.grpc.host, opts.ports[c]);

    const natsSrv = await startNatsServer({ host: nats.host, port: nats.port, jetstream: true, storeDir: path.join(config.dataDir, "nats"), logFile: path.join(logs, "nats-server.log"), detached: true });
    remember(natsSrv);
    rows.push({ name: "nats-server", pid: String(natsSrv.pid), listen: natsSrv.url, state: "ready", log: rel(natsSrv.logFile) });
    if (stopping.signal.aborted) return 0;

    const influxSrv = await startInfluxd({ host: influx.host, port: influx.port, dir: path.join(config.dataDir, "influxdb"), logFile: path.join(logs, "influxd.log"), detached: true });
    remember(influxSrv);
    await createDatabase(influxSrv.url, config);
    rows.push({ name: "influxd", pid: String(influxSrv.pid), listen: `${influxSrv.url} (db ${config.influx.database})`, state: "ready", log: rel(influxSrv.logFile) });
    if (stopping.signal.aborted) return 0;

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      WIRESCOPE_NATS_URL: config.nats.url,
      WIRESCOPE_INFLUX_URL: config.influx.url,
      WIRESCOPE_INFLUX_DB: config.influx.database,
      WIRESCOPE_GRPC_HOST: config.grpc.host,
      WIRESCOPE_DATA_DIR: config.dataDir,
      WIRESCOPE_PARTITIONS: String(config.partitions),
      WIRESCOPE_LOG_LEVEL: config.logLevel,
      WIRESCOPE_LOG_FORMAT: "json",
    };
    const notes: string[] = [];
    const noProbe = !opts.probe ? "disabled with --no-probe" : ebpfUnavailableReason();
    for (const component of ["probe", "parser", "aggregator"] as const) {
      if (component === "probe" && noProbe) {
        rows.push({ name: "probe", pid: "-", listen: "-", state: "NOT RUNNING", log: "-" });
        notes.push(`probe not running: ${noProbe}`);
        continue;
      }
      const port = opts.ports[component];
      const address = `${config.grpc.host}:${port}`;
      const logFile = path.join(logs, `${component}.log`);
      const args = [path.join(ROOT, "bin/wirescope.js"), component, "--grpc-port", String(port)];
      // `up` itself health-checks the services and influxd: part of the pipeline, never traced
      if (component === "probe") args.push("--exclude-pid", String(process.pid));
      const child = await spawnManaged(component, process.execPath, args, { env, logFile, cwd: ROOT, detached: true });
      remember(child);
      try {
        await waitHealthy(child, address, opts.startTimeoutMs, stopping.signal);
        rows.push({ name: component, pid: String(child.pid), listen: `grpc://${address}`, state: "ready", log: rel(logFile) });
      } catch (e) {
        if (stopping.signal.aborted) return 0;
        if (component !== "probe") throw e;
        // The rest of the pipeline is useful without the probe (pcap replay, other probes).
        await child.stop(3000);
        rows.push({ name: "probe", pid: "-", listen: "-", state: "FAILED", log: rel(logFile) });
        notes.push(`probe failed to start: ${errorMessage(e)}`);
      }
    }

    say("");
    process.stdout.write(table(rows));
    for (const n of notes) say(`note: ${n}`);
    say(`logs: ${rel(logs)}/   status: npx wirescope status   stop: Ctrl-C`);
    say(`ready: ${children.length} processes running`);

    // Supervise until asked to stop; a server dying takes everything down, a service is reported.
    const serverDied = new Promise<string>((resolve) => {
      for (const c of children) {
        void c.exited.then(({ code, signal }) => {
          if (stopping.signal.aborted) return;
          const msg = `${c.name} (pid ${c.pid}) exited unexpectedly (${signal ?? `code ${code}`}); see ${rel(c.logFile)}`;
          process.stderr.write(`wirescope up: ${msg}\n`);
          if (c === natsSrv || c === influxSrv) resolve(msg);
        });
      }
    });
    const reason = await Promise.race([serverDied, new Promise<undefined>((r) => stopping.signal.addEventListener("abort", () => r(undefined), { once: true }))]);
    return reason ? 1 : 0;
  } catch (e) {
    if (stopping.signal.aborted) return 0;
    throw e;
  } finally {
    stopping.abort();
    await stopAll();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    if (children.every((c) => c.hasExited)) fs.rmSync(childrenFile, { force: true });
    unlock();
  }
}

/** Waits until `address` reports SERVING; fails early (with the log's tail) if the child exits. */
async function waitHealthy(child: ManagedProcess, address: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  let last = "";
  await waitFor(
    async () => {
      if (child.hasExited) throw new Error(`${child.name} exited: ${child.tail(3).replace(/\n/g, " | ")}`);
      const h = await checkHealth(address, "", 1000);
      last = h.error ?? ServingStatus[h.status];
      return h.status === ServingStatus.SERVING;
    },
    { timeoutMs, intervalMs: 200, what: `${child.name} to be healthy at ${address}`, signal },
  ).catch((e: unknown) => {
    if (child.hasExited) throw new Error(`${child.name} exited during startup; last log lines: ${child.tail(3).replace(/\n/g, " | ")}`);
    throw new Error(`${errorMessage(e)} (last answer: ${last}); see ${rel(child.logFile)}`);
  });
}

async function createDatabase(url: string, config: Config): Promise<void> {
  const q = new URLSearchParams({ q: `CREATE DATABASE "${config.influx.database.replace(/"/g, '\\"')}"` });
  const res = await fetch(`${url}/query?${q}`, { method: "POST", signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`influxd: CREATE DATABASE ${config.influx.database} failed: HTTP ${res.status} ${await res.text()}`);
}

function rel(p: string | undefined): string {
  if (!p) return "-";
  const r = path.relative(process.cwd(), p);
  return r.startsWith("..") ? p : r;
}

const command: Command = { name: "up", summary: "start nats-server, influxd, probe, parser and aggregator on this machine", usage: USAGE, run: up };
export default command;
