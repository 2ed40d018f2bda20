// Added CPU per SSL_read/SSL_write in a node process (OpenSSL linked into the node executable):
// node-tls-pingpong.mjs timed by its own CPU clock with no probe, with the probe's syscall
// tracepoints only (TLS off), and with the TLS uprobes too (the node executable attached);
// alternating, median of `runs`. The library calls per run come from the probe's own counters
// (tls.calls + tls.call_empty: node reads until SSL_read says "want read").
// Also: the same loop over plain TCP (a node process that makes no TLS call) with and without the
// uprobes on the node executable, and the wall time of `node -e 0` (exec maps the probed file).
// Usage (root, after `npm run build`): node services/probe/bench/node-tls-call-cost.mjs [rounds=50000] [runs=3]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { EbpfSource } from "../dist/ebpf-source.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const rounds = Number(process.argv[2] ?? 50_000);
const runs = Number(process.argv[3] ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "node-tls-cost-"));
const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
const once = (mode = "tls") => Number(execFileSync(process.execPath, [path.join(here, "node-tls-pingpong.mjs"), cert, key, String(rounds), mode], { encoding: "utf8" }));
const startup = () => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 10; i++) execFileSync(process.execPath, ["-e", "0"]);
  return Number(process.hrtime.bigint() - t0) / 10 / 1e6;
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const res = { none: [], tracepoints: [], uprobes: [] };
const plain = { none: [], tracepoints: [], uprobes: [] };
const start = { none: [], tracepoints: [], uprobes: [] };
let sslCalls = 0;
for (let r = 0; r < runs; r++) {
  res.none.push(once());
  plain.none.push(once("plain"));
  start.none.push(startup());
  for (const [name, tls] of [["tracepoints", false], ["uprobes", true]]) {
    const src = new EbpfSource({ tls });
    const ac = new AbortController();
    const done = src.run(() => {}, ac.signal);
    const exe = fs.statSync(process.execPath);
    if (tls && src.tlsExecutables?.files.get(`${exe.dev}:${exe.ino}`)?.handler !== "openssl") throw new Error(`${process.execPath} has no TLS uprobes: ${JSON.stringify(src.stats().tls)}`);
    const before = src.stats().tls;
    res[name].push(once());
    plain[name].push(once("plain"));
    start[name].push(startup());
    if (tls) {
      const after = src.stats().tls;
      sslCalls = after.calls + after.call_empty - before.calls - before.call_empty;
      console.error("tls counters", JSON.stringify(after));
    }
    ac.abort();
    await done;
  }
}
const us = (s, n) => ((s * 1e6) / n).toFixed(2);
console.log(`${rounds} round trips per run (${sslCalls} SSL calls counted by the probe), median of ${runs}: CPU µs per SSL call`);
for (const k of Object.keys(res)) console.log(`  ${k.padEnd(12)} ${us(median(res[k]), sslCalls)} µs/call  (runs: ${res[k].map((x) => us(x, sslCalls)).join(", ")})`);
console.log(`  added by the TLS uprobes: ${us(median(res.uprobes) - median(res.tracepoints), sslCalls)} µs/call; by the probe in all: ${us(median(res.uprobes) - median(res.none), sslCalls)} µs/call`);
const fmt = (o, d) => Object.entries(o).map(([k, v]) => `${k} ${median(v).toFixed(d)}`).join(", ");
console.log(`the same loop over plain TCP (no TLS call), CPU s: ${fmt(plain, 3)}`);
console.log(`node -e 0, wall ms: ${fmt(start, 1)}`);
fs.rmSync(dir, { recursive: true, force: true });
