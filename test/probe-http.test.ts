// The probe on real node:http traffic: every byte per connection, per direction, in order; roles,
// addresses, pids and process names; a 1 MiB body in chunks; a capped configuration's gaps.
import { test } from "node:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { copyPolicyBytes } from "@wirescope/probe";
import { bpfAvailable, CollectingProbe, startRecordingProxy, runChild, checkPair, assemble } from "./probe-support.js";

const HTTP_SERVER = `
import http from "node:http";
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (d) => chunks.push(d));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    res.setHeader("x-got", String(body.length));
    res.end("you sent " + body.length + " bytes to " + req.url);
  });
});
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// args: port, bodyBytes, requests
const HTTP_CLIENT = `
import http from "node:http";
const [port, bodyBytes, n] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = Buffer.alloc(bodyBytes);
for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
for (let i = 0; i < n; i++) {
  await new Promise((resolve, reject) => {
    const req = http.request({ port, host: "127.0.0.1", path: "/item/" + i, method: bodyBytes ? "POST" : "GET", agent }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end(bodyBytes ? body : undefined);
  });
  await new Promise((r) => setTimeout(r, 5)); // let the agent take the socket back (keep-alive)
}
agent.destroy();
console.log("DONE");
`;

/** A probe, the HTTP server and a recording proxy in front of it: the proxy keeps what each side sent. */
async function serverBehindProxy(t: import("node:test").TestContext, probeOpts: ConstructorParameters<typeof CollectingProbe>[0] = {}, program = HTTP_SERVER) {
  const probe = new CollectingProbe(probeOpts);
  t.after(() => probe.stop());
  const server = await runChild(program === HTTP_SERVER ? "http-server" : "sink-server", program);
  t.after(() => server.kill());
  const serverPort = Number((await server.waitLine(/^PORT (\d+)/))[1]);
  const proxy = await startRecordingProxy(serverPort);
  t.after(() => proxy.close());
  return { probe, server, serverPort, proxy };
}

async function httpRound(t: import("node:test").TestContext, probeOpts: ConstructorParameters<typeof CollectingProbe>[0], bodyBytes: number, requests: number) {
  const { probe, server, serverPort, proxy } = await serverBehindProxy(t, probeOpts);
  const client = await runChild("http-client", HTTP_CLIENT, [String(proxy.port), String(bodyBytes), String(requests)]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/, 30_000);
  assert.equal(await client.exited, 0);
  assert.equal(proxy.pairs.length, 1, "one keep-alive connection");
  const pair = proxy.pairs[0];
  return { probe, pair, server, client, proxy, serverPort };
}

test("probe: node:http keep-alive traffic is captured byte for byte on both ends", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { probe, pair, server, client, proxy, serverPort } = await httpRound(t, {}, 300, 5);
  const { client: cv, server: sv } = await checkPair(probe, pair, { proxyPort: proxy.port, serverPort, clientPid: client.pid, serverPid: server.pid, clientComm: "node", serverComm: "node" });
  const c2s = Buffer.concat(pair.c2s);
  const s2c = Buffer.concat(pair.s2c);
  assert.match(c2s.toString("latin1"), /^POST \/item\/0 HTTP\/1\.1\r\n/);

  for (const [v, out, inn] of [[cv, c2s, s2c], [sv, s2c, c2s]] as const) {
    const eg = assemble(v.data[1]);
    const ing = assemble(v.data[2]);
    assert.deepEqual(eg.gaps, []);
    assert.deepEqual(ing.gaps, []);
    assert.equal(eg.discontinuities, 0);
    assert.equal(ing.discontinuities, 0);
    assert.ok(eg.bytes.equals(out), `egress differs (${eg.bytes.length} vs ${out.length})`);
    assert.ok(ing.bytes.equals(inn), `ingress differs (${ing.bytes.length} vs ${inn.length})`);
  }
  const co = cv.open!;
  assert.equal(co.role, 1, "client role from connect()");
  assert.equal(co.inferred, false);
  assert.equal(co.localAddress, "127.0.0.1");
  assert.equal(co.remoteAddress, "127.0.0.1");
  assert.equal(co.remotePort, proxy.port);
  assert.equal(co.comm, "node");
  assert.equal(co.tgid, client.pid);
  const so = sv.open!;
  assert.equal(so.role, 2, "server role from accept()");
  assert.equal(so.localPort, serverPort);
  assert.equal(so.remotePort, pair.upstreamPort);
  assert.equal(so.tgid, server.pid);
  assert.equal(so.comm, "node");
  // every data event carries the owning thread and pid
  for (const d of [...cv.data[1], ...cv.data[2]]) assert.equal(d.tgid, client.pid);
  // the client closed its connection: a close event with the totals
  await pair.closed;
  const deadline = Date.now() + 5000;
  while (!cv.close && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cv.close, "close event for the client connection");
  assert.equal(Number(cv.close!.sentBytes), c2s.length);
  assert.equal(Number(cv.close!.recvBytes), s2c.length);
  // the proxy (this process, the probe's own) never appears
  assert.equal(probe.find((o) => o.tgid === process.pid).length, 0);
});

test("probe: a 1 MiB request body arrives complete in chunks with correct sequence numbers", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { probe, pair, server, client, proxy, serverPort } = await httpRound(t, {}, 1 << 20, 1);
  const { client: cv, server: sv } = await checkPair(probe, pair, { proxyPort: proxy.port, serverPort, clientPid: client.pid, serverPid: server.pid, clientComm: "node", serverComm: "node" });
  const c2s = Buffer.concat(pair.c2s);
  assert.ok(c2s.length > 1 << 20);
  for (const evs of [cv.data[1], sv.data[2]]) {
    const a = assemble(evs);
    assert.ok(a.bytes.equals(c2s));
    assert.equal(a.discontinuities, 0);
    assert.deepEqual(a.gaps, []);
    assert.ok(a.events >= 64, `1 MiB in chunks of at most 16 KiB: ${a.events} events`);
    for (const e of evs) assert.ok(e.payload.length <= 16384);
  }
});

test("probe: with a per-call limit, the uncopied tail of each call is reported as an exact gap", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const limit = 4096;
  const { probe, pair, client } = await httpRound(t, { maxBytesPerCall: limit, chunkBytes: 1024 }, 200_000, 1);
  const c2s = Buffer.concat(pair.c2s);
  const clientConn = () => probe.find((o) => o.tgid === client.pid && o.localPort === pair.clientPort)[0]?.[1];
  const covered = (v: { data: { 1: { seq: bigint; originalLength: number }[] } } | undefined) =>
    v ? v.data[1].reduce((n, e) => n + e.originalLength, 0) : 0;
  const deadline = Date.now() + 10_000;
  while (covered(clientConn()) < c2s.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const cv = clientConn();
  assert.ok(cv, "client connection seen");
  const a = assemble(cv.data[1]);
  assert.equal(a.discontinuities, 0, "sequence numbers cover the stream without holes");
  assert.equal(covered(cv), c2s.length, "original lengths add up to every byte sent");
  // rebuild the stream from payloads and stated gaps: each copied byte is where the seq says
  let copied = 0;
  for (const e of cv.data[1]) {
    assert.ok(e.payload.length <= 1024, "chunk cap");
    assert.ok(c2s.subarray(Number(e.seq), Number(e.seq) + e.payload.length).equals(Buffer.from(e.payload)), "payload at its seq");
    copied += e.payload.length;
  }
  const gapBytes = a.gaps.reduce((n, [, l]) => n + l, 0);
  assert.equal(copied + gapBytes, c2s.length, "copied + gaps = everything");
  assert.ok(gapBytes > 0, "the 200 KB body exceeded the per-call limit somewhere");
});

// args: port. Three writes while corked leave node as ONE writev(2) of three segments.
const WRITEV_CLIENT = `
import net from "node:net";
const s = net.connect(Number(process.argv[2]), "127.0.0.1", () => {
  s.cork();
  s.write("GET /writev HTTP/1.1\\r\\nhost: x\\r\\n");
  s.write("x-pad: " + "p".repeat(3000) + "\\r\\n");
  s.write("\\r\\n");
  s.uncork();
  s.once("data", () => { console.log("DONE"); s.end(); });
});
`;

test("probe: the segments of one writev are one data event, not one per segment", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { probe, server, serverPort, proxy } = await serverBehindProxy(t);
  const client = await runChild("writev-client", WRITEV_CLIENT, [String(proxy.port)]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/, 30_000);
  const pair = proxy.pairs[0];
  const c2s = Buffer.concat(pair.c2s);
  const { client: cv } = await checkPair(probe, pair, { proxyPort: proxy.port, serverPort, clientPid: client.pid, serverPid: server.pid, clientComm: "node", serverComm: "node" });
  const eg = assemble(cv.data[1]);
  assert.ok(eg.bytes.equals(c2s), "egress byte-exact");
  assert.equal(eg.events, 1, `one writev of ${c2s.length} bytes in three segments: ${eg.events} events`);
  assert.equal(cv.data[1][0].payload.length, c2s.length);
  assert.equal(cv.data[1][0].originalLength, c2s.length);
});

// reads and discards what it gets and never closes first: the raw bytes below are not HTTP, and an
// HTTP server would answer 400 and close, after which the proxy reads the client only for 500 ms
const SINK_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.resume());
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// args: port, go-file. Each time go-file is created, sends 100,000 bytes in one write() and
// removes it; node may need more than one call when the socket buffer is full.
const BIG_WRITE_CLIENT = `
import net from "node:net";
import fs from "node:fs";
const s = net.connect(Number(process.argv[2]), "127.0.0.1", () => console.log("CONNECTED"));
let n = 0;
const t = setInterval(() => {
  if (!fs.existsSync(process.argv[3])) return;
  fs.rmSync(process.argv[3]);
  const b = Buffer.alloc(100_000);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + 3 + n) & 0xff;
  n++;
  s.write(b, () => {
    console.log("DONE " + n);
    if (n === 2) (clearInterval(t), setTimeout(() => s.end(), 200));
  });
}, 10);
`;

test("probe: under a copy policy the bytes of a call before the declared body end are an exact stated gap, the rest copied; another stream's policy is not applied", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { probe, proxy } = await serverBehindProxy(t, {}, SINK_SERVER);
  const go = path.join(os.tmpdir(), `wirescope-go-${process.pid}-${Date.now()}`);
  t.after(() => fs.rmSync(go, { force: true }));
  const client = await runChild("big-write-client", BIG_WRITE_CLIENT, [String(proxy.port), go]);
  t.after(() => client.kill());
  await client.waitLine(/^CONNECTED/);
  const deadline = Date.now() + 20_000;
  let key: bigint | undefined;
  while (!(key = probe.find((o) => o.tgid === client.pid)[0]?.[0]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(key, "client connection seen");
  const events = () => probe.conns.get(key!)!.data[1];
  const waitBytes = async (n: number) => {
    while (events().reduce((s, e) => s + e.originalLength, 0) < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
  // a policy declared for another byte stream (the connection's is 0): nothing is left out
  probe.source.setCopyPolicy(key, copyPolicyBytes({ bodyEnd: [60_000, 0], stream: 1 }));
  fs.writeFileSync(go, "");
  await client.waitLine(/^DONE 1/);
  await waitBytes(100_000);
  let a = assemble(events());
  assert.deepEqual(a.gaps, [], "another stream's policy: every byte copied");
  // the body declared up to 160,000 of this stream: the second write's first 60,000 bytes are a gap
  probe.source.setCopyPolicy(key, copyPolicyBytes({ bodyEnd: [160_000, 0], stream: 0 }));
  fs.writeFileSync(go, "");
  await client.waitLine(/^DONE 2/);
  await waitBytes(200_000);
  const sent = Buffer.concat(proxy.pairs[0].c2s);
  assert.equal(sent.length, 200_000);
  a = assemble(events());
  assert.equal(a.discontinuities, 0, "seq contiguous");
  let copied = 0;
  for (const e of events()) {
    assert.ok(sent.subarray(Number(e.seq), Number(e.seq) + e.payload.length).equals(Buffer.from(e.payload)), "payload at its seq");
    copied += e.payload.length;
  }
  // calls before the end (the write may take more than one) are gaps up to it: one range once merged
  const merged: [number, number][] = [];
  for (const [at, n] of a.gaps) {
    const last = merged.at(-1);
    if (last && last[0] + last[1] === at) last[1] += n;
    else merged.push([at, n]);
  }
  assert.deepEqual(merged, [[100_000, 60_000]], "exactly the declared body is left out");
  assert.equal(copied, 140_000, "every other byte copied");
  assert.ok(a.bytes.subarray(100_000).equals(sent.subarray(160_000)), "the bytes after the body end");
  probe.source.setCopyPolicy(key); // removing a policy is accepted
});
