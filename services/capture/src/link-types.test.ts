// decodeTcp on every link type and IP variant: real captures re-encapsulated (editcap -C/-T and
// byte-level rewriting of each frame), each checked against tshark's reassembly of the very same
// file, and against the streams of the original capture.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LinkType } from "./packet.js";
import { PcapngWriter } from "./pcapng-writer.js";
import { SHARED_CAPTURES, buildPcap, parsePcap, reassembleFile, stripMissing, tsharkFollow, wstool, type PcapRecord } from "./test-support/pcap.js";

const ETH = path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap");
const ETH_MYSQL = path.join(SHARED_CAPTURES, "mysql/zeek__auth.pcap");
const NULL_PCAP = path.join(SHARED_CAPTURES, "http2/suricata-verify__http2-continuation__input.pcap");

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-link-"));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function tmp(name: string, content: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
}

/** Streams (a, b, bytes each way) of a file, as we and as tshark see them; both must agree. */
function streamsOf(file: string): string[] {
  const ours = reassembleFile(file).streams.filter((s) => s.bytes[0].length + s.bytes[1].length > 0);
  const theirs = tsharkFollow(file).filter((t) => t.data[0].length + t.data[1].length > 0);
  const o = ours.map((s) => `${s.a} ${s.b} ${s.bytes[0].toString("hex")} ${s.bytes[1].toString("hex")}`);
  const t = theirs.map((s) => `${s.node0} ${s.node1} ${stripMissing(s.data[0]).toString("hex")} ${stripMissing(s.data[1]).toString("hex")}`);
  assert.equal(o.length, t.length, `${path.basename(file)}: stream count`);
  assert.deepEqual(o, t, `${path.basename(file)}: streams differ from tshark's`);
  assert.ok(o.length > 0);
  return o;
}

/** Rewrites every frame of a little-endian pcap. */
function rewrite(src: string, name: string, linkType: number, fn: (data: Buffer) => Buffer): string {
  const { header, records } = parsePcap(fs.readFileSync(src));
  const out: PcapRecord[] = records.map((r) => {
    const data = fn(r.data);
    return { ...r, data, origLen: r.origLen + data.length - r.data.length };
  });
  return tmp(name, buildPcap(header, out, linkType));
}

/** Ethernet frame → the same IP packet behind another link header. */
function relink(header: (ethertype: number, eth: Buffer) => Buffer) {
  return (eth: Buffer) => Buffer.concat([header(eth.readUInt16BE(12), eth), eth.subarray(14)]);
}

