// `wirescope up` (what `npm start` runs): the whole pipeline on this machine, on loopback.
//
//   install-deps.sh ─▶ build ─▶ nats-server (JetStream) ─▶ influxd ─▶ probe ─▶ parser ─▶ aggregator
//                                                           each waited for: TCP / ping / gRPC health
//   As root, before the probe: tracefs mounted when missing, RLIMIT_MEMLOCK raised for the probe.
//   A child that exits is restarted with backoff and counted (supervisor.ts); <data-dir>/up.state.json
//   says what runs, for `wirescope status`.
//   Ctrl-C / SIGTERM / the parent gone: children stopped in reverse order (SIGTERM, then SIGKILL
//   after a grace period).
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { defaultCoreOptions } from "@wirescope/aggregator/core/options";
import { AGGREGATOR_NODE_FLAGS, defaultAggregatorOptions } from "@wirescope/aggregator/options";
import { PROBE_NODE_FLAGS } from "@wirescope/probe/options";
import { DEFAULT_PARSER_OPTIONS } from "@wirescope/parser/options";
import { DEFAULTS, loadConfig, optionsHelp, DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, type Component, type Config, OPTIONS } from "@wirescope/runtime/config";
import { spawnManaged, waitFor, GiveUp, tcpReachable, pidAlive, processStartTime, freePort, type ManagedProcess } from "@wirescope/runtime/process";
import { errorMessage } from "@wirescope/runtime/errors";
import { writePrivate, prepareNatsAuth, natsUserEnv } from "@wirescope/runtime/nats-permissions";
import { prepareInfluxAuth, influxUserEnv } from "@wirescope/runtime/influx-auth";
import { flagsHelp, parseFlags, type FlagSpec, withEnv } from "@wirescope/runtime/flags";
import {
  startNatsServer,
  startInfluxd,
  ensureInfluxUsers,
  natsClusterConfig,
  prepareNatsTls,
  natsTlsConfig,
  natsClientCert,
  natsRouteCert,
  natsTlsClientEnv,
  type NatsClusterMember,
  type NatsTlsFiles,
} from "../local-stack/index.js";
import {
  hostPort,
} from "@wirescope/wire";
import { UsageError, type Command } from "../command.js";
import { Supervisor, type ChildState, type ChildSpec } from "../supervisor.js";
import { readUpState, writeUpState, stateFile, writePipelinePids, pipelinePidsFile } from "../stack-state.js";
import { ROOT } from "../version.js";
import { DEFAULT_BASE_PORT, ports as demoPorts } from "../demo/spec.js";
import { missingForDemo } from "../demo/run.js";

/** Most parser replicas and aggregator instances `up` runs. */
export const MAX_INSTANCES = 8;
/**
 * Parser replica i (1-based) listens on --parser-port and --parser-metrics-port + 10·(i-1): 7702,
 * 7712 … 7772 by default. The aggregators take the ports right after theirs (7703 … 7710 for 8),
 * so with the defaults no two services meet for any allowed count; explicit ports are checked
 * (`checkPorts`).
 */
export const PARSER_PORT_STRIDE = 10;

/** up's own flags (after the shared ones): --help, the completions and parseUpArgs read this table. */
export const UP_FLAGS: readonly FlagSpec[] = withEnv("up", [
  { flag: "no-install", description: "skip the Debian package check" },
  { flag: "no-build", description: "skip the build step" },
  { flag: "no-probe", description: "do not start the probe" },
  { flag: "no-demo", description: "do not start the demo shop (`wirescope demo --help` says what it runs)" },
  { flag: "demo-port", value: "N", default: String(DEFAULT_BASE_PORT), description: "first of the demo's six ports" },
  { flag: "demo-requests", value: "N", default: "never", description: "the demo's load generator stops after N requests" },
  { flag: "influx-auth", description: "run influxd with authentication: users generated into <data-dir>/influx-auth.json (0600): an admin that only creates the database and the others, a writer for the aggregator (WRITE) and a reader for top and dashboards (READ)" },
  { flag: "nats-cluster", value: "N", default: "1", description: "run N nats-servers (3 to 5) routed into one cluster, with JetStream's records stream, KV buckets and plugin store in 3 replicas: losing any one server loses no records. Client ports: the --nats-url list when it names N servers, else its port and the next N-1; route ports are picked free, with a route password generated each start" },
  { flag: "nats-tls", description: "clients reach nats-server over mutual TLS only: a CA, a server certificate and a client certificate per component made once into <data-dir>/nats-tls/ (keys 0600); the services, status, tail and plugin verify the servers with that CA and show their own certificate; with --nats-cluster, the routes between the servers speak mutual TLS too" },
  { flag: "pipeline-nice", value: "N", default: "10", description: "once healthy, nats-server, influxd, the parser and the aggregator run at this lower scheduling priority (nice 0-19; the probe keeps up's): on a busy machine the apps get the CPU first, and the probe sheds connections instead of the pipeline taking it; 0 = off" },
  { flag: "pipeline-cpu-budget", value: "N[m|%]", default: "0", description: "CPU the whole local pipeline may use while the machine has no spare CPU, e.g. 500m; the probe then observes fewer new connections over it, counts scaled (`wirescope probe --help`: --pipeline-cpu-budget). Off by default: on 2 cores it binds already at 20,000 req/s, where every request can be counted exactly; 0 = off" },
  { flag: "probe-args", repeatable: true, value: '"FLAGS"', description: 'extra flags for the probe, e.g. "--allow-port 8080" to trace one service (`wirescope probe --help` lists them)' },
  { flag: "no-watch-parent", description: "keep running when the process that started `up` exits" },
  { flag: "probe-port", value: "N", default: String(DEFAULT_GRPC_PORTS.probe), description: "probe gRPC port" },
  { flag: "parser-port", value: "N", default: String(DEFAULT_GRPC_PORTS.parser), description: `parser gRPC port (for --parsers N, replica i on this + ${PARSER_PORT_STRIDE}·(i-1))` },
  { flag: "aggregator-port", value: "N", default: String(DEFAULT_GRPC_PORTS.aggregator), description: "aggregator gRPC port (the next ones for --aggregators N)" },
  { flag: "parsers", value: "N", default: "1", description: `run N parser replicas (1 to ${MAX_INSTANCES}) sharing the raw partitions (docs/parser.md, "Membership protocol"), each supervised and shown by \`wirescope status\` with the partitions it owns; replica i's gRPC and metrics ports are --parser-port and --parser-metrics-port + ${PARSER_PORT_STRIDE}·(i-1), apart from the aggregators' next ones` },
  { flag: "aggregators", value: "N", default: "1", description: "run N aggregator instances (1 to 8) sharing the records partitions: each series counted by one of them (docs/aggregator.md, \"Several instances\"); gRPC and metrics ports the --aggregator-port and --aggregator-metrics-port and the next N-1" },
  { flag: "probe-metrics-port", value: "N", default: String(DEFAULT_METRICS_PORTS.probe), description: "probe Prometheus /metrics port, 0 = off" },
  { flag: "parser-metrics-port", value: "N", default: String(DEFAULT_METRICS_PORTS.parser), description: "parser Prometheus /metrics port (+10 per replica), 0 = off" },
  { flag: "aggregator-metrics-port", value: "N", default: String(DEFAULT_METRICS_PORTS.aggregator), description: "aggregator Prometheus /metrics port (+1 per instance), 0 = off" },
  { flag: "start-timeout", value: "MS", default: "60000", description: "how long each process may take to become healthy" },
  { flag: "otlp-endpoint", value: "URL", default: "none", description: "the aggregator also exports spans over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318)" },
  { flag: "cpu-prof", value: "DIR", default: "off", description: "the probe, parser(s) and aggregator(s) run under `node --cpu-prof` and each writes a V8 CPU profile (CPU.<date>.<pid>.cpuprofile, for Chrome DevTools or speedscope) into DIR when it stops: a profile of the real stack under real traffic" },
]);

