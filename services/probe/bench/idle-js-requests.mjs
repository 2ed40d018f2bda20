#!/usr/bin/env node
// JetStream API requests of an idle probe: for each checkout given, a nats-server with JetStream
// on a free port, that checkout's `wirescope probe` (root, eBPF), and after WARM seconds a
// subscriber on `$JS.API.>` that counts the requests of the next SECONDS, by subject. Nothing else
// announces itself, so the registry holds the probe's own entry only.
//
//   node services/probe/bench/idle-js-requests.mjs CHECKOUT... (env WARM=25 SECONDS=10: the warm-up covers start-up on a loaded machine)
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const warm = Number(process.env.WARM ?? 25);
const secs = Number(process.env.SECONDS ?? 10);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const stop = (p) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => (p.once("exit", r), p.kill("SIGTERM"))));

for (const checkout of process.argv.slice(2)) {
  const co = path.resolve(checkout);
  const { connect } = await import(path.join(co, "node_modules/@nats-io/transport-node/lib/mod.js"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-idle-js-"));
  const port = await freePort();
  const nats = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", path.join(dir, "js")], { stdio: "ignore" });
  await sleep(800);
  const probe = spawn(process.execPath, [path.join(co, "bin/wirescope.js"), "probe", "--nats-url", `nats://127.0.0.1:${port}`, "--grpc-port", "0", "--metrics-port", "0", "--lock-file", path.join(dir, "lock"), "--log-level", "error"], { stdio: "ignore" });
  try {
    await sleep(warm * 1000);
    const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
    const bySubject = {};
    let n = 0;
    nc.subscribe("$JS.API.>", {
      callback: (_e, m) => {
        n++;
        const k = m.subject.split(".").slice(0, 4).join(".");
        bySubject[k] = (bySubject[k] ?? 0) + 1;
      },
    });
    await nc.flush();
    await sleep(secs * 1000);
    await nc.close();
    console.log(`idle-js-requests ${co}: ${n} JetStream API requests in ${secs} s ${JSON.stringify(bySubject)}; load average ${fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]}`);
  } finally {
    await stop(probe);
    await stop(nats);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
