// Helpers for the probe's integration tests: a real probe in this process, traffic in child
// processes (so their pids differ from the probe's, which never traces itself), and a recording
// TCP proxy in this process whose bytes are the ground truth. The proxy's own sockets are not
// traced (same pid as the probe), so the probe sees exactly two connections per proxied pair:
// client child → proxy, and proxy → server child, carrying exactly the bytes the proxy recorded.
import net from "node:net";
import fs from "node:fs";
import path from "node:path";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import type { TestContext } from "node:test";
import { EbpfSource, type EbpfSourceOptions } from "@wirescope/probe/ebpf-source";
import type { ConnRecord, DataRecord, EventBatch } from "@wirescope/probe/events";
import { checkHealth, createClient, ServingStatus, type Client, type ManagedProcess } from "@wirescope/runtime";
import { fromBinary } from "@bufbuild/protobuf";
import { ProbeService, RawBatchSchema, type ConnEvent } from "@wirescope/wire";
import type { NatsConnection } from "@nats-io/nats-core";
import { REPO_ROOT, freePort, tempDir, spawnTracked, waitFor, WIRESCOPE_BIN } from "./support/index.js";

/** `wirescope probe` publishing to `natsUrl` (its own lock file in `dir`), on node "test-node". */
export async function spawnProbe(natsUrl: string, grpcPort: number, dir: string, args: string[] = []): Promise<ManagedProcess> {
  return spawnTracked("probe", process.execPath, [
    WIRESCOPE_BIN, "probe", "--nats-url", natsUrl, "--grpc-port", String(grpcPort),
    "--lock-file", path.join(dir, "probe.lock"), "--mount-tracefs", "--log-level", "warn", "--node", "test-node", ...args,
  ], { logFile: path.join(dir, "probe.log") });
}

/** `spawnProbe` on `natsUrl`, once serving, with its control client; both stopped after the test. */
export async function servingProbe(t: TestContext, natsUrl: string, args: string[] = []): Promise<{ probe: ManagedProcess; ctl: Client<typeof ProbeService> }> {
  const grpcPort = await freePort();
  const probe = await spawnProbe(natsUrl, grpcPort, tempDir("wirescope-probe-"), args);
  t.after(() => probe.stop());
  const address = `127.0.0.1:${grpcPort}`;
  await waitFor(async () => (await checkHealth(address)).status === ServingStatus.SERVING, { timeoutMs: 30_000, intervalMs: 100, what: "the probe serving" });
  const ctl = createClient(ProbeService, address);
  t.after(() => ctl.close());
  return { probe, ctl };
}

/** Every ConnEvent published on `wirescope.raw.*` through `nc` from now on, pushed into `into`. */
export async function collectConns(nc: NatsConnection, into: ConnEvent[]): Promise<void> {
  nc.subscribe("wirescope.raw.*", { callback: (_e, m) => void into.push(...fromBinary(RawBatchSchema, m.data).conns) });
  await nc.flush();
}

/**
 * The keys of the named BPF maps of process `pid` (a probe), read through its map fds with
 * bpftool: each map's name to its keys, for the names asked (a map missing among the fds is absent).
 */
export function probeMapKeys(pid: number, names: readonly string[]): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  const ids = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    let info = "";
    try {
      info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    } catch {
      continue; // closed meanwhile (a socket of the process reading its own maps)
    }
    const m = /^map_id:\s*(\d+)/m.exec(info);
    if (m) ids.add(Number(m[1]));
  }
  // one listing of every map for the names (a bpftool per map took seconds on a busy host)
  const listed = JSON.parse(execFileSync("bpftool", ["map", "show", "-j"], { encoding: "utf8", maxBuffer: 64 << 20 })) as { id: number; name?: string }[];
  const nameOf = new Map(listed.map((m) => [m.id, m.name ?? ""]));
  for (const id of ids) {
    const info = { name: nameOf.get(id) ?? "" };
    if (!names.includes(info.name)) continue;
    const dump = JSON.parse(execFileSync("bpftool", ["map", "dump", "id", String(id), "-j"], { encoding: "utf8", maxBuffer: 1 << 30 })) as { key: string[] }[];
    out.set(info.name, dump.map((e) => Buffer.from(e.key.map((b) => parseInt(b, 16)))));
  }
  return out;
}

/** Why eBPF cannot be used here (not root, no BTF), or undefined when it can. */
export function bpfUnavailable(): string | undefined {
  return process.getuid?.() !== 0 ? "not root" : !fs.existsSync("/sys/kernel/btf/vmlinux") ? "no BTF" : undefined;
}

