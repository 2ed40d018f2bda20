// `wirescope decode CAPTURE`: reads a pcap/pcapng file, reassembles its TCP connections and runs
// them through the same plugin host and connection engine as the parser service, printing one
// record per line (NDJSON, the contract in record-json.ts) or a table.
//
//   CaptureReader → decodeTcp → TcpReassembler ──open/data/gap/close──▶ ConnectionEngine ──▶ records
//
// The steps of a slice of the capture go to the engine as one batch: an ABI v2 plugin gets the
// chunks of all its connections in one call per instance (docs/plugin-abi.md, "feed_batch"),
// and the records come back in the order of the steps, as one call per chunk would give them.
//
// Orientation: a connection whose SYN was captured has a known client. For the others the engine
// tries both hypotheses (content decides); a --proto override settles it by port.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
// Narrow imports (not the package index, which pulls in NATS, gRPC and logging): the --jobs
// worker threads load this module too, and their start-up counts.
import { ConnectionEngine, PluginRegistry, TopicNameDirectory, type EngineBatch, type EngineConnection } from "@wirescope/plugin-host";
import { Counters } from "@wirescope/runtime/counters";
import { JsonLines, endpointText, recordToJson, writeRecordJsonLine } from "@wirescope/wire/record-json";
import { EndpointSchema, type Endpoint } from "@wirescope/wire/gen/wirescope/v1/record_pb";
import { CaptureReader, CaptureStreams, type StreamSink, type TcpConnection } from "@wirescope/capture";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { UsageError, type Command } from "../command.js";

const here = path.dirname(fileURLToPath(import.meta.url));
/** parsers-wasm/build, where `npm run build` puts the built-in plugins. */
export const BUILTIN_PLUGIN_DIR = path.resolve(here, "../../../../parsers-wasm/build");

/** decode's flags: --help, the completions and the parser all read this table. */
export const DECODE_FLAGS: readonly FlagSpec[] = withEnv("decode", [
  { flag: "proto", repeatable: true, value: "PORT=PROTOCOL", description: "decode connections to PORT as PROTOCOL (http1, http2, mysql, kafka or a plugin's name) instead of detecting it; repeatable" },
  { flag: "format", value: "ndjson|table", default: "ndjson", description: "ndjson: one JSON object per record; table: aligned columns" },
  { flag: "redact", description: "mask literals in SQL text (db.query.text) and credential headers" },
  { flag: "plugins", repeatable: true, value: "DIR", description: "also load the plugins in DIR (*.json manifests beside their .wasm); a plugin with a built-in's name replaces it" },
  { flag: "builtin-dir", value: "DIR", default: BUILTIN_PLUGIN_DIR, description: "where the built-in plugins are" },
  { flag: "jobs", value: "N", default: "1", description: "N threads, each reading the capture and decoding its share of the connections; records then come in no fixed order" },
  { flag: "stats", description: "print reader, reassembly and engine counters to stderr at the end" },
  { flag: "no-batch", description: "hand plugins one chunk per call, as for ABI version 1 plugins, instead of batches (same records; for comparison)" },
  { flag: "progress", default: "when stderr is a terminal, else a line every 256 MiB", description: "progress on stderr" },
  { flag: "no-progress", description: "never print progress" },
]);

const USAGE = `usage: wirescope decode CAPTURE [--proto PORT=PROTOCOL]... [--format ndjson|table] [--redact]
                        [--plugins DIR] [--jobs N] [--stats] [--no-batch] [--progress|--no-progress]

Decodes the TCP connections in a pcap or pcapng capture (Ethernet, Linux cooked SLL/SLL2, raw IP,
loopback/null; gzip-compressed too; CAPTURE "-" reads standard input) with the protocol plugins,
and prints one record per line.

options:
${flagsHelp(DECODE_FLAGS)}

A record whose request got no response (capture ended, connection reset) is printed with
"status":null and "incomplete":true. Exit status: 0 when the capture was read (warnings about
damage in it go to stderr), 1 when it is not a capture or cannot be read, 2 for wrong usage.`;

