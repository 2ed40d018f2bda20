// `wirescope decode` on a synthetic capture with tens of thousands of HTTP/1.1 connections open
// at once (each with a request waiting for its response and half a response in flight): the
// plugin instance must not trap on memory and take every connection's records with it; the
// host starts more instances instead, and every connection gives its record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PcapngWriter, type SynthConnection } from "@wirescope/capture";
import { WIRESCOPE_BIN } from "./support/index.js";

const enc = (s: string) => new TextEncoder().encode(s);

test("wirescope decode: 50,000 HTTP/1.1 connections, 40,000 open at once: no trap, every record", { timeout: 240_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-many-"));
  try {
    const file = path.join(dir, "many.pcapng");
    const w = PcapngWriter.toFile(file, { acks: false });
    const N = 50_000;
    const OPEN = 40_000;
    const open: SynthConnection[] = [];
    const q = "x".repeat(200);
    const server = { address: "10.0.0.1", port: 80 };
    let ts = 1_700_000_000_000_000_000n;
    const finish = (c: SynthConnection) => {
      w.data(c, 1, enc("ngth: 2\r\n\r\nok"), (ts += 1000n));
      w.close(c, (ts += 1000n));
    };
    for (let i = 0; i < N; i++) {
      const client = { address: `10.1.${(i >> 8) & 0xff}.${i & 0xff}`, port: 10_000 + (i >> 16) };
      const c = w.openConnection(client, server, (ts += 1000n), { isn: [i * 7919, i * 104729] });
      w.data(c, 0, enc(`GET /item/${i}?q=${q} HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl\r\n\r\n`), (ts += 1000n));
      w.data(c, 1, enc("HTTP/1.1 200 OK\r\nContent-Le"), (ts += 1000n));
      open.push(c);
      if (open.length > OPEN) finish(open.shift()!);
    }
    for (const c of open) finish(c);
    w.end();

    const r = spawnSync(process.execPath, [WIRESCOPE_BIN, "decode", file, "--stats", "--no-progress"], {
      timeout: 200_000,
      maxBuffer: 512 << 20,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split("\n").filter((l) => l);
    assert.equal(lines.length, N, `records: ${lines.length}; ${r.stderr.slice(-2000)}`);
    assert.ok(lines.every((l) => JSON.parse(l).status === 200));
    const m = /stats (\{.*\})/.exec(r.stderr);
    assert.ok(m, r.stderr);
    const stats = JSON.parse(m[1]!) as Record<string, number>;
    const lost = Object.entries(stats).filter(([k, v]) => v > 0 && (k.includes("plugin_traps") || k.includes("conn_dropped")));
    assert.deepEqual(lost, [], "no connection lost");
    const added = Object.entries(stats).find(([k]) => k.endsWith("plugin_instances_added.http1"));
    assert.ok(added && added[1] >= 1, `extra instances counted: ${m[1]}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
