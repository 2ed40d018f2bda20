// Test support for the capture code: tshark as the reference, capture-file rewriting (to make
// every format and link-type variant out of real captures) and a sink that collects streams.
// Used by the pcap unit tests and by the integration tests in test/ (as
// @wirescope/capture/test-support/pcap); not part of the public surface (not in the index).
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { StreamSink, TcpConnection, CloseReason } from "../reassembly.js";
import { CaptureReader } from "../reader.js";
import { CaptureStreams } from "../capture-streams.js";
import { hostPort } from "@wirescope/wire/identity";

/**
 * The real captures beside the repository (../shared/captures, read-only test data);
 * WIRESCOPE_CAPTURES overrides. scripts/test.mjs sets it for every test.
 */
export const SHARED_CAPTURES =
  process.env["WIRESCOPE_CAPTURES"] ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../../shared/captures");

/** Every capture file under the shared captures folder (not the truth files). */
export function sharedCaptures(): string[] {
  return fs
    .readdirSync(SHARED_CAPTURES, { recursive: true })
    .map((f) => path.join(SHARED_CAPTURES, f.toString()))
    .filter((f) => /\.pcap(ng)?$/.test(f))
    .sort();
}

/** Runs a Wireshark command-line tool (tshark, editcap, mergecap) with a time limit; returns stdout. */
export function wstool(tool: string, args: string[], timeoutMs = 120_000): string {
  return execFileSync(tool, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, maxBuffer: 1 << 30 }).toString();
}

export function tshark(args: string[]): string {
  return wstool("tshark", args);
}

export interface TsharkFrame {
  time: string;
  capLen: number;
  len: number;
  md5: string;
}

/** Per-frame time ("sec.nnnnnnnnn"), lengths and md5 of the captured bytes, as tshark sees them. */
export function tsharkFrames(file: string): TsharkFrame[] {
  const out = tshark(["-r", file, "-o", "frame.generate_md5_hash:TRUE", "-T", "fields", "-E", "separator=,", "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.md5_hash"]);
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [time, capLen, len, md5] = l.split(",");
      return { time: time!, capLen: Number(capLen), len: Number(len), md5: md5! };
    });
}

/** The same per-frame facts from our reader. */
export function ourFrames(file: string | Buffer): { frames: TsharkFrame[]; reader: CaptureReader } {
  const reader = typeof file === "string" ? CaptureReader.open(file, { bufferSize: 4096 }) : CaptureReader.fromBuffer(file);
  const frames: TsharkFrame[] = [];
  for (let p = reader.next(); p; p = reader.next()) {
    frames.push({
      time: `${p.tsSec}.${String(p.tsNsec).padStart(9, "0")}`,
      capLen: p.capLen,
      len: p.origLen,
      md5: crypto.createHash("md5").update(p.buf.subarray(p.offset, p.offset + p.capLen)).digest("hex"),
    });
  }
  reader.close();
  return { frames, reader };
}

/** One TCP connection as tshark's "follow tcp" shows it. */
export interface FollowedStream {
  stream: number;
  node0: string;
  node1: string;
  /** Bytes sent by node 0 / node 1, with tshark's "[N bytes missing in capture file]" markers. */
  data: [Buffer, Buffer];
}

const MISSING = /\[(\d+) bytes missing in capture file\]\0?/g;

/** Removes tshark's missing-bytes markers. */
export function stripMissing(b: Buffer): Buffer {
  return Buffer.from(b.toString("latin1").replace(MISSING, ""), "latin1");
}