interface DecodeArgs {
  file: string;
  protos: Map<number, string>;
  format: "ndjson" | "table";
  redact: boolean;
  pluginDirs: string[];
  builtinDir: string;
  stats: boolean;
  /** False: one plugin call per chunk (--no-batch). */
  batch: boolean;
  progress: boolean | undefined;
  /** Worker threads, each following its share of the connections (output order then varies). */
  jobs: number;
}

export function parseDecodeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): DecodeArgs {
  const a: DecodeArgs = { file: "", protos: new Map(), format: "ndjson", redact: false, pluginDirs: [], builtinDir: BUILTIN_PLUGIN_DIR, stats: false, batch: true, progress: undefined, jobs: 1 };
  const parsed = parseFlags(argv, DECODE_FLAGS, { command: "decode", env, positionals: true });
  parsed.each(({ flag, value: v }) => {
    switch (flag) {
      case "--proto": {
        const m = /^(\d{1,5})=([A-Za-z0-9_.-]+)$/.exec(v);
        if (!m || Number(m[1]) > 65535) throw new UsageError(`decode: --proto wants PORT=PROTOCOL (e.g. 8080=http1), got "${v}"`);
        a.protos.set(Number(m[1]), m[2]!);
        break;
      }
      case "--format": {
        if (v !== "ndjson" && v !== "table") throw new UsageError(`decode: --format is ndjson or table, got "${v}"`);
        a.format = v;
        break;
      }
      case "--redact":
        a.redact = true;
        break;
      case "--plugins":
        a.pluginDirs.push(v);
        break;
      case "--builtin-dir":
        a.builtinDir = v;
        break;
      case "--stats":
        a.stats = true;
        break;
      case "--no-batch":
        a.batch = false;
        break;
      case "--progress":
        a.progress = true;
        break;
      case "--no-progress":
        a.progress = false;
        break;
      case "--jobs": {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`decode: --jobs wants a number of threads from 1 to 64, got "${v}"`);
        a.jobs = n;
        break;
      }
      default:
        throw new UsageError(`decode option ${flag} is documented but not parsed`);
    }
  });
  const files = parsed.positionals;
  if (files.length !== 1) throw new UsageError(files.length ? `decode: one capture at a time (got ${files.length})` : "decode: which capture? (wirescope decode CAPTURE)");
  a.file = files[0]!;
  if (a.jobs > 1 && a.file === "-") throw new UsageError("decode: --jobs needs a file: standard input can be read only once");
  return a;
}

/** The plugins decode runs: the built-in ones, then those of each --plugins folder. */
function loadPlugins(args: DecodeArgs, warn: (line: string) => void): PluginRegistry {
  const registry = new PluginRegistry();
  const options = { flags: args.redact ? 1 : 0 };
  const dirs = [args.builtinDir, ...args.pluginDirs];
  for (const dir of dirs) {
    if (dir === args.builtinDir && !fs.existsSync(dir)) {
      warn(`no built-in plugins: ${dir} does not exist (run \`npm run build\`)`);
      continue;
    }
    const res = registry.loadDir(dir, options);
    for (const e of res.errors) warn(`plugin not loaded: ${e.error.message}`);
  }
  if (!registry.list().length) throw new Error(`no protocol plugins loaded (looked in ${dirs.join(", ")})`);
  for (const [port, proto] of args.protos) {
    if (!registry.get(proto) && !registry.byProtocol(proto)) {
      throw new UsageError(`decode: --proto ${port}=${proto}: no plugin decodes "${proto}" (have: ${registry.list().map((p) => p.name).join(", ")})`);
    }
  }
  return registry;
}

interface ConnUser {
  ec: EngineConnection;
  /** Our a/b swapped relative to the reassembler's (a --proto port named a the server). */
  swapped: boolean;
  /** [client, server] endpoints, made once the orientation is known (for aIsClient). */
  ends?: [Endpoint, Endpoint];
  endsAIsClient?: boolean;
}