const USAGE = `usage: wirescope up [--no-install] [--no-build] [--no-probe] [--no-demo] [--demo-port N] [--demo-requests N] [--influx-auth] [--nats-cluster N] [--nats-tls] [--pipeline-nice N] [--pipeline-cpu-budget N[m|%]] [--probe-args "FLAGS"] [--no-watch-parent] [--probe-port N] [--parser-port N] [--aggregator-port N] [--parsers N] [--aggregators N] [--probe-metrics-port N] [--parser-metrics-port N] [--aggregator-metrics-port N] [--otlp-endpoint URL] [--cpu-prof DIR] [options]

Starts the local stack on loopback and stays in the foreground until Ctrl-C / SIGTERM:
nats-server (JetStream, data in <data-dir>/nats), influxd (config and data in <data-dir>/influxdb),
then the probe, parser(s) and aggregator(s) (\`wirescope probe|parser|aggregator\`), and a demo shop of
real services with steady traffic (\`wirescope demo\`; --no-demo to observe only your own traffic). Each is waited for
(gRPC health for the services), then a table shows where everything listens. Logs of every
process go to <data-dir>/logs/<name>.log. A process that exits is started again (after 1 s, then
up to 30 s between tries); restarts are counted and shown by \`wirescope status\`. When the
process that started \`up\` goes away (e.g. \`npm start\` killed), the stack is stopped.

Before starting it runs scripts/install-deps.sh (installs missing Debian packages as root, the
demo's mariadb-server and redis-server included unless --no-demo, or prints the apt-get line and
stops) and the incremental build (node scripts/build.mjs).

nats-server listens where --nats-url points, influxd where --influx-url points (both must be on
this machine). The probe needs root and a kernel with BTF; as root, \`up\` mounts tracefs when it
is missing and raises the probe's memlock limit. Without them the rest still starts, and the last
line says that capture is off, why, and how to fix it.

options:
${flagsHelp(UP_FLAGS)}
${optionsHelp()}`;

interface UpOptions {
  install: boolean;
  build: boolean;
  probe: boolean;
  ports: Record<Component, number>;
  /** Prometheus /metrics port per service, 0 = off. */
  metricsPorts: Record<Component, number>;
  /** Instances (instanceName) without /metrics: their port was taken when up started. */
  metricsOff: Set<string>;
  startTimeoutMs: number;
  watchParent: boolean;
  demo: boolean;
  demoPort: number;
  demoRequests: number;
  influxAuth: boolean;
  /** nats-servers to run as one cluster; 1 = a single server. */
  natsCluster: number;
  /** TLS between clients and nats-server, with a CA made by up. */
  natsTls: boolean;
  /** Extra flags for the probe. */
  probeArgs: string[];
  /** Niceness of nats-server, influxd, parser and aggregator once healthy; 0 = unchanged. */
  pipelineNice: number;
  /** The probe's --pipeline-cpu-budget, as given ("500m", "0"). */
  pipelineCpuBudget: string;
  /** OTLP/HTTP collector the aggregator exports spans to, "" = off. */
  otlpEndpoint: string;
  /** Aggregator instances (ports: the aggregator's and the next ones). */
  aggregators: number;
  /** Parser replicas (ports: the parser's, then every PARSER_PORT_STRIDE). */
  parsers: number;
  /** Directory the services write `node --cpu-prof` profiles into, "" = off. */
  cpuProfDir: string;
}

