// Helpers for the parser integration tests: real traffic captured through a loopback relay or
// read from pcap files, turned into RawBatches as the probe would publish them; real parser
// processes (`wirescope parser`) and their control ports; records read back from JetStream.
import net from "node:net";
import path from "node:path";
import fs from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  ConnEventSchema,
  ConnKind,
  DataEventSchema,
  Direction,
  ParserService,
  RawBatchSchema,
  RecordBatchSchema,
  recordsOf,
  Role,
  type Record as WsRecord,
} from "@wirescope/wire";
import {
  createClient,
  type ManagedProcess,
} from "@wirescope/runtime";
import { CaptureStreams, type TcpConnection } from "@wirescope/capture";
import { execFile } from "node:child_process";
import { before, after } from "node:test";
import { REPO_ROOT, spawnTracked, startNats, startRedis, tempDir, waitFor, WIRESCOPE_BIN } from "./support/index.js";

export { startRedis };


export interface Chunk {
  /** 0: client → server, 1: server → client. */
  dir: 0 | 1;
  bytes: Uint8Array;
  /** Bytes the capture missed here (bytes is then empty). */
  gap?: number;
  tsNs: bigint;
}

export interface Conversation {
  client: { address: string; port: number };
  server: { address: string; port: number };
  serverProcess: string;
  chunks: Chunk[];
  startNs: bigint;
  endNs: bigint;
}

const epochBase = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
const nowNs = () => epochBase + process.hrtime.bigint();

/**
 * Runs `drive(relayPort)` while a relay on 127.0.0.1 forwards every connection to `targetPort`
 * and records the bytes each way with their arrival time: real traffic of real clients/servers.
 */