/** Skips the test (with the reason) when eBPF cannot be used here; fails instead under WIRESCOPE_REQUIRE_BPF=1. */
export function bpfAvailable(t: TestContext): boolean {
  const reason = bpfUnavailable();
  if (!reason) return true;
  if (process.env.WIRESCOPE_REQUIRE_BPF === "1") throw new Error(`eBPF required (WIRESCOPE_REQUIRE_BPF=1) but unavailable: ${reason}`);
  t.skip(`eBPF unavailable: ${reason}`);
  return false;
}

export interface ConnView {
  open?: ConnRecord;
  close?: ConnRecord;
  data: { 1: DataRecord[]; 2: DataRecord[] };
}

/** A probe that keeps every event it sees, by connection key. */
export class CollectingProbe {
  readonly conns = new Map<bigint, ConnView>();
  readonly source: EbpfSource;
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;

  constructor(opts: EbpfSourceOptions = {}) {
    this.source = new EbpfSource({ mountTracefs: true, batchMs: 10, ...opts });
    this.done = this.source.run((b) => this.add(b), this.ac.signal);
  }

  private view(k: bigint): ConnView {
    let v = this.conns.get(k);
    if (!v) this.conns.set(k, (v = { data: { 1: [], 2: [] } }));
    return v;
  }

  private add(b: EventBatch): void {
    for (const c of b.conns) this.view(c.connKey)[c.kind] = c;
    for (const d of b.data) {
      // payloads are views into the native batch: keep a copy
      this.view(d.connKey).data[d.direction as 1 | 2].push({ ...d, payload: Buffer.from(d.payload) });
    }
  }

  /** Connections whose open event matches. */
  find(pred: (c: ConnRecord) => boolean): [bigint, ConnView][] {
    return [...this.conns].filter(([, v]) => v.open && pred(v.open));
  }

  async stop(): Promise<void> {
    this.ac.abort();
    await this.done;
  }
}

export interface Assembled {
  bytes: Buffer;
  /** [seq, length] of every range not captured. */
  gaps: [number, number][];
  /** seq values that did not follow the previous event's end (overlap or hole in the sequence). */
  discontinuities: number;
  events: number;
}

/** Puts one direction's events in seq order and concatenates them; gaps are listed, not filled. */
export function assemble(events: DataRecord[]): Assembled {
  const sorted = [...events].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  const parts: Buffer[] = [];
  const gaps: [number, number][] = [];
  let next = 0;
  let disc = 0;
  for (const e of sorted) {
    if (Number(e.seq) !== next) disc++;
    parts.push(Buffer.from(e.payload));
    if (e.payload.length < e.originalLength) gaps.push([Number(e.seq) + e.payload.length, e.originalLength - e.payload.length]);
    next = Number(e.seq) + e.originalLength;
  }
  return { bytes: Buffer.concat(parts), gaps, discontinuities: disc, events: sorted.length };
}

export interface ProxiedPair {
  /** The client's own port (its socket's local port). */
  clientPort: number;
  /** The proxy's outgoing port: the server sees it as the remote port. */
  upstreamPort: number;
  c2s: Buffer[];
  s2c: Buffer[];
  /** Bytes of s2c relayed before the client's socket closed (what the client could read). */
  s2cBeforeClientClose?: number;
  /** Bytes of c2s relayed before the server's socket closed. */
  c2sBeforeServerClose?: number;
  closed: Promise<void>;
}