/** @internal exported for tests: node's own flags for a service `up` runs. */
export function serviceNodeFlags(component: Component, opts: Pick<UpOptions, "cpuProfDir">): string[] {
  const own = component === "probe" ? PROBE_NODE_FLAGS : component === "aggregator" ? AGGREGATOR_NODE_FLAGS : [];
  return opts.cpuProfDir ? [...own, "--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`] : [...own];
}

/** @internal exported for tests */
export function parseUpArgs(rest: string[], env: NodeJS.ProcessEnv = process.env): UpOptions {
  const o: UpOptions = { install: true, build: true, probe: true, ports: { ...DEFAULT_GRPC_PORTS }, metricsPorts: { ...DEFAULT_METRICS_PORTS }, metricsOff: new Set(), startTimeoutMs: 60_000, watchParent: true, demo: true, demoPort: DEFAULT_BASE_PORT, demoRequests: 0, influxAuth: false, natsCluster: 1, natsTls: false, probeArgs: [], pipelineNice: 10, pipelineCpuBudget: "0", otlpEndpoint: "", aggregators: 1, parsers: 1, cpuProfDir: "" };
  const num = (flag: string, v: string, max: number, min = 1) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`${flag}: expected an integer in [${min}, ${max}], got "${v}"`);
    return n;
  };
  parseFlags(rest, UP_FLAGS, { command: "up", env }).each(({ flag, value: v }) => {
    switch (flag) {
      case "--no-install": o.install = false; break;
      case "--no-build": o.build = false; break;
      case "--no-probe": o.probe = false; break;
      case "--no-watch-parent": o.watchParent = false; break;
      case "--no-demo": o.demo = false; break;
      case "--influx-auth": o.influxAuth = true; break;
      case "--nats-cluster": o.natsCluster = num(flag, v, 5, 3); break;
      case "--nats-tls": o.natsTls = true; break;
      case "--pipeline-nice": o.pipelineNice = num(flag, v, 19, 0); break;
      case "--pipeline-cpu-budget": {
        if (!/^(\d+(\.\d+)?(m|%)?|off)$/.test(v)) throw new UsageError(`${flag}: expected millicores (500m), a percentage of one core (50%) or off, got "${v}"`);
        o.pipelineCpuBudget = v;
        break;
      }
      case "--probe-args": o.probeArgs.push(...v.split(/\s+/).filter(Boolean)); break;
      case "--demo-port": o.demoPort = num(flag, v, 65530); break;
      case "--demo-requests": o.demoRequests = num(flag, v, 1e9); break;
      case "--probe-port": o.ports.probe = num(flag, v, 65535); break;
      case "--parser-port": o.ports.parser = num(flag, v, 65535); break;
      case "--aggregator-port": o.ports.aggregator = num(flag, v, 65535); break;
      case "--aggregators": o.aggregators = num(flag, v, MAX_INSTANCES); break;
      case "--parsers": o.parsers = num(flag, v, MAX_INSTANCES); break;
      case "--probe-metrics-port": o.metricsPorts.probe = num(flag, v, 65535, 0); break;
      case "--parser-metrics-port": o.metricsPorts.parser = num(flag, v, 65535, 0); break;
      case "--aggregator-metrics-port": o.metricsPorts.aggregator = num(flag, v, 65535, 0); break;
      case "--start-timeout": o.startTimeoutMs = num(flag, v, 3_600_000); break;
      case "--otlp-endpoint": {
        if (!/^https?:\/\/[^\s/]/.test(v)) throw new UsageError(`${flag}: expected an http(s) URL, got "${v}"`);
        o.otlpEndpoint = v;
        break;
      }
      case "--cpu-prof": o.cpuProfDir = path.resolve(v); break;
      default: throw new UsageError(`up option ${flag} is documented but not parsed`);
    }
  });
  checkPorts(o);
  return o;
}

/** How many processes `up` runs of a service. */
export function instanceCount(component: Component, opts: Pick<UpOptions, "parsers" | "aggregators">): number {
  return component === "parser" ? opts.parsers : component === "aggregator" ? opts.aggregators : 1;
}

/** up's name for instance `index` (0-based) of a service: parser, parser-2, … */
export const instanceName = (component: Component, index: number) => (index === 0 ? component : `${component}-${index + 1}`);

/** How far instance `index` of a service sits from the service's ports. */
const portStep = (component: Component, index: number) => (component === "parser" ? PARSER_PORT_STRIDE * index : index);

/**
 * The gRPC and metrics ports of instance `index` (0-based) of a service; metrics 0 = off (for
 * the service, or for this instance alone: `metricsOff`).
 * @internal exported for tests
 */
export function instancePorts(component: Component, opts: Pick<UpOptions, "ports" | "metricsPorts" | "metricsOff">, index: number): { grpc: number; metrics: number } {
  const step = portStep(component, index);
  const metrics = opts.metricsPorts[component] > 0 && !opts.metricsOff.has(instanceName(component, index)) ? opts.metricsPorts[component] + step : 0;
  return { grpc: opts.ports[component] + step, metrics };
}

/**
 * The control (gRPC) address of instance `index` of a service on `host`, written as the instance
 * writes its own (GrpcServer.listen: an IPv6 host in brackets): its membership entry is found by it.
 * @internal exported for tests
 */
export function controlAddress(host: string, component: Component, opts: Pick<UpOptions, "ports" | "metricsPorts" | "metricsOff">, index: number): string {
  return hostPort(host, instancePorts(component, opts, index).grpc);
}

/**
 * Refuses ports that two processes of the stack would share (or past 65535): every instance's
 * gRPC and metrics port (taken as one space: both are on loopback by default), the demo's and
 * `others` (nats-server, influxd). With the default ports nothing collides for any allowed count;
 * this catches explicit ones, before anything starts. Returns the ports claimed: the ports `up`
 * picks free later (nats routes, influxd's RPC) must stay apart from them, as they are not bound
 * until their process starts.
 * @internal exported for tests
 */
export function checkPorts(opts: UpOptions, others: { what: string; port: number }[] = []): Set<number> {
  const owner = new Map<number, string>();
  const claim = (what: string, port: number) => {
    if (port > 65535) throw new UsageError(`${what} would be ${port}, past 65535: pick lower ports or fewer instances`);
    const prev = owner.get(port);
    if (prev) throw new UsageError(`port ${port} would be both ${prev} and ${what}: pick ports further apart (parser replica i takes --parser-port + ${PARSER_PORT_STRIDE}·(i-1), aggregator instance i --aggregator-port + i-1; the same for their metrics ports)`);
    owner.set(port, what);
  };
  for (const { what, port } of others) claim(what, port);
  for (const c of opts.probe ? (["probe", "parser", "aggregator"] as const) : (["parser", "aggregator"] as const)) {
    for (let i = 0; i < instanceCount(c, opts); i++) {
      const p = instancePorts(c, opts, i);
      const step = portStep(c, i);
      const from = (flag: string, base: number) => `(--${flag} ${base}${step ? ` + ${step}` : ""})`;
      claim(`${instanceName(c, i)}'s gRPC port ${from(`${c}-port`, opts.ports[c])}`, p.grpc);
      if (p.metrics) claim(`${instanceName(c, i)}'s metrics port ${from(`${c}-metrics-port`, opts.metricsPorts[c])}`, p.metrics);
    }
  }
  if (opts.demo) for (const [what, port] of Object.entries(demoPorts(opts.demoPort))) claim(`the demo's ${what} port (--demo-port ${opts.demoPort})`, port);
  return new Set(owner.keys());
}

/**
 * The flags `up` gives one service besides the shared configuration.
 * @internal exported for tests
 */
export function serviceArgs(component: Component, opts: UpOptions, index = 0, pipelinePidFile = ""): string[] {
  const { grpc, metrics } = instancePorts(component, opts, index);
  const args = ["--grpc-port", String(grpc), "--metrics-port", String(metrics)];
  // `up` itself health-checks the services and influxd: part of the pipeline, never traced.
  // The pipeline's budget counts nats-server and influxd too, by the pids in the file `up` rewrites
  // when it starts one again (the parsers and aggregators announce themselves); the user's
  // --probe-args come last and win.
  if (component === "probe") {
    args.push("--exclude-pid", String(process.pid), "--pipeline-cpu-budget", opts.pipelineCpuBudget);
    if (pipelinePidFile) args.push("--pipeline-pid-file", pipelinePidFile);
    args.push(...opts.probeArgs);
  }
  if (component === "aggregator" && opts.otlpEndpoint) args.push("--otlp-endpoint", opts.otlpEndpoint);
  return args;
}