/** One line of the table format. */
function tableRow(j: ReturnType<typeof recordToJson>): string {
  const ms = (Number(j.durationNs) / 1e6).toFixed(3);
  const t = new Date(Number(BigInt(j.startNs) / 1_000_000n)).toISOString().slice(11, 23);
  const status = j.status === null ? (j.incomplete ? "-" : "") : String(j.status);
  return [t, j.protocol.padEnd(6), `${j.client} -> ${j.server}`.padEnd(44), j.operation.padEnd(14), j.resource.slice(0, 60).padEnd(60), status.padStart(5), `${ms.padStart(10)} ms`, j.error ? "ERROR" : ""]
    .join("  ")
    .trimEnd();
}

export interface LineSink {
  /**
   * Whole lines, as text or UTF-8 bytes (which the sink may keep). Returns false when the
   * consumer wants a pause; then drain() resolves when it may go on.
   */
  write(s: string | Uint8Array): boolean;
  drain(): Promise<void>;
}

/** A shard of the connections: `index` of `count` (see ReassemblerOptions.shard). */
export interface Shard {
  index: number;
  count: number;
}

/**
 * Decodes one capture (or one shard of its connections), writing record lines to `out`.
 * Returns the number of records and every counter; prints nothing but progress (shard 0) and
 * what `err` gets (plugin load problems).
 */
export async function decodeShard(args: DecodeArgs, shard: Shard, out: LineSink, err: (line: string) => void): Promise<{ records: number; counters: Record<string, number>; warnings: string[] }> {
  const counters = new Counters();
  // the plugins are loaded once the capture has opened: a file that is not one fails fast
  let engine!: ConnectionEngine;
  let batch!: EngineBatch<TcpConnection>;
  let hintPorts!: Set<number>;
  let records = 0;
  // NDJSON lines as UTF-8, written once; table rows as strings
  const lines = args.format === "ndjson" ? new JsonLines() : undefined;
  let pending: string[] = [];
  // Kafka topic ids taught by a Metadata response decoded on another plugin instance (or, with
  // --jobs, not across threads: each has its own)
  const topicNames = new TopicNameDirectory();

  const emit = (conn: TcpConnection, u: ConnUser, list: Uint8Array[], flipped: boolean): void => {
    if (!list.length) return;
    // client = a unless the engine (or a --proto port) decided the other way round
    const aIsClient = flipped === u.swapped;
    if (!u.ends || u.endsAIsClient !== aIsClient) {
      const a = create(EndpointSchema, { address: conn.addrA, port: conn.portA });
      const b = create(EndpointSchema, { address: conn.addrB, port: conn.portB });
      u.ends = aIsClient ? [a, b] : [b, a];
      u.endsAIsClient = aIsClient;
    }
    const [client, server] = u.ends;
    const ends = { client: endpointText(client), server: endpointText(server) };
    // only Kafka's records name topics by id (as the parser does it, by the decoding plugin)
    const kafka = u.ec.plugin?.manifest.protocols.includes("kafka") === true;
    for (const bytes of list) {
      try {
        // straight from the wire bytes (no protobuf-es decode; for NDJSON no object either)
        const rec = kafka ? topicNames.process(bytes) : bytes;
        if (lines) writeRecordJsonLine(lines, rec, ends);
        else pending.push(tableRow(recordToJson(rec, ends)));
      } catch {
        counters.add("records_unreadable");
        continue;
      }
      records++;
    }
  };

  const sink: StreamSink = {
    open(conn) {
      // --proto PORT=P: the end listening on PORT is the server.
      let proto = args.protos.get(conn.portB);
      let swapped = false;
      if (proto === undefined && !conn.clientKnown) {
        proto = args.protos.get(conn.portA);
        swapped = proto !== undefined;
      }
      let portHint = conn.portB;
      if (!conn.clientKnown) {
        // ports are only a tie-break for the engine: a plugin's port, else the lower one
        const aHint = hintPorts.has(conn.portA);
        const bHint = hintPorts.has(conn.portB);
        portHint = aHint && !bHint ? conn.portA : bHint && !aHint ? conn.portB : Math.min(conn.portA, conn.portB);
      }
      // no handshake seen: the capture started inside the connection, decoders resynchronise
      const ec = engine.openConnection({ clientKnown: conn.clientKnown || proto !== undefined, portHint, protocol: proto ?? "", midstream: !conn.clientKnown });
      conn.user = { ec, swapped } satisfies ConnUser;
    },
    data(conn, dir, bytes, ts) {
      const u = conn.user as ConnUser;
      batch.data(u.ec, u.swapped ? ((dir ^ 1) as 0 | 1) : dir, bytes, ts, conn);
    },
    gap(conn, dir, len, ts) {
      const u = conn.user as ConnUser;
      batch.gap(u.ec, u.swapped ? ((dir ^ 1) as 0 | 1) : dir, len, ts, conn);
    },
    close(conn, _reason, ts) {
      batch.close((conn.user as ConnUser).ec, ts, conn);
    },
  };

  const streams = CaptureStreams.open(args.file, sink, { shard });
  try {
    const registry = loadPlugins(args, err);
    engine = new ConnectionEngine(registry, { counters, batch: args.batch });
    batch = engine.batch((conn, r, _ec, flipped) => emit(conn, conn.user as ConnUser, r.records, flipped));
    hintPorts = new Set<number>(registry.list().flatMap((p) => p.manifest.ports));
  } catch (e) {
    streams.reader.close();
    throw e;
  }
  const size = streams.reader.size;
  const tty = process.stderr.isTTY === true;
  const progress = (args.progress ?? true) && shard.index === 0;
  let lastReport = Date.now();
  let nextMark = PROGRESS_EVERY;
  const t0 = Date.now();
  for (;;) {
    const more = streams.step(2048);
    batch.flush();
    if (lines?.length) {
      if (!out.write(lines.take())) await out.drain();
    } else if (pending.length) {
      const chunk = pending.join("\n") + "\n";
      pending = [];
      if (!out.write(chunk)) await out.drain();
    }
    if (!more) break;
    const pos = streams.reader.position;
    if (progress && (args.progress || tty) && Date.now() - lastReport > 250) {
      lastReport = Date.now();
      process.stderr.write(`${tty ? "\r" : ""}decode: ${mib(pos)} of ${mib(size)} MiB (${pct(pos, size)}), ${records} records${tty ? "" : "\n"}`);
    } else if (progress && !tty && args.progress === undefined && pos >= nextMark) {
      nextMark += PROGRESS_EVERY;
      err(`${mib(pos)} of ${mib(size)} MiB (${pct(pos, size)}), ${records} records`);
    }
  }
  // the closing line: always with --progress, on a terminal when progress was shown
  if ((args.progress && progress) || (progress && tty && Date.now() - t0 > 250)) process.stderr.write(`${tty ? "\r" : ""}decode: ${mib(size)} MiB read, ${records} records${tty ? " ".repeat(20) : ""}\n`);
  const st = streams.stats;
  const all: Record<string, number> = { records };
  for (const [k, v] of Object.entries(st.reader)) all[`reader.${k}`] = v;
  for (const [k, v] of Object.entries(st.skipped)) all[`frames_skipped.${k}`] = v;
  for (const [k, v] of Object.entries(st.reassembly)) all[`tcp.${k}`] = v;
  for (const [k, v] of Object.entries(counters.snapshot())) all[`engine.${k}`] = v;
  return { records, counters: all, warnings: streams.reader.warnings };
}