/** A TCP proxy that records both directions of every connection. */
export async function startRecordingProxy(targetPort: number): Promise<{ port: number; pairs: ProxiedPair[]; close(): Promise<void> }> {
  const pairs: ProxiedPair[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    down.pause();
    const up = net.connect(targetPort, "127.0.0.1");
    sockets.add(down);
    sockets.add(up);
    let resolveClosed!: () => void;
    const pair: ProxiedPair = { clientPort: down.remotePort!, upstreamPort: 0, c2s: [], s2c: [], closed: new Promise((r) => (resolveClosed = r)) };
    pairs.push(pair);
    let ended = 0;
    const total = (b: Buffer[]) => b.reduce((n, x) => n + x.length, 0);
    const oneEnded = () => ++ended === 2 && resolveClosed();
    up.once("connect", () => {
      pair.upstreamPort = up.localPort!;
      down.resume();
    });
    down.on("data", (d) => {
      pair.c2s.push(d);
      up.write(d);
    });
    up.on("data", (d) => {
      pair.s2c.push(d);
      down.write(d);
    });
    // a side that sent FIN reads no more in these tests (HTTP/2 and gRPC clients close at once):
    // what arrives for it later (a GOAWAY answering its close) was never received by it
    down.on("end", () => ((pair.s2cBeforeClientClose ??= total(pair.s2c)), up.end()));
    up.on("end", () => ((pair.c2sBeforeServerClose ??= total(pair.c2s)), down.end()));
    // keep reading the other side for a while: bytes it still sends (e.g. an HTTP/2 GOAWAY)
    // were really sent by that process and the probe reports them. A side normally closes at
    // once after the other; 3 s (not 0.5) leaves room for a busy machine to run it
    const later = (s: net.Socket) => setTimeout(() => s.destroy(), 3000).unref();
    down.on("close", () => ((pair.s2cBeforeClientClose ??= total(pair.s2c)), up.end(), later(up), oneEnded()));
    up.on("close", () => ((pair.c2sBeforeServerClose ??= total(pair.c2s)), down.end(), later(down), oneEnded()));
    down.on("error", () => {});
    up.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    pairs,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface Child {
  pid: number;
  proc: ChildProcess;
  /** Lines the child printed on stdout. */
  lines: string[];
  /** Resolves with the first stdout line matching, from line index `from` on (earlier lines are passed over). */
  waitLine(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  kill(): void;
}

const childDir = tempDir("wirescope-probe-children-");

export interface ChildOptions {
  /** In that network namespace (`ip netns exec`, which execs node in place: the pid is node's). */
  netns?: string;
  /** Node's own flags, before the program (e.g. `--tls-keylog=FILE`). */
  nodeArgs?: string[];
  /** A pipe to the child's stdin (`proc.stdin`) instead of none. */
  stdin?: boolean;
}

/**
 * Runs a server `program` (an ES module that prints `PORT <n>` once listening) as a child node
 * process killed after the test `t`; resolves with it and its port once it listens.
 */
export async function serverChild(t: TestContext, name: string, program: string): Promise<{ server: Child; port: number }> {
  const server = await runChild(name, program);
  t.after(() => server.kill());
  return { server, port: Number((await server.waitLine(/^PORT (\d+)/))[1]) };
}

/**
 * Runs an ES module in a child node process, given as source text or as `{ file }` (a module
 * file of the repository, e.g. a fixture); resolves once spawned. Its stdout is read by line.
 */
export async function runChild(name: string, program: string | { file: string }, args: string[] = [], opts: ChildOptions = {}): Promise<Child> {
  let file: string;
  if (typeof program === "string") {
    file = path.join(childDir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2)}.mjs`);
    fs.writeFileSync(file, program);
  } else file = program.file;
  const [cmd, ...argv] = [...(opts.netns ? ["ip", "netns", "exec", opts.netns] : []), process.execPath, ...(opts.nodeArgs ?? []), file, ...args];
  const proc = spawn(cmd!, argv, {
    stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "inherit"],
    cwd: path.join(REPO_ROOT, "test"),
    env: { ...process.env, NODE_PATH: path.join(REPO_ROOT, "node_modules") },
  });
  await new Promise<void>((res, rej) => (proc.once("spawn", res), proc.once("error", rej)));
  const lines: string[] = [];
  const waiters: { re: RegExp; from: number; res: (m: RegExpMatchArray) => void }[] = [];
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        const m = lines.length > w.from ? line.match(w.re) : null;
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res(m);
        }
      }
    }
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return {
    pid: proc.pid!,
    proc,
    lines,
    exited,
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    },
    waitLine: (re, timeoutMs = 15_000, from = 0) => {
      for (const l of lines.slice(from)) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms; got ${JSON.stringify(lines)}`)), timeoutMs);
        waiters.push({ re, from, res: (m) => (clearTimeout(t), res(m)) });
        void exited.then((code) => rej(new Error(`${name} exited (${code}) before printing ${re}; got ${JSON.stringify(lines)}`)));
      });
    },
  };
}

/**
 * Checks that the probe saw exactly the proxied bytes on both of the pair's connections, in
 * order and without gaps, with the right roles, ports, pids and process names.
 */
