// The probe's own command-line options (those @wirescope/runtime's config does not know).
import { ConfigError } from "@wirescope/runtime/errors";
import { parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { WS_MAX_CHUNK } from "./gen/layout.js";
import type { FilterSpec } from "./filter.js";
import { EMPTY_FILTER } from "./filter.js";

export interface ProbeOptions {
  source: "ebpf" | "pcap";
  pcapFile?: string;
  /** pcap replay: 0 = as fast as possible, 1 = real time. */
  replaySpeed: number;
  /** pcap replay: repeat the file this many times (load tests). */
  replayLoops: number;
  chunkBytes: number;
  maxBytesPerCall: number;
  ringbufBytes: number;
  batchMs: number;
  batchBytes: number;
  mountTracefs: boolean;
  lockFile: string;
  /** A node: the network namespace file (`ip netns add` makes /var/run/netns/NAME) whose
   *  processes and sockets alone are traced; the probe itself stays in its own namespace. */
  netns?: string;
  /** The same, named by its inode (what `stat -L -c %i /proc/<pid>/ns/net` prints). */
  netnsInode?: number;
  /** Added to every timestamp sent (ms, may be negative): simulates a node whose clock is off. */
  clockSkewMs: number;
  excludePids: number[];
  filter: FilterSpec;
  /** HTTP/1.1 message bodies: "trim" states them as gaps (http1-trim.ts), "keep" publishes them. */
  http1Bodies: "trim" | "keep";
  /** CPU the probe may use (millicores) before it observes fewer new connections; 0 = no budget. */
  cpuBudgetMillicores: number;
  /** CPU the whole local pipeline may use while the node has no spare CPU (millicores); 0 = off. */
  pipelineCpuBudgetMillicores: number;
  /** Processes of the local pipeline besides the probe and the announced parsers and aggregators
   *  of this node (`up` names its nats-server and influxd). */
  pipelinePids: number[];
  /** A file listing more such processes (pids, one per line), read again every second ("" = none):
   *  `up` rewrites it whenever it starts nats-server or influxd again. */
  pipelinePidFile: string;
  /** A fixed fraction of new connections observed (the CPU budget then does not steer it). */
  sampleFraction?: number;
  /** Fairness, per second: bytes copied per connection, data calls per connection, bytes copied
   *  per process (0 = no limit). Over them a connection (or a process's new ones) is shed. */
  connBudgetBytes: number;
  connBudgetCalls: number;
  procBudgetBytes: number;
  /** New connections are shed while the ring buffer is fuller than this % (0 = never). */
  shedRingbufPct: number;
  /** Period of forgetting exited processes and counting open connections. */
  sweepMs: number;
}

export const PROBE_DEFAULTS: ProbeOptions = {
  source: "ebpf",
  replaySpeed: 0,
  replayLoops: 1,
  chunkBytes: WS_MAX_CHUNK,
  maxBytesPerCall: 4 << 20,
  ringbufBytes: 16 << 20,
  batchMs: 50,
  batchBytes: 1 << 20,
  mountTracefs: false,
  lockFile: "/run/wirescope-probe.lock",
  clockSkewMs: 0,
  excludePids: [],
  filter: EMPTY_FILTER,
  http1Bodies: "trim",
  cpuBudgetMillicores: 500,
  pipelineCpuBudgetMillicores: 0,
  pipelinePids: [],
  pipelinePidFile: "",
  connBudgetBytes: 32 << 20,
  connBudgetCalls: 100_000,
  procBudgetBytes: 128 << 20,
  shedRingbufPct: 75,
  sweepMs: 5_000,
};

/**
 * Node flags the probe process is started with (`wirescope up`, services/probe/bench/node-share.sh;
 * the Kubernetes manifest sets the same through NODE_OPTIONS). A young generation of 4 MiB
 * semi-spaces instead of up to 16: the probe's old generation is small (~20 MiB: its modules), and
 * V8 starts a full mark-compact instead of a young collection whenever the old generation's room
 * to its limit (~24 MiB) is less than the young generation can hold. With the default, once the
 * young generation had grown under load, that was every young cycle: a mark-compact about once a
 * second at 10,000 req/s, each ~40 ms of CPU, up to 40 % of the probe's CPU in perf. With 4 MiB:
 * none in the measured runs, a young collection every ~0.5 s (docs/benchmarks.md).
 */
export const PROBE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4"];

const mib = (n: number) => `${n / (1 << 20)} MiB`;

/**
 * The probe's own flags, each with its variable (WIRESCOPE_PROBE_<FLAG>). parseProbeArgs takes
 * exactly these (parseFlags refuses any other), so `--help` and the completions cannot miss one.
 */
export const PROBE_FLAGS: readonly FlagSpec[] = withEnv("probe", [
  { flag: "source", value: "ebpf|pcap FILE", default: "ebpf", description: "live eBPF capture or replay a pcap/pcapng file", following: (v) => (v === "pcap" ? 1 : 0) },
  { flag: "replay-speed", value: "X", default: "0", description: "pcap: 0 = as fast as possible, 1 = real time" },
  { flag: "replay-loops", value: "N", default: "1", description: "pcap: replay the file N times" },
  { flag: "chunk-bytes", value: "N", default: String(WS_MAX_CHUNK), description: `payload cap per event (1..${WS_MAX_CHUNK})` },
  { flag: "max-bytes-per-call", value: "N", default: mib(PROBE_DEFAULTS.maxBytesPerCall), description: "bytes copied per syscall, the rest is a stated gap" },
  { flag: "ringbuf-bytes", value: "N", default: mib(PROBE_DEFAULTS.ringbufBytes), description: "BPF ring buffer size, power of two" },
  { flag: "batch-ms", value: "N", default: String(PROBE_DEFAULTS.batchMs), description: "native batch flush age" },
  { flag: "batch-bytes", value: "N", default: mib(PROBE_DEFAULTS.batchBytes), description: "native batch flush size" },
  { flag: "mount-tracefs", description: "mount tracefs on /sys/kernel/tracing when missing" },
  { flag: "lock-file", value: "PATH", default: PROBE_DEFAULTS.lockFile, description: "single-instance lock" },
  { flag: "netns", value: "PATH", description: "trace one node only: the processes and sockets of this network namespace (/var/run/netns/NAME, /proc/PID/ns/net); set --node to its name" },
  { flag: "netns-inode", value: "N", description: "the same, the namespace named by its inode" },
  { flag: "clock-skew-ms", value: "N", default: "0", description: "add N ms (may be negative) to every timestamp sent: simulates a node whose clock is off (cross-node tests)" },
  { flag: "http1-bodies", value: "trim|keep", default: "trim", description: "HTTP/1.1 bodies stated as gaps (trim: decoders count them, never read them) or published" },
  { flag: "cpu-budget", value: "N[m|%]", default: "500m", description: "CPU the probe may use: millicores (500m) or % of one core (50%); over it, fewer NEW connections are observed (whole connections, never parts of one) and counts are scaled by the observed fraction; 0 = off" },
  { flag: "pipeline-cpu-budget", value: "N[m|%]", default: "off", description: "CPU the whole local pipeline (this probe, the parsers and aggregators announced from this node, the --pipeline-pid processes) may use while the node has no spare CPU (under 5% of its cores idle): over it, fewer new connections are observed, as for --cpu-budget; with spare CPU it may use more (`wirescope up --pipeline-cpu-budget` passes its own value, off by default)" },
  { flag: "pipeline-pid", repeatable: true, value: "N", description: "a process of the local pipeline whose CPU counts toward --pipeline-cpu-budget (repeatable; `up` names its nats-server and influxd)" },
  { flag: "pipeline-pid-file", value: "PATH", description: "a file listing processes of the local pipeline (pids, one per line) whose CPU counts toward --pipeline-cpu-budget, read again every second: `up` rewrites <data-dir>/pipeline.pids whenever it starts nats-server or influxd again" },
  { flag: "sample-fraction", value: "F", default: "off", description: "observe this fixed fraction (0 < F <= 1) of new connections instead" },
  { flag: "conn-budget-bytes", value: "N", default: mib(PROBE_DEFAULTS.connBudgetBytes), description: "bytes one connection may have copied per second before it is shed (counted per 100 ms; HTTP/1.1 bodies left out by trim do not count; 0 = off)" },
  { flag: "conn-budget-calls", value: "N", default: String(PROBE_DEFAULTS.connBudgetCalls), description: "data calls one connection may make per second (0 = off)" },
  { flag: "proc-budget-bytes", value: "N", default: mib(PROBE_DEFAULTS.procBudgetBytes), description: "bytes one process may have copied per second: over it its new connections are shed, over twice it its busy ones (0 = off)" },
  { flag: "shed-ringbuf-pct", value: "N", default: String(PROBE_DEFAULTS.shedRingbufPct), description: "new connections are shed while the ring buffer is fuller (0 = off)" },
  { flag: "sweep-ms", value: "N", default: String(PROBE_DEFAULTS.sweepMs), description: "how often exited processes are forgotten and open connections counted" },
  { flag: "exclude-pid", repeatable: true, value: "N", description: "never trace this pid (repeatable; the pipeline's own)" },
  { flag: "allow-pid", repeatable: true, value: "N", description: "trace only these pids (repeatable)" },
  { flag: "deny-pid", repeatable: true, value: "N", description: "never trace these pids (repeatable)" },
  { flag: "allow-port", repeatable: true, value: "N", description: "trace only these ports (repeatable)" },
  { flag: "deny-port", repeatable: true, value: "N", description: "never trace these ports (repeatable)" },
  { flag: "allow-comm", repeatable: true, value: "NAME", description: "trace only these process names (repeatable)" },
  { flag: "deny-comm", repeatable: true, value: "NAME", description: "never trace these process names (repeatable)" },
  { flag: "allow-cgroup", repeatable: true, value: "ID", description: "trace only these cgroup ids (repeatable)" },
  { flag: "deny-cgroup", repeatable: true, value: "ID", description: "never trace these cgroup ids (repeatable)" },
]);

/** "500m" or "500" (millicores), "50%" (of one core), "0"/"off". */
function millicores(flag: string, v: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(m|%)?$/.exec(v ?? "");
  if (v === "off") return 0;
  if (!m) throw new ConfigError("bad_value", `${flag}: expected millicores (500m) or a percentage of one core (50%), got "${v}"`);
  const n = Number(m[1]) * (m[2] === "%" ? 10 : 1);
  if (n > 64_000) throw new ConfigError("bad_value", `${flag}: ${v} is more than 64 cores`);
  return n;
}

function int(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new ConfigError("bad_value", `${flag}: expected an integer in [${min}, ${max}], got "${v}"`);
  return n;
}

/**
 * Parses the probe's flags, under their WIRESCOPE_PROBE_* variables from `env`.
 * @throws ConfigError naming the bad flag (or variable).
 */
export function parseProbeArgs(args: readonly string[], env: NodeJS.ProcessEnv = {}): ProbeOptions {
  const o: ProbeOptions = { ...PROBE_DEFAULTS, excludePids: [], pipelinePids: [], filter: structuredClone(EMPTY_FILTER) };
  parseFlags(args, PROBE_FLAGS, { command: "probe", env }).each(({ flag, value: v, following }) => {
    switch (flag) {
      case "--source": {
        if (v === "ebpf") o.source = "ebpf";
        else if (v === "pcap") {
          o.source = "pcap";
          o.pcapFile = following[0];
          if (!o.pcapFile) throw new ConfigError("bad_value", "--source pcap needs a FILE");
        } else throw new ConfigError("bad_value", `--source: expected ebpf or "pcap FILE", got "${v}"`);
        break;
      }
      case "--replay-speed": {
        const x = Number(v);
        if (!Number.isFinite(x) || x < 0) throw new ConfigError("bad_value", "--replay-speed: expected a number >= 0");
        o.replaySpeed = x;
        break;
      }
      case "--replay-loops": o.replayLoops = int(flag, v, 1, 1_000_000); break;
      case "--chunk-bytes": o.chunkBytes = int(flag, v, 1, WS_MAX_CHUNK); break;
      case "--max-bytes-per-call": o.maxBytesPerCall = int(flag, v, 0, 64 << 20); break;
      case "--ringbuf-bytes": {
        o.ringbufBytes = int(flag, v, 4096, 1 << 30);
        if (o.ringbufBytes & (o.ringbufBytes - 1)) throw new ConfigError("bad_value", "--ringbuf-bytes: must be a power of two");
        break;
      }
      case "--batch-ms": o.batchMs = int(flag, v, 1, 10_000); break;
      case "--batch-bytes": o.batchBytes = int(flag, v, 65536, 16 << 20); break;
      case "--mount-tracefs": o.mountTracefs = true; break;
      case "--http1-bodies": {
        if (v !== "trim" && v !== "keep") throw new ConfigError("bad_value", `--http1-bodies: expected trim or keep, got "${v}"`);
        o.http1Bodies = v;
        break;
      }
      case "--lock-file": o.lockFile = v; break;
      case "--netns": {
        o.netns = v;
        if (!o.netns) throw new ConfigError("bad_value", "--netns: expected a namespace file (/var/run/netns/NAME)");
        break;
      }
      case "--clock-skew-ms": {
        if (!/^-?\d+$/.test(v) || Math.abs(Number(v)) > 3_600_000) throw new ConfigError("bad_value", `--clock-skew-ms: expected an integer within an hour either way, got "${v}"`);
        o.clockSkewMs = Number(v);
        break;
      }
      case "--netns-inode": o.netnsInode = int(flag, v, 1, 0xffffffff); break;
      case "--cpu-budget": o.cpuBudgetMillicores = millicores(flag, v); break;
      case "--pipeline-cpu-budget": o.pipelineCpuBudgetMillicores = millicores(flag, v); break;
      case "--pipeline-pid": o.pipelinePids.push(int(flag, v, 1, 0x7fffffff)); break;
      case "--pipeline-pid-file": o.pipelinePidFile = v; break;
      case "--sample-fraction": {
        const f = Number(v);
        if (!/^[0-9.]+$/.test(v) || !(f > 0 && f <= 1)) throw new ConfigError("bad_value", `--sample-fraction: expected a number in (0, 1], got "${v}"`);
        o.sampleFraction = f;
        break;
      }
      case "--conn-budget-bytes": o.connBudgetBytes = int(flag, v, 0, Number.MAX_SAFE_INTEGER); break;
      case "--conn-budget-calls": o.connBudgetCalls = int(flag, v, 0, Number.MAX_SAFE_INTEGER); break;
      case "--proc-budget-bytes": o.procBudgetBytes = int(flag, v, 0, Number.MAX_SAFE_INTEGER); break;
      case "--shed-ringbuf-pct": o.shedRingbufPct = int(flag, v, 0, 100); break;
      case "--exclude-pid": o.excludePids.push(int(flag, v, 1, 0x7fffffff)); break;
      case "--allow-pid": o.filter.allowPids.push(int(flag, v, 1, 0x7fffffff)); break;
      case "--deny-pid": o.filter.denyPids.push(int(flag, v, 1, 0x7fffffff)); break;
      case "--allow-port": o.filter.allowPorts.push(int(flag, v, 1, 65535)); break;
      case "--deny-port": o.filter.denyPorts.push(int(flag, v, 1, 65535)); break;
      case "--allow-comm": o.filter.allowComms.push(v); break;
      case "--deny-comm": o.filter.denyComms.push(v); break;
      case "--allow-cgroup": o.filter.allowCgroups.push(BigInt(int(flag, v, 1, Number.MAX_SAFE_INTEGER))); break;
      case "--deny-cgroup": o.filter.denyCgroups.push(BigInt(int(flag, v, 1, Number.MAX_SAFE_INTEGER))); break;
      case "--sweep-ms": o.sweepMs = int(flag, v, 10, 3_600_000); break;
      default:
        // a row of PROBE_FLAGS without its case here: options.test.ts fails on it
        throw new ConfigError("unknown_flag", `probe option ${flag} is documented but not parsed`);
    }
  });
  if (o.netns !== undefined && o.netnsInode !== undefined) throw new ConfigError("bad_value", "--netns and --netns-inode name the same thing: give one");
  return o;
}
