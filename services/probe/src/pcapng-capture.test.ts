import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PcapngWriter, CaptureStreams, type TcpConnection } from "@wirescope/common/pcap/index";
import { PcapngCapture, timeOrder } from "./pcapng-capture.js";
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