/** Why eBPF cannot be used here and how to fix it, or undefined when it can. */
export function ebpfUnavailable(): { why: string; fix: string } | undefined {
  if (process.getuid?.() !== 0) return { why: "eBPF needs root", fix: "run `sudo npm start` (or `sudo npx wirescope up`)" };
  if (!fs.existsSync("/sys/kernel/btf/vmlinux")) {
    return { why: "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)", fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or replay captures with `wirescope capture`" };
  }
  return undefined;
}

const TRACEFS = "/sys/kernel/tracing";
/** The tracepoint the probe's loader looks for (services/probe/native/addon.cc tracefs_events). */
const tracefsReady = () =>
  fs.existsSync(`${TRACEFS}/events/syscalls/sys_enter_read`) || fs.existsSync("/sys/kernel/debug/tracing/events/syscalls/sys_enter_read");

/** RLIMIT_MEMLOCK of this process (bytes, Infinity for unlimited), from /proc/<pid>/limits text. */
export function memlockLimits(limitsText: string): { soft: number; hard: number } | undefined {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (!m) return undefined;
  const n = (v: string) => (v === "unlimited" ? Infinity : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

interface ProbePrep {
  /** What was done, one line each, for the user. */
  did: string[];
  /** Set when the probe cannot run here. */
  off?: { why: string; fix: string };
  /** Command prefix that raises RLIMIT_MEMLOCK for the probe child (prlimit execs the probe: same pid). */
  wrap: string[];
}

/**
 * Makes this machine ready for the probe, as root: tracefs mounted (the syscall tracepoints
 * live there) and no memlock limit for the probe (kernels before 5.11 charge BPF maps to
 * RLIMIT_MEMLOCK, and Debian's 8 MiB default is too small for the ring buffer).
 */
function prepareProbe(): ProbePrep {
  const off = ebpfUnavailable();
  if (off) return { did: [], off, wrap: [] };
  const did: string[] = [];
  if (!tracefsReady()) {
    const r = spawnSync("mount", ["-t", "tracefs", "nodev", TRACEFS], { encoding: "utf8" });
    if (r.status !== 0 || !tracefsReady()) {
      const err = (r.stderr || r.error?.message || `exit code ${r.status}`).trim();
      return { did, off: { why: `tracefs is not mounted and mounting it failed (${err})`, fix: `mount it (\`mount -t tracefs nodev ${TRACEFS}\`) or enable CONFIG_FTRACE_SYSCALLS in the kernel` }, wrap: [] };
    }
    did.push(`mounted tracefs on ${TRACEFS} (the probe's syscall tracepoints live there)`);
  }
  const wrap: string[] = [];
  const limits = memlockLimits(readOr("/proc/self/limits"));
  if (limits && limits.soft !== Infinity) {
    // Unlimited needs CAP_SYS_RESOURCE (a container may not have it); the hard limit never does.
    const tries = [["unlimited", "unlimited"], ...(limits.hard > limits.soft ? [[String(limits.hard), String(limits.hard)]] : [])];
    let err = "";
    for (const [soft, hard] of tries) {
      const arg = `--memlock=${soft}:${hard}`;
      const r = spawnSync("prlimit", [arg, "--", "true"], { encoding: "utf8" });
      if (r.status === 0) {
        wrap.push("prlimit", arg, "--");
        did.push(`raised the memlock limit (RLIMIT_MEMLOCK) for the probe from ${fmtBytes(limits.soft)} to ${soft === "unlimited" ? soft : fmtBytes(limits.hard)}`);
        break;
      }
      err ||= (r.stderr || r.error?.message || `exit code ${r.status}`).trim().replace(/^prlimit: /, "");
    }
    if (!wrap.length) {
      did.push(
        `kept the memlock limit (RLIMIT_MEMLOCK) at ${fmtBytes(limits.soft)}: raising it is not permitted here (${err}); ` +
          (kernelAtLeast(5, 11)
            ? `kernel ${os.release()} charges BPF memory to the cgroup instead, so the probe does not need it`
            : "the probe's maps may not fit: raise it (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in a systemd unit)"),
      );
    }
  }
  return { did, wrap };
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = os.release().split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 && n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
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

/**
 * Where the nats-servers listen: one (the first --nats-url), or `cluster` of them, from the
 * --nats-url list when it names that many, else the first URL's port and the ports after it.
 */
function natsEndpoints(url: string, cluster: number): { host: string; port: number }[] {
  const listed = url.split(",").map((u) => localEndpoint("--nats-url", u.trim(), 4222));
  if (cluster <= 1) return listed.slice(0, 1);
  if (listed.length === cluster) return listed;
  if (listed.length > 1) throw new UsageError(`--nats-cluster ${cluster}: --nats-url names ${listed.length} servers; give ${cluster}, or one (the others take the ports after it)`);
  return Array.from({ length: cluster }, (_, i) => ({ host: listed[0].host, port: listed[0].port + i }));
}

/**
 * How to start each nats-server. One server keeps its data in <data-dir>/nats; a cluster's
 * members (wirescope-1…N) in <data-dir>/nats-cluster/<name>, each with a config that includes
 * the users (nats-server.conf) and routes to the others, behind a route password made afresh
 * each start (the route ports are picked free, so neither outlives this `up`); with TLS, the
 * routes too speak mutual TLS (the routes' certificate of the stack's CA).
 */
async function natsSpecs(servers: { host: string; port: number }[], dataDir: string, authConfig: string, logs: string, planned: Set<number>, tls?: NatsTlsFiles): Promise<ChildSpec[]> {
  const scheme = tls ? "tls" : "nats";
  if (servers.length === 1) {
    const [{ host, port }] = servers;
    const log = path.join(logs, "nats-server.log");
    // with TLS: the users' config included, the tls block after it
    let configFile = authConfig;
    if (tls) {
      configFile = path.join(dataDir, "nats-server-tls.conf");
      writePrivate(configFile, `# Generated by wirescope; edits are overwritten.\ninclude ${path.relative(dataDir, authConfig)}\n${natsTlsConfig(tls)}`);
    }
    return [{
      name: "nats-server",
      component: "nats",
      address: `${scheme}://${hostPort(host, port)}`,
      log,
      start: () => startNatsServer({ host, port, jetstream: true, storeDir: path.join(dataDir, "nats"), configFile, logFile: log, detached: true }),
    }];
  }
  const host = servers[0].host;
  const members: NatsClusterMember[] = [];
  for (const [i, s] of servers.entries()) members.push({ name: `wirescope-${i + 1}`, port: s.port, routePort: await freePort(host, planned) });
  const route = { user: "wirescope-route", password: crypto.randomBytes(24).toString("base64url") };
  const dir = path.join(dataDir, "nats-cluster");
  fs.mkdirSync(dir, { recursive: true });
  return members.map((m, i) => {
    const configFile = path.join(dir, `${m.name}.conf`);
    const routeTls = tls ? { ...natsRouteCert(dataDir), ca: tls.ca } : undefined;
    writePrivate(configFile, natsClusterConfig({ host, cluster: "wirescope", members, self: m.name, route, include: path.relative(dir, authConfig), routeTls }) + (tls ? natsTlsConfig(tls) : ""));
    const log = path.join(logs, `nats-server-${i + 1}.log`);
    return {
      name: `nats-server-${i + 1}`,
      component: "nats",
      address: `${scheme}://${hostPort(host, m.port)}`,
      log,
      start: () => startNatsServer({ host, port: m.port, jetstream: true, storeDir: path.join(dir, m.name), configFile, logFile: log, detached: true }),
    };
  });
}

/** Waits until JetStream answers through `nats` (a cluster has elected its meta leader). */
async function waitJetStream(nats: Config["nats"], timeoutMs: number, signal: AbortSignal): Promise<void> {
  const { connectNats, silentLogger, jetstreamManager } = await import("../clients.js");
  const nc = await connectNats(nats, silentLogger(), { retry: true, signal, name: "wirescope-up" });
  try {
    let last = "";
    await waitFor(
      async () => {
        try {
          await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
          return true;
        } catch (e) {
          last = errorMessage(e);
          return false;
        }
      },
      { timeoutMs, intervalMs: 250, what: "JetStream on the NATS cluster", signal },
    ).catch((e: unknown) => {
      throw new Error(`${errorMessage(e)} (last answer: ${last})`);
    });
  } finally {
    await nc.close();
  }
}

/** One row of up's table, from a child's supervised state. */
function table(states: ChildState[]): string {
  const head = ["PROCESS", "PID", "LISTENS ON", "STATE", "RESTARTS", "LOG"];
  const rows = states.map((c) => [c.name, c.pid ? String(c.pid) : "-", c.pid ? c.address : "-", STATE_WORD[c.state], String(c.restarts), rel(c.log)]);
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(w[i]))).join("  ")).join("\n") + "\n";
}

const STATE_WORD: Record<ChildState["state"], string> = {
  starting: "starting",
  running: "ready",
  restarting: "RESTARTING",
  down: "DOWN",
  disabled: "DISABLED",
  stopped: "stopped",
};

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

/**
 * Children of a previous `up` that was killed without a chance to stop them (SIGKILL, power
 * loss of the terminal...): stopped now, identified by pid and start time so that a reused pid
 * is never touched.
 */
async function reapLeftovers(dataDir: string): Promise<void> {
  const old = readUpState(dataDir);
  if (!old) return;
  for (const c of [...old.children].reverse()) {
    if (!c.pid || !pidAlive(c.pid) || processStartTime(c.pid) !== c.startTime) continue;
    say(`stopping ${c.name} (pid ${c.pid}) left over from a previous \`wirescope up\``);
    try {
      process.kill(c.pid, "SIGTERM");
      await waitFor(() => !pidAlive(c.pid!), { timeoutMs: 10_000, intervalMs: 100, what: `${c.name} to exit` }).catch(() => process.kill(c.pid!, "SIGKILL"));
    } catch {
      // gone meanwhile
    }
  }
  fs.rmSync(stateFile(dataDir), { force: true });
}

/**
 * Calls `onGone` once the process that started us is gone. `npm start` runs `sh -c "… && wirescope
 * up"`: a SIGTERM to npm kills that shell and we are re-parented (to init or a subreaper), so a
 * changed parent pid means nobody is left to stop us. Returns a function that stops watching.
 */
function watchParent(onGone: (parent: number) => void, intervalMs = 500): () => void {
  const parent = process.ppid;
  if (parent <= 1) return () => undefined; // started by init/systemd: nothing to watch
  const t = setInterval(() => {
    // (not kill(parent, 0): without root, a root parent answers EPERM while alive)
    if (process.ppid !== parent) {
      clearInterval(t);
      onGone(parent);
    }
  }, intervalMs);
  return () => clearInterval(t);
}

/**
 * The terminal or pipe `up` writes to can go before `up` does (the shell that started it killed,
 * `npm start | tee` interrupted). A write then fails with EPIPE, and unhandled that error would kill
 * `up` before it stops its children. Output to a closed stream is dropped instead; the children's
 * own logs are files in the data dir, and the parent watch still stops the stack.
 */
function surviveClosedOutput(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") throw e;
    });
  }
}

