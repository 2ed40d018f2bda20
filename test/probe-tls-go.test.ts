// TLS plaintext of Go crypto/tls through uprobes on (*Conn).Read/Write and on Read's copy of the
// plaintext (no uretprobes: Go moves stacks). A small Go HTTPS server and client
// (test/fixtures/gotls) are built here with the machine's Go toolchain; the traffic is traced by
// the real probe (`wirescope probe`) and decoded by the real parser. The oracle is tshark: the same
// traffic recorded by tcpdump and decrypted with the programs' KeyLogWriter. Both ends' records
// must agree with it field by field (method, path, status), carry tls = true and tls.library = go.
//
// Lifecycle: the server runs before the probe starts (found by the /proc scan), the clients'
// binaries are started after it (announced by the exec tracepoint); a stripped binary (strip) is
// counted as unsupported once, logged once, and runs unharmed. A goroutine blocked in Read leaves
// nothing in the probe's maps once its process or connection is gone.
//
// The first test checks the binary analysis alone against the toolchain's own view (objdump,
// reflect). Position-independent builds: test/probe-tls-go-pie.long.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ProbeService, type Record as WsRecord } from "@wirescope/wire";
import { createClient } from "@wirescope/runtime";
import { freePort, startNats, tempDir } from "./support/index.js";
import { bpfAvailable, probeMapKeys, spawnProbe } from "./probe-support.js";
import { selfSigned, tracedPipeline, tsharkExchanges, exchangeKey, assertEndsMatchTshark } from "./tls-support.js";
import { readRecords, settleRecords, parserStatus } from "./parser-support.js";
import { startTcpdump } from "./support/tcpdump.js";
import { buildGo, checkProbeSites, goProgramsMatchTshark, startGo } from "./go-tls-support.js";

const run = promisify(execFile);

test("probe Go TLS (plain): probe sites and instruction boundaries agree with objdump, struct offsets from DWARF with the compiler's (reflect)", { timeout: 240_000 }, () => {
  checkProbeSites("plain");
});

test("probe Go TLS: HTTP/1.1 and h2 between Go programs, both ends' records match tshark's decryption; a stripped binary is counted", { timeout: 300_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await goProgramsMatchTshark(t, buildGo("plain"), buildGo("plain"), buildGo("plain-stripped"));
});

