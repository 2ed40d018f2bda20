// TLS plaintext of node processes: OpenSSL is linked into the node executable (no libssl.so), and
// node's TLS moves the socket bytes itself (memory BIOs), so the probe attaches the node file by
// its exported SSL_read/SSL_write and links each connection by its handshake write. One node
// process serves HTTPS (HTTP/1.1, and h2 by ALPN: node:http2 secure server) and gRPC (grpc-js,
// TLS credentials); it runs before the probe starts (found by the scan at start), the clients
// start after (the h2 one on a copy of the node executable, found by its exec). Both ends' records must equal tshark's decryption of a
// tcpdump capture with the clients' key log (node --tls-keylog) field by field: method, path,
// status, and grpc-status for gRPC. The pipeline's own node processes are not traced.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { tempDir } from "./support/index.js";
import { bpfAvailable, runChild } from "./probe-support.js";
import { settleRecords, readRecords, parserStatus } from "./parser-support.js";
import { selfSigned, tsharkExchanges, exchangeKey, assertEndsMatchTshark, tracedPipeline, startNodeTlsServers as startServers, NODE_TLS_FIXTURES as FIXTURES } from "./tls-support.js";
import { startTcpdump } from "./support/tcpdump.js";
import { tsharkHttp2 } from "./http-support.js";

const run = promisify(execFile);

/** A fixture client (a node process started now), its keys logged for tshark. */
const client = (mode: string, port: number, ca: string, keylog: string, node = process.execPath) =>
  run(node, [`--tls-keylog=${keylog}`, path.join(FIXTURES, "client.mjs"), mode, String(port), ca], { timeout: 60_000 });

/**
 * The fixture servers (started before the probe: found by its scan at start), then the traced
 * pipeline, warmed up by `mode` calls to the `which` server until the probe publishes (their
 * keys in warm-keys.txt: those exchanges are not compared).
 */
async function tracedServers(t: TestContext, prefix: string, which: "web" | "grpc", mode: string) {
  const dir = tempDir(prefix);
  const tls = selfSigned(dir);
  const port = (await startServers(t, tls))[which];
  const warmKeys = path.join(dir, "warm-keys.txt");
  const p = await tracedPipeline(t, dir, port, () => client(mode, port, tls.cert, warmKeys).catch(() => {}));
  return { dir, tls, port, p };
}

/** tcpdump of `port` on loopback into <dir>/<name>.pcap, and the key log file for the compared clients (for tshark). */
async function capture(t: TestContext, dir: string, name: string, port: number) {
  const pcap = path.join(dir, `${name}.pcap`);
  const keylog = path.join(dir, "keylog.txt");
  const cap = await startTcpdump(pcap, ["-i", "lo", `tcp port ${port}`]);
  t.after(() => cap.stop());
  return { pcap, keylog, cap };
}

test("probe TLS node: node:https (HTTP/1.1) and node:http2 (h2 by ALPN) from the node executable's OpenSSL, both ends' records match tshark", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // warm-up exchanges (GET /warmup) until the probe publishes: not compared
  const { dir, tls, port: web, p } = await tracedServers(t, "wirescope-probe-tls-node-", "web", "warmup");
  const attached = await p.counters();
  // a warm-up exchange whose handshake raced the attach is counted no_fd (honestly: its plaintext
  // was dropped); the compared exchanges, started after, must add none
  const noFdWarm = attached["tls.no_fd"] ?? 0;
  assert.ok((attached["tls.openssl.binaries_attached"] ?? 0) >= 1, `the node executable attached: ${JSON.stringify(attached)}`);

  const { pcap, keylog, cap } = await capture(t, dir, "node", web);
  await client("https", web, tls.cert, keylog);
  // a node executable no process ran when the probe started (a copy: its own inode), started now:
  // announced by its exec, inspected, attached; its first run only starts it (a process started
  // while its file is being attached may lose its first calls), the h2 client runs on it next
  const nodeCopy = path.join(dir, "node");
  fs.copyFileSync(process.execPath, nodeCopy);
  fs.chmodSync(nodeCopy, 0o755);
  const before = (await p.counters())["tls.openssl.binaries_attached"]!;
  await run(nodeCopy, ["-e", "0"]);
  const deadline = Date.now() + 30_000;
  while ((await p.counters())["tls.openssl.binaries_attached"]! === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal((await p.counters())["tls.openssl.binaries_attached"], before + 1, "the copy attached through its exec announcement");
  await client("h2", web, tls.cert, keylog, nodeCopy);
  // 6 exchanges, each recorded on both ends
  const ours = <T extends { record: { resource: string; server?: { port: number } } }>(l: T[]) => l.filter((s) => s.record.server?.port === web && s.record.resource !== "/warmup");
  const until = Date.now() + 60_000;
  while (ours(await readRecords(p.nc).catch(() => [])).length < 12 && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(p.nc, 2000, 30_000)).map((s) => s.record);
  await cap.stop();
  const theirs = tsharkExchanges(pcap, keylog).map(exchangeKey).sort();
  assert.equal(theirs.length, 6, `tshark decrypted every exchange: ${JSON.stringify(theirs)}`);
  const c = await p.counters();
  t.diagnostic(`tls counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("tls."))))}`);
  assertEndsMatchTshark(t, records, theirs, { library: "openssl" });
  assert.equal(records.filter((r) => r.protocol === "http2").length, 6, "h2 by ALPN on both ends");
  assert.ok((c["tls.linked_after_call"] ?? 0) >= 4, "connections linked by their handshake write (memory BIOs)");
  assert.equal((c["tls.no_fd"] ?? 0) - noFdWarm, 0, "no plaintext without its connection");
  const st = await parserStatus(p.parser);
  assert.deepEqual(Object.entries(st.counters).filter(([k, v]) => /desync|resync/.test(k) && v > 0), [], "the decoders never lost their place");
});