export async function checkPair(probe: CollectingProbe, pair: ProxiedPair, opts: { proxyPort: number; serverPort: number; clientPid: number; serverPid: number; clientComm: string; serverComm: string }): Promise<{ client: ConnView; server: ConnView }> {
  const c2s = Buffer.concat(pair.c2s);
  const s2c = Buffer.concat(pair.s2c);
  const clientConn = () => probe.find((o) => o.tgid === opts.clientPid && o.localPort === pair.clientPort && o.remotePort === opts.proxyPort);
  const serverConn = () => probe.find((o) => o.tgid === opts.serverPid && o.remotePort === pair.upstreamPort && o.localPort === opts.serverPort);
  const complete = (v: ConnView | undefined, out: Buffer, inn: Buffer) =>
    !!v && assemble(v.data[1]).bytes.length >= out.length && assemble(v.data[2]).bytes.length >= inn.length;
  await waitFor(() =>
    complete(clientConn()[0]?.[1], c2s, s2c.subarray(0, pair.s2cBeforeClientClose ?? s2c.length)) &&
    complete(serverConn()[0]?.[1], s2c, c2s.subarray(0, pair.c2sBeforeServerClose ?? c2s.length)), { timeoutMs: 10_000, intervalMs: 20, what: `the probe to see both connections of client port ${pair.clientPort} with all bytes` }).catch((e) => {
    throw new Error(`${(e as Error).message}: client conns ${clientConn().length}, server conns ${serverConn().length}, c2s ${c2s.length}, s2c ${s2c.length}, ` +
      `seen client egress ${clientConn()[0] ? assemble(clientConn()[0][1].data[1]).bytes.length : -1}, ingress ${clientConn()[0] ? assemble(clientConn()[0][1].data[2]).bytes.length : -1}`);
  });
  const cl = clientConn();
  const sv = serverConn();
  if (cl.length !== 1 || sv.length !== 1) throw new Error(`expected one connection per side, got client ${cl.length}, server ${sv.length}`);
  return { client: cl[0][1], server: sv[0][1] };
}

/** Prefix for child scripts: `require` resolving from the repository's node_modules. */
export const CHILD_REQUIRE = `import { createRequire } from "node:module";\nconst require = createRequire(${JSON.stringify(REPO_ROOT + "/package.json")});\n`;

/**
 * For every proxied pair: both connections seen once, each direction's bytes equal to the proxy's
 * recording exactly (in seq order, no gaps, no holes), roles, pids and process names right.
 */
export async function assertPairsExact(probe: CollectingProbe, pairs: ProxiedPair[], opts: { proxyPort: number; serverPort: number; clientPid: number; serverPid: number; clientComm: string; serverComm: string }): Promise<void> {
  if (!pairs.length) throw new Error("no connection went through the proxy");
  for (const pair of pairs) {
    await pair.closed;
    const { client, server } = await checkPair(probe, pair, opts);
    const c2s = Buffer.concat(pair.c2s);
    const s2c = Buffer.concat(pair.s2c);
    // what a side received = what the other side sent, up to the moment it closed its socket
    // (bytes arriving later, e.g. a GOAWAY answering the close, were never read by it)
    const sides: [string, ConnView, Buffer, Buffer, number, string][] = [
      ["client", client, c2s, s2c.subarray(0, pair.s2cBeforeClientClose ?? s2c.length), 1, opts.clientComm],
      ["server", server, s2c, c2s.subarray(0, pair.c2sBeforeServerClose ?? c2s.length), 2, opts.serverComm],
    ];
    for (const [name, v, out, inn, role, comm] of sides) {
      for (const [dir, want] of [[1, out], [2, inn]] as const) {
        const a = assemble(v.data[dir]);
        if (a.gaps.length || a.discontinuities) throw new Error(`${name} dir ${dir}: ${a.gaps.length} gaps, ${a.discontinuities} discontinuities`);
        if (!a.bytes.equals(want)) throw new Error(`${name} dir ${dir}: ${a.bytes.length} bytes captured, ${want.length} expected, first difference at ${firstDiff(a.bytes, want)}`);
      }
      if (v.open!.role !== role) throw new Error(`${name}: role ${v.open!.role}, expected ${role}`);
      if (v.open!.comm !== comm) throw new Error(`${name}: process name "${v.open!.comm}", expected "${comm}"`);
      if (v.open!.localAddress !== "127.0.0.1" || v.open!.remoteAddress !== "127.0.0.1") throw new Error(`${name}: addresses ${v.open!.localAddress} ${v.open!.remoteAddress}`);
    }
  }
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** CPU time (user + system) a process has used so far, in clock ticks (100 per second). */
export function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

/** Spawns `cmd` and resolves once its stderr matches `ready` (rejects if it exits first or after 20 s). */
export function start(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd} not ready: ${err}`)), 20_000);
    p.stderr!.on("data", (d: Buffer) => {
      err += d;
      if (ready.test(err)) (clearTimeout(t), resolve(p));
    });
    p.once("exit", (code) => (clearTimeout(t), reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

/** Stops a child with SIGINT (SIGKILL after 10 s) and waits for it to exit. */
export async function stopByPid(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once("exit", r));
  p.kill("SIGINT");
  const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
  await gone;
  clearTimeout(t);
}