test("probe Go TLS: a goroutine blocked in Read leaves no go_calls entry when its process exits (killed or not) or its peer closes", { timeout: 240_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-go-calls-");
  const bin = buildGo("plain");
  const tls = selfSigned(dir);
  const server = startGo(bin, ["server", tls.cert, tls.key, path.join(dir, "keylog.txt")]);
  t.after(() => server.proc.kill("SIGKILL"));
  const port = Number((await server.line(/listening (\d+)/))[1]);
  const nats = await startNats();
  t.after(() => nats.stop());
  const grpcPort = await freePort();
  const probe = await spawnProbe(`nats://127.0.0.1:${nats.port}`, grpcPort, dir, ["--allow-port", String(port)]);
  t.after(() => probe.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  // the binary (the server's, found by the scan at start) has its uprobes: a client of the same file is traced
  for (const end = Date.now() + 60_000; !((await ctl.status({}).then((s) => s.counters, () => ({} as Record<string, number>)))["tls.go.binaries_attached"]);) {
    if (probe.hasExited || Date.now() > end) throw new Error(`the probe did not attach the Go binary: ${probe.tail()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const before = (await ctl.status({})).counters;

  // the go_calls entries of the test's processes: key {tgid u32, pad u32, g u64}
  const entriesOf = (pids: number[]) => {
    const keys = probeMapKeys(probe.pid, ["go_calls"]).get("go_calls");
    assert.ok(keys, "go_calls among the probe's maps");
    return pids.map((p) => keys.filter((k) => k.readUInt32LE(0) === p).length);
  };
  const waitEntries = async (pids: number[], ok: (n: number[]) => boolean, what: string) => {
    let n = entriesOf(pids);
    for (const end = Date.now() + 30_000; !ok(n); n = entriesOf(pids)) {
      if (Date.now() > end) throw new Error(`${what}: go_calls entries of [${pids}] are [${n}]`);
      await new Promise((r) => setTimeout(r, 300));
    }
    return n;
  };
  const [serverBefore] = entriesOf([server.proc.pid!]);

  // 4 processes of 8 connections each: 32 client goroutines and 32 server goroutines blocked in Read
  const PROCS = 4, CONNS = 8;
  const holders = Array.from({ length: PROCS }, () => startGo(bin, ["hold", `127.0.0.1:${port}`, String(CONNS)]));
  for (const h of holders) t.after(() => h.proc.kill("SIGKILL"));
  await Promise.all(holders.map((h) => h.line(/holding/)));
  const pids = holders.map((h) => h.proc.pid!);
  const held = await waitEntries([server.proc.pid!, ...pids], ([s, ...c]) => s! >= serverBefore! + PROCS * CONNS && c.every((n) => n === CONNS), "every Read entered");
  t.diagnostic(`go_calls entries while blocked: server ${serverBefore} -> ${held[0]}, clients ${held.slice(1)}`);

  // two are killed (no close(2), no return from Read), two exit on their own with the Reads pending
  for (const [i, h] of holders.entries()) {
    if (i % 2) h.proc.kill("SIGKILL");
    else h.proc.stdin!.end("exit\n");
  }
  await Promise.all(holders.map((h) => h.proc.exitCode !== null || h.proc.signalCode !== null ? undefined : new Promise((r) => h.proc.once("exit", r))));
  // the clients' at their exit; the server's when it closes each connection after its Read's EOF
  const after = await waitEntries([server.proc.pid!, ...pids], ([s, ...c]) => s! <= serverBefore! && c.every((n) => n === 0), "entries forgotten");
  t.diagnostic(`go_calls entries after: server ${after[0]}, clients ${after.slice(1)}`);
  // the kernel's counters reach the status when the probe next reads them
  let c = (await ctl.status({})).counters;
  const delta = (k: string) => (c[k] ?? 0) - (before[k] ?? 0);
  for (const end = Date.now() + 30_000; delta("tls.go_read_forgotten") < 2 * PROCS * CONNS && Date.now() < end; c = (await ctl.status({})).counters) await new Promise((r) => setTimeout(r, 500));
  assert.ok(delta("tls.go_read_forgotten") >= 2 * PROCS * CONNS, `Reads forgotten with their connection: ${delta("tls.go_read_forgotten")}`);
  assert.equal(delta("tls.go_no_fd"), 0);
  assert.equal(delta("drops.kernel.args_map_full"), 0);
});

// HTTP/2 uses one tls.Conn from two goroutines at once: the transport's read loop sits in Read
// while the requests' goroutines Write (and the server's frame reader reads while its handlers'
// frames are written). Go calls are keyed by goroutine, a Write's plaintext goes out at its entry
// and a Read's at its copy: both directions must stay whole and in order. Eight requests at once on
// one connection, two of them uploading 512 KiB (their DATA frames written while the read loop
// takes the other streams' responses and the window updates): both ends' records equal tshark's.
test("probe Go TLS: h2 with a reader and writers on one connection at once (8 concurrent requests, 2 uploads of 512 KiB), both ends' records match tshark's decryption", { timeout: 240_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-go-par-");
  const bin = buildGo("plain");
  const tls = selfSigned(dir);
  const keylog = path.join(dir, "keylog.txt");
  const server = startGo(bin, ["server", tls.cert, tls.key, keylog]);
  t.after(() => server.proc.kill("SIGKILL"));
  const port = Number((await server.line(/listening (\d+)/))[1]);
  const base = `https://127.0.0.1:${port}`;
  const { parser, nc, counters } = await tracedPipeline(t, dir, port, () => run(bin, ["client", "h1", keylog, `${base}/warmup`]));
  const pcap = path.join(dir, "par.pcap");
  const tcpdump = await startTcpdump(pcap, ["-i", "lo", `tcp port ${port}`]);
  t.after(() => tcpdump.stop());
  // the warm-ups' bodies were trimmed by the probe (counted as gaps): only what this connection adds counts
  const lost = (c: Record<string, number>) => Object.entries(c).filter(([k, v]) => /desync|resync|^gaps$|before_detect/.test(k) && v > 0);
  const lostBefore = lost((await parserStatus(parser)).counters);
  const urls = [`${base}/par/first`, `BIG ${base}/par/big1`, `${base}/par/a`, `${base}/missing`, `BIG ${base}/par/big2`, `${base}/par/b`, `POST ${base}/par/post`, `${base}/par/c`];
  const out = await run(bin, ["client", "h2par", keylog, ...urls]);
  assert.equal(out.stdout.trim().split("\n").length, 8, "8 responses");

  const ours = (l: { record: WsRecord }[]) => l.map((s) => s.record).filter((r) => r.server?.port === port && (r.resource.startsWith("/par/") || r.resource === "/missing"));
  const until = Date.now() + 60_000;
  while (ours(await readRecords(nc).catch(() => [])).length < 16 && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(nc, 2000, 30_000));
  await new Promise((r) => setTimeout(r, 300));
  await tcpdump.stop();
  const theirs = tsharkExchanges(pcap, keylog).map(exchangeKey).sort();
  assert.equal(theirs.length, 8, `tshark decrypted every exchange: ${JSON.stringify(theirs)}`);
  assertEndsMatchTshark(t, records, theirs, { library: "go" });
  assert.ok(records.every((r) => r.protocol === "http2"), "h2 on both ends");
  const c = await counters();
  t.diagnostic(`tls counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("tls."))))}`);
  assert.equal(c["tls.go_read_closed"] ?? 0, 0);
  assert.equal(c["tls.go_no_fd"] ?? 0, 0);
  const st = (await parserStatus(parser)).counters;
  t.diagnostic(`parser: ${JSON.stringify(st)}`);
  assert.deepEqual(lost(st), lostBefore, "both directions whole and in order: no gap, desync or bytes before detection");
});
