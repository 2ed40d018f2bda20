import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PcapngWriter, CaptureStreams, type TcpConnection } from "@wirescope/capture";
import { PcapngCapture, timeOrder, looksLikeTlsRecord } from "./pcapng-capture.js";
import { ProcessCache } from "./process-info.js";
import type { ConnRecord, DataRecord } from "./events.js";

const sock = (key: bigint, kind: "open" | "close", local: number, remote: number, role: number, tgid: number): ConnRecord => ({
  kind, connKey: key, tgid, tid: tgid, tsMono: 1n, cgroupId: 0n, family: 4, localAddress: "127.0.0.1", localPort: local,
  remoteAddress: "127.0.0.1", remotePort: remote, role, inferred: false, tls: false, tlsLibrary: "", fd: 5, comm: `p${tgid}`, sentBytes: 0n, recvBytes: 0n,
});
const dat = (key: bigint, dir: number, seq: number, text: string, ts: number, original = text.length): DataRecord => ({
  connKey: key, tgid: 1, tid: 1, tsMono: BigInt(ts), direction: dir, seq: BigInt(seq), originalLength: original,
  payload: Buffer.from(text), syscall: 2, fd: 5,
});

test("PcapngCapture: both sockets of a loopback connection become one stream; gaps stay gaps", () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ws-cap-")), "c.pcapng");
  const writer = PcapngWriter.toFile(file);
  const cap = new PcapngCapture(writer, new ProcessCache({ procRoot: "/nonexistent" }), (t) => t * 1000n + 1_700_000_000_000_000_000n);
  // client socket 1 (pid 100, port 40000) and server socket 2 (pid 200, port 80)
  cap.add({ conns: [sock(1n, "open", 40000, 80, 1, 100), sock(2n, "open", 80, 40000, 2, 200)], data: [] });
  cap.add({
    conns: [],
    data: [
      dat(1n, 1, 0, "GET / HTTP/1.1\r\n\r\n", 10),
      dat(2n, 2, 0, "GET / HTTP/1.1\r\n\r\n", 11), // the peer's view: ignored
      dat(1n, 2, 0, "HTTP/1.1 200 OK\r\n", 20, 30), // 13 bytes not copied
      dat(1n, 2, 50, "tail", 30), // 20 bytes never seen at all
    ],
  });
  cap.add({ conns: [sock(1n, "close", 40000, 80, 1, 100), sock(2n, "close", 80, 40000, 2, 200)], data: [] });
  cap.finish();
  writer.end();
  assert.equal(cap.stats.connections, 1);
  assert.equal(cap.stats.gapBytes, 33);

  const seen: { conn?: TcpConnection; data: Buffer[][]; gaps: number[] } = { data: [[], []], gaps: [0, 0] };
  CaptureStreams.open(file, {
    open: (c) => (seen.conn = c),
    data: (_c, dir, b) => void seen.data[dir].push(Buffer.from(b)),
    gap: (_c, dir, len) => void (seen.gaps[dir] += len),
    close: () => {},
  }).run();
  assert.equal(seen.conn?.portA, 40000);
  assert.equal(seen.conn?.portB, 80);
  assert.equal(seen.conn?.clientKnown, true);
  assert.equal(Buffer.concat(seen.data[0]).toString(), "GET / HTTP/1.1\r\n\r\n");
  assert.equal(Buffer.concat(seen.data[1]).toString(), "HTTP/1.1 200 OK\r\ntail");
  assert.equal(seen.gaps[1], 33);
});

test("timeOrder: time order across sockets, seq order within one direction", () => {
  const evs = [dat(1n, 1, 10, "b", 5), dat(2n, 1, 0, "x", 3), dat(1n, 1, 0, "a", 6), dat(1n, 2, 0, "r", 4)];
  assert.deepEqual(timeOrder(evs).map((e) => Buffer.from(e.payload).toString()), ["x", "r", "a", "b"]);
});

/** Reads a capture back: one entry per TCP connection, its bytes per direction and gaps. */
function readBack(file: string): { conn: TcpConnection; data: [string, string]; gaps: [number, number] }[] {
  const out: { conn: TcpConnection; data: [string, string]; gaps: [number, number] }[] = [];
  const byConn = new Map<TcpConnection, (typeof out)[number]>();
  CaptureStreams.open(file, {
    open: (c) => {
      const e = { conn: c, data: ["", ""] as [string, string], gaps: [0, 0] as [number, number] };
      byConn.set(c, e);
      out.push(e);
    },
    data: (c, dir, b) => void (byConn.get(c)!.data[dir] += Buffer.from(b).toString("latin1")),
    gap: (c, dir, len) => void (byConn.get(c)!.gaps[dir] += len),
    close: () => {},
  }).run();
  return out;
}