async function up(argv: string[]): Promise<number> {
  surviveClosedOutput();
  const { config, rest } = loadConfig({ argv, command: "up" });
  const opts = parseUpArgs(rest);
  const natsServers = natsEndpoints(config.nats.url, opts.natsCluster);
  const natsUrls = natsServers.map((n) => `${opts.natsTls ? "tls" : "nats"}://${hostPort(n.host, n.port)}`);
  const influx = localEndpoint("--influx-url", config.influx.url, 8086);
  const planned = checkPorts(opts, [...natsServers.map((n, i) => ({ what: `nats-server${natsServers.length > 1 ? `-${i + 1}` : ""}'s port (--nats-url)`, port: n.port })), { what: "influxd's port (--influx-url)", port: influx.port }]);
  const logs = path.join(config.dataDir, "logs");
  fs.mkdirSync(logs, { recursive: true });
  if (opts.cpuProfDir) fs.mkdirSync(opts.cpuProfDir, { recursive: true });
  const unlock = takeLock(config.dataDir);
  await reapLeftovers(config.dataDir);

  const stopping = new AbortController();
  const sup = new Supervisor({
    signal: stopping.signal,
    log: (line) => process.stderr.write(`${line}\n`),
    onChange: (states) => {
      writeUpState(config.dataDir, states);
      writePipelinePids(config.dataDir, states);
    },
  });
  let forced = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping.signal.aborted) {
      // Second Ctrl-C: no more patience.
      forced = true;
      sup.killAll();
      return;
    }
    say(`\n${sig}: stopping…`);
    stopping.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  const unwatch = opts.watchParent
    ? watchParent((parent) => {
        if (stopping.signal.aborted) return;
        say(`\nthe process that started \`wirescope up\` (pid ${parent}) is gone: stopping…`);
        stopping.abort();
      })
    : () => undefined;

  try {
    if (opts.install) {
      const r = spawnSync("bash", [path.join(ROOT, "scripts/install-deps.sh"), ...(opts.demo ? ["--demo"] : [])], { stdio: ["ignore", "inherit", "inherit"] });
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
    if (stopping.signal.aborted) return 0;
    const check = (what: string, host: string, port: number) =>
      tcpReachable(host, port, 500).then((busy) => {
        if (busy) throw new UsageError(`${host}:${port} (${what}) is already in use: another stack running? (\`npx wirescope status\`), or pick another port`);
      });
    for (const n of natsServers) await check("nats-server", n.host, n.port);
    await check("influxd", influx.host, influx.port);
    for (const c of opts.probe ? (["probe", "parser", "aggregator"] as const) : (["parser", "aggregator"] as const)) {
      for (let i = 0; i < instanceCount(c, opts); i++) {
        const { grpc, metrics } = instancePorts(c, opts, i);
        await check(`${instanceName(c, i)} gRPC`, config.grpc.host, grpc);
        // Metrics are an outlet, not the pipeline: a taken port turns them off for that instance
        // (the service's other instances keep theirs).
        if (metrics > 0 && (await tcpReachable(config.metrics.host, metrics, 500))) {
          const others = instanceCount(c, opts) > 1 ? ", the others keep theirs" : "";
          say(`${instanceName(c, i)}: its metrics port ${hostPort(config.metrics.host, metrics)} is already in use, so it has no /metrics${others} (--${c}-metrics-port N picks other ports)`);
          opts.metricsOff.add(instanceName(c, i));
        }
      }
    }
    const demoMissing = opts.demo ? missingForDemo() : undefined;
    if (opts.demo && !demoMissing) for (const [what, port] of Object.entries(demoPorts(opts.demoPort))) await check(`demo ${what}`, "127.0.0.1", port);

    // One NATS user per component with only the subjects it uses (nats-permissions.ts); anonymous
    // clients are refused. Generated once into the data dir (0600); CLI commands pick up theirs there.
    const natsAuth = prepareNatsAuth(config.dataDir);
    const natsTls = opts.natsTls ? prepareNatsTls(config.dataDir) : undefined;
    // how up itself reaches the stack's NATS, as one of its users
    const natsAs = (role: "cli" | "parser" | "aggregator") => ({ ...config.nats, url: natsUrls.join(","), user: natsAuth.creds[role].user, password: natsAuth.creds[role].password, ...(natsTls ? { tls: { ca: natsTls.ca, ...natsClientCert(config.dataDir, role) } } : {}) });
    if (natsTls) say(`nats: TLS only, both ways: certificates of the stack's own CA ${rel(natsTls.ca)}, one per component`);
    for (const spec of await natsSpecs(natsServers, config.dataDir, natsAuth.configFile, logs, planned, natsTls)) {
      await sup.start(niced(spec, opts.pipelineNice));
      if (stopping.signal.aborted) return 0;
    }
    if (natsServers.length > 1) {
      // The services create their streams and buckets first thing: the cluster must have elected
      // its JetStream leader by then (a service that finds none would exit and be restarted).
      await waitJetStream(natsAs("cli"), opts.startTimeoutMs, stopping.signal);
      say(`nats: ${natsServers.length} servers routed into one cluster, JetStream replicas 3`);
    }
    if (stopping.signal.aborted) return 0;

    // influxd with authentication: an admin, a writer and a reader generated once into the data
    // dir (0600); the admin only creates the database and the others. Off by default: influxd
    // listens on loopback only, and the stock tools (Grafana's provisioning, curl) then need no
    // password; --influx-auth turns it on.
    const influxUsers = opts.influxAuth ? prepareInfluxAuth(config.dataDir) : undefined;
    const influxAdmin = influxUsers?.admin;
    const influxLog = path.join(logs, "influxd.log");
    await sup.start(niced({
      name: "influxd",
      component: "influxdb",
      address: `http://${influx.host}:${influx.port} (db ${config.influx.database})`,
      log: influxLog,
      start: async () => {
        const srv = await startInfluxd({ host: influx.host, port: influx.port, dir: path.join(config.dataDir, "influxdb"), logFile: influxLog, detached: true, admin: influxAdmin, avoidPorts: planned });
        try {
          await createDatabase(srv.url, config, influxAdmin);
          if (influxUsers) {
            await ensureInfluxUsers(srv.url, influxUsers.admin, config.influx.database, [
              { ...influxUsers.writer, privilege: "WRITE" },
              { ...influxUsers.reader, privilege: "READ" },
            ]);
          }
        } catch (e) {
          await srv.stop(3000);
          throw e;
        }
        return srv;
      },
    }, opts.pipelineNice));
    if (stopping.signal.aborted) return 0;

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      WIRESCOPE_NATS_URL: natsUrls.join(","),
      ...(natsTls ? { WIRESCOPE_NATS_TLS_CA: natsTls.ca } : {}),
      WIRESCOPE_NATS_REPLICAS: String(natsServers.length > 1 ? 3 : config.nats.replicas ?? 1),
      WIRESCOPE_INFLUX_URL: config.influx.url,
      WIRESCOPE_INFLUX_DB: config.influx.database,
      WIRESCOPE_GRPC_HOST: config.grpc.host,
      WIRESCOPE_METRICS_HOST: config.metrics.host,
      WIRESCOPE_DATA_DIR: config.dataDir,
      WIRESCOPE_PARTITIONS: String(config.partitions),
      WIRESCOPE_LOG_LEVEL: config.logLevel,
      WIRESCOPE_LOG_FORMAT: "json",
      ...natsUserEnv(natsAuth.creds, "cli"),
    };
    // an instance id names one process: each child makes its own (<node>-<component>-<pid>)
    delete env.WIRESCOPE_INSTANCE;
    delete env.WIRESCOPE_NATS_TOKEN;
    delete env.WIRESCOPE_NATS_CREDS;
    for (const k of ["WIRESCOPE_INFLUX_USER", "WIRESCOPE_INFLUX_PASSWORD", "WIRESCOPE_INFLUX_TOKEN"]) delete env[k];
    // A parser replica or aggregator instance that died (kill -9, crash) said no goodbye: up
    // deletes its membership entry for it, so the others take its partitions now instead of after
    // the TTL (3 s) (for the parsers, less raw data goes to a partition nobody owns). Matched by its
    // control address, which only it had; as its component's NATS user, which may write the bucket.
    const fleetBucket = { parser: DEFAULT_PARSER_OPTIONS.membersBucket, aggregator: defaultAggregatorOptions.membersBucket };
    const forgetMember = async (component: "parser" | "aggregator", name: string, grpc: string) => {
      // Past the 3 s up waits, the deletion is called off: the restarted process has the same
      // control address, and its entry must not go as the dead one's.
      const gaveUp = new AbortController();
      const forget = async () => {
        const { connectNats, silentLogger, forgetMembers } = await import("../clients.js");
        const nc = await connectNats(natsAs(component), silentLogger(), { retry: false, name: "wirescope-up" });
        try {
          return await forgetMembers(nc, fleetBucket[component], (m) => m.grpc === grpc, undefined, gaveUp.signal);
        } finally {
          await nc.close();
        }
      };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => (gaveUp.abort(), reject(new Error("could not delete its membership entry within 3 s"))), 3000)));
      const gone = await Promise.race([forget(), timeout]).finally(() => clearTimeout(timer));
      if (gone.length) process.stderr.write(`wirescope up: ${name}'s membership entry deleted (${gone.join(", ")}): the other ${component === "parser" ? "parser replicas" : "aggregator instances"} take its partitions now\n`);
    };
    const prep: ProbePrep = opts.probe ? prepareProbe() : { did: [], wrap: [], off: { why: "disabled with --no-probe", fix: "start without --no-probe" } };
    for (const d of prep.did) say(d);
    let captureOff = prep.off;
    // Parser replicas and aggregator instances after the first: parser-2, aggregator-2, … on their
    // own ports (instancePorts), one log each. The probe last: the parsers are subscribed to every
    // partition by then (a parser is healthy only then), so no raw batch of the start goes unheard.
    const instances = (["parser", "aggregator", "probe"] as const).flatMap((component) =>
      Array.from({ length: instanceCount(component, opts) }, (_, index) => ({ component, index, name: instanceName(component, index) })),
    );
    for (const { component, index, name } of instances) {
      const address = controlAddress(config.grpc.host, component, opts, index);
      const logFile = path.join(logs, `${name}.log`);
      const spec = { name, component, address: `grpc://${address}`, log: logFile };
      if (component === "probe" && prep.off) {
        sup.notStarted(spec, opts.probe ? "down" : "disabled", `${prep.off.why}; fix: ${prep.off.fix}`);
        continue;
      }
      try {
        await sup.start(niced({
          ...spec,
          ...(component !== "probe" ? { onExit: () => forgetMember(component, name, address) } : {}),
          start: async (signal) => {
            const args = [path.join(ROOT, "bin/wirescope.js"), component, ...serviceArgs(component, opts, index, pipelinePidsFile(config.dataDir))];
            const [cmd, ...cmdArgs] = [...(component === "probe" ? prep.wrap : []), process.execPath, ...serviceNodeFlags(component, opts), ...args];
            const child = await spawnManaged(component, cmd, cmdArgs, { env: { ...env, ...natsUserEnv(natsAuth.creds, component), ...(natsTls ? natsTlsClientEnv(config.dataDir, component) : {}), ...(component === "aggregator" && influxUsers ? influxUserEnv(influxUsers.writer) : {}) }, logFile, cwd: ROOT, detached: true });
            try {
              await waitHealthy(child, address, opts.startTimeoutMs, signal);
            } catch (e) {
              await child.stop(3000);
              throw e;
            }
            return child;
          },
        }, component === "probe" ? 0 : opts.pipelineNice));
      } catch (e) {
        if (stopping.signal.aborted) return 0;
        if (component !== "probe") throw e;
        // The rest of the pipeline is useful without the probe (pcap replay, other probes).
        captureOff = { why: `the probe failed to start: ${errorMessage(e)}`, fix: `see ${rel(logFile)}` };
      }
    }

    // The demo last: the probe is attached, so its connections are seen from their first byte.
    if (opts.demo && !stopping.signal.aborted) {
      const logFile = path.join(logs, "demo.log");
      const web = demoPorts(opts.demoPort).web;
      const spec = { name: "demo", component: "demo", address: `http://127.0.0.1:${web} (shop)`, log: logFile };
      if (demoMissing) sup.notStarted(spec, "disabled", demoMissing);
      else {
        // The shop's cache speaks Redis, decoded by the example plugin: added the way a user adds
        // one (`wirescope plugin add`), picked up by the running parser without a restart.
        const example = path.join(ROOT, "parsers-wasm/examples/redis/build");
        const add = spawnSync(process.execPath, [path.join(ROOT, "bin/wirescope.js"), "plugin", "add", path.join(example, "redis.wasm"), "--manifest", path.join(example, "redis.json")], { env, encoding: "utf8" });
        say(add.status === 0 ? `demo: ${add.stdout.trim()} (the example plugin that decodes the shop's Redis cache)` : `demo: the Redis example plugin was not added: ${(add.stderr || add.stdout).trim()}`);
        try {
          await sup.start({
            ...spec,
            start: async (signal) => {
              const args = [path.join(ROOT, "bin/wirescope.js"), "demo", "--demo-port", String(opts.demoPort), "--dir", path.join(config.dataDir, "demo"), "--requests", String(opts.demoRequests)];
              const child = await spawnManaged("demo", process.execPath, args, { env, logFile, cwd: ROOT, detached: true });
              try {
                await waitFor(async () => {
                  if (child.hasExited) throw new GiveUp(`demo exited: ${child.tail(3).replace(/\n/g, " | ")}`);
                  return fs.existsSync(logFile) && fs.readFileSync(logFile, "utf8").includes("demo: web http://");
                }, { timeoutMs: opts.startTimeoutMs, intervalMs: 200, what: "the demo shop to start", signal });
              } catch (e) {
                await child.stop(10_000);
                throw e;
              }
              return child;
            },
          });
        } catch (e) {
          if (stopping.signal.aborted) return 0;
          say(`the demo did not start: ${errorMessage(e)} (see ${rel(logFile)}); the pipeline runs without it`);
        }
      }
    }

    say("");
    process.stdout.write(table(sup.states()));
    const running = new Set(sup.states().filter((c) => c.pid).map((c) => c.name));
    const scraped = instances.flatMap(({ component, index, name }) => {
      const { metrics } = instancePorts(component, opts, index);
      return running.has(name) && metrics > 0 ? [`${name} http://${hostPort(config.metrics.host, metrics)}/metrics`] : [];
    });
    if (scraped.length) say(`metrics (Prometheus): ${scraped.join("  ")}`);
    // Where to look, as commands that reach this stack (its non-default addresses and data dir).
    const reach = reachFlags(config, natsUrls.join(","), natsTls?.ca).join(" ");
    const firstS = Math.ceil((defaultCoreOptions.windowMs + defaultCoreOptions.graceMs) / 1000);
    say(`look: npx wirescope top${reach && ` ${reach}`}   (live: services, endpoints, edges; the first figures about ${firstS} s after traffic starts)`);
    say(`      npx wirescope tail${reach && ` ${reach}`}   (each request as it is decoded)`);
    say(`      Grafana: README.md, "Use it with your Grafana" (grafana/provisioning, grafana/dashboards)`);
    say(`logs: ${rel(logs)}/   status: npx wirescope status${reach && ` ${reach}`}   stop: Ctrl-C`);
    say(`ready: ${sup.processes().length} processes running`);
    if (captureOff) say(`capture is OFF: ${captureOff.why}. Fix: ${captureOff.fix}`);

    // Supervise until asked to stop: a child that dies is restarted (with backoff), never the end.
    await new Promise<void>((r) => (stopping.signal.aborted ? r() : stopping.signal.addEventListener("abort", () => r(), { once: true })));
    return 0;
  } catch (e) {
    if (stopping.signal.aborted) return 0;
    throw e;
  } finally {
    stopping.abort();
    unwatch();
    await sup.stop(forced, (name, pid) => say(`stopped ${name} (pid ${pid})`));
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    if (sup.processes().length === 0) {
      fs.rmSync(stateFile(config.dataDir), { force: true });
      fs.rmSync(pipelinePidsFile(config.dataDir), { force: true });
    }
    unlock();
  }
}

