// PcapngWriter, checked by tshark: the file opens, every stream follows back to the bytes written
// (gaps as tshark's missing-bytes markers), HTTP decodes, checksums verify, comments show; and by
// our own reader (round trip).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PcapngWriter, parseAddress } from "./pcapng-writer.js";
import { CaptureReader } from "./reader.js";
import { reassembleFile, tshark, tsharkFollow } from "./test-support/pcap.js";

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-writer-"));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = 1_763_000_000_123_456_789n;
const req = (p: string) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: example.test\r\nAuthorization: x\r\n\r\n`);
const resp = (body: string) => Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);

/** Writes three connections; returns what each direction should follow back to. */
function writeSample(file: string, link: "ethernet" | "raw", v6: boolean) {
  const w = PcapngWriter.toFile(file, { link, mss: 536 });
  const [c, s] = v6 ? ["fd00::10", "fd00::20"] : ["192.0.2.10", "192.0.2.20"];
  const big = "x".repeat(5000);
  const c1 = w.openConnection({ address: c, port: 50000 }, { address: s, port: 8080 }, T0, { comment: "connect 1" });
  w.data(c1, 0, req("/one"), T0 + 1000n, "request one");
  w.data(c1, 1, resp(big), T0 + 2000n, "response one");
  w.data(c1, 0, req("/two"), T0 + 3000n);
  w.data(c1, 1, resp("two"), T0 + 4000n);
  w.close(c1, T0 + 5000n);
  // a connection seen mid-way, with a gap in the response direction
  const c2 = w.openConnection({ address: c, port: 50001 }, { address: s, port: 8080 }, T0 + 6000n, { handshake: false, isn: [0xfffffff0, 7] });
  w.data(c2, 0, req("/three"), T0 + 7000n);
  w.data(c2, 1, resp("three"), T0 + 7500n);
  w.data(c2, 0, req("/four"), T0 + 7600n);
  w.gap(c2, 1, 1234);
  w.data(c2, 1, resp("four"), T0 + 8000n, "after a gap");
  w.close(c2, T0 + 9000n, { rst: true, dir: 1 });
  // an IPv4-mapped address paired with IPv4 is written as IPv4
  const c3 = v6 ? undefined : w.openConnection({ address: "::ffff:192.0.2.30", port: 50002 }, { address: "192.0.2.20", port: 9090 }, T0 + 10_000n);
  if (c3) w.data(c3, 0, Buffer.from("ping\r\n"), T0 + 11_000n);
  w.end();
  const gapMark = Buffer.from("[1234 bytes missing in capture file]\0", "latin1");
  return [
    [Buffer.concat([req("/one"), req("/two")]), Buffer.concat([resp(big), resp("two")])],
    [Buffer.concat([req("/three"), req("/four")]), Buffer.concat([resp("three"), gapMark, resp("four")])],
    ...(c3 ? [[Buffer.from("ping\r\n"), Buffer.alloc(0)]] : []),
  ];
}

describe("PcapngWriter", () => {
  for (const [link, v6] of [
    ["ethernet", false],
    ["ethernet", true],
    ["raw", false],
    ["raw", true],
  ] as const) {
    it(`writes ${link} ${v6 ? "IPv6" : "IPv4"} captures that tshark follows, decodes and checks`, () => {
      const file = path.join(dir, `${link}-${v6 ? 6 : 4}.pcapng`);
      const want = writeSample(file, link, v6);
      const follow = tsharkFollow(file);
      assert.equal(follow.length, want.length);
      follow.forEach((f, i) => {
        assert.ok(f.data[0].equals(want[i]![0]!), `stream ${i} client bytes`);
        assert.ok(f.data[1].equals(want[i]![1]!), `stream ${i} server bytes`);
      });
      // HTTP decodes, with the response paired to its request
      const http = tshark(["-r", file, "-Y", "http", "-T", "fields", "-E", "separator=|", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code"]).trim().split("\n");
      assert.deepEqual(http, ["GET|/one|", "||200", "GET|/two|", "||200", "GET|/three|", "||200", "GET|/four|", "||200"]);
      // checksums verify, the expert sees no malformed packet
      const checks = tshark(["-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-T", "fields", "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "_ws.malformed"]).trim().split("\n");
      for (const l of checks) {
        const [tcpOk, ipOk, malformed] = l.split("\t");
        assert.equal(tcpOk, "1");
        if (!v6) assert.equal(ipOk, "1");
        assert.equal(malformed ?? "", "");
      }
      // comments on the right packets
      const comments = tshark(["-r", file, "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"]).trim().split("\n");
      assert.deepEqual(comments, ["connect 1", "request one", "response one", "after a gap"]);
      // the times are ours to the nanosecond
      const first = tshark(["-r", file, "-c", "1", "-T", "fields", "-e", "frame.time_epoch"]).trim();
      assert.equal(first, "1763000000.123456789");
    });
  }

  it("reads back with our reader and reassembler: same bytes, gaps and comments", () => {
    const file = path.join(dir, "roundtrip.pcapng");
    const want = writeSample(file, "ethernet", false);
    const { streams } = reassembleFile(file);
    assert.equal(streams.length, 3);
    streams.forEach((s, i) => {
      assert.ok(s.data[0].equals(want[i]![0]!));
      assert.ok(s.data[1].equals(want[i]![1]!));
    });
    assert.equal(streams[0]!.conn.clientKnown, true);
    assert.equal(streams[1]!.conn.clientKnown, false);
    assert.equal(streams[1]!.closeReason, "rst");
    const r = CaptureReader.open(file, { comments: true });
    const comments: string[] = [];
    for (let p = r.next(); p; p = r.next()) if (p.comment) comments.push(p.comment);
    r.close();
    assert.deepEqual(comments, ["connect 1", "request one", "response one", "after a gap"]);
  });

  it("refuses what it cannot write, with a clear message", () => {
    const chunks: Uint8Array[] = [];
    const w = new PcapngWriter({ write: (c) => chunks.push(Buffer.from(c)) });
    assert.throws(() => w.openConnection({ address: "10.0.0.1", port: 1 }, { address: "fd00::1", port: 2 }, T0), /cannot mix IPv4 and IPv6/);
    assert.throws(() => w.openConnection({ address: "not-an-ip", port: 1 }, { address: "10.0.0.1", port: 2 }, T0), /not an IP address/);
    assert.throws(() => w.openConnection({ address: "10.0.0.1", port: 70000 }, { address: "10.0.0.2", port: 2 }, T0), /bad TCP port/);
    const c = w.openConnection({ address: "10.0.0.1", port: 1 }, { address: "10.0.0.2", port: 2 }, T0);
    w.close(c, T0);
    assert.throws(() => w.data(c, 0, Buffer.from("x"), T0), /already closed/);
    w.end();
    assert.throws(() => w.openConnection({ address: "10.0.0.1", port: 1 }, { address: "10.0.0.2", port: 2 }, T0) && w.data(c, 0, Buffer.from("x"), T0), /ended|closed/);
    assert.throws(() => new PcapngWriter({ write: () => {} }, { mss: 0 }), /mss/);
    assert.ok(chunks.length > 0);
  });

  it("parses IPv6 text forms", () => {
    assert.equal(parseAddress("::1").toString("hex"), "00000000000000000000000000000001");
    assert.equal(parseAddress("[fe80::1:2]").toString("hex"), "fe800000000000000000000000010002");
    assert.equal(parseAddress("::ffff:1.2.3.4").toString("hex"), "00000000000000000000ffff01020304");
    assert.equal(parseAddress("2001:db8:0:0:1:0:0:1").toString("hex"), "20010db8000000000001000000000001");
    assert.equal(parseAddress("1.2.3.4").toString("hex"), "01020304");
  });
});
