// End to end: `wirescope probe` (its own process, real eBPF) → real nats-server → a RawBatch
// subscriber gets the expected connection's bytes; Status over gRPC; SetFilter at runtime; the
// probe's own traffic never appears.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { fromBinary } from "@bufbuild/protobuf";
import { RawBatchSchema, ProbeService, ConnKind, resolvedData, type RawBatch } from "@wirescope/wire";
import { createClient, checkHealth, ServingStatus } from "@wirescope/runtime";
import { startNats, freePort, spawnTracked, tempDir, waitFor, WIRESCOPE_BIN } from "./support/index.js";
import { bpfAvailable, runChild } from "./probe-support.js";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";


const ECHO_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(Buffer.concat([Buffer.from("echo:"), d]))));
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;
// args: port, message; prints its local port, then exits after the reply
const CLIENT = `
import net from "node:net";
const [port, msg] = process.argv.slice(2);
const s = net.connect(Number(port), "127.0.0.1", () => { console.log("LOCAL " + s.localPort); s.write(msg); });
let got = "";
s.on("data", (d) => { got += d; if (got.length >= msg.length + 5) { console.log("GOT " + got); s.end(); } });
// linger a moment like a real program would, so the probe can read /proc/<pid>/cmdline
s.on("close", () => setTimeout(() => process.exit(0), 300));
`;

test("probe → nats-server → RawBatch subscriber: the connection's bytes, roles, process; Status; SetFilter", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const grpcPort = await freePort();
  const dir = tempDir("wirescope-probe-e2e-");
  const probe = await spawnTracked("probe", process.execPath, [
    WIRESCOPE_BIN, "probe", "--nats-url", url, "--grpc-port", String(grpcPort),
    "--lock-file", path.join(dir, "probe.lock"), "--mount-tracefs", "--batch-ms", "10", "--log-level", "warn",
  ], { logFile: path.join(dir, "probe.log"), env: { ...process.env, WIRESCOPE_PROBE_SWEEP_MS: "300" } });
  t.after(() => probe.stop());
  const address = `127.0.0.1:${grpcPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const h = await checkHealth(address);
    if (h.status === ServingStatus.SERVING) break;
    if (probe.hasExited || Date.now() > deadline) throw new Error(`probe not serving: ${h.error ?? h.status}\n${probe.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const batches: RawBatch[] = [];
  const sub = nc.subscribe("wirescope.raw.*");
  void (async () => {
    for await (const m of sub) batches.push(fromBinary(RawBatchSchema, m.data));
  })();
  await nc.flush();

  const server = await runChild("echo-server", ECHO_SERVER);
  t.after(() => server.kill());
  const serverPort = Number((await server.waitLine(/^PORT (\d+)/))[1]);

  async function roundTrip(msg: string) {
    const client = await runChild("client", CLIENT, [String(serverPort), msg]);
    t.after(() => client.kill());
    const localPort = Number((await client.waitLine(/^LOCAL (\d+)/))[1]);
    await client.waitLine(/^GOT /);
    await client.exited;
    return { client, localPort };
  }
  const conns = () => batches.flatMap((b) => b.conns);
  const dataOf = (key: bigint, dir: number) =>
    Buffer.concat(batches.flatMap(resolvedData).filter((d) => d.connKey === key && d.direction === dir).sort((a, b) => Number(a.seq - b.seq)).map((d) => Buffer.from(d.payload)));

  // 1. a connection's bytes arrive through NATS
  const msg = "hello through nats " + "x".repeat(1000);
  const { client, localPort } = await roundTrip(msg);
  await waitFor(() =>
    conns().some((c) => c.process?.pid === client.pid && c.localPort === localPort && c.kind === ConnKind.CLOSE), { timeoutMs: 15_000, intervalMs: 20, what: "the client's open and close events on NATS" });
  const open = conns().find((c) => c.process?.pid === client.pid && c.localPort === localPort && c.kind === ConnKind.OPEN)!;
  assert.ok(open, "open event");
  assert.equal(open.role, 1);
  assert.equal(open.remotePort, serverPort);
  assert.equal(open.remoteAddress, "127.0.0.1");
  assert.equal(open.process?.name, "node");
  assert.equal(open.process?.pid, client.pid);
  assert.match(open.process?.cmdline ?? "", /client-/);
  assert.ok(open.timestampNs > BigInt(Date.now() - 60_000) * 1_000_000n, "wall-clock timestamp");
  await waitFor(() => dataOf(open.connKey, 2).length >= msg.length + 5, { timeoutMs: 10_000, intervalMs: 20, what: "the client's bytes" });
  assert.equal(dataOf(open.connKey, 1).toString(), msg);
  assert.equal(dataOf(open.connKey, 2).toString(), "echo:" + msg);
  const srvOpen = conns().find((c) => c.process?.pid === server.pid && c.remotePort === localPort && c.kind === ConnKind.OPEN);
  assert.ok(srvOpen, "server side seen");
  assert.equal(srvOpen.role, 2);
  assert.equal(dataOf(srvOpen.connKey, 2).toString(), msg);
  // all of one connection's events went to one partition
  const parts = new Set(batches.filter((b) => resolvedData(b).some((d) => d.connKey === open.connKey) || b.conns.some((c) => c.connKey === open.connKey)).map((b) => b.partition));
  assert.equal(parts.size, 1);

  // 2. the probe's own traffic (its NATS connection) never appears
  assert.equal(conns().filter((c) => c.process?.pid === probe.pid).length, 0);
  assert.equal(conns().filter((c) => c.process?.pid === nats.pid).length, 0, "nats-server's own sockets are excluded (by name)");
  assert.equal(conns().filter((c) => c.localPort === nats.port).length, 0, "no server side of a NATS connection");

  // 3. Status over gRPC
  const ctl = createClient(ProbeService, address);
  t.after(() => ctl.close());
  const st = await ctl.status({});
  assert.equal(st.component, "probe");
  assert.ok((st.counters["programs_attached"] ?? 0) >= 20, `programs attached: ${st.counters["programs_attached"]}`);
  assert.ok((st.counters["events_in"] ?? 0) > 0);
  assert.ok("drops.kernel.ringbuf_full" in st.counters);
  assert.ok("connections_tracked" in st.counters);
  assert.ok("processes" in st.counters);

  // 4. SetFilter: deny the server's port; a new connection to it no longer appears
  const res = await ctl.setFilter({ filter: { denyPorts: [serverPort] } });
  assert.deepEqual(res.filter?.denyPorts, [serverPort]);
  const denied = await roundTrip("should not be seen");
  // then allow again and make one more connection: once that one is through, the denied one would have been too
  await ctl.setFilter({ filter: {} });
  const after = await roundTrip("seen again");
  await waitFor(() => conns().some((c) => c.process?.pid === after.client.pid && c.kind === ConnKind.CLOSE), { timeoutMs: 15_000, intervalMs: 20, what: "the connection after the filter was lifted" });
  assert.equal(conns().filter((c) => c.process?.pid === denied.client.pid).length, 0, "denied connection never published");
  await assert.rejects(ctl.setFilter({ filter: { denyComms: ["this-name-is-far-too-long"] } }), /invalid filter/);

  // 5. a process that exits with its connection open (no close(2)): the probe closes it for the parsers
  const quitter = await runChild("quitter", `import net from "node:net";
const s = net.connect(${serverPort}, "127.0.0.1", () => s.write("bye"));
s.on("data", () => { console.log("LOCAL " + s.localPort); process.exit(0); });`);
  const qPort = Number((await quitter.waitLine(/^LOCAL (\d+)/))[1]);
  await quitter.exited;
  await waitFor(() =>
    conns().some((c) => c.process?.pid === quitter.pid && c.localPort === qPort && c.kind === ConnKind.CLOSE), { timeoutMs: 10_000, intervalMs: 20, what: "a close event for the exited process's connection" });
  sub.unsubscribe();
});

