// Live captures made in the test: real node:http traffic over IPv4 and IPv6 loopback, captured by
// tcpdump as Ethernet (lo), Linux cooked v1 and v2 (any), in pcap and pcapng. Our reassembly must
// give tshark's byte streams, and `wirescope decode` the HTTP exchanges tshark decodes.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { reassembleFile, stripMissing, tshark, tsharkFollow } from "@wirescope/capture/test-support/pcap";
import { startTcpdump, waitForBytes } from "./support/tcpdump.js";
import { wirescopeDecode } from "./support/index.js";

const dir = fs.mkdtempSync(path.join(process.env["KEEP"] ?? os.tmpdir(), "ws-live-"));
after(() => process.env["KEEP"] || fs.rmSync(dir, { recursive: true, force: true }));

/** A node:http server with a few routes; listens on host, returns its port. */
async function server(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const s = http.createServer((req, res) => {
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => {
      if (req.url?.startsWith("/big")) {
        res.setHeader("content-type", "application/octet-stream");
        res.end(Buffer.alloc(300_000, 7));
      } else if (req.url?.startsWith("/last")) {
        res.end(`end-of-traffic-${req.url.slice(6)}`);
      } else if (req.url?.startsWith("/missing")) {
        res.statusCode = 404;
        res.end("no");
      } else if (req.url?.startsWith("/fail")) {
        res.statusCode = 503;
        res.end("down");
      } else {
        res.end(`got ${n} bytes`);
      }
    });
  });
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const port = (s.address() as { port: number }).port;
  return { port, close: () => new Promise((resolve) => s.close(() => resolve())) };
}

const MARK = `${process.pid}-${Date.now()}`;

/** Requests over keep-alive and fresh connections; returns [method, path, status] of each. */
async function traffic(host: string, port: number): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const calls: [string, string, Buffer?][] = [
    ["GET", "/hello?x=1"],
    ["POST", "/upload", Buffer.alloc(100_000, 1)],
    ["GET", "/big"],
    ["GET", "/missing"],
    ["PUT", "/fail", Buffer.from("x")],
    ["GET", "/again"],
    ["GET", `/last/${MARK}`],
  ];
  const out: string[] = [];
  for (const [method, p, body] of calls) {
    const status = await new Promise<number>((resolve, reject) => {
      // "/fail" goes over a connection of its own, closed after the response
      const own = p === "/fail";
      const req = http.request({ host, port, method, path: p, agent: own ? false : agent, headers: body ? { "content-length": body.length } : {} }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode!));
      });
      req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(body);
    });
    out.push(`${method} ${p.split("?")[0]} ${status}`);
  }
  agent.destroy();
  return out;
}

const decode = (file: string) => wirescopeDecode(file);

/** Same streams as tshark (a = node 0, bytes each way). */
function sameStreamsAsTshark(file: string): number {
  const ours = reassembleFile(file).streams.filter((s) => s.bytes[0].length + s.bytes[1].length > 0);
  const theirs = tsharkFollow(file).filter((t) => t.data[0].length + t.data[1].length > 0);
  assert.deepEqual(
    ours.map((s) => [s.a, s.b, s.bytes[0].length, s.bytes[1].length, s.bytes[0].equals(stripMissing(theirs.find((t) => t.node0 === s.a && t.node1 === s.b)?.data[0] ?? Buffer.alloc(0)))]),
    theirs.map((t) => [t.node0, t.node1, stripMissing(t.data[0]).length, stripMissing(t.data[1]).length, true]),
    path.basename(file),
  );
  for (const s of ours) {
    const t = theirs.find((x) => x.node0 === s.a && x.node1 === s.b)!;
    assert.ok(s.bytes[1].equals(stripMissing(t.data[1])), `${path.basename(file)}: server bytes`);
  }
  return ours.length;
}

for (const [host, label] of [
  ["127.0.0.1", "IPv4"],
  ["::1", "IPv6"],
] as const) {
  test(`live ${label} HTTP captured as Ethernet, SLL and SLL2 (pcap and pcapng): tshark's streams and HTTP exchanges`, { timeout: 120_000 }, async () => {
    const srv = await server(host);
    after(() => srv.close());
    const filter = `tcp port ${srv.port}`;
    const files = {
      eth: path.join(dir, `${label}-eth.pcap`),
      ethng: path.join(dir, `${label}-eth.pcapng`),
      sll: path.join(dir, `${label}-sll.pcap`),
      sll2: path.join(dir, `${label}-sll2.pcap`),
    };
    const dumps = [
      await startTcpdump(files.eth, ["-i", "lo", filter]),
      await startTcpdump(files.ethng, ["-i", "lo", "--time-stamp-precision=nano", filter]),
      await startTcpdump(files.sll, ["-i", "any", "-y", "LINUX_SLL", filter]),
      await startTcpdump(files.sll2, ["-i", "any", "-y", "LINUX_SLL2", filter]),
    ];
    for (const d of dumps) after(() => d.stop());
    const sent = await traffic(host, srv.port);
    // tcpdump may read late on a busy machine, and stopping it drops what it has not read yet
    for (const f of Object.values(files)) await waitForBytes(f, `end-of-traffic-${MARK}`);
    for (const d of dumps) {
      const log = await d.stop();
      // a capture that lost packets would make any comparison meaningless: say so plainly
      assert.doesNotMatch(log, /[1-9]\d* packets? dropped by kernel/, `tcpdump lost packets: ${log}`);
    }
    // convert one to pcapng so both container formats are read
    execFileSync("editcap", ["-F", "pcapng", files.ethng, `${files.ethng}.ng`], { timeout: 60_000 });
    fs.renameSync(`${files.ethng}.ng`, files.ethng);

    const linkOf = (f: string) => tshark(["-r", f, "-c", "1", "-T", "fields", "-e", "frame.encap_type"]).trim();
    assert.deepEqual([files.eth, files.sll, files.sll2].map(linkOf), ["1", "25", "210"]);
    for (const f of Object.values(files)) {
      assert.ok(sameStreamsAsTshark(f) >= 2, `${f}: keep-alive and a fresh connection`);
      const recs = decode(f).filter((r) => r.protocol === "http1");
      assert.deepEqual(
        recs.map((r) => `${r.operation} ${r.resource} ${r.status}`),
        sent,
        path.basename(f),
      );
      // tshark pairs the same exchanges
      const t = tshark(["-r", f, "-Y", "http.response", "-T", "fields", "-e", "http.response.code", "-e", "http.response_for.uri"]).trim().split("\n");
      assert.deepEqual(
        t.map((l) => l.split("\t")[0]),
        sent.map((s) => s.split(" ")[2]),
      );
    }
  });
}