export async function captureThroughRelay(targetPort: number, serverProcess: string, drive: (relayPort: number) => Promise<void>): Promise<Conversation[]> {
  const convs: Conversation[] = [];
  const open = new Set<Promise<void>>();
  const relay = net.createServer((c) => {
    const conv: Conversation = {
      client: { address: "127.0.0.1", port: c.remotePort ?? 0 },
      server: { address: "127.0.0.1", port: targetPort },
      serverProcess,
      chunks: [],
      startNs: nowNs(),
      endNs: 0n,
    };
    convs.push(conv);
    const s = net.connect(targetPort, "127.0.0.1");
    let closed = 0;
    let done!: () => void;
    const p = new Promise<void>((r) => (done = r));
    open.add(p);
    const end = () => {
      if (++closed === 2) {
        conv.endNs = nowNs();
        open.delete(p);
        done();
      }
    };
    c.on("data", (b) => {
      conv.chunks.push({ dir: 0, bytes: new Uint8Array(b), tsNs: nowNs() });
      s.write(b);
    });
    s.on("data", (b) => {
      conv.chunks.push({ dir: 1, bytes: new Uint8Array(b), tsNs: nowNs() });
      c.write(b);
    });
    c.on("end", () => s.end());
    s.on("end", () => c.end());
    c.on("close", end);
    s.on("close", end);
    c.on("error", () => s.destroy());
    s.on("error", () => c.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  const port = (relay.address() as net.AddressInfo).port;
  try {
    await drive(port);
    await Promise.race([Promise.all(open), new Promise((r) => setTimeout(r, 5000))]);
  } finally {
    relay.close();
  }
  return convs;
}

/** Reads every TCP connection of a pcap/pcapng file as a conversation (gaps kept as gaps). */
export function conversationsFromCapture(file: string): Conversation[] {
  const byId = new Map<number, Conversation & { flip: boolean }>();
  const streams = CaptureStreams.open(file, {
    open(c: TcpConnection) {
      // a is the client when the SYN was seen; otherwise the end with the higher port.
      const flip = !c.clientKnown && c.portA < c.portB;
      const client = flip ? { address: c.addrB, port: c.portB } : { address: c.addrA, port: c.portA };
      const server = flip ? { address: c.addrA, port: c.portA } : { address: c.addrB, port: c.portB };
      byId.set(c.id, { client, server, serverProcess: "captured", chunks: [], startNs: c.startNs, endNs: c.startNs, flip });
    },
    data(c, dir, bytes, tsNs) {
      const v = byId.get(c.id)!;
      v.chunks.push({ dir: (v.flip ? 1 - dir : dir) as 0 | 1, bytes: new Uint8Array(bytes), tsNs });
    },
    gap(c, dir, len, tsNs) {
      const v = byId.get(c.id)!;
      v.chunks.push({ dir: (v.flip ? 1 - dir : dir) as 0 | 1, bytes: new Uint8Array(0), gap: len, tsNs });
    },
    close(c, _r, tsNs) {
      byId.get(c.id)!.endNs = tsNs;
    },
  });
  streams.run();
  return [...byId.values()].filter((c) => c.chunks.length > 0);
}

export interface BatchPlan {
  /** One RawBatch per conversation (open, data, close), on partition connKey % P. */
  batches: { partition: number; connKey: bigint; seq: number; bytes: Uint8Array; served: number }[];
}

/**
 * The probe's view of each conversation from the server's socket (role server: ingress = the
 * client's bytes), one RawBatch per conversation, batch_seq counted per partition.
 */
export function toRawBatches(convs: Conversation[], opts: { partitions: number; firstKey: bigint; probeId?: string; node?: string; seqStart?: Map<number, number>; servedStart?: Map<number, number> }): BatchPlan {
  const seqs = opts.seqStart ?? new Map<number, number>();
  const servedBefore = opts.servedStart ?? new Map<number, number>();
  const batches: BatchPlan["batches"] = [];
  convs.forEach((c, i) => {
    const connKey = opts.firstKey + BigInt(i);
    const partition = Number(connKey % BigInt(opts.partitions));
    const seq = (seqs.get(partition) ?? 0) + 1;
    seqs.set(partition, seq);
    const off: [number, number] = [0, 0];
    // answers started, as the kernel marks them at a server end: a write after a read, or a first call that writes
    let served = 0;
    c.chunks.forEach((ch, k) => void (ch.dir === 1 && (k === 0 || c.chunks[k - 1]!.dir === 0) && served++));
    const before = servedBefore.get(partition) ?? 0;
    servedBefore.set(partition, before + served);
    const data = c.chunks.map((ch) => {
      const len = ch.gap ?? ch.bytes.length;
      const ev = create(DataEventSchema, {
        connKey,
        direction: ch.dir === 0 ? Direction.INGRESS : Direction.EGRESS,
        seq: BigInt(off[ch.dir]),
        timestampNs: ch.tsNs,
        tid: 1000 + ch.dir,
        payload: ch.bytes,
        originalLength: len,
      });
      off[ch.dir] += len;
      return ev;
    });
    const base = {
      connKey,
      role: Role.SERVER,
      localAddress: c.server.address,
      localPort: c.server.port,
      remoteAddress: c.client.address,
      remotePort: c.client.port,
      pid: 4242,
      tid: 4242,
      process: { pid: 4242, name: c.serverProcess },
    };
    const batch = create(RawBatchSchema, {
      node: opts.node ?? "test-node",
      probeId: opts.probeId ?? "test-probe",
      partition,
      batchSeq: BigInt(seq),
      servedBefore: BigInt(before),
      served,
      conns: [
        create(ConnEventSchema, { ...base, kind: ConnKind.OPEN, timestampNs: c.startNs }),
        create(ConnEventSchema, { ...base, kind: ConnKind.CLOSE, timestampNs: c.endNs || c.chunks.at(-1)!.tsNs }),
      ],
      data,
    });
    batches.push({ partition, connKey, seq, bytes: toBinary(RawBatchSchema, batch), served });
  });
  return { batches };
}

export interface ParserProc {
  proc: ManagedProcess;
  instance: string;
  grpc: string;
  log: string;
}

/** Starts one `wirescope parser` process (of `checkout`) and waits until its partitions are assigned.
 *  WIRESCOPE_PARSER_NODE_ARGS adds node flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
export async function startParser(natsUrl: string, args: string[] = [], name = "parser", checkout = REPO_ROOT): Promise<ParserProc> {
  const dir = tempDir("wirescope-parser-");
  const log = path.join(dir, `${name}.log`);
  const proc = await spawnTracked(
    name,
    process.execPath,
    [...(process.env.WIRESCOPE_PARSER_NODE_ARGS?.split(" ").filter(Boolean) ?? []), path.join(checkout, "bin/wirescope.js"), "parser", "--nats-url", natsUrl, "--grpc-port", "0", "--log-format", "json", "--node", "test-node", ...args],
    { logFile: log },
  );
  let instance = "";
  let grpc = "";
  await waitFor(
    () => {
      if (proc.hasExited) throw new Error(`parser exited: ${proc.tail(20)}`);
      const text = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
      for (const line of text.split("\n")) {
        if (!line.startsWith("{")) continue;
        let j: { msg?: string; grpc?: string; instance?: string };
        try {
          j = JSON.parse(line);
        } catch {
          continue; // a line still being written, or interleaved output
        }
        if (j.grpc && /control port listening/.test(j.msg ?? "")) grpc = j.grpc;
        if (j.msg === "partitions rebalanced") instance = j.instance ?? "";
      }
      return instance !== "" && grpc !== "";
    },
    { timeoutMs: 60_000, what: "parser ready" },
  ).catch((e) => {
    throw new Error(`${(e as Error).message}; log: ${fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-2000) : "(none)"}`);
  });
  return { proc, instance, grpc, log };
}

export async function parserStatus(p: ParserProc): Promise<{ counters: Record<string, number>; info: Record<string, string>; warnings: string[] }> {
  const client = createClient(ParserService, p.grpc);
  const s = await client.status({}, { timeoutMs: 5000 });
  return { counters: s.counters, info: s.info, warnings: s.warnings };
}

/** The plugins a parser has loaded, as name@version; `p` is a parser of ours or a control address (host:port). */
export async function parserPlugins(p: ParserProc | string): Promise<string[]> {
  const client = createClient(ParserService, typeof p === "string" ? p : p.grpc);
  try {
    return (await client.listPlugins({}, { timeoutMs: 5000 })).plugins.map((x) => `${x.name}@${x.version}`);
  } finally {
    client.close();
  }
}

/** Waits until every parser sees `n` members and together they own all partitions once. */
export async function waitForFleet(ps: ParserProc[], partitions: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const st = await Promise.all(ps.map(parserStatus));
      const total = st.reduce((a, s) => a + (s.counters["partitions_owned"] ?? 0), 0);
      return total === partitions && st.every((s) => (s.info["members"] ?? "").split(",").length === ps.length);
    },
    { timeoutMs, what: "fleet rebalanced" },
  );
}

/**
 * Starts `n` parser replicas named `<name>-<i>` with `args` (stopped with the bed), and waits
 * until they own the `partitions` among them.
 */
export async function startFleet(bed: ParserBed, n: number, args: string[], name: string, partitions = 64): Promise<ParserProc[]> {
  const fleet: ParserProc[] = [];
  for (let i = 0; i < n; i++) {
    const p = await startParser(bed.nats.url, args, `${name}-${i}`);
    fleet.push(p);
    bed.procs.push(p);
  }
  await waitForFleet(fleet, partitions);
  return fleet;
}

export interface SeenRecord {
  parserId: string;
  record: WsRecord;
}

/** Every record in the stream so far (direct gets, from the first sequence). */
export async function readRecords(nc: NatsConnection, stream = "WIRESCOPE_RECORDS"): Promise<SeenRecord[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: SeenRecord[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    let m;
    try {
      m = await jsm.streams.getMessage(stream, { seq });
    } catch {
      continue;
    }
    if (!m) continue; // deleted or aged out
    const b = fromBinary(RecordBatchSchema, m.data);
    for (const r of recordsOf(b)) out.push({ parserId: b.parserId, record: r });
  }
  return out;
}

/** Waits until the record count stops growing (quiet for `quietMs`), bounded by `timeoutMs`. */
export async function settleRecords(nc: NatsConnection, quietMs = 1500, timeoutMs = 30_000, stream = "WIRESCOPE_RECORDS"): Promise<SeenRecord[]> {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    let n = 0;
    try {
      n = (await jsm.streams.info(stream)).state.messages;
    } catch {
      n = 0;
    }
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (n > 0 && Date.now() - since >= quietMs) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return readRecords(nc, stream);
}

export async function natsClient(url: string): Promise<NatsConnection> {
  return connect({ servers: url, name: "parser-test" });
}

/** A comparable line for one record (what the set comparisons use). */
export function recordKey(r: WsRecord): string {
  return [r.protocol, r.node, r.connKey, r.startNs, r.durationNs, r.operation, r.resource, r.status ?? "-", r.incomplete, r.requestBytes, r.responseBytes].join("|");
}

export { Role };


/** `sessions` real redis-cli processes, each one connection with a few commands. */
export async function redisTraffic(redisPort: number, sessions: number, tag = "k"): Promise<Conversation[]> {
  return captureThroughRelay(redisPort, "redis-server", async (relay) => {
    for (let i = 0; i < sessions; i += 8) {
      await Promise.all(
        Array.from({ length: Math.min(8, sessions - i) }, (_, j) => {
          const n = i + j;
          const input = `SET ${tag}${n} v${n}\nGET ${tag}${n}\nINCR ctr${n}\nLPUSH l${n} a b c\nLRANGE l${n} 0 -1\nGET missing${n}\n`;
          return new Promise<void>((resolve, reject) => {
            const c = execFile("redis-cli", ["-p", String(relay)], { timeout: 5000 }, (e) => (e ? reject(e) : resolve()));
            c.stdin!.end(input);
          });
        }),
      );
    }
  });
}


/** Runs the real probe (`wirescope probe --source pcap FILE`) until its replay has finished. */
export async function replayWithProbe(natsUrl: string, file: string, node: string): Promise<void> {
  const dir = tempDir("wirescope-probe-");
  const log = path.join(dir, "probe.log");
  const proc = await spawnTracked(
    "probe",
    process.execPath,
    [WIRESCOPE_BIN, "probe", "--source", "pcap", file, "--nats-url", natsUrl, "--grpc-port", "0", "--log-format", "json", "--node", node],
    { logFile: log },
  );
  try {
    await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, "utf8").includes('"pcap replay finished"'), { timeoutMs: 60_000, what: `probe replay of ${file}` });
  } finally {
    await proc.stop();
  }
}

export interface ParserBed {
  nats: import("./support/index.js").TestServer;
  nc: NatsConnection;
  redis?: { proc: ManagedProcess; port: number };
  /** Parser processes to stop after the suite (tests push what they start). */
  procs: ParserProc[];
}

/**
 * Registers before/after hooks for a parser suite: nats-server with JetStream (and redis-server
 * when asked), a client connection; everything, parsers included, stopped after the suite.
 */
export function useParserBed(opts: { redis?: boolean } = {}): ParserBed {
  const bed = { procs: [] } as unknown as ParserBed;
  before(async () => {
    bed.nats = await startNats({ jetstream: true, monitor: true });
    if (opts.redis) bed.redis = await startRedis();
    bed.nc = await natsClient(bed.nats.url);
  });
  after(async () => {
    await bed.nc?.close();
    for (const p of bed.procs) await p.proc.stop();
    await bed.redis?.proc.stop();
    await bed.nats?.stop();
  });
  return bed;
}
