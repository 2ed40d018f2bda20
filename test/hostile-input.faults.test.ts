// Hostile input beside the steady workload, all traced by the same probe: random bytes poured
// into a sink on a MySQL-like port, an HTTP request whose header never ends (hundreds of MB),
// and thousands of connections opened and left half-open (a request line never finished). The
// workload's own requests must still be recorded as if nothing happened (or their loss counted),
// nothing may crash or be restarted, and the parser stays within its memory bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { runFault } from "./support/fault-stack.js";
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

const rss = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

test("hostile input (random bytes, an endless HTTP header, 5,000 half-open connections) beside the workload: nothing crashes, the workload's records intact", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const randomSink = await sink();
  const headerSink = await sink();
  const halfSink = await sink();
  const SECONDS = 20;
  try {
    await runFault({
      fault: `hostile input for ${SECONDS} s: random bytes (8 conns), an endless HTTP header, 5,000 half-open conns`,
      expected: "the workload's records intact (or their loss counted); hostile connections dropped, counted",
      extraTracePorts: [randomSink.port, headerSink.port, halfSink.port],
      async act(stack) {
        const until = Date.now() + SECONDS * 1000;
        const parserPid = stack.pid("parser");
        let peak = rss(parserPid);
        const watch = setInterval(() => (peak = Math.max(peak, rss(parserPid))), 500);
        // 5,000 connections, each with half a request line, held until the end
        const half: net.Socket[] = [];
        for (let i = 0; i < 5000; i++) {
          const s = net.connect(halfSink.port, "127.0.0.1", () => s.write("GET /half-open HTTP/1.1\r\nHost: x"));
          s.on("error", () => undefined);
          half.push(s);
        }
        // random bytes from a 4 MiB pool, 64 KiB at a time (making them would cost the workload CPU)
        const pool = crypto.randomBytes(4 << 20);
        let off = 0;
        const nextRandom = () => pool.subarray((off = (off + 65_536) % pool.length), off + 65_536);
        const random = Array.from({ length: 8 }, () => pour(net.connect(randomSink.port, "127.0.0.1"), nextRandom, until));
        let first = true;
        const filler = Buffer.alloc(64 * 1024, "a");
        const header = pour(net.connect(headerSink.port, "127.0.0.1"), () => (first ? ((first = false), Buffer.from("GET /endless HTTP/1.1\r\nHost: x\r\nX-Filler: ")) : filler), until);
        const sent = await Promise.all([...random, header]);
        for (const s of half) s.destroy();
        clearInterval(watch);
        const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
        assert.ok(peak < 1 << 30, `the parser stays under 1 GiB (peak RSS ${mb(peak)})`);
        const c = await stack.counters("parser");
        return {
          recoveryMs: 0,
          note: `random ${mb(sent.slice(0, 8).reduce((a, b) => a + b, 0))}, header ${mb(sent[8]!)}; parser peak RSS ${mb(peak)}; conn_dropped ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("conn_dropped.") || k.startsWith("gaps_forced."))))}`,
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
    await halfSink.close();
  }
});