const tlsOpen = (c: ConnRecord, lib = "openssl"): ConnRecord => ({ ...c, tls: true, tlsLibrary: lib });
const HELLO = "\x16\x03\x01\x00\x05hello";
const APPDATA = "\x17\x03\x03\x00\x04abcd";

function plaintextCapture(opts: Partial<import("./pcapng-capture.js").CaptureOptions> = {}) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ws-cap-")), "p.pcapng");
  const writer = PcapngWriter.toFile(file);
  const cap = new PcapngCapture(writer, new ProcessCache({ procRoot: "/nonexistent" }), (t) => t * 1000n + 1_700_000_000_000_000_000n, { plaintext: true, ...opts });
  return { file, writer, cap };
}

test("PcapngCapture --plaintext: the handshake ciphertext is held back and left out, the plaintext is the stream", () => {
  const { file, writer, cap } = plaintextCapture();
  const client = sock(1n, "open", 40000, 443, 1, 100);
  cap.add({ conns: [client], data: [dat(1n, 1, 0, HELLO, 10), dat(1n, 2, 0, HELLO + HELLO, 11)] });
  cap.add({ conns: [tlsOpen(client)], data: [dat(1n, 1, 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 20), dat(1n, 2, 0, "settings", 21)] });
  cap.add({ conns: [{ ...client, kind: "close" }], data: [] });
  cap.finish();
  writer.end();
  const got = readBack(file);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.data, ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "settings"]);
  assert.equal(cap.stats.cipherBytesOmitted, 30);
  assert.equal(cap.stats.tlsStreams, 1);
  assert.deepEqual([...cap.http2Ports], [443]);
});

test("PcapngCapture --plaintext: the peer's plaintext replaces an owner that only has ciphertext", () => {
  const { file, writer, cap } = plaintextCapture();
  const client = sock(1n, "open", 40000, 443, 1, 100);
  const server = sock(2n, "open", 443, 40000, 2, 200);
  cap.add({ conns: [client, server], data: [dat(1n, 1, 0, HELLO, 10), dat(2n, 2, 0, HELLO, 10)] });
  // only the server end is read from its library (the client's library is not supported)
  cap.add({ conns: [tlsOpen(server, "go")], data: [dat(2n, 2, 0, "GET / HTTP/1.1\r\n\r\n", 20), dat(1n, 1, 6, APPDATA, 20), dat(2n, 1, 0, "HTTP/1.1 200 OK\r\n\r\n", 21)] });
  cap.add({ conns: [{ ...client, kind: "close" }, { ...server, kind: "close" }], data: [] });
  writer.end();
  const got = readBack(file);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.conn.portB, 443, "the client is still the client");
  assert.deepEqual(got[0]!.data, ["GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"]);
});

test("PcapngCapture --plaintext: ciphertext whose plaintext never comes is written as it is, and counted", () => {
  const { file, writer, cap } = plaintextCapture({ holdBytes: 20 });
  const a = sock(1n, "open", 40000, 443, 1, 100);
  const b = sock(3n, "open", 40001, 443, 1, 100);
  const c = sock(5n, "open", 40002, 443, 1, 100);
  cap.add({ conns: [a, b, c], data: [dat(1n, 1, 0, HELLO, 10), dat(3n, 1, 0, HELLO, 10), dat(5n, 1, 0, HELLO, 10)] });
  // a: over holdBytes; b: closed while held; c: held until the capture stops
  cap.add({ conns: [{ ...b, kind: "close" }], data: [dat(1n, 2, 0, HELLO + HELLO, 12)] });
  cap.finish();
  writer.end();
  const got = readBack(file);
  assert.equal(cap.stats.tlsUndecrypted, 3);
  assert.equal(got.length, 3);
  assert.deepEqual(got.find((g) => g.conn.portA === 40000)!.data, [HELLO, HELLO + HELLO]);
  assert.deepEqual(got.find((g) => g.conn.portA === 40001)!.data, [HELLO, ""]);
  assert.deepEqual(got.find((g) => g.conn.portA === 40002)!.data, [HELLO, ""]);
});

