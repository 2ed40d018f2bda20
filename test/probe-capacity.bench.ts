// Capacity of the probe: how many events/s and MB/s it delivers to NATS before it drops, and its
// CPU per event. A traffic generator (its own process) runs ping-pong exchanges on many loopback
// connections at increasing message sizes; the probe service (its own process) publishes to a
// real nats-server; this process subscribes and counts what arrives, and reads the probe's drop
// counters over gRPC. Usage: npm run bench -- probe-capacity  (root; eBPF needed)
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { fromBinary } from "@bufbuild/protobuf";
import { RawBatchSchema, ProbeService } from "@wirescope/wire";
import { createClient, checkHealth, ServingStatus } from "@wirescope/runtime";
import { startNats, freePort, spawnTracked, tempDir, WIRESCOPE_BIN } from "./support/index.js";
import { runChild, cpuTicks } from "./probe-support.js";

const SECONDS = Number(process.env.WIRESCOPE_BENCH_SECONDS ?? 5);

const GENERATOR = `
import net from "node:net";
const [size, conns, ms] = process.argv.slice(2).map(Number);
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
await new Promise((r) => srv.listen(0, "127.0.0.1", r));
const msg = Buffer.alloc(size, 97);
let exchanges = 0;
const end = Date.now() + ms;
await Promise.all(Array.from({ length: conns }, () => new Promise((resolve) => {
  const c = net.connect(srv.address().port, "127.0.0.1", () => c.write(msg));
  let got = 0;
  c.on("data", (d) => {
    got += d.length;
    if (got >= size) { got -= size; exchanges++; if (Date.now() < end) c.write(msg); else c.end(); }
  });
  c.on("close", resolve);
})));
console.log("EXCHANGES " + exchanges);
srv.close();
`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("skipped: the probe needs root");
    return;
  }
  const dir = tempDir("wirescope-capacity-");
  const nats = await startNats({ jetstream: true });
  const grpcPort = await freePort();
  const probe = await spawnTracked("probe", process.execPath, [WIRESCOPE_BIN, "probe", "--nats-url", `nats://127.0.0.1:${nats.port}`,
    "--grpc-port", String(grpcPort), "--lock-file", path.join(dir, "probe.lock"), "--mount-tracefs", "--log-level", "warn",
    // this process consumes the RawBatches like a parser would: never trace it (feedback loop)
    "--exclude-pid", String(process.pid)], { logFile: path.join(dir, "probe.log") });
  const address = `127.0.0.1:${grpcPort}`;
  const deadline = Date.now() + 30_000;
  while ((await checkHealth(address)).status !== ServingStatus.SERVING) {
    if (probe.hasExited || Date.now() > deadline) throw new Error(`probe did not start: ${probe.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const ctl = createClient(ProbeService, address);
  const nc = await connect({ servers: `nats://127.0.0.1:${nats.port}` });
  let events = 0;
  let bytes = 0;
  const sub = nc.subscribe("wirescope.raw.*");
  void (async () => {
    for await (const m of sub) {
      const b = fromBinary(RawBatchSchema, m.data);
      events += b.data.length + b.conns.length;
      for (const d of b.data) bytes += d.payload.length;
    }
  })();
  const dropMap = async () => {
    const st = await ctl.status({});
    return Object.fromEntries(Object.entries(st.counters).filter(([k]) => k.startsWith("drops.") || k.startsWith("nats_drops")));
  };
  const drops = async () => Object.values(await dropMap()).reduce((n, v) => n + v, 0);

  console.log(`${SECONDS} s per step, 64 connections ping-ponging one message each, loopback\n`);
  console.log("| message bytes | events/s delivered | MB/s delivered | events dropped | probe CPU | CPU µs per event |");
  console.log("|---|---|---|---|---|---|");
  for (const size of [64, 1024, 16384, 65536]) {
    const e0 = events, b0 = bytes, d0 = await drops(), c0 = cpuTicks(probe.pid), t0 = Date.now();
    const gen = await runChild("generator", GENERATOR, [String(size), "64", String(SECONDS * 1000)]);
    await gen.waitLine(/^EXCHANGES/, (SECONDS + 30) * 1000);
    await gen.exited;
    await new Promise((r) => setTimeout(r, 1000)); // let the last batches arrive
    const secs = (Date.now() - t0) / 1000;
    const ev = events - e0;
    const cpuS = (cpuTicks(probe.pid) - c0) / 100;
    console.log(`| ${size} | ${(ev / SECONDS).toFixed(0)} | ${((bytes - b0) / SECONDS / 1e6).toFixed(1)} | ${(await drops()) - d0} | ${((cpuS / secs) * 100).toFixed(0)}% | ${ev ? ((cpuS * 1e6) / ev).toFixed(1) : "-"} |`);
  }
  console.log(`\ndrops by reason (cumulative): ${JSON.stringify(Object.fromEntries(Object.entries(await dropMap()).filter(([, v]) => v > 0)))}`);
  sub.unsubscribe();
  await nc.close();
  ctl.close();
  await probe.stop();
  await nats.stop();
}

await main();
process.exit(0);