/**
 * Decodes one capture with args.jobs threads, writing lines through `out`; then reports on
 * stderr (through `err`) what was damaged or skipped, and every counter with --stats.
 */
export async function decodeCapture(args: DecodeArgs, out: LineSink, err: (line: string) => void): Promise<{ records: number; counters: Record<string, number> }> {
  if (args.format === "table") out.write(TABLE_HEADER + "\n");
  const { records, counters: all, warnings } = args.jobs > 1 ? await decodeInWorkers(args, out, err) : await decodeShard(args, { index: 0, count: 1 }, out, err);
  for (const w of warnings) err(w);
  // frames we could not use for a reason the user may want to know about (never silently)
  const lost = [
    [all["frames_skipped.ip_fragment"], "IP fragments (not reassembled)"],
    [all["frames_skipped.malformed"], "malformed frames"],
    [all["frames_skipped.truncated_header"], "frames cut inside their headers"],
    [all["frames_skipped.unsupported_link"], "frames of unsupported link types"],
  ].filter(([n]) => (n as number) > 0);
  if (lost.length && !args.stats) err(`skipped ${lost.map(([n, what]) => `${n} ${what}`).join(", ")} (--stats for all counters)`);
  if (args.stats) err(`stats ${JSON.stringify(all)}`);
  return { records, counters: all };
}

