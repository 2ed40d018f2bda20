// What the TLS uprobes cost the traced application, side by side in one run: a node:https server
// (OpenSSL inside the node executable) under h2load --h1 and nginx with TLS (libssl.so.3, h2 by
// ALPN) under h2load, each run detached and then with `wirescope probe` attached (TLS plaintext
// read by uprobes, published to a real nats-server), alternating. The application and its load
// generator are pinned to the last CPU, the probe and nats-server to the others (taskset), so the
// figures say what the traced process pays, not how the pipeline competes for its core.
// Usage: npm run bench -- probe-tls-overhead  (root; eBPF needed; 2+ CPUs)
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { startNats, freePort, spawnTracked, tempDir, WIRESCOPE_BIN } from "./support/index.js";
import { runChild, cpuTicks } from "./probe-support.js";
import { selfSigned, startNginx } from "./tls-support.js";
import { checkHealth, createClient, ServingStatus } from "@wirescope/runtime";
import { ProbeService } from "@wirescope/wire";

const run = promisify(execFile);
const SECONDS = Number(process.env.WIRESCOPE_BENCH_SECONDS ?? 5);
// detached/attached runs alternate; the median of the per-round ratios is reported (two runs of
// the same thing on a small shared machine differ more than the probe's cost)
const ROUNDS = Number(process.env.WIRESCOPE_BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const CPUS = os.cpus().length;
const APP_CPU = String(CPUS - 1);
const PIPELINE_CPUS = Array.from({ length: CPUS - 1 }, (_, i) => i).join(",");
/** Pins every thread of a running process (threads started later inherit it). */
const pin = (pid: number, cpus: string) => execFileSync("taskset", ["-a", "-cp", cpus, String(pid)], { stdio: "ignore" });

interface Result {
  rps: number;
  p99ms: number;
}

/** h2load over TLS, pinned with the application; p99 from its per-request log. */
async function h2load(url: string, dir: string, h1: boolean): Promise<Result> {
  const log = path.join(dir, `h2load-${Date.now()}.log`);
  const args = ["-c", APP_CPU, "h2load", ...(h1 ? ["--h1", "-c16", "-m1"] : ["-c16", "-m10"]), "-t1", "-D", String(SECONDS), `--log-file=${log}`, url];
  const { stdout } = await run("taskset", args, { timeout: (SECONDS + 30) * 1000 });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout)?.[1]);
  // (requests still in flight when the duration ends count as failed: not an error)
  const non2xx = /status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout)?.slice(1).reduce((n, x) => n + Number(x), 0);
  if (!(rps > 0) || non2xx !== 0) throw new Error(`h2load: ${stdout}`);
  const lat = fs.readFileSync(log, "utf8").trim().split("\n").map((l) => Number(l.split("\t")[2])).filter(Number.isFinite).sort((a, b) => a - b);
  fs.rmSync(log);
  return { rps, p99ms: lat.length ? lat[Math.floor(lat.length * 0.99)]! / 1000 : NaN };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("skipped: the probe needs root");
    return;
  }
  if (CPUS < 2) {
    console.log("skipped: needs 2 CPUs (the application on one, the pipeline on the others)");
    return;
  }
  const dir = tempDir("wirescope-tls-bench-");
  const tls = selfSigned(dir);
  const nats = await startNats({ jetstream: true });
  pin(nats.pid, PIPELINE_CPUS);
  const node = await runChild("https-server", `import https from "node:https";
import fs from "node:fs";
const body = Buffer.from("hello from a traced TLS server\\n");
https.createServer({ cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3]) }, (req, res) => { res.setHeader("content-type", "text/plain"); res.end(body); })
  .listen(0, "127.0.0.1", function () { console.log("PORT " + this.address().port); });`, [tls.cert, tls.key]);
  const nodePort = Number((await node.waitLine(/^PORT (\d+)/))[1]);
  pin(node.pid, APP_CPU);
  const nginxPort = await freePort();
  const nginx = await startNginx(dir, nginxPort, tls);
  pin(nginx.pid!, APP_CPU);

  let probeArgs: string[] = [];
  async function withProbe<T>(fn: () => Promise<T>): Promise<{ r: T; cpuPct: number; sslCalls: number }> {
    const grpcPort = await freePort();
    const probe = await spawnTracked("probe", "taskset", ["-c", PIPELINE_CPUS, process.execPath, WIRESCOPE_BIN, "probe", "--nats-url", `nats://127.0.0.1:${nats.port}`,
      "--grpc-port", String(grpcPort), "--lock-file", path.join(dir, "probe.lock"), "--mount-tracefs", "--log-level", "warn", ...probeArgs], { logFile: path.join(dir, "probe.log") });
    const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
    try {
      const deadline = Date.now() + 30_000;
      while ((await checkHealth(`127.0.0.1:${grpcPort}`)).status !== ServingStatus.SERVING) {
        if (probe.hasExited || Date.now() > deadline) throw new Error(`probe did not start: ${probe.tail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const calls = async () => {
        const c = (await ctl.status({})).counters;
        return (c["tls.calls"] ?? 0) + (c["tls.call_empty"] ?? 0);
      };
      const k0 = await calls();
      const c0 = cpuTicks(probe.pid);
      const t0 = Date.now();
      const r = await fn();
      const cpuPct = ((cpuTicks(probe.pid) - c0) / 100 / ((Date.now() - t0) / 1000)) * 100;
      return { r, cpuPct, sslCalls: (await calls()) - k0 };
    } finally {
      ctl.close();
      await probe.stop();
    }
  }

  const rows: string[] = [];
  const workloads: [string, () => Promise<Result>, number][] = [
    ["node:https + h2load --h1 (-c16)", () => h2load(`https://127.0.0.1:${nodePort}/`, dir, true), nodePort],
    ["nginx TLS h2 + h2load (-c16 -m10)", () => h2load(`https://127.0.0.1:${nginxPort}/`, dir, false), nginxPort],
  ];
  // both ends traced (h2load's libssl too), and the server alone (h2load excluded, as a remote
  // client would be)
  const configs: [string, string[]][] = [
    ["both ends traced", []],
    ["server only", ["--deny-comm", "h2load"]],
  ];
  for (const [config, args] of configs) {
    for (const [name0, load, port] of workloads) {
      probeArgs = ["--allow-port", String(port), ...args];
      await load(); // warm-up, not counted
      const offs: Result[] = [];
      const ons: Result[] = [];
      const cpu: number[] = [];
      const calls: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        offs.push(await load());
        const on = await withProbe(load);
        ons.push(on.r);
        cpu.push(on.cpuPct);
        calls.push(on.sslCalls / (on.r.rps * SECONDS));
      }
      const name = `${name0}, ${config}`;
      const tput = median(ons.map((o, i) => o.rps / offs[i]!.rps));
      const p99 = median(ons.map((o, i) => o.p99ms / offs[i]!.p99ms));
      rows.push(
        `| ${name} | ${median(offs.map((o) => o.rps)).toFixed(0)} | ${median(ons.map((o) => o.rps)).toFixed(0)} | ${(tput * 100).toFixed(1)}% | ` +
          `${median(offs.map((o) => o.p99ms)).toFixed(2)} | ${median(ons.map((o) => o.p99ms)).toFixed(2)} | ${(p99 * 100).toFixed(1)}% | ${median(calls).toFixed(1)} | ${median(cpu).toFixed(1)}% |`,
      );
      console.log(`${name}: detached ${offs.map((o) => o.rps.toFixed(0)).join(", ")} req/s; attached ${ons.map((o) => o.rps.toFixed(0)).join(", ")} req/s`);
    }
  }
  console.log(`\n${SECONDS} s per run, ${ROUNDS} alternating rounds (medians), loopback, ${CPUS} CPUs: application and h2load on CPU ${APP_CPU}, probe and nats-server on ${PIPELINE_CPUS}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}\n`);
  console.log("| workload | req/s detached | req/s attached | throughput ratio | p99 ms detached | p99 ms attached | p99 ratio | SSL calls per request | probe CPU |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
  node.kill();
  nginx.kill("SIGKILL");
  await nats.stop();
}

await main();
process.exit(0);
