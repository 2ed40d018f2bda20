// `wirescope decode` against tshark on the same large capture, plus reader and reassembly speed.
//
// The capture is made here: wrk against a node:http server and h2load against a node:http2 server
// (prior knowledge), both on loopback, recorded by tcpdump. Then, one after the other:
//   tshark  -d tcp.port==<h2>,http2  printing method, path, status, authority of every message
//   wirescope decode                 printing the NDJSON records (method, path, status, ...)
//   wirescope decode --no-batch      the same, one plugin call per chunk (the ABI v1 path):
//                                    its output must be the same file, byte for byte
// and the ratio of their wall times, from this one run. Both outputs go to files; their request
// counts are printed so it is visible that they did the same work.
//
// Usage: node test/dist/decode.bench.js [--keep DIR] [--seconds N]   (npm run bench -- decode)
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CaptureReader, CaptureStreams, type StreamSink } from "@wirescope/capture";
import { REPO_ROOT, WIRESCOPE_BIN } from "./support/index.js";

const argv = process.argv.slice(2);
const keep = argv.includes("--keep") ? argv[argv.indexOf("--keep") + 1] : undefined;
const seconds = argv.includes("--seconds") ? Number(argv[argv.indexOf("--seconds") + 1]) : 4;
const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), "ws-bench-decode-"));
fs.mkdirSync(dir, { recursive: true });

const SERVERS = `
import http from "node:http";
import http2 from "node:http2";
const body = Buffer.alloc(512, 97);
const h1 = http.createServer((req, res) => {
  if (req.url.startsWith("/missing")) { res.statusCode = 404; res.end("no"); return; }
  res.setHeader("content-type", "text/plain");
  res.end(body);
});
const h2 = http2.createServer();
h2.on("stream", (stream, headers) => {
  const p = headers[":path"];
  stream.respond({ ":status": p.startsWith("/missing") ? 404 : 200, "content-type": "text/plain" });
  stream.end(body);
});
h1.keepAliveTimeout = 60000;
h1.listen(0, "127.0.0.1", () => h2.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ h1: h1.address().port, h2: h2.address().port }) + "\\n");
}));
`;

interface Timed {
  code: number | null;
  /** Wall time, ms. */
  ms: number;
  /** CPU time (user + system) of the process and its children, ms (GNU time). */
  cpuMs: number;
  stderr: string;
}

/**
 * Runs a command under GNU time: wall and CPU time. The machine may be shared, so CPU time is
 * the fair figure for single-threaded tools; both are printed.
 */
function run(cmd: string, args: string[], opts: { stdout?: string; timeoutMs?: number } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const out = opts.stdout ? fs.openSync(opts.stdout, "w") : "ignore";
    const timeFile = path.join(dir, `time-${process.hrtime.bigint()}.txt`);
    const p = spawn("/usr/bin/time", ["-f", "%U %S", "-o", timeFile, cmd, ...args], { stdio: ["ignore", out, "pipe"], cwd: REPO_ROOT });
    let stderr = "";
    p.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 900_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      if (typeof out === "number") fs.closeSync(out);
      let cpuMs = NaN;
      try {
        const [u, sys] = fs.readFileSync(timeFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
        cpuMs = (u! + sys!) * 1000;
        fs.rmSync(timeFile);
      } catch {
        // no GNU time output: CPU time unknown
      }
      resolve({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, cpuMs, stderr });
    });
  });
}