test("PcapngCapture --plaintext: held streams expire after holdMs of event time; the total held is bounded", () => {
  const { writer, cap } = plaintextCapture({ holdMs: 1, holdTotalBytes: 1000 });
  const a = sock(1n, "open", 40000, 443, 1, 100);
  cap.add({ conns: [a], data: [dat(1n, 1, 0, HELLO, 0)] });
  assert.equal(cap.stats.tlsUndecrypted, 0);
  const b = sock(3n, "open", 40001, 443, 1, 100);
  cap.add({ conns: [b], data: [dat(3n, 1, 0, HELLO, 2_000_000)] }); // 2 ms later: a expires, b stays
  assert.equal(cap.stats.tlsUndecrypted, 1);
  // 200 streams of 10 bytes each: over 1000 bytes held in all, each new one is written at once
  const many = Array.from({ length: 200 }, (_, i) => sock(BigInt(10 + i), "open", 41000 + i, 443, 1, 100));
  cap.add({ conns: many, data: many.map((m) => dat(m.connKey, 1, 0, HELLO, 2_000_001)) });
  assert.ok(cap.stats.tlsUndecrypted >= 200 - 1000 / HELLO.length, `bounded: ${cap.stats.tlsUndecrypted}`);
  cap.finish();
  writer.end();
});

test("PcapngCapture --plaintext: cleartext is written at once; an in-band upgrade continues the stream, plaintext after ciphertext starts a new one", () => {
  const { file, writer, cap } = plaintextCapture();
  // MySQL-like: cleartext greeting and SSL request, then TLS
  const m = sock(1n, "open", 40000, 3306, 1, 100);
  cap.add({ conns: [m], data: [dat(1n, 2, 0, "greeting", 10), dat(1n, 1, 0, "sslrequest", 11)] });
  cap.add({ conns: [tlsOpen(m)], data: [dat(1n, 1, 0, "login", 20), dat(1n, 2, 0, "ok", 21)] });
  // a connection that existed before the capture (its bytes are ciphertext mid-way), then linked
  const old: ConnRecord = { ...sock(3n, "open", 40001, 443, 1, 100), inferred: true };
  cap.add({ conns: [old], data: [dat(3n, 1, 100, "\x00\x01garbage", 30)] });
  cap.add({ conns: [tlsOpen(old)], data: [dat(3n, 1, 0, "GET /late HTTP/1.1\r\n\r\n", 40)] });
  cap.finish();
  writer.end();
  const got = readBack(file);
  assert.deepEqual(got.find((g) => g.conn.portA === 40000)!.data, ["sslrequestlogin", "greetingok"]);
  const late = got.filter((g) => g.conn.portA === 40001);
  assert.equal(late.length, 2, "the ciphertext stream ended, the plaintext is a new one on the same ports");
  assert.equal(late[1]!.data[0], "GET /late HTTP/1.1\r\n\r\n");
  assert.equal(cap.stats.tlsRestarted, 1);
  assert.equal(cap.stats.tlsStreams, 2);
});

test("PcapngCapture without --plaintext: a socket's second open does not take its stream away", () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ws-cap-")), "c.pcapng");
  const writer = PcapngWriter.toFile(file);
  const cap = new PcapngCapture(writer, new ProcessCache({ procRoot: "/nonexistent" }), (t) => t);
  const s = sock(1n, "open", 40000, 80, 1, 100);
  cap.add({ conns: [s], data: [dat(1n, 1, 0, "abc", 10)] });
  cap.add({ conns: [s], data: [dat(1n, 1, 0, "def", 20)] });
  cap.finish();
  writer.end();
  assert.deepEqual(readBack(file)[0]!.data, ["abcdef", ""]);
});

test("looksLikeTlsRecord", () => {
  assert.equal(looksLikeTlsRecord(Buffer.from(HELLO, "latin1")), true);
  assert.equal(looksLikeTlsRecord(Buffer.from(APPDATA, "latin1")), true);
  assert.equal(looksLikeTlsRecord(Buffer.from("GET / HTTP/1.1")), false);
  assert.equal(looksLikeTlsRecord(Buffer.from([0x16, 0x03])), false);
  assert.equal(looksLikeTlsRecord(Buffer.from([0x18, 0x03, 0x03])), false);
});