/** tshark's reassembly of every TCP stream in the file (follow,tcp,raw). */
export function tsharkFollow(file: string): FollowedStream[] {
  const ids = [...new Set(tshark(["-r", file, "-T", "fields", "-e", "tcp.stream"]).split("\n").filter(Boolean))].map(Number).sort((a, b) => a - b);
  if (!ids.length) return [];
  const args = ["-r", file, "-q"];
  for (const i of ids) args.push("-z", `follow,tcp,raw,${i}`);
  const out = tshark(args);
  const blocks = out.split("===================================================================\nFollow: tcp,raw\n").slice(1);
  return blocks.map((b) => {
    const stream = Number(/tcp\.stream eq (\d+)/.exec(b)![1]);
    const node0 = /Node 0: (.*)/.exec(b)![1]!;
    const node1 = /Node 1: (.*)/.exec(b)![1]!;
    const parts: [string[], string[]] = [[], []];
    for (const line of b.split("\n").slice(3)) {
      if (!line || line.startsWith("=")) continue;
      parts[line.startsWith("\t") ? 1 : 0].push(line.trim());
    }
    return { stream, node0, node1, data: [Buffer.from(parts[0].join(""), "hex"), Buffer.from(parts[1].join(""), "hex")] as [Buffer, Buffer] };
  }).sort((a, b) => a.stream - b.stream);
}

/** One connection as our reassembler delivered it. */
export interface CollectedStream {
  conn: TcpConnection;
  a: string;
  b: string;
  /** Bytes sent by a / b, gaps rendered as tshark renders them ("[N bytes missing in capture file]"). */
  data: [Buffer, Buffer];
  /** Bytes only (no gap markers). */
  bytes: [Buffer, Buffer];
  gaps: [number[], number[]];
  closeReason: CloseReason | undefined;
}

/** A StreamSink that keeps everything. */
export function collectingSink(): { sink: StreamSink; streams: CollectedStream[] } {
  const streams: CollectedStream[] = [];
  const parts = new Map<number, { data: [Buffer[], Buffer[]]; bytes: [Buffer[], Buffer[]] }>();
  const sink: StreamSink = {
    open(conn) {
      streams[conn.id] = { conn, a: hostPort(conn.addrA, conn.portA), b: hostPort(conn.addrB, conn.portB), data: [Buffer.alloc(0), Buffer.alloc(0)], bytes: [Buffer.alloc(0), Buffer.alloc(0)], gaps: [[], []], closeReason: undefined };
      parts.set(conn.id, { data: [[], []], bytes: [[], []] });
    },
    data(conn, dir, bytes) {
      const p = parts.get(conn.id)!;
      p.data[dir].push(Buffer.from(bytes));
      p.bytes[dir].push(Buffer.from(bytes));
    },
    gap(conn, dir, len) {
      parts.get(conn.id)!.data[dir].push(Buffer.from(`[${len} bytes missing in capture file]\0`, "latin1"));
      streams[conn.id]!.gaps[dir].push(len);
    },
    close(conn, reason) {
      const s = streams[conn.id]!;
      const p = parts.get(conn.id)!;
      s.closeReason = reason;
      s.data = [Buffer.concat(p.data[0]), Buffer.concat(p.data[1])];
      s.bytes = [Buffer.concat(p.bytes[0]), Buffer.concat(p.bytes[1])];
    },
  };
  return { sink, streams };
}

/** Reads and reassembles a whole capture. */
export function reassembleFile(file: string): { streams: CollectedStream[]; stats: ReturnType<CaptureStreams["run"]> } {
  const { sink, streams } = collectingSink();
  const stats = CaptureStreams.open(file, sink).run();
  return { streams, stats };
}

// ---- capture rewriting ------------------------------------------------------------------------

export interface PcapRecord {
  sec: number;
  frac: number;
  origLen: number;
  data: Buffer;
}

/** Parses a little-endian pcap (as editcap and tcpdump write on x86). */
export function parsePcap(buf: Buffer): { header: Buffer; records: PcapRecord[] } {
  if (buf.readUInt32LE(0) !== 0xa1b2c3d4 && buf.readUInt32LE(0) !== 0xa1b23c4d) throw new Error("parsePcap: not a little-endian pcap");
  const records: PcapRecord[] = [];
  for (let o = 24; o + 16 <= buf.length; ) {
    const cap = buf.readUInt32LE(o + 8);
    records.push({ sec: buf.readUInt32LE(o), frac: buf.readUInt32LE(o + 4), origLen: buf.readUInt32LE(o + 12), data: buf.subarray(o + 16, o + 16 + cap) });
    o += 16 + cap;
  }
  return { header: buf.subarray(0, 24), records };
}