/**
 * The flags a CLI command (`top`, `tail`, `status`) needs to reach the stack `up` runs: its NATS
 * and InfluxDB addresses, database and data dir (where the generated users are) where they are not
 * the defaults, and the CA of its NATS TLS. Values are quoted for a POSIX shell when they need it.
 */
export function reachFlags(config: Config, natsUrl: string, natsTlsCa?: string): string[] {
  const out: string[] = [];
  const add = (flag: string, v: string) => out.push(`--${flag}`, /^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  if (natsUrl !== DEFAULTS.nats.url) add("nats-url", natsUrl);
  if (natsTlsCa) add("nats-tls-ca", rel(natsTlsCa));
  if (config.influx.url !== DEFAULTS.influx.url) add("influx-url", config.influx.url);
  if (config.influx.database !== DEFAULTS.influx.database) add("influx-db", config.influx.database);
  if (path.resolve(config.dataDir) !== path.resolve(DEFAULTS.dataDir)) add("data-dir", rel(config.dataDir));
  return out;
}

/**
 * `spec` whose process, once started and ready, runs at niceness `nice` (0: unchanged): every
 * thread it has then (setpriority acts on one thread on Linux; threads made later inherit their
 * maker's). Started at up's priority, so that a busy machine does not slow its start past the
 * health checks. Raising niceness needs no privilege; a thread that exits meanwhile is skipped.
 */
function niced(spec: ChildSpec, nice: number): ChildSpec {
  if (nice === 0) return spec;
  return {
    ...spec,
    start: async (signal) => {
      const p = await spec.start(signal);
      lowerPriority(p.pid, nice);
      return p;
    },
  };
}

/** Sets every current thread of `pid` to niceness `nice`; returns the threads changed. */
export function lowerPriority(pid: number, nice: number): number {
  let tids: number[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    tids = [pid];
  }
  let n = 0;
  for (const tid of tids) {
    try {
      os.setPriority(tid, nice);
      n++;
    } catch {
      // the thread exited meanwhile
    }
  }
  return n;
}

/** Waits until `address` reports SERVING; fails early (with the log's tail) if the child exits. */
async function waitHealthy(child: ManagedProcess, address: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  let last = "";
  const { checkHealth, ServingStatus } = await import("../clients.js");
  await waitFor(
    async () => {
      if (child.hasExited) throw new GiveUp(`${child.name} exited: ${child.tail(3).replace(/\n/g, " | ")}`);
      const h = await checkHealth(address, "", 1000);
      last = h.error ?? ServingStatus[h.status];
      return h.status === ServingStatus.SERVING;
    },
    { timeoutMs, intervalMs: 200, what: `${child.name} to be healthy at ${address}`, signal },
  ).catch((e: unknown) => {
    if (child.hasExited) throw new Error(`${child.name} exited during startup: ${exitReason(child.tail(20))}`);
    throw new Error(`${errorMessage(e)} (last answer: ${last}); see ${rel(child.logFile)}`);
  });
}

/**
 * Why a service exited, from the end of its log: its one-line error (`wirescope probe: …`, the
 * CLI's last word), else the last error-level JSON message, else the last lines as they are.
 */
export function exitReason(logTail: string): string {
  const lines = logTail.split("\n").filter((l) => l.trim() !== "");
  const plain = lines.filter((l) => !l.startsWith("{")).at(-1);
  if (plain) return plain.replace(/^wirescope [\w-]+: /, "");
  for (const l of [...lines].reverse()) {
    try {
      const j = JSON.parse(l) as { level?: number; msg?: string; err?: { message?: string } };
      if ((j.level ?? 0) >= 50 && j.msg) return j.err?.message ? `${j.msg}: ${j.err.message}` : j.msg;
    } catch {
      // not JSON after all
    }
  }
  return lines.slice(-3).join(" | ") || "no output";
}

async function createDatabase(url: string, config: Config, admin: { user: string; password: string } | undefined): Promise<void> {
  const q = new URLSearchParams({ q: `CREATE DATABASE "${config.influx.database.replace(/"/g, '\\"')}"` });
  const headers: Record<string, string> = admin ? { authorization: `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString("base64")}` } : {};
  const res = await fetch(`${url}/query?${q}`, { method: "POST", headers, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`influxd: CREATE DATABASE ${config.influx.database} failed: HTTP ${res.status} ${await res.text()}`);
}

function rel(p: string | undefined): string {
  if (!p) return "-";
  const r = path.relative(process.cwd(), p);
  return r.startsWith("..") ? p : r;
}

const command: Command = { name: "up", summary: "start nats-server, influxd, probe, parser and aggregator on this machine", usage: USAGE, flags: [...OPTIONS, ...UP_FLAGS], run: up };
export default command;