test("probe --source pcap: a capture replayed through the same path reaches NATS (no eBPF needed)", { timeout: 60_000 }, async (t) => {
  const file = `${SHARED_CAPTURES}/http1/zeek__pipelined-requests.pcap`;
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const batches: RawBatch[] = [];
  const sub = nc.subscribe("wirescope.raw.*");
  void (async () => {
    for await (const m of sub) batches.push(fromBinary(RawBatchSchema, m.data));
  })();
  await nc.flush();
  const dir = tempDir("wirescope-probe-pcap-");
  const probe = await spawnTracked("probe", process.execPath, [
    WIRESCOPE_BIN, "probe", "--nats-url", url, "--grpc-port", String(await freePort()),
    "--source", "pcap", file, "--replay-loops", "3", "--log-level", "warn",
  ], { logFile: path.join(dir, "probe.log") });
  t.after(() => probe.stop());
  await waitFor(() => batches.flatMap((b) => b.conns).filter((c) => c.kind === ConnKind.CLOSE).length >= 3, { timeoutMs: 30_000, intervalMs: 20, what: "three replays' connections closed" })
    .catch((e) => { throw new Error(`${(e as Error).message}\n${probe.tail()}`); });
  const opens = batches.flatMap((b) => b.conns).filter((c) => c.kind === ConnKind.OPEN);
  assert.equal(new Set(opens.map((c) => c.connKey)).size, opens.length, "a new key per replayed connection");
  const first = opens[0];
  const egress = Buffer.concat(batches.flatMap(resolvedData).filter((d) => d.connKey === first.connKey && d.direction === 1).sort((a, b) => Number(a.seq - b.seq)).map((d) => Buffer.from(d.payload)));
  assert.equal(egress.toString("latin1").match(/^GET /gm)?.length, 5);
  assert.ok(batches.every((b) => b.node.length > 0 && b.batchSeq > 0n));
  sub.unsubscribe();
});