describe("decodeTcp link types", () => {
  for (const src of [ETH, ETH_MYSQL]) {
    const base = path.basename(src, ".pcap");
    it(`${base}: Ethernet, raw IP (101, 228), 802.1Q, QinQ, SLL, SLL2 all give the original streams`, () => {
      const want = streamsOf(src);
      const raw = path.join(dir, `${base}.raw.pcap`);
      wstool("editcap", ["-C", "14", "-T", "rawip", src, raw]);
      const raw4 = path.join(dir, `${base}.raw4.pcap`);
      wstool("editcap", ["-C", "14", "-T", "rawip4", src, raw4]);
      const vlan = rewrite(src, `${base}.vlan.pcap`, LinkType.ETHERNET, (e) => Buffer.concat([e.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x2a]), e.subarray(12)]));
      const qinq = rewrite(src, `${base}.qinq.pcap`, LinkType.ETHERNET, (e) => Buffer.concat([e.subarray(0, 12), Buffer.from([0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x2a]), e.subarray(12)]));
      const sll = rewrite(
        src,
        `${base}.sll.pcap`,
        LinkType.LINUX_SLL,
        relink((et, e) => {
          // packet type, ARPHRD_ETHER, address length, address (8), protocol
          const h = Buffer.alloc(16);
          h.writeUInt16BE(0, 0);
          h.writeUInt16BE(1, 2);
          h.writeUInt16BE(6, 4);
          e.copy(h, 6, 6, 12);
          h.writeUInt16BE(et, 14);
          return h;
        }),
      );
      const sll2 = rewrite(
        src,
        `${base}.sll2.pcap`,
        LinkType.LINUX_SLL2,
        relink((et, e) => {
          // protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address (8)
          const h = Buffer.alloc(20);
          h.writeUInt16BE(et, 0);
          h.writeUInt32BE(3, 4);
          h.writeUInt16BE(1, 8);
          h[10] = 4;
          h[11] = 6;
          e.copy(h, 12, 6, 12);
          return h;
        }),
      );
      for (const f of [raw, raw4, vlan, qinq, sll, sll2]) assert.deepEqual(streamsOf(f), want, path.basename(f));
    });
  }

  it("NULL and OpenBSD LOOP loopback give the original streams", () => {
    const want = streamsOf(NULL_PCAP);
    // LOOP carries the address family in network byte order
    const loop = rewrite(NULL_PCAP, "loop.pcap", LinkType.LOOP, (f) => {
      const out = Buffer.from(f);
      out.writeUInt32BE(f.readUInt32LE(0), 0);
      return out;
    });
    const nullBe = rewrite(NULL_PCAP, "null-be.pcap", LinkType.NULL, (f) => {
      const out = Buffer.from(f);
      out.writeUInt32BE(f.readUInt32LE(0), 0);
      return out;
    });
    assert.deepEqual(streamsOf(loop), want);
    assert.deepEqual(streamsOf(nullBe), want);
  });

  it("IPv6 over Ethernet, raw (101, 229), NULL, with extension headers before TCP", () => {
    // IPv6 traffic from our writer, as pcap
    const ng = path.join(dir, "v6.pcapng");
    const w = PcapngWriter.toFile(ng, { link: "ethernet", mss: 300 });
    const c = w.openConnection({ address: "2001:db8::1", port: 40000 }, { address: "2001:db8::2", port: 80 }, 1_700_000_000_000_000_000n);
    w.data(c, 0, Buffer.from("GET /v6 HTTP/1.1\r\nHost: v6\r\n\r\n"), 1_700_000_000_000_001_000n);
    w.data(c, 1, Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"y".repeat(1000)}`), 1_700_000_000_000_002_000n);
    w.close(c, 1_700_000_000_000_003_000n);
    w.end();
    const eth = path.join(dir, "v6.pcap");
    wstool("editcap", ["-F", "pcap", ng, eth]);
    const want = streamsOf(eth);
    assert.match(want[0]!, /^\[2001:db8::1\]:40000 \[2001:db8::2\]:80 /);
    const raw = path.join(dir, "v6.raw.pcap");
    wstool("editcap", ["-C", "14", "-T", "rawip", eth, raw]);
    const raw6 = path.join(dir, "v6.raw6.pcap");
    wstool("editcap", ["-C", "14", "-T", "rawip6", eth, raw6]);
    // AF_INET6 as macOS writes it (tshark does not know Linux's 10 here)
    const nul = rewrite(eth, "v6.null.pcap", LinkType.NULL, relink(() => Buffer.from([30, 0, 0, 0])));
    // hop-by-hop (PadN) then destination options (PadN) between the IPv6 header and TCP
    const ext = rewrite(eth, "v6.ext.pcap", LinkType.ETHERNET, (e) => {
      const ip = e.subarray(14);
      const hbh = Buffer.from([60, 0, 1, 4, 0, 0, 0, 0]);
      const dst = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]);
      const hdr = Buffer.from(ip.subarray(0, 40));
      hdr[6] = 0; // next header: hop-by-hop
      hdr.writeUInt16BE(ip.readUInt16BE(4) + 16, 4);
      return Buffer.concat([e.subarray(0, 14), hdr, hbh, dst, ip.subarray(40)]);
    });
    for (const f of [raw, raw6, nul, ext]) assert.deepEqual(streamsOf(f), want, path.basename(f));
  });

  it("counts IP fragments, non-TCP and unknown link types as skipped frames", () => {
    // fragment: set MF on every IPv4 packet of one capture
    const frag = rewrite(ETH, "frag.pcap", LinkType.ETHERNET, (e) => {
      const out = Buffer.from(e);
      out.writeUInt16BE(0x2000, 14 + 6);
      return out;
    });
    const udp = rewrite(ETH, "udp.pcap", LinkType.ETHERNET, (e) => {
      const out = Buffer.from(e);
      out[14 + 9] = 17;
      return out;
    });
    const arp = rewrite(ETH, "arp.pcap", LinkType.ETHERNET, (e) => {
      const out = Buffer.from(e);
      out.writeUInt16BE(0x0806, 12);
      return out;
    });
    const odd = rewrite(ETH, "odd.pcap", 147, (e) => e);
    const cut = rewrite(ETH, "cut.pcap", LinkType.ETHERNET, (e) => e.subarray(0, 30));
    const n = 49;
    assert.equal(reassembleFile(frag).stats.skipped.ip_fragment, n);
    assert.equal(reassembleFile(udp).stats.skipped.not_tcp, n);
    assert.equal(reassembleFile(arp).stats.skipped.not_ip, n);
    assert.equal(reassembleFile(odd).stats.skipped.unsupported_link, n);
    assert.equal(reassembleFile(cut).stats.skipped.truncated_header, n);
  });
});
