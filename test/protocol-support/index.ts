// Helpers for the protocol integration tests (MySQL, Kafka): capture loopback traffic with
// tcpdump, read what tshark makes of it, and decode the same capture with our plugins through
// the one plugin host (pcap reader → TCP reassembly → ConnectionEngine), as `wirescope decode`
// does.
import fs from "node:fs";
import path from "node:path";
import { execFile, spawn } from "node:child_process";
import { recordToJson, type RecordJson } from "@wirescope/wire";
import { ConnectionEngine, Plugin, PluginRegistry, type EngineConnection, type StepResult } from "@wirescope/plugin-host";
import { CaptureStreams, type TcpConnection } from "@wirescope/capture";
import { PLUGINS_DIR } from "../support/index.js";
import { captureWhile } from "../support/tcpdump.js";

/** Runs tshark and returns the rows of `-T fields` (tab-separated, one array per frame). */
export function tsharkFields(file: string, decodeAs: string, filter: string, fields: string[]): Promise<string[][]> {
  const args = ["-r", file, "-d", decodeAs, "-Y", filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"];
  for (const f of fields) args.push("-e", f);
  return new Promise((resolve, reject) => {
    execFile("tshark", args, { maxBuffer: 256 << 20, timeout: 120_000 }, (err, stdout) => {
      if (err) reject(new Error(`tshark failed: ${err.message}`));
      else resolve(stdout.split("\n").filter((l) => l.length > 0).map((l) => l.split("\t")));
    });
  });
}

export interface DecodedRecord extends RecordJson {
  /** TCP connection index in the capture (tshark's tcp.stream for ordinary captures). */
  stream: number;
}

export interface DecodeOptions {
  /** Plugin names to load from parsers-wasm/build (default: all of them). */
  plugins?: string[];
  redact?: boolean;
  /** The server's port: tells which end is the client when the capture has no SYN. */
  serverPort?: number;
}

export interface DecodeResult {
  records: DecodedRecord[];
  /** engine counters (plugin traps, rejected connections, dropped bytes) */
  counters: Record<string, number>;
  /** connections the engine rejected, with the reason */
  rejected: { stream: number; reason: string }[];
}

/** Decodes a capture file with our plugins through the shared plugin host. */
export function decodeCapture(file: string, opts: DecodeOptions = {}): DecodeResult {
  const registry = new PluginRegistry();
  const flags = opts.redact ? 1 : 0;
  const names = opts.plugins ?? fs.readdirSync(PLUGINS_DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
  for (const n of names) registry.add(Plugin.fromFile(path.join(PLUGINS_DIR, `${n}.json`), { flags }));
  const engine = new ConnectionEngine(registry);
  const records: DecodedRecord[] = [];
  const rejected: { stream: number; reason: string }[] = [];
  const conns = new Map<TcpConnection, { ec: EngineConnection; swap: boolean }>();
  const take = (conn: TcpConnection, r: StepResult, swap: boolean) => {
    for (const bytes of r.records) {
      const j = recordToJson(bytes);
      const a = `${conn.addrA}:${conn.portA}`;
      const b = `${conn.addrB}:${conn.portB}`;
      records.push({ ...j, client: swap ? b : a, server: swap ? a : b, stream: conn.id });
    }
    if (r.state === "rejected" && !rejected.some((x) => x.stream === conn.id)) rejected.push({ stream: conn.id, reason: r.reason ?? "?" });
  };
  const streams = CaptureStreams.open(file, {
    open(conn) {
      // without a SYN, the port tells which end is the server
      const swap = !conn.clientKnown && opts.serverPort !== undefined && conn.portA === opts.serverPort;
      const ec = engine.openConnection({ clientKnown: conn.clientKnown || opts.serverPort !== undefined, portHint: swap ? conn.portA : conn.portB });
      conns.set(conn, { ec, swap });
    },
    data(conn, dir, bytes, tsNs) {
      const c = conns.get(conn)!;
      take(conn, c.ec.data((c.swap ? 1 - dir : dir) as 0 | 1, bytes, tsNs), c.swap);
    },
    gap(conn, dir, len, tsNs) {
      const c = conns.get(conn)!;
      take(conn, c.ec.gap((c.swap ? 1 - dir : dir) as 0 | 1, len, tsNs), c.swap);
    },
    close(conn, _reason, tsNs) {
      const c = conns.get(conn)!;
      take(conn, c.ec.close(tsNs), c.swap);
      conns.delete(conn);
    },
  });
  while (streams.step()) {
    // run to the end
  }
  return { records, counters: engine.counters.snapshot(), rejected };
}

/**
 * The loopback traffic of `port` captured with tcpdump while `workload` runs (stopped before
 * anything is decoded, also when the workload fails), decoded with our plugins: the capture file
 * and its records. `serverPort` defaults to `port`.
 */
export async function captureDecoded(port: number, name: string, opts: DecodeOptions, workload: () => Promise<unknown>): Promise<{ pcap: string; records: DecodedRecord[] }> {
  const pcap = await captureWhile(port, name, workload);
  return { pcap, records: decodeCapture(pcap, { serverPort: port, ...opts }).records };
}

/** Runs kcat against `broker` (host:port) with `input` on stdin; rejects on a non-zero exit or after `timeoutMs`. */
export function runKcat(broker: string, args: string[], input = "", timeoutMs = 30_000): Promise<{ out: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn("kcat", ["-b", broker, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ out, pid: p.pid ?? 0 });
      else reject(new Error(`kcat ${args.join(" ")}: exit ${code ?? signal}\n${err}`));
    });
    p.stdin.end(input);
  });
}

/** The bytes of every TCP connection to `serverPort` in a capture, by client port: [client→server, server→client]. */
export function captureBytes(file: string, serverPort: number): Map<number, [Buffer, Buffer]> {
  const parts = new Map<TcpConnection, [Buffer[], Buffer[]]>();
  const streams = CaptureStreams.open(file, {
    open(conn) {
      parts.set(conn, [[], []]);
    },
    data(conn, dir, bytes) {
      // A is the client when the capture saw the SYN; otherwise the server port tells
      const toServer = (dir === 0) === (conn.portB === serverPort);
      parts.get(conn)![toServer ? 0 : 1].push(Buffer.from(bytes));
    },
    gap() {},
    close() {},
  });
  while (streams.step()) {
    // run to the end
  }
  const out = new Map<number, [Buffer, Buffer]>();
  for (const [conn, [c2s, s2c]] of parts) out.set(conn.portB === serverPort ? conn.portA : conn.portB, [Buffer.concat(c2s), Buffer.concat(s2c)]);
  return out;
}

/** Decodes one connection given as chunks in time order (dir 0 client→server) with the named plugins. */
export function decodeChunks(chunks: { dir: 0 | 1; bytes: Uint8Array; tsNs: bigint }[], opts: { plugins: string[]; serverPort: number }): RecordJson[] {
  const registry = new PluginRegistry();
  for (const n of opts.plugins) registry.add(Plugin.fromFile(path.join(PLUGINS_DIR, `${n}.json`), { flags: 0 }));
  const engine = new ConnectionEngine(registry);
  const ec = engine.openConnection({ clientKnown: true, portHint: opts.serverPort });
  const records: RecordJson[] = [];
  const take = (r: StepResult) => {
    for (const b of r.records) records.push(recordToJson(b));
  };
  let last = 0n;
  for (const c of chunks) {
    take(ec.data(c.dir, c.bytes, c.tsNs));
    last = c.tsNs;
  }
  take(ec.close(last));
  return records;
}
