// CaptureReader against tshark: every frame's time, lengths and bytes (md5), on the real captures
// and on every format variant made from them with editcap/mergecap and byte-level rewriting.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { CaptureReader } from "./reader.js";
import { CaptureError } from "./errors.js";
import { CaptureStreams } from "./capture-streams.js";
import {
  SHARED_CAPTURES,
  buildPcapng,
  collectingSink,
  parsePcapng,
  ourFrames,
  pcapToBigEndian,
  pcapngToBigEndian,
  pcapngToPacketBlocks,
  pcapngToSimpleBlocks,
  sharedCaptures,
  tsharkFrames,
  wstool,
} from "./test-support/pcap.js";

const ETH_PCAP = path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap");
const NULL_PCAPNG = path.join(SHARED_CAPTURES, "grpc/gRPC-Go-for-Professionals__Server_Streaming.pcapng");
const NULL_PCAP = path.join(SHARED_CAPTURES, "http2/suricata-verify__http2-continuation__input.pcap");

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-reader-"));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function tmp(name: string, content?: Buffer): string {
  const p = path.join(dir, name);
  if (content) fs.writeFileSync(p, content);
  return p;
}

function editcap(args: string[], out: string): string {
  wstool("editcap", [...args, out]);
  return out;
}

/** Our frames equal tshark's for this file, and there is at least one. */
function sameAsTshark(file: string): CaptureReader {
  const theirs = tsharkFrames(file);
  const { frames, reader } = ourFrames(file);
  assert.ok(theirs.length > 0, `tshark saw no frames in ${file}`);
  assert.deepEqual(frames, theirs);
  assert.equal(reader.stats.truncatedRecords, 0);
  assert.equal(reader.stats.corruptRecords, 0);
  return reader;
}

