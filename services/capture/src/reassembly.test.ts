// TcpReassembler against tshark's own reassembly ("follow tcp"): on every shared capture, on
// real captures with packets removed or reordered, and on crafted segment sequences (out of
// order, retransmitted, overlapping, missing, wrapping around 2^32, without SYN, port reuse).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CaptureReader } from "./reader.js";
import { decodeTcp, newTcpSegment, Verdict } from "./packet.js";
import { TcpReassembler } from "./reassembly.js";
import { CaptureStreams } from "./capture-streams.js";
import {
  SHARED_CAPTURES,
  buildPcap,
  collectingSink,
  ipv4Frame,
  parsePcap,
  pcapOf,
  reassembleFile,
  sharedCaptures,
  stripMissing,
  tsharkFollow,
  wstool,
  type CollectedStream,
  type FollowedStream,
  type SegmentSpec,
} from "./test-support/pcap.js";

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-reasm-"));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function tmp(name: string, content: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
}

/**
 * Pairs our connections with tshark's streams (same endpoints, in order) and checks that every
 * stream tshark shows with payload is ours too, same orientation (a = node 0), same bytes per
 * direction. `markers`: compare tshark's "[N bytes missing]" markers with our gaps as well.
 */
function agreeWithTshark(file: string, markers: boolean, orientation = true): { ours: CollectedStream[]; theirs: FollowedStream[] } {
  const { streams: ours } = reassembleFile(file);
  const theirs = tsharkFollow(file);
  const used = new Set<CollectedStream>();
  let compared = 0;
  for (const t of theirs) {
    if (!t.data[0].length && !t.data[1].length) continue; // tshark also lists payload-less conversations
    const mine = ours.find((o) => o && !used.has(o) && [o.a, o.b].sort().join() === [t.node0, t.node1].sort().join());
    assert.ok(mine, `${path.basename(file)}: tshark stream ${t.stream} (${t.node0} ↔ ${t.node1}) missing from ours`);
    used.add(mine);
    if (orientation) assert.equal(mine.a, t.node0, `${path.basename(file)} stream ${t.stream}: orientation`);
    for (const d of [0, 1] as const) {
      const want = markers ? t.data[d] : stripMissing(t.data[d]);
      const md = mine.a === t.node0 ? d : 1 - d;
      const got = markers ? mine.data[md]! : mine.bytes[md]!;
      assert.ok(want.equals(got), `${path.basename(file)} stream ${t.stream} dir ${d}: tshark ${want.length} bytes, ours ${got.length}\n tshark: ${want.toString("latin1").slice(0, 200)}\n ours:   ${got.toString("latin1").slice(0, 200)}`);
    }
    compared++;
  }
  assert.ok(compared > 0, `${file}: no stream compared`);
  // and nothing of ours carries payload that tshark does not show
  for (const o of ours) if (o && !used.has(o)) assert.equal(o.bytes[0].length + o.bytes[1].length, 0, `${file}: extra stream ${o.a} ↔ ${o.b}`);
  return { ours, theirs };
}

const C = "10.0.0.1:40000";
const S = "10.0.0.2:8080";

/** A crafted conversation: handshake with the given ISNs, then `body`, as a pcap file. */
function crafted(name: string, body: SegmentSpec[], opts: { isn?: [number, number]; handshake?: boolean } = {}): string {
  const [ci, si] = opts.isn ?? [1000, 5000];
  const hs: SegmentSpec[] =
    opts.handshake === false
      ? []
      : [
          { src: C, dst: S, seq: ci, flags: "S" },
          { src: S, dst: C, seq: si, ack: ci + 1, flags: "S" },
          { src: C, dst: S, seq: ci + 1, ack: si + 1, flags: "" },
        ];
  return tmp(`${name}.pcap`, pcapOf([...hs, ...body].map(ipv4Frame)));
}

