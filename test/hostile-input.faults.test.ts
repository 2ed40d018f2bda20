// Hostile input beside the steady workload, all traced by the same probe: random bytes poured
// into a sink on a MySQL-like port, an HTTP request whose header never ends (hundreds of MB),
// and 100,000 connections opened and left half-open (a request line never finished; held by
// test/fixtures/half-open.py processes, as a process here may hold only 20,000 files). The
// workload's own requests must still be recorded as if nothing happened (or their loss counted),
// nothing may crash or be restarted, and the parser stays within its memory bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { spawn, type ChildProcess } from "node:child_process";
import { runFault } from "./support/fault-stack.js";
import { REPO_ROOT, freePort } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

/** A TCP server that reads and discards everything. */
async function sink(): Promise<{ port: number; bytes(): number; close(): Promise<void> }> {
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("data", (d) => (bytes += d.length));
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  });
  srv.maxConnections = 50_000;
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", 4096, r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    bytes: () => bytes,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    }),
  };
}

/** Writes `chunk` on `s` as fast as it drains until `until` (ms since the epoch). */
function pour(s: net.Socket, next: () => Buffer, until: number): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    const go = () => {
      while (Date.now() < until) {
        const b = next();
        sent += b.length;
        if (!s.write(b)) return void s.once("drain", go);
      }
      s.end();
      resolve(sent);
    };
    s.on("error", () => resolve(sent));
    s.once("connect", go);
  });
}

/** Half-open connections (HOSTILE_HALF_OPEN, default 100,000): half-open.py listeners sharing
 *  `port` and connectors of up to 19,000 each from 127.0.0.2.., every one established. */
async function halfOpen(port: number, count: number): Promise<{ held: number; close(): Promise<number> }> {
  const script = path.join(REPO_ROOT, "test/fixtures/half-open.py");
  const PER = 19_000;
  const lineOf = (p: ChildProcess, re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const rl = readline.createInterface({ input: p.stdout! });
      rl.on("line", (l) => re.test(l) && resolve(l));
      p.once("exit", (code) => reject(new Error(`half-open.py exited (${code}) before ${re}`)));
    });
  const listeners = Array.from({ length: Math.ceil(count / PER) + 1 }, () => spawn("python3", [script, "listen", String(port)], { stdio: ["pipe", "pipe", "inherit"] }));
  await Promise.all(listeners.map((p) => lineOf(p, /^LISTENING/)));
  const n = Math.ceil(count / PER);
  const connectors = Array.from({ length: n }, (_, i) => spawn("python3", [script, "connect", String(port), String(Math.min(PER, count - i * PER)), `127.0.0.${2 + i}`], { stdio: ["pipe", "pipe", "inherit"] }));
  const held = (await Promise.all(connectors.map((p) => lineOf(p, /^HELD/)))).reduce((a, l) => a + Number(/^HELD (\d+)/.exec(l)![1]), 0);
  return {
    held,
    async close() {
      const accepted = listeners.map((p) => lineOf(p, /^ACCEPTED/));
      for (const p of [...connectors, ...listeners]) p.stdin!.end();
      return (await Promise.all(accepted)).reduce((a, l) => a + Number(/^ACCEPTED (\d+)/.exec(l)![1]), 0);
    },
  };
}

const rss = (pid: number) => {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
  } catch {
    return 0; // gone
  }
};

const HALF_OPEN = Number(process.env.HOSTILE_HALF_OPEN ?? 100_000);

test(`hostile input (random bytes, an endless HTTP header, ${HALF_OPEN.toLocaleString("en")} half-open connections) beside the workload: nothing crashes, the workload's records intact`, { timeout: 1_500_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const randomSink = await sink();
  const headerSink = await sink();
  const halfPort = await freePort();
  const SECONDS = 20;
  try {
    await runFault({
      fault: `hostile input for ${SECONDS} s: random bytes (8 conns), an endless HTTP header, ${HALF_OPEN.toLocaleString("en")} half-open conns`,
      expected: "the workload's records intact (or their loss counted); hostile connections dropped, counted",
      extraTracePorts: [randomSink.port, headerSink.port, halfPort],
      async act(stack) {
        const parserPid = stack.pid("parser");
        let peak = rss(parserPid);
        // (a parser restarted by up is a crash: check() says so; its pid is gone meanwhile)
        const watch = setInterval(() => (peak = Math.max(peak, rss(parserPid))), 500);
        let half: Awaited<ReturnType<typeof halfOpen>> | undefined;
        let sent: number[];
        let accepted: number;
        const t0 = Date.now();
        try {
          // the connections, each with half a request line, held until the end
          half = await halfOpen(halfPort, HALF_OPEN);
          console.log(`# ${half.held} half-open connections held after ${Math.round((Date.now() - t0) / 1000)} s`);
          assert.equal(half.held, HALF_OPEN, "every half-open connection established");
          const until = Date.now() + SECONDS * 1000;
          // random bytes from a 4 MiB pool, 64 KiB at a time (making them would cost the workload CPU)
          const pool = crypto.randomBytes(4 << 20);
          let off = 0;
          const nextRandom = () => pool.subarray((off = (off + 65_536) % pool.length), off + 65_536);
          const random = Array.from({ length: 8 }, () => pour(net.connect(randomSink.port, "127.0.0.1"), nextRandom, until));
          let first = true;
          const filler = Buffer.alloc(64 * 1024, "a");
          const header = pour(net.connect(headerSink.port, "127.0.0.1"), () => (first ? ((first = false), Buffer.from("GET /endless HTTP/1.1\r\nHost: x\r\nX-Filler: ")) : filler), until);
          sent = await Promise.all([...random, header]);
        } finally {
          accepted = (await half?.close()) ?? 0;
          clearInterval(watch);
        }
        const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
        assert.ok(peak < 1 << 30, `the parser stays under 1 GiB (peak RSS ${mb(peak)})`);
        const c = await stack.counters("parser");
        return {
          recoveryMs: 0,
          note: `random ${mb(sent.slice(0, 8).reduce((a, b) => a + b, 0))}, header ${mb(sent[8]!)}; half-open held ${half!.held} (accepted ${accepted}); parser peak RSS ${mb(peak)}; conn_dropped ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("conn_dropped.") || k.startsWith("gaps_forced."))))}`,
        };
      },
      async check(stack, r) {
        for (const c of ["probe", "parser", "aggregator"]) assert.equal(stack.restarts(c), 0, `${c} did not crash`);
        assert.ok(randomSink.bytes() > 0 && headerSink.bytes() > 0, "the hostile traffic flowed");
        assert.equal(r.aggregator.drops_role_unknown ?? 0, 0, "no guessed role");
      },
    });
  } finally {
    await randomSink.close();
    await headerSink.close();
  }
});
