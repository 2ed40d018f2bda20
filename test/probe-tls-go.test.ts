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
import { ProbeService, createClient } from "@wirescope/common";
import { freePort, startNats, tempDir } from "./support/index.js";
import { bpfAvailable, probeMapKeys, spawnProbe } from "./probe-support.js";
import { selfSigned } from "./tls-support.js";
import { buildGo, checkProbeSites, goProgramsMatchTshark, startGo } from "./go-tls-support.js";

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