async function makeCapture(file: string): Promise<{ h1: number; h2: number }> {
  const script = path.join(dir, "servers.mjs");
  fs.writeFileSync(script, SERVERS);
  const srv = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const ports = await new Promise<{ h1: number; h2: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("servers did not start")), 15_000);
      srv.stdout!.once("data", (b: Buffer) => {
        clearTimeout(timer);
        resolve(JSON.parse(b.toString()) as { h1: number; h2: number });
      });
      srv.on("error", reject);
    });
    const dump = spawn("tcpdump", ["-U", "--immediate-mode", "-B", "131072", "-n", "-i", "lo", "-w", file, `tcp port ${ports.h1} or tcp port ${ports.h2}`], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    dump.stderr!.on("data", (b: Buffer) => (log += b.toString()));
    const dumpExit = new Promise<void>((resolve) => dump.on("close", () => resolve()));
    try {
      for (let i = 0; !/listening on/.test(log); i++) {
        if (i > 300) throw new Error(`tcpdump did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await run("wrk", ["-t1", "-c8", `-d${seconds}s`, `http://127.0.0.1:${ports.h1}/items/42?x=1`], { timeoutMs: (seconds + 30) * 1000 });
      await run("h2load", ["-n", String(seconds * 25_000), "-c", "8", "-m", "10", `http://127.0.0.1:${ports.h2}/api/v1/things?page=2`], { timeoutMs: (seconds + 60) * 1000 });
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      if (dump.pid && dump.exitCode === null) process.kill(dump.pid, "SIGINT");
      await dumpExit;
    }
    if (/[1-9]\d* packets? dropped by kernel/.test(log)) console.log(`note: tcpdump dropped packets (${log.trim().split("\n").at(-1)}); both decoders see the same file`);
    return ports;
  } finally {
    if (srv.pid && srv.exitCode === null) process.kill(srv.pid, "SIGTERM");
  }
}

function countLines(file: string, re: RegExp): number {
  let n = 0;
  for (const l of fs.readFileSync(file, "utf8").split("\n")) if (re.test(l)) n++;
  return n;
}

async function main(): Promise<void> {
  const cap = path.join(dir, "bench.pcap");
  const portsFile = path.join(dir, "ports.json");
  let ports: { h1: number; h2: number };
  if (keep && fs.existsSync(cap) && fs.existsSync(portsFile)) {
    ports = JSON.parse(fs.readFileSync(portsFile, "utf8")) as { h1: number; h2: number };
  } else {
    ports = await makeCapture(cap);
    fs.writeFileSync(portsFile, JSON.stringify(ports));
  }
  const size = fs.statSync(cap).size;
  const packets = Number(execFileSync("capinfos", ["-c", "-M", "-r", cap]).toString().match(/(\d+)\s*$/m)?.[1] ?? 0);
  console.log(`capture: ${(size / 1048576).toFixed(1)} MiB, ${packets} packets (wrk → node:http :${ports.h1}, h2load → node:http2 :${ports.h2})`);

  // reader and reader + reassembly, in process, best of 3 by CPU time (the file is in the page
  // cache after the first pass; the machine may be shared, so CPU time rather than wall time)
  const cpu = (fn: () => void): number => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const c0 = process.cpuUsage();
      fn();
      const c = process.cpuUsage(c0);
      best = Math.min(best, (c.user + c.system) / 1e6);
    }
    return best;
  };
  {
    let n = 0;
    const s = cpu(() => {
      const r = CaptureReader.open(cap);
      n = 0;
      while (r.next()) n++;
      r.close();
    });
    console.log(`reader only:          ${(size / 1048576 / s).toFixed(0)} MiB/s, ${(n / s / 1e6).toFixed(2)} M packets/s (per CPU second)`);
  }
  {
    let bytes = 0;
    let st: ReturnType<CaptureStreams["run"]> | undefined;
    const sink: StreamSink = { open() {}, data: (_c, _d, b) => void (bytes += b.length), gap() {}, close() {} };
    const s = cpu(() => {
      bytes = 0;
      st = CaptureStreams.open(cap, sink).run();
    });
    console.log(`reader + reassembly:  ${(size / 1048576 / s).toFixed(0)} MiB/s of capture, ${(bytes / 1048576 / s).toFixed(0)} MiB/s of payload, ${(st!.reader.packets / s / 1e6).toFixed(2)} M packets/s (per CPU second; ${st!.reassembly.connections} connections, ${st!.reassembly.gaps} gaps)`);
  }

  // tshark: the same fields wirescope prints (method, path, status, host/authority)
  const tsOut = path.join(dir, "tshark.tsv");
  const ts = await run("tshark", ["-r", cap, "-d", `tcp.port==${ports.h2},http2`, "-Y", "http.request or http.response or http2.type == 1", "-T", "fields", "-E", "occurrence=a", "-e", "frame.time_epoch", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.host", "-e", "http.response.code", "-e", "http2.headers.method", "-e", "http2.headers.path", "-e", "http2.headers.authority", "-e", "http2.headers.status"], { stdout: tsOut });
  if (ts.code !== 0) throw new Error(`tshark failed: ${ts.stderr}`);
  // wirescope decode
  const wsOut = path.join(dir, "wirescope.ndjson");
  const ws = await run(process.execPath, [WIRESCOPE_BIN, "decode", cap, "--no-progress"], { stdout: wsOut });
  if (ws.code !== 0) throw new Error(`wirescope decode failed: ${ws.stderr}`);
  const wsv1Out = path.join(dir, "wirescope-no-batch.ndjson");
  const wsv1 = await run(process.execPath, [WIRESCOPE_BIN, "decode", cap, "--no-progress", "--no-batch"], { stdout: wsv1Out });
  if (wsv1.code !== 0) throw new Error(`wirescope decode --no-batch failed: ${wsv1.stderr}`);
  if (!fs.readFileSync(wsOut).equals(fs.readFileSync(wsv1Out))) throw new Error(`wirescope decode printed different records with and without batches (${wsOut}, ${wsv1Out})`);
  const jobs = Math.max(2, os.cpus().length);
  const wsjOut = path.join(dir, "wirescope-jobs.ndjson");
  const wsj = await run(process.execPath, [WIRESCOPE_BIN, "decode", cap, "--no-progress", "--jobs", String(jobs)], { stdout: wsjOut });
  if (wsj.code !== 0) throw new Error(`wirescope decode --jobs failed: ${wsj.stderr}`);

  const tsharkH1 = countLines(tsOut, /^\S+\t(GET|POST|PUT|DELETE|HEAD)\t/);
  const tsharkH2 = fs
    .readFileSync(tsOut, "utf8")
    .split("\n")
    .reduce((n, l) => n + (l.split("\t")[5]?.split(",").filter(Boolean).length ?? 0), 0);
  const wsH1 = countLines(wsOut, /"protocol":"http1"/);
  const wsH2 = countLines(wsOut, /"protocol":"http2"/);
  console.log("");
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  console.log(`| tool | CPU time | wall time | HTTP/1.1 requests | HTTP/2 requests |`);
  console.log(`|---|---|---|---|---|`);
  console.log(`| tshark 4.0 (-T fields, same fields) | ${(ts.cpuMs / 1000).toFixed(2)} s | ${(ts.ms / 1000).toFixed(2)} s | ${tsharkH1} | ${tsharkH2} |`);
  console.log(`| wirescope decode (NDJSON, ABI v2 batches) | ${(ws.cpuMs / 1000).toFixed(2)} s | ${(ws.ms / 1000).toFixed(2)} s | ${wsH1} | ${wsH2} |`);
  console.log(`| wirescope decode --no-batch (one call per chunk, the v1 path; same output) | ${(wsv1.cpuMs / 1000).toFixed(2)} s | ${(wsv1.ms / 1000).toFixed(2)} s | ${wsH1} | ${wsH2} |`);
  console.log(`| wirescope decode --jobs ${jobs} | ${(wsj.cpuMs / 1000).toFixed(2)} s | ${(wsj.ms / 1000).toFixed(2)} s | ${countLines(wsjOut, /"protocol":"http1"/)} | ${countLines(wsjOut, /"protocol":"http2"/)} |`);
  console.log("");
  console.log(`wirescope decode --no-batch vs tshark: ${(ts.cpuMs / wsv1.cpuMs).toFixed(1)}× less CPU time`);
  console.log(`wirescope decode vs tshark: ${(ts.cpuMs / ws.cpuMs).toFixed(1)}× less CPU time, ${(ts.ms / ws.ms).toFixed(1)}× less wall time; with --jobs ${jobs}: ${(ts.ms / wsj.ms).toFixed(1)}× less wall time (load average ${load} on ${os.cpus().length} cores; aim: ≥ 20×)`);
  console.log(`wirescope decode: ${(size / 1048576 / (ws.cpuMs / 1000)).toFixed(1)} MiB/s and ${((wsH1 + wsH2) / (ws.cpuMs / 1000) / 1000).toFixed(0)}k records/s per CPU second, process start and plugin compilation included`);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(`decode bench: ${(e as Error).message}`);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