const TABLE_HEADER = ["time        ", "proto ", "client -> server".padEnd(44), "operation".padEnd(14), "resource".padEnd(60), "status", "  duration"].join("  ");

/** Messages from a decode worker (decode-worker.ts). */
export type WorkerMessage =
  | { t: "out"; s: string | Uint8Array }
  | { t: "err"; line: string }
  | { t: "done"; records: number; counters: Record<string, number>; warnings: string[] }
  | { t: "fail"; message: string; usage: boolean };

/**
 * Runs args.jobs workers, each decoding one shard of the connections (each reads the whole
 * capture: reading is cheap next to decoding). Their lines are written as they come, with flow
 * control (a worker waits for acknowledgements when too much is in flight). Counters are summed,
 * except the reader's and the frame counts, which every worker sees whole (shard 0's are kept).
 */
async function decodeInWorkers(args: DecodeArgs, out: LineSink, err: (line: string) => void): Promise<{ records: number; counters: Record<string, number>; warnings: string[] }> {
  // a file that is not a capture fails here, once, before any thread starts
  CaptureReader.open(args.file).close();
  const { Worker } = await import("node:worker_threads");
  const results: { records: number; counters: Record<string, number>; warnings: string[] }[] = [];
  const workers = Array.from({ length: args.jobs }, (_, index) => new Worker(new URL("./decode-worker.js", import.meta.url), { workerData: { args: { ...args, protos: [...args.protos] }, shard: { index, count: args.jobs } } }));
  let writes = Promise.resolve();
  try {
    await Promise.all(
      workers.map(
        (w, index) =>
          new Promise<void>((resolve, reject) => {
            w.on("message", (m: WorkerMessage) => {
              if (m.t === "out") {
                // in order per worker; acknowledged once written (or drained)
                writes = writes.then(async () => {
                  if (!out.write(m.s)) await out.drain();
                  w.postMessage(m.s.length);
                });
              } else if (m.t === "err") {
                if (index === 0) err(m.line);
              } else if (m.t === "done") {
                results[index] = m;
                writes.then(() => resolve(), reject);
              } else {
                reject(m.usage ? new UsageError(m.message) : new Error(m.message));
              }
            });
            w.on("error", reject);
            w.on("exit", (code) => (results[index] ? undefined : reject(new Error(`decode worker ${index} exited with code ${code}`))));
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const counters: Record<string, number> = {};
  results.forEach((r, i) => {
    for (const [k, v] of Object.entries(r.counters)) {
      if (k.startsWith("reader.") || k.startsWith("frames_skipped.")) {
        if (i === 0) counters[k] = v;
      } else counters[k] = (counters[k] ?? 0) + v;
    }
  });
  return { records: results.reduce((n, r) => n + r.records, 0), counters, warnings: results[0]!.warnings };
}

const PROGRESS_EVERY = 256 * 1024 * 1024;
const mib = (n: number) => (n / 1048576).toFixed(1);
const pct = (a: number, b: number) => `${b ? Math.floor((a / b) * 100) : 100}%`;

const command: Command = {
  name: "decode",
  summary: "decode the TCP traffic in a pcap/pcapng capture into records (NDJSON or a table)",
  usage: USAGE,
  flags: DECODE_FLAGS,
  async run(argv) {
    const args = parseDecodeArgs(argv);
    const stdout = process.stdout;
    let broken = false;
    // A closed pipe (`| head`) ends the output quietly.
    stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") broken = true;
      else throw e;
    });
    const out = {
      write: (s: string) => (broken ? true : stdout.write(s)),
      // Wait for either event and remove both listeners, so long outputs don't pile them up.
      drain: () =>
        broken
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              const done = () => {
                stdout.off("drain", done);
                stdout.off("error", done);
                resolve();
              };
              stdout.once("drain", done).once("error", done);
            }),
    };
    await decodeCapture(args, out, (line) => process.stderr.write(`wirescope decode: ${line}\n`));
    return 0;
  },
};

export default command;
