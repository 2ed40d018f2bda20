// Added CPU per SSL_read/SSL_write in the traced process: a python TLS ping-pong (tls-call-cost.py,
// 4 library calls per round) timed by its own CPU clock with no probe, with the probe's syscall
// tracepoints only (TLS off), and with the TLS uprobes too; alternating, median of ROUNDS runs.
// Usage (root, after `npm run build`): node services/probe/bench/tls-call-cost.mjs [calls=200000] [runs=3]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { measureCallCost } from "./call-cost.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const calls = Number(process.argv[2] ?? 200_000);
const runs = Number(process.argv[3] ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-cost-"));
const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
const once = () => Number(execFileSync("python3", [path.join(here, "tls-call-cost.py"), cert, key, String(calls / 4)], { encoding: "utf8" }));
await measureCallCost({ once, calls, runs, what: "SSL (python loop, 64-byte messages)" });
fs.rmSync(dir, { recursive: true, force: true });
