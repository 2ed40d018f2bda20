// Overhead of the probe on the traced application, measured side by side in one run:
// a node:http server under wrk and a node:http2 server under h2load, each run detached and then
// with the probe service attached (its own process, publishing RawBatch to a real nats-server),
// alternating, same durations. Prints throughput and p99 ratios (attached / detached) and the
// probe's CPU. Loopback only. Usage: npm run bench -- probe-overhead  (root; eBPF needed)
import path from "node:path";
import fs from "node:fs";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { startNats, freePort, spawnTracked, tempDir, WIRESCOPE_BIN } from "./support/index.js";
import { runChild, cpuTicks } from "./probe-support.js";
import { checkHealth, ServingStatus } from "@wirescope/runtime";

const run = promisify(execFile);
const SECONDS = Number(process.env.WIRESCOPE_BENCH_SECONDS ?? 5);
// detached/attached runs alternate this many times; the median ratio is reported, because on a
// small shared machine two runs of the same thing differ more than the probe's cost
const ROUNDS = Number(process.env.WIRESCOPE_BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Result {
  rps: number;
  p99ms: number;
}

async function wrk(port: number): Promise<Result> {
  const { stdout } = await run("wrk", ["-t2", "-c32", `-d${SECONDS}s`, "--latency", `http://127.0.0.1:${port}/`], { timeout: (SECONDS + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const m = /^\s+99%\s+([\d.]+)(us|ms|s)/m.exec(stdout);
  const p99ms = m ? Number(m[1]) * (m[2] === "us" ? 1e-3 : m[2] === "s" ? 1e3 : 1) : NaN;
  return { rps, p99ms };
}

async function h2load(port: number, dir: string): Promise<Result> {
  const log = path.join(dir, `h2load-${Date.now()}.log`);
  const { stdout } = await run("h2load", ["-c16", "-m10", "-t2", "-D", String(SECONDS), `--log-file=${log}`, `http://127.0.0.1:${port}/`], { timeout: (SECONDS + 30) * 1000 });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout)?.[1]);
  const lat = fs.readFileSync(log, "utf8").trim().split("\n").map((l) => Number(l.split("\t")[2])).filter(Number.isFinite).sort((a, b) => a - b);
  const p99ms = lat.length ? lat[Math.floor(lat.length * 0.99)] / 1000 : NaN;
  fs.rmSync(log);
  return { rps, p99ms };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("skipped: the probe needs root");
    return;
  }
  const dir = tempDir("wirescope-bench-");
  const nats = await startNats({ jetstream: true });
  const h1 = await runChild("h1-server", `import http from "node:http";
const body = Buffer.from("hello from a traced server\\n");
http.createServer((req, res) => { res.setHeader("content-type", "text/plain"); res.end(body); }).listen(0, "127.0.0.1", function () { console.log("PORT " + this.address().port); });`);
  const h2 = await runChild("h2-server", `import http2 from "node:http2";
const srv = http2.createServer();
srv.on("stream", (s) => { s.respond({ ":status": 200, "content-type": "text/plain" }); s.end("hello from a traced h2 server\\n"); });
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));`);
  const h1port = Number((await h1.waitLine(/^PORT (\d+)/))[1]);
  const h2port = Number((await h2.waitLine(/^PORT (\d+)/))[1]);

  let probeArgs: string[] = [];
  async function withProbe<T>(fn: () => Promise<T>): Promise<{ r: T; cpuPct: number }> {
    const grpcPort = await freePort();
    const probe = await spawnTracked("probe", process.execPath, [WIRESCOPE_BIN, "probe", "--nats-url", `nats://127.0.0.1:${nats.port}`,
      "--grpc-port", String(grpcPort), "--lock-file", path.join(dir, "probe.lock"), "--mount-tracefs", "--log-level", "warn", ...probeArgs], { logFile: path.join(dir, "probe.log") });
    try {
      const deadline = Date.now() + 30_000;
      while ((await checkHealth(`127.0.0.1:${grpcPort}`)).status !== ServingStatus.SERVING) {
        if (probe.hasExited || Date.now() > deadline) throw new Error(`probe did not start: ${probe.tail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const c0 = cpuTicks(probe.pid);
      const t0 = Date.now();
      const r = await fn();
      const cpuPct = ((cpuTicks(probe.pid) - c0) / 100 / ((Date.now() - t0) / 1000)) * 100;
      return { r, cpuPct };
    } finally {
      await probe.stop();
    }
  }

  const rows: string[] = [];
  // all processes traced (the load generator too: two sockets per connection), and the server
  // alone (the load generator excluded, as a remote client would be)
  const configs: [string, string[]][] = [
    ["everything traced", []],
    ["server only (wrk/h2load excluded)", ["--deny-comm", "wrk", "--deny-comm", "h2load"]],
  ];
  for (const [config, args] of configs) {
  probeArgs = args;
  for (const [name0, load] of [["node:http + wrk (-t2 -c32)", () => wrk(h1port)], ["node:http2 + h2load (-c16 -m10)", () => h2load(h2port, dir)]] as const) {
    await load(); // warm-up (JIT, connection setup), not counted
    const offs: Result[] = [];
    const ons: Result[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      offs.push(await load());
      const on = await withProbe(load);
      ons.push(on.r);
      cpu.push(on.cpuPct);
    }
    const name = `${name0}, ${config}`;
    const tput = median(ons.map((o, i) => o.rps / offs[i].rps));
    const p99 = median(ons.map((o, i) => o.p99ms / offs[i].p99ms));
    rows.push(
      `| ${name} | ${median(offs.map((o) => o.rps)).toFixed(0)} | ${median(ons.map((o) => o.rps)).toFixed(0)} | ${(tput * 100).toFixed(1)}% | ` +
        `${median(offs.map((o) => o.p99ms)).toFixed(2)} | ${median(ons.map((o) => o.p99ms)).toFixed(2)} | ${(p99 * 100).toFixed(1)}% | ${median(cpu).toFixed(1)}% |`,
    );
    console.log(`${name}: detached ${offs.map((o) => o.rps.toFixed(0)).join(", ")} req/s; attached ${ons.map((o) => o.rps.toFixed(0)).join(", ")} req/s`);
  }
  }
  console.log(`\n${SECONDS} s per run, ${ROUNDS} alternating rounds (medians), loopback, ${(await import("node:os")).cpus().length} CPUs\n`);
  console.log("| workload | req/s detached | req/s attached | throughput ratio | p99 ms detached | p99 ms attached | p99 ratio | probe CPU |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
  h1.kill();
  h2.kill();
  await nats.stop();
}

await main();
process.exit(0);
