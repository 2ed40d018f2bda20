import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBatch } from "./decode.js";
import { eventRecord, frameRecord } from "./test-support/ring-records.js";
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_CONN_F_INFERRED, WS_CONN_F_SHED, WS_SAMPLE_ONE, SHED_REASONS } from "./gen/layout.js";

/** A record of this file's process (tgid 1234, tid 1240, at 99 ns). */
const rec = (type: number, key: bigint, size: number) => eventRecord(type, key, size, { tgid: 1234, tid: 1240, tsNs: 99n });

function dataRec(key: bigint, seq: bigint, payload: string, original = payload.length): Buffer {
  const b = rec(WS_EV_DATA, key, DATA.headerSize + payload.length);
  b.writeBigUInt64LE(seq, DATA.seq);
  b.writeUInt32LE(original, DATA.original_length);
  b.writeUInt32LE(payload.length, DATA.len);
  b[DATA.direction] = 1;
  b[DATA.syscall] = 2;
  b.writeUInt32LE(7, DATA.fd);
  b.write(payload, DATA.payload, "latin1");
  return b;
}

function connRec(type: number, key: bigint, v6 = false): Buffer {
  const b = rec(type, key, CONN.size);
  b.writeUInt16LE(v6 ? 10 : 2, CONN.family);
  if (v6) {
    b[CONN.laddr + 15] = 1; // ::1
    Buffer.from("20010db8000000000000000000000001", "hex").copy(b, CONN.raddr);
  } else {
    Buffer.from([127, 0, 0, 1]).copy(b, CONN.laddr);
    Buffer.from([10, 1, 2, 3]).copy(b, CONN.raddr);
  }
  b.writeUInt16LE(40000, CONN.lport);
  b.writeUInt16LE(8080, CONN.rport);
  b[CONN.role] = 1;
  b[CONN.flags] = WS_CONN_F_INFERRED;
  b.writeUInt32LE(7, CONN.fd);
  b.writeBigUInt64LE(10n, CONN.sent_bytes);
  b.write("curl", CONN.comm, "latin1");
  b.writeUInt16LE(WS_SAMPLE_ONE / 4, CONN.sample_level);
  return b;
}

test("decodeBatch: an open's observed fraction, a close's shed reason", () => {
  const shedClose = connRec(WS_EV_CLOSE, 6n);
  shedClose[CONN.flags] |= WS_CONN_F_SHED;
  shedClose[CONN.shed] = SHED_REASONS.indexOf("conn_flood");
  const b = decodeBatch(Buffer.concat([frameRecord(connRec(WS_EV_OPEN, 6n)), frameRecord(shedClose), frameRecord(connRec(WS_EV_CLOSE, 7n))]), { records: 0, errors: 0 });
  assert.equal(b.conns[0]!.observedFraction, 0.25);
  assert.equal(b.conns[0]!.shed, undefined);
  assert.equal(b.conns[1]!.shed, "conn_flood");
  assert.equal(b.conns[1]!.observedFraction, undefined);
  assert.equal(b.conns[2]!.shed, undefined, "an ordinary close");
});

test("decodeBatch: data, open and close records with their fields", () => {
  const buf = Buffer.concat([frameRecord(connRec(WS_EV_OPEN, 5n)), frameRecord(dataRec(5n, 0n, "GET / HTTP/1.1\r\n", 100)), frameRecord(connRec(WS_EV_CLOSE, 5n, true))]);
  const stats = { records: 0, errors: 0 };
  const b = decodeBatch(buf, stats);
  assert.equal(stats.records, 3);
  assert.equal(stats.errors, 0);
  assert.equal(b.data.length, 1);
  const d = b.data[0];
  assert.equal(d.connKey, 5n);
  assert.equal(d.tgid, 1234);
  assert.equal(d.tid, 1240);
  assert.equal(d.tsMono, 99n);
  assert.equal(d.direction, 1);
  assert.equal(d.originalLength, 100);
  assert.equal(Buffer.from(d.payload).toString(), "GET / HTTP/1.1\r\n");
  const [open, close] = b.conns;
  assert.equal(open.kind, "open");
  assert.equal(open.localAddress, "127.0.0.1");
  assert.equal(open.remoteAddress, "10.1.2.3");
  assert.equal(open.localPort, 40000);
  assert.equal(open.remotePort, 8080);
  assert.equal(open.role, 1);
  assert.equal(open.inferred, true);
  assert.equal(open.comm, "curl");
  assert.equal(close.kind, "close");
  assert.equal(close.localAddress, "::1");
  assert.equal(close.remoteAddress, "2001:db8::1");
  assert.equal(close.sentBytes, 10n);
});

test("decodeBatch: a truncated or lying record is counted and stops the batch, never throws", () => {
  const good = frameRecord(dataRec(1n, 0n, "abc"));
  const stats = { records: 0, errors: 0 };
  // length field larger than what is left
  const lying = Buffer.from(good);
  lying.writeUInt32LE(10_000, 0);
  assert.equal(decodeBatch(Buffer.concat([good, lying]), stats).data.length, 1);
  assert.equal(stats.errors, 1);
  // payload length larger than the record
  const rec = dataRec(1n, 0n, "abc");
  rec.writeUInt32LE(50, DATA.len);
  decodeBatch(frameRecord(rec), stats);
  assert.equal(stats.errors, 2);
  // unknown type: skipped, the next record still decodes
  const unk = dataRec(2n, 0n, "x");
  unk.writeUInt32LE(77, HDR.type);
  const out = decodeBatch(Buffer.concat([frameRecord(unk), good]), stats);
  assert.equal(stats.errors, 3);
  assert.equal(out.data.length, 1);
  // random bytes
  for (let i = 0; i < 200; i++) decodeBatch(Buffer.from(Array.from({ length: i }, () => (Math.random() * 256) | 0)), stats);
});

test("decodeBatch: both ends IPv4-mapped (a dual-stack server's socket) are reported as IPv4", () => {
  const r = connRec(WS_EV_OPEN, 9n, true);
  Buffer.from("00000000000000000000ffff7f000001", "hex").copy(r, CONN.laddr);
  Buffer.from("00000000000000000000ffff0a000002", "hex").copy(r, CONN.raddr);
  const c = decodeBatch(frameRecord(r)).conns[0];
  assert.equal(c.family, 4);
  assert.equal(c.localAddress, "127.0.0.1");
  assert.equal(c.remoteAddress, "10.0.0.2");
});