describe("TcpReassembler", () => {
  it("gives the same byte streams as tshark on every shared capture", () => {
    for (const f of sharedCaptures()) agreeWithTshark(f, false);
  });

  it("passes a removed segment on as a gap where tshark marks the missing bytes", () => {
    const src = path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap");
    // frame 8 carries response data, frame 20 a request, both in the middle of the connection
    const cut = path.join(dir, "cut.pcap");
    wstool("editcap", [src, cut, "8", "20"]);
    const { ours } = agreeWithTshark(cut, false);
    // tshark marks the missing response bytes; the missing request shows only in the client's
    // later bare ACKs (their sequence number jumps), which tshark does not mark and we do
    assert.deepEqual(ours[0]!.gaps, [[660], [1380]]);
    const t = tsharkFollow(cut)[0]!;
    assert.ok(t.data[1].equals(ours[0]!.data[1]));
  });

  it("reorders segments of a real capture that arrive out of order", () => {
    const { header, records } = parsePcap(fs.readFileSync(path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap")));
    const r = [...records];
    // move three response segments later than their successors (keeping timestamps monotonic)
    for (const i of [8, 20, 30]) {
      const a = r[i]!;
      const b = r[i + 1]!;
      r[i] = { ...b, sec: a.sec, frac: a.frac };
      r[i + 1] = { ...a, sec: b.sec, frac: b.frac };
    }
    const f = tmp("reordered.pcap", buildPcap(header, r));
    const { ours } = agreeWithTshark(f, true);
    assert.equal(ours[0]!.gaps[0].length + ours[0]!.gaps[1].length, 0);
    assert.ok(reassembleFile(f).stats.reassembly.outOfOrderSegments >= 1);
  });

  it("handles out-of-order, retransmitted and overlapping segments like tshark", () => {
    const req = "GET /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\nHost: x\r\n\r\n";
    const part = (a: number, b?: number) => req.slice(a, b);
    const f = crafted("ooo", [
      { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: part(0, 10) },
      { src: C, dst: S, seq: 1021, ack: 5001, flags: "P", payload: part(20, 30) }, // ahead of a hole
      { src: C, dst: S, seq: 1011, ack: 5001, flags: "P", payload: part(10, 20) }, // fills it
      { src: C, dst: S, seq: 1011, ack: 5001, flags: "P", payload: part(10, 20) }, // retransmission
      { src: C, dst: S, seq: 1026, ack: 5001, flags: "P", payload: part(25, 40) }, // overlaps 5 bytes
      { src: C, dst: S, seq: 1041, ack: 5001, flags: "P", payload: part(40) },
      { src: S, dst: C, seq: 5001, ack: 1001 + req.length, flags: "P", payload: "HTTP/1.1 200 OK\r\n\r\n" },
      { src: C, dst: S, seq: 1001 + req.length, ack: 5020, flags: "F" },
      { src: S, dst: C, seq: 5020, ack: 1002 + req.length, flags: "F" },
    ]);
    const { ours } = agreeWithTshark(f, true);
    const s = ours[0]!;
    assert.equal(s.bytes[0].toString(), req);
    assert.equal(s.bytes[1].toString(), "HTTP/1.1 200 OK\r\n\r\n");
    assert.equal(s.closeReason, "fin");
    assert.equal(s.conn.clientKnown, true);
    const st = reassembleFile(f).stats.reassembly;
    assert.equal(st.duplicateBytes, 15);
    assert.equal(st.outOfOrderSegments, 1);
  });

  it("turns a segment the receiver acknowledged but the capture missed into a gap at once", () => {
    const f = crafted("acked-hole", [
      { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "aaaa" },
      // 1005..1009 "bbbb" never captured
      { src: C, dst: S, seq: 1009, ack: 5001, flags: "P", payload: "cccc" },
      { src: S, dst: C, seq: 5001, ack: 1013, flags: "P", payload: "ok" },
      { src: C, dst: S, seq: 1013, ack: 5003, flags: "P", payload: "dddd" },
    ]);
    agreeWithTshark(f, true);
    const events: string[] = [];
    const ra = new TcpReassembler({
      open: () => events.push("open"),
      data: (_c, d, b) => events.push(`data${d}:${b.toString()}`),
      gap: (_c, d, n) => events.push(`gap${d}:${n}`),
      close: (_c, r) => events.push(`close:${r}`),
    });
    feed(f, ra);
    // the gap comes when the server's ACK proves the bytes were sent, not at the end
    assert.deepEqual(events.slice(0, 6), ["open", "data0:aaaa", "gap0:4", "data0:cccc", "data1:ok", "data0:dddd"]);
    ra.finish();
    assert.equal(events.at(-1), "close:eof");
  });

  it("gives up a hole after the bounded wait, and at the end of the capture", () => {
    const f = crafted("unacked-hole", [
      { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "aaaa" },
      { src: C, dst: S, seq: 1009, ack: 5001, flags: "P", payload: "cccc" },
    ]);
    // tshark never shows bytes behind a hole nobody acknowledged; we give them at the end
    const end = reassembleFile(f).streams[0]!;
    assert.equal(end.data[0].toString("latin1"), "aaaa[4 bytes missing in capture file]\0cccc");
    assert.equal(end.closeReason, "eof");
    // Same two segments, then 5 s of unrelated traffic: the hole becomes a gap after maxWaitNs.
    const frames = [
      { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "aaaa" },
      { src: C, dst: S, seq: 1009, ack: 5001, flags: "P", payload: "cccc" },
    ].map(ipv4Frame);
    const other = (i: number) => ipv4Frame({ src: "10.0.0.3:1234", dst: "10.0.0.4:80", seq: 100 + i, ack: 1, flags: "P", payload: "x" });
    const pcap = pcapOf([...frames, ...Array.from({ length: 5000 }, (_, i) => other(i))]);
    const events: string[] = [];
    const ra = new TcpReassembler(
      {
        open: (c) => events.push(`open${c.id}`),
        data: (c, d, b) => c.id === 0 && events.push(`data${d}:${b.toString()}`),
        gap: (c, d, n) => events.push(`gap${c.id}.${d}:${n}`),
        close: (c, r) => events.push(`close${c.id}:${r}`),
      },
      { maxWaitNs: 2e9 },
    );
    const seg = newTcpSegment();
    const reader = CaptureReader.fromBuffer(pcap);
    let n = 0;
    let gapAt = -1;
    for (let p = reader.next(); p; p = reader.next(), n++) {
      assert.equal(decodeTcp(p, seg), Verdict.OK);
      ra.push(seg, p.tsSec, p.tsNsec);
      if (gapAt < 0 && events.includes("gap0.0:4")) gapAt = n;
    }
    // frames are 1 ms apart: the hole opened at frame 1 and waits 2 s (+ up to 1 s sweep)
    assert.ok(gapAt >= 2000 && gapAt <= 3200, `gap given up at frame ${gapAt}`);
    assert.deepEqual(events.filter((e) => e.startsWith("data")), ["data0:aaaa", "data0:cccc"]);
  });

  it("bounds the bytes waiting behind a hole", () => {
    const body: SegmentSpec[] = [{ src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "a" }];
    for (let i = 0; i < 40; i++) body.push({ src: C, dst: S, seq: 1102 + i * 100, ack: 5001, flags: "P", payload: Buffer.alloc(100, 65 + (i % 26)) });
    const f = crafted("overflow", body);
    const { sink, streams } = collectingSink();
    const ra = new TcpReassembler(sink, { maxPendingBytes: 1000 });
    feed(f, ra);
    assert.equal(ra.stats.pendingOverflows, 1);
    assert.deepEqual(streams[0]!.gaps[0], [100]);
    ra.finish();
    assert.equal(streams[0]!.bytes[0].length, 1 + 40 * 100);
  });

  it("follows sequence numbers across the 2^32 wrap", () => {
    const isn = 0xffffffff - 20;
    const body: SegmentSpec[] = [];
    let seq = isn + 1;
    const chunks = ["0123456789", "abcdefghij", "ABCDEFGHIJ", "klmnopqrst"];
    for (const c of chunks) {
      body.push({ src: C, dst: S, seq: seq >>> 0, ack: 5001, flags: "P", payload: c });
      seq += c.length;
    }
    // and one out of order across the wrap
    const last = { src: C, dst: S, seq: (seq + 5) >>> 0, ack: 5001, flags: "P", payload: "UVWXY" };
    const fill = { src: C, dst: S, seq: seq >>> 0, ack: 5001, flags: "P", payload: "zzzzz" };
    const f = crafted("wrap", [...body, last, fill], { isn: [isn, 5000] });
    const { ours } = agreeWithTshark(f, true);
    assert.equal(ours[0]!.bytes[0].toString(), chunks.join("") + "zzzzzUVWXY");
  });

  it("leaves the orientation open without a SYN and takes it from a lone SYN-ACK", () => {
    const mid = crafted(
      "midway",
      [
        { src: S, dst: C, seq: 77777, ack: 1234, flags: "P", payload: "HTTP/1.1 200 OK\r\n\r\n" },
        { src: C, dst: S, seq: 1234, ack: 77796, flags: "P", payload: "GET / HTTP/1.1\r\n\r\n" },
      ],
      { handshake: false },
    );
    const a = agreeWithTshark(mid, true).ours[0]!;
    assert.equal(a.conn.clientKnown, false);
    assert.equal(a.a, S); // the first sender goes first
    const synAck = tmp(
      "synack.pcap",
      pcapOf(
        [
          { src: S, dst: C, seq: 5000, ack: 1001, flags: "S" },
          { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "GET / HTTP/1.1\r\n\r\n" },
        ].map(ipv4Frame),
      ),
    );
    // tshark's node 0 is the first sender (the server here): we know better from the SYN-ACK
    const b = agreeWithTshark(synAck, true, false).ours[0]!;
    assert.equal(b.conn.clientKnown, true);
    assert.equal(b.a, C);
    assert.equal(b.bytes[0].toString(), "GET / HTTP/1.1\r\n\r\n");
  });

  it("ignores bare ACKs of unknown connections and starts a new connection when a port is reused", () => {
    const f = crafted("reuse", [
      { src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "first" },
      { src: C, dst: S, seq: 1006, ack: 5001, flags: "F" },
      { src: S, dst: C, seq: 5001, ack: 1007, flags: "F" },
      { src: C, dst: S, seq: 1007, ack: 5002, flags: "" },
      { src: C, dst: S, seq: 9000, flags: "S" },
      { src: S, dst: C, seq: 3000, ack: 9001, flags: "S" },
      { src: C, dst: S, seq: 9001, ack: 3001, flags: "P", payload: "second" },
      { src: C, dst: S, seq: 9007, ack: 3001, flags: "R" },
      { src: "10.9.9.9:1", dst: "10.9.9.8:2", seq: 1, ack: 1, flags: "" },
    ]);
    const { ours } = agreeWithTshark(f, true);
    assert.equal(ours.length, 2);
    assert.equal(ours[0]!.bytes[0].toString(), "first");
    assert.equal(ours[0]!.closeReason, "fin");
    assert.equal(ours[1]!.bytes[0].toString(), "second");
    assert.equal(ours[1]!.closeReason, "rst");
  });

  it("closes a connection that stays silent longer than idleNs", () => {
    const frames = [ipv4Frame({ src: C, dst: S, seq: 1001, ack: 5001, flags: "P", payload: "quiet" })];
    // then 3 minutes of another connection, one packet per second
    const other = (i: number) => ipv4Frame({ src: "10.0.0.3:1234", dst: "10.0.0.4:80", seq: 100 + i, ack: 1, flags: "P", payload: "x" });
    const { header, records } = parsePcap(pcapOf([...frames, ...Array.from({ length: 180 }, (_, i) => other(i))]));
    const spaced = records.map((r, i) => ({ ...r, sec: 1_700_000_000 + i, frac: 0 }));
    const events: string[] = [];
    const ra = new TcpReassembler(
      { open() {}, data() {}, gap() {}, close: (c, r) => events.push(`${c.id}:${r}`) },
      { idleNs: 120e9 },
    );
    const seg = newTcpSegment();
    const reader = CaptureReader.fromBuffer(buildPcap(header, spaced));
    let closedAt = -1;
    for (let p = reader.next(), i = 0; p; p = reader.next(), i++) {
      decodeTcp(p, seg);
      ra.push(seg, p.tsSec, p.tsNsec);
      if (closedAt < 0 && events.includes("0:idle")) closedAt = i;
    }
    assert.ok(closedAt > 120 && closedAt <= 181, `closed at ${closedAt}`);
    ra.finish();
    assert.deepEqual(events, ["0:idle", "1:eof"]);
  });

  it("splits connections between shards: disjoint, and together all of them", () => {
    const f = path.join(SHARED_CAPTURES, "mysql/zeek__auth.pcap");
    const all = reassembleFile(f).streams.map((s) => `${s.a} ${s.b} ${s.bytes[0].toString("hex")} ${s.bytes[1].toString("hex")}`);
    const parts: string[][] = [];
    for (let index = 0; index < 3; index++) {
      const { sink, streams } = collectingSink();
      new CaptureStreams(CaptureReader.open(f), sink, { shard: { index, count: 3 } }).run();
      parts.push(streams.map((s) => `${s.a} ${s.b} ${s.bytes[0].toString("hex")} ${s.bytes[1].toString("hex")}`));
    }
    assert.ok(parts.filter((p) => p.length > 0).length >= 2, "13 connections land in more than one shard");
    assert.deepEqual(parts.flat().sort(), [...all].sort());
    assert.throws(() => new TcpReassembler(collectingSink().sink, { shard: { index: 3, count: 3 } }), /bad shard/);
  });

  it("passes payload the snap length cut on as a gap after the captured part", () => {
    const src = path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap");
    const snapped = path.join(dir, "snap.pcap");
    wstool("editcap", ["-s", "200", src, snapped]);
    const { ours } = agreeWithTshark(snapped, false);
    const s = ours[0]!;
    const whole = reassembleFile(src).streams[0]!;
    // captured bytes + gaps account for every byte of the full stream
    for (const d of [0, 1] as const) assert.equal(s.bytes[d].length + s.gaps[d].reduce((x, y) => x + y, 0), whole.bytes[d].length);
    assert.ok(s.gaps[1].length > 0);
  });
});

function feed(file: string, ra: TcpReassembler): void {
  const r = CaptureReader.open(file);
  const seg = newTcpSegment();
  for (let p = r.next(); p; p = r.next()) if (decodeTcp(p, seg) === Verdict.OK) ra.push(seg, p.tsSec, p.tsNsec);
  r.close();
}
