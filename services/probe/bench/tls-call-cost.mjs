// Added CPU per SSL_read/SSL_write in the traced process: a python TLS ping-pong (tls-call-cost.py,
// 4 library calls per round) timed by its own CPU clock with no probe, with the probe's syscall
// tracepoints only (TLS off), and with the TLS uprobes too; alternating, median of ROUNDS runs.
// Usage (root, after `npm run build`): node services/probe/bench/tls-call-cost.mjs [calls=200000] [runs=3]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { EbpfSource } from "../dist/ebpf-source.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const calls = Number(process.argv[2] ?? 200_000);
const runs = Number(process.argv[3] ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-cost-"));
const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
const once = () => Number(execFileSync("python3", [path.join(here, "tls-call-cost.py"), cert, key, String(calls / 4)], { encoding: "utf8" }));
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const res = { none: [], tracepoints: [], uprobes: [] };
for (let r = 0; r < runs; r++) {
  res.none.push(once());
  for (const [name, tls] of [["tracepoints", false], ["uprobes", true]]) {
    const src = new EbpfSource({ tls });
    const ac = new AbortController();
    const done = src.run(() => {}, ac.signal);
    res[name].push(once());
    if (tls) console.error("tls counters", JSON.stringify(src.stats().tls));
    ac.abort();
    await done;
  }
}
const us = (s) => ((s * 1e6) / calls).toFixed(2);
console.log(`${calls} SSL calls per run, median of ${runs}: CPU µs per call (python loop, 64-byte messages)`);
for (const k of Object.keys(res)) console.log(`  ${k.padEnd(12)} ${us(median(res[k]))} µs/call  (runs: ${res[k].map(us).join(", ")})`);
console.log(`  added by the TLS uprobes: ${((median(res.uprobes) - median(res.tracepoints)) * 1e6 / calls).toFixed(2)} µs/call; by the probe in all: ${((median(res.uprobes) - median(res.none)) * 1e6 / calls).toFixed(2)} µs/call`);
fs.rmSync(dir, { recursive: true, force: true });