describe("CaptureReader", () => {
  it("reads every shared capture exactly as tshark does", () => {
    const files = sharedCaptures();
    assert.ok(files.length >= 12, `expected the shared captures in ${SHARED_CAPTURES}`);
    for (const f of files) sameAsTshark(f);
  });

  it("reads pcap variants: µs, ns, modified (Kuznetsov) and big-endian", () => {
    for (const src of [ETH_PCAP, NULL_PCAP]) {
      const base = path.basename(src);
      const us = editcap(["-F", "pcap", src], tmp(`${base}.us.pcap`));
      const ns = editcap(["-F", "nsecpcap", src], tmp(`${base}.ns.pcap`));
      const mod = editcap(["-F", "modpcap", src], tmp(`${base}.mod.pcap`));
      assert.equal(fs.readFileSync(mod).readUInt32LE(0), 0xa1b2cd34);
      for (const f of [us, ns, mod]) assert.equal(sameAsTshark(f).format, "pcap");
      for (const f of [us, ns]) {
        const be = tmp(`${path.basename(f)}.be.pcap`, pcapToBigEndian(fs.readFileSync(f)));
        assert.equal(fs.readFileSync(be).readUInt32BE(0) >>> 16, 0xa1b2);
        sameAsTshark(be);
      }
    }
  });

  it("reads pcapng variants: both byte orders, simple and obsolete packet blocks", () => {
    for (const src of [ETH_PCAP, NULL_PCAPNG]) {
      const base = path.basename(src);
      const ng = editcap(["-F", "pcapng", src], tmp(`${base}.ng.pcapng`));
      const be = tmp(`${base}.be.pcapng`, pcapngToBigEndian(fs.readFileSync(ng)));
      const pb = tmp(`${base}.pb.pcapng`, pcapngToPacketBlocks(fs.readFileSync(ng)));
      const spb = tmp(`${base}.spb.pcapng`, pcapngToSimpleBlocks(fs.readFileSync(ng)));
      for (const f of [ng, be, pb]) assert.equal(sameAsTshark(f).format, "pcapng");
      // SPBs have no timestamp: compare everything else, and our times must not go backwards.
      const theirs = tsharkFrames(spb).map((f) => ({ ...f, time: "" }));
      const ours = ourFrames(spb).frames.map((f) => ({ ...f, time: "" }));
      assert.deepEqual(ours, theirs);
    }
  });

  it("reads pcapng with several interfaces of different link types and timestamp resolutions", () => {
    const ns = editcap(["-F", "nsecpcap", ETH_PCAP], tmp("eth.ns.pcap"));
    const merged = tmp("merged.pcapng");
    wstool("mergecap", ["-F", "pcapng", "-w", merged, ns, NULL_PCAPNG, NULL_PCAP]);
    const r = sameAsTshark(merged);
    assert.equal(r.format, "pcapng");
    const links = new Set<number>();
    const rd = CaptureReader.open(merged);
    for (let p = rd.next(); p; p = rd.next()) links.add(p.linkType);
    rd.close();
    assert.deepEqual([...links].sort(), [0, 1]);
    // the merge holds both Ethernet (1) and NULL (0) streams: they all reassemble
    const { sink, streams } = collectingSink();
    CaptureStreams.open(merged, sink).run();
    assert.equal(streams.length, 3);
  });

  it("honours if_tsresol (decimal and binary) and if_tsoffset like tshark", () => {
    const ng = editcap(["-F", "pcapng", path.join(SHARED_CAPTURES, "kafka/deepflow__00-produce-v2.pcap")], tmp("k.pcapng"));
    const blocks = parsePcapng(fs.readFileSync(ng));
    const opt = (code: number, v: Buffer) => {
      const h = Buffer.alloc(4);
      h.writeUInt16LE(code, 0);
      h.writeUInt16LE(v.length, 2);
      return Buffer.concat([h, v, Buffer.alloc((4 - (v.length % 4)) % 4)]);
    };
    const offset = Buffer.alloc(8);
    offset.writeBigInt64LE(1000n);
    const variants: [string, Buffer[]][] = [
      ["bin20", [opt(9, Buffer.from([0x80 | 20]))]], // 2^-20 s units
      ["dec3", [opt(9, Buffer.from([3]))]], // ms units
      ["offset", [opt(9, Buffer.from([6])), opt(14, offset)]], // +1000 s
    ];
    const seen = new Set<string>();
    for (const [name, opts] of variants) {
      const out = blocks.map((b) => (b.type === 1 ? { type: 1, body: Buffer.concat([b.body.subarray(0, 8), ...opts, Buffer.alloc(4)]) } : b));
      const f = tmp(`ts-${name}.pcapng`, buildPcapng(out));
      sameAsTshark(f);
      seen.add(ourFrames(f).frames[0]!.time);
    }
    assert.equal(seen.size, 3, "the three resolutions give three different times");
  });

  it("reads several pcapng sections concatenated", () => {
    const a = fs.readFileSync(editcap(["-F", "pcapng", ETH_PCAP], tmp("s1.pcapng")));
    const b = fs.readFileSync(NULL_PCAPNG);
    const both = tmp("sections.pcapng", Buffer.concat([a, b]));
    const r = sameAsTshark(both);
    assert.equal(r.stats.sections, 2);
  });

  it("counts a truncated last record as a warning and keeps everything before it", () => {
    for (const src of [ETH_PCAP, NULL_PCAPNG]) {
      const whole = fs.readFileSync(src);
      const cut = tmp(`cut-${path.basename(src)}`, whole.subarray(0, whole.length - 37));
      // tshark exits non-zero on a cut file but prints the frames before the cut
      const t = spawnSync("tshark", ["-r", cut, "-o", "frame.generate_md5_hash:TRUE", "-T", "fields", "-E", "separator=,", "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.md5_hash"], { timeout: 60_000 });
      const theirs = t.stdout.toString().split("\n").filter(Boolean);
      const { frames, reader } = ourFrames(cut);
      assert.equal(frames.length, theirs.length);
      assert.equal(reader.stats.truncatedRecords, 1);
      assert.match(reader.warnings[0]!, /truncated/);
      // and reassembly of the cut file ends cleanly
      const { sink } = collectingSink();
      const stats = CaptureStreams.open(cut, sink).run();
      assert.equal(stats.reader.truncatedRecords, 1);
    }
  });

  it("reads frames corrupted at random (editcap -E) like tshark and reassembles them without failing", () => {
    for (const src of [ETH_PCAP, NULL_PCAPNG, path.join(SHARED_CAPTURES, "mysql/zeek__auth.pcap")]) {
      for (let i = 0; i < 5; i++) {
        const bad = editcap(["-E", "0.05", "-F", i % 2 ? "pcapng" : "pcap", src], tmp(`corrupt-${i}-${path.basename(src)}`));
        sameAsTshark(bad);
        const { sink } = collectingSink();
        const stats = CaptureStreams.open(bad, sink).run();
        assert.equal(stats.reader.packets, tsharkFrames(bad).length);
      }
    }
  });

  it("reads frames cut by the snap length (capLen < origLen)", () => {
    const snapped = editcap(["-s", "80", ETH_PCAP], tmp("snap.pcap"));
    sameAsTshark(snapped);
    const { frames } = ourFrames(snapped);
    assert.ok(frames.some((f) => f.capLen < f.len));
  });

  it("rejects inputs that are not captures with one clear line", () => {
    const cases: [string, Buffer, RegExp, string][] = [
      ["empty.pcap", Buffer.alloc(0), /empty file/, "not-capture"],
      ["text.pcap", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), /not a pcap or pcapng capture \(starts with text "GET \/ HT"\)/, "not-capture"],
      ["gz.pcap", zlib.gzipSync(Buffer.from("not a capture at all")), /not a pcap or pcapng capture/, "not-capture"],
      ["badgz.pcap", Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]), /gzip-compressed, but it does not decompress/, "corrupt"],
      ["short.pcap", fs.readFileSync(ETH_PCAP).subarray(0, 10), /truncated pcap file header/, "truncated"],
      ["short.pcapng", fs.readFileSync(NULL_PCAPNG).subarray(0, 20), /truncated pcapng section header/, "truncated"],
      ["tiny", Buffer.from([1, 2]), /too short/, "not-capture"],
    ];
    for (const [name, content, msg, code] of cases) {
      const f = tmp(name, content);
      assert.throws(
        () => CaptureReader.open(f),
        (e: unknown) => e instanceof CaptureError && e.code === code && msg.test(e.message) && !e.message.includes("\n") && e.message.startsWith(f),
        name,
      );
      // tshark refuses them too (it reads an empty or tiny file and a cut section header as zero
      // packets; we call those out)
      if (content.length > 16 && name !== "short.pcapng") assert.notEqual(spawnSync("tshark", ["-r", f, "-c", "1"], { timeout: 60_000 }).status, 0, `tshark accepted ${name}`);
    }
    assert.throws(() => CaptureReader.open(path.join(dir, "does-not-exist.pcap")), (e: unknown) => e instanceof CaptureError && e.code === "io" && /no such file/.test(e.message));
    assert.throws(() => CaptureReader.open(dir), (e: unknown) => e instanceof CaptureError && /directory/.test(e.message));
  });

  it("reads gzip-compressed captures like tshark", () => {
    sameAsTshark(tmp("c.pcap.gz", zlib.gzipSync(fs.readFileSync(ETH_PCAP))));
    sameAsTshark(tmp("c.pcapng.gz", zlib.gzipSync(fs.readFileSync(NULL_PCAPNG))));
  });

  it("reads through a window smaller than a record (window grows) and from memory", () => {
    const big = tmp("big.pcap", fs.readFileSync(ETH_PCAP));
    const r = CaptureReader.open(big, { bufferSize: 64 });
    let n = 0;
    for (let p = r.next(); p; p = r.next()) n++;
    r.close();
    const m = CaptureReader.fromBuffer(fs.readFileSync(ETH_PCAP));
    let k = 0;
    for (let p = m.next(); p; p = m.next()) k++;
    assert.equal(n, 49);
    assert.equal(k, 49);
    assert.equal(r.position, fs.statSync(big).size);
  });
});