test("probe TLS node: grpc-js over TLS, both ends' records (method, path, grpc-status) match tshark", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // warm-up calls until the probe publishes: their connection is not compared
  const { dir, tls, port: grpc, p } = await tracedServers(t, "wirescope-probe-tls-grpc-", "grpc", "grpc");
  const warmed = new Set((await settleRecords(p.nc, 1500, 30_000)).map((s) => s.record.client?.port));

  const { pcap, keylog, cap } = await capture(t, dir, "grpc", grpc);
  await client("grpc", grpc, tls.cert, keylog);
  const ours = <T extends { record: { client?: { port: number }; server?: { port: number } } }>(l: T[]) =>
    l.filter((s) => s.record.server?.port === grpc && !warmed.has(s.record.client?.port));
  const until = Date.now() + 60_000;
  while (ours(await readRecords(p.nc).catch(() => [])).length < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(p.nc, 2000, 30_000)).map((s) => s.record);
  await cap.stop();
  const theirs = (await tsharkHttp2(pcap, grpc, "tls", keylog)).map((s) => `${s.method} ${s.path} ${s.status} grpc-status ${s.grpcStatus}`).sort();
  assert.equal(theirs.length, 3, `tshark decrypted every call: ${JSON.stringify(theirs)}`);
  assertEndsMatchTshark(t, records, theirs, { library: "openssl", complete: false }, (r) => `POST ${r.resource} ${r.attributes["http.response.status_code"]?.value.value} grpc-status ${r.attributes["rpc.grpc.status_code"]?.value.value}`);
  assert.deepEqual(theirs.map((k) => k.split(" ").pop()).sort(), ["0", "0", "5"], "two OK calls and a NOT_FOUND");
});

test("probe TLS node: a keep-alive connection opened before the probe is linked by its first read after attach; both ends' records match tshark", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-held-");
  const tls = selfSigned(dir);
  const { web } = await startServers(t, tls);
  // tcpdump from before the connection (tshark needs its handshake to decrypt it)
  const { pcap, keylog, cap } = await capture(t, dir, "held", web);
  const held = await runChild("held-client", { file: path.join(FIXTURES, "client.mjs") }, ["held", String(web), tls.cert], { nodeArgs: [`--tls-keylog=${keylog}`], stdin: true });
  t.after(() => held.kill());
  const heldPort = Number((await held.waitLine(/^PORT (\d+)$/, 60_000))[1]);
  // the probe starts now: the connection is open, its handshake long past
  const warmKeys = path.join(dir, "warm-keys.txt");
  const p = await tracedPipeline(t, dir, web, () => client("warmup", web, tls.cert, warmKeys).catch(() => {}));
  // its GET /keep ticks (not compared) link both ends after attach: the server's by the request
  // it reads, the client's by the response (the request the client wrote before that is lost:
  // no_fd). Once each end has recorded a whole /keep exchange of this connection, both are
  // linked, and two rounds of three requests are compared. (The counter tls.linked_by_read is
  // host-wide: a warm-up connection caught mid-handshake counts too, so it cannot say that
  // this connection's ends are linked.)
  const linkedBy = Date.now() + 60_000;
  const keepRoles = async () => new Set((await readRecords(p.nc).catch(() => [])).filter((s) => s.record.client?.port === heldPort && s.record.resource === "/keep").map((s) => s.record.role));
  while ((await keepRoles()).size < 2) {
    if (Date.now() > linkedBy) throw new Error(`the held connection's ends were not linked: roles ${[...(await keepRoles())]}, ${JSON.stringify(await p.counters())}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  // a round: "go" on stdin, then the DONE line it prints (lines before it are passed over)
  const round = () => {
    const from = held.lines.length;
    held.proc.stdin!.write("go\n");
    return held.waitLine(/^DONE((?: \d+)+)$/, 60_000, from);
  };
  await round();
  const done = await round();
  assert.deepEqual(done[1]!.trim().split(" ").map(Number), [heldPort, heldPort, heldPort], "every request on the connection opened before the probe");
  const ours = <T extends { record: { resource: string; client?: { port: number } } }>(l: T[]) => l.filter((s) => s.record.client?.port === heldPort && s.record.resource !== "/keep");
  const until = Date.now() + 60_000;
  while (ours(await readRecords(p.nc).catch(() => [])).length < 12 && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(p.nc, 2000, 30_000)).map((s) => s.record);
  held.proc.stdin!.end();
  await held.exited;
  await cap.stop();
  const c = await p.counters();
  t.diagnostic(`tls counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("tls."))))}`);
  // tshark: the compared rounds of the held connection (its /missing requests come after attach:
  // the first request before attach was a /keep)
  const theirs = tsharkExchanges(pcap, keylog).filter((e) => e.path !== "/keep").map(exchangeKey).sort();
  assert.equal(theirs.length, 6, `tshark decrypted both rounds: ${JSON.stringify(theirs)}`);
  assertEndsMatchTshark(t, records, theirs, { library: "openssl", complete: false });
  // (counted host-wide: another node process's connection opened before the probe counts too)
  assert.ok((c["tls.linked_by_read"] ?? 0) >= 2, `both ends linked by their first read after attach: ${c["tls.linked_by_read"]}`);
});