/** Writes a little-endian pcap from a header (link type and precision kept unless given) and records. */
export function buildPcap(header: Buffer, records: PcapRecord[], linkType?: number): Buffer {
  const h = Buffer.from(header);
  if (linkType !== undefined) h.writeUInt32LE(linkType, 20);
  const parts: Buffer[] = [h];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(r.sec, 0);
    rh.writeUInt32LE(r.frac, 4);
    rh.writeUInt32LE(r.data.length, 8);
    rh.writeUInt32LE(Math.max(r.origLen, r.data.length), 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

/** A big-endian copy of a little-endian pcap. */
export function pcapToBigEndian(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  const sw32 = (o: number) => out.writeUInt32BE(buf.readUInt32LE(o), o);
  const sw16 = (o: number) => out.writeUInt16BE(buf.readUInt16LE(o), o);
  sw32(0);
  sw16(4);
  sw16(6);
  for (const o of [8, 12, 16, 20]) sw32(o);
  for (let o = 24; o + 16 <= buf.length; ) {
    const cap = buf.readUInt32LE(o + 8);
    for (let i = 0; i < 16; i += 4) sw32(o + i);
    o += 16 + cap;
  }
  return out;
}

export interface PcapngBlock {
  type: number;
  body: Buffer;
}

/** Splits a little-endian pcapng into blocks (body = between the two length fields). */
export function parsePcapng(buf: Buffer): PcapngBlock[] {
  const blocks: PcapngBlock[] = [];
  for (let o = 0; o + 12 <= buf.length; ) {
    const type = buf.readUInt32LE(o);
    const len = buf.readUInt32LE(o + 4);
    if (type === 0x0a0d0d0a && buf.readUInt32LE(o + 8) !== 0x1a2b3c4d) throw new Error("parsePcapng: not little-endian");
    blocks.push({ type, body: buf.subarray(o + 8, o + len - 4) });
    o += len;
  }
  return blocks;
}

export function buildPcapng(blocks: PcapngBlock[], bigEndian = false): Buffer {
  return Buffer.concat(
    blocks.map((b) => {
      const len = b.body.length + 12;
      const h = Buffer.alloc(8);
      const t = Buffer.alloc(4);
      if (bigEndian) {
        h.writeUInt32BE(b.type, 0);
        h.writeUInt32BE(len, 4);
        t.writeUInt32BE(len, 0);
      } else {
        h.writeUInt32LE(b.type, 0);
        h.writeUInt32LE(len, 4);
        t.writeUInt32LE(len, 0);
      }
      return Buffer.concat([h, b.body, t]);
    }),
  );
}

/** Option codes whose values are numbers, per block type, with their widths (pcapng §4). */
const NUMERIC_OPTS: Record<number, Record<number, 2 | 4 | 8 | "ts">> = {
  1: { 8: 8, 14: 8 }, // if_speed, if_tsoffset
  6: { 2: 4, 4: 8, 5: 8, 6: 4 }, // epb_flags, epb_dropcount, epb_packetid, epb_queue
  2: { 2: 4 }, // pack_flags
};

/** Big-endian copy of a little-endian pcapng; blocks other than SHB/IDB/EPB/SPB/PB are dropped. */
export function pcapngToBigEndian(buf: Buffer): Buffer {
  const blocks = parsePcapng(buf).flatMap((b): PcapngBlock[] => {
    const body = Buffer.from(b.body);
    const src = b.body;
    const w32 = (o: number) => body.writeUInt32BE(src.readUInt32LE(o), o);
    const w16 = (o: number) => body.writeUInt16BE(src.readUInt16LE(o), o);
    let optStart: number;
    switch (b.type) {
      case 0x0a0d0d0a:
        w32(0);
        w16(4);
        w16(6);
        body.writeBigInt64BE(src.readBigInt64LE(8), 8);
        optStart = 16;
        break;
      case 1:
        w16(0);
        w16(2);
        w32(4);
        optStart = 8;
        break;
      case 6:
      case 2: {
        if (b.type === 6) w32(0);
        else {
          w16(0);
          w16(2);
        }
        for (const o of [4, 8, 12, 16]) w32(o);
        optStart = 20 + ((src.readUInt32LE(12) + 3) & ~3);
        break;
      }
      case 3:
        w32(0);
        return [{ type: 3, body }];
      default:
        return [];
    }
    const widths = NUMERIC_OPTS[b.type] ?? {};
    for (let o = optStart; o + 4 <= src.length; ) {
      const code = src.readUInt16LE(o);
      const len = src.readUInt16LE(o + 2);
      w16(o);
      w16(o + 2);
      if (code === 0) break;
      const w = widths[code];
      if (w === 8 && len === 8) body.writeBigUInt64BE(src.readBigUInt64LE(o + 4), o + 4);
      else if (w === 4 && len === 4) w32(o + 4);
      o += 4 + ((len + 3) & ~3);
    }
    return [{ type: b.type, body }];
  });
  return buildPcapng(blocks, true);
}

/** Little-endian pcapng with every EPB turned into an obsolete Packet Block (type 2). */
export function pcapngToPacketBlocks(buf: Buffer): Buffer {
  return buildPcapng(parsePcapng(buf).map((b) => (b.type === 6 ? { type: 2, body: b.body } : b)));
}

/** Little-endian pcapng with every EPB turned into a Simple Packet Block (one interface only). */
export function pcapngToSimpleBlocks(buf: Buffer): Buffer {
  return buildPcapng(
    parsePcapng(buf).map((b) => {
      if (b.type !== 6) return b;
      const cap = b.body.readUInt32LE(12);
      const body = Buffer.alloc(4 + ((cap + 3) & ~3));
      body.writeUInt32LE(b.body.readUInt32LE(16), 0);
      b.body.copy(body, 4, 20, 20 + cap);
      return { type: 3, body };
    }),
  );
}

// ---- frames built by hand ---------------------------------------------------------------------

export interface SegmentSpec {
  src: string; // "a.b.c.d:port"
  dst: string;
  seq: number;
  ack?: number;
  flags: string; // letters of S A F R P
  payload?: Buffer | string;
}

/** An Ethernet/IPv4/TCP frame (checksums left 0: tshark does not check them by default). */
export function ipv4Frame(s: SegmentSpec): Buffer {
  const [sa, sp] = s.src.split(":");
  const [da, dp] = s.dst.split(":");
  const payload = typeof s.payload === "string" ? Buffer.from(s.payload) : (s.payload ?? Buffer.alloc(0));
  const b = Buffer.alloc(14 + 20 + 20 + payload.length);
  Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]).copy(b, 0);
  b.writeUInt16BE(0x0800, 12);
  b.writeUInt16BE(0x4500, 14);
  b.writeUInt16BE(40 + payload.length, 16);
  b.writeUInt16BE(0x4000, 20);
  b[22] = 64;
  b[23] = 6;
  Buffer.from(sa!.split(".").map(Number)).copy(b, 26);
  Buffer.from(da!.split(".").map(Number)).copy(b, 30);
  b.writeUInt16BE(Number(sp), 34);
  b.writeUInt16BE(Number(dp), 36);
  b.writeUInt32BE(s.seq >>> 0, 38);
  b.writeUInt32BE((s.ack ?? 0) >>> 0, 42);
  b[46] = 5 << 4;
  let f = 0;
  for (const c of s.flags) f |= { F: 1, S: 2, R: 4, P: 8, A: 16 }[c as "F"] ?? 0;
  if (s.ack !== undefined) f |= 16;
  b[47] = f;
  b.writeUInt16BE(65535, 48);
  payload.copy(b, 54);
  return b;
}

/** A little-endian µs Ethernet pcap of the given frames, one per millisecond. */
export function pcapOf(frames: Buffer[], startSec = 1_700_000_000): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  return buildPcap(
    header,
    frames.map((data, i) => ({ sec: startSec + Math.floor(i / 1000), frac: (i % 1000) * 1000, origLen: data.length, data })),
  );
}
