// Added CPU per crypto/tls (*Conn).Read/Write in the traced Go process: the Go TLS ping-pong of
// test/fixtures/gotls (`gotls pingpong`: one process, client and server goroutines on loopback,
// 64-byte messages, 4 crypto/tls calls per round), timed by its own CPU clock (getrusage) with no
// probe, with the probe's syscall tracepoints only (TLS off), and with the Go TLS uprobes too;
// alternating, median of RUNS runs. Builds the fixture with the machine's Go toolchain.
// Usage (root, after `npm run build`): node services/probe/bench/go-tls-call-cost.mjs [calls=200000] [runs=3]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { measureCallCost } from "./call-cost.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const calls = Number(process.argv[2] ?? 200_000);
const runs = Number(process.argv[3] ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "go-tls-cost-"));
const bin = path.join(dir, "gotls");
execFileSync("go", ["build", "-o", bin, "."], {
  cwd: path.join(here, "../../../test/fixtures/gotls"),
  env: { ...process.env, GOCACHE: path.join(dir, "gocache"), GOPATH: path.join(dir, "gopath"), GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
  stdio: "inherit",
});
const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
const once = () => Number(execFileSync(bin, ["pingpong", cert, key, String(calls / 4)], { encoding: "utf8" }));
await measureCallCost({
  once,
  calls,
  runs,
  what: "crypto/tls (Go ping-pong, 64-byte messages)",
  // the binary gets its uprobes when it first starts: start it once and wait for them
  ready: async (src) => {
    execFileSync(bin, ["offsets"]);
    for (let i = 0; i < 100 && !(src.stats().tls?.["go.binaries_attached"] >= 1); i++) await new Promise((r) => setTimeout(r, 50));
    if (!(src.stats().tls?.["go.binaries_attached"] >= 1)) throw new Error(`not attached: ${JSON.stringify(src.stats().tls)}`);
  },
});
fs.rmSync(dir, { recursive: true, force: true });
