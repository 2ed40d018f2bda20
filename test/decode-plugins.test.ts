// `wirescope decode --plugins DIR`: a plugin outside the built-in set (the Redis example) decodes
// a live capture of redis-server and redis-cli; without the flag that traffic yields no records.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, WIRESCOPE_BIN, REDIS_PLUGIN_DIR } from "./support/index.js";
import { captureMarked } from "./support/tcpdump.js";
import type { RecordJson } from "@wirescope/wire";


function decode(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [WIRESCOPE_BIN, "decode", ...args], { timeout: 60_000 });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("decode --plugins: the Redis example plugin decodes redis-cli ↔ redis-server from a capture", { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(path.join(REDIS_PLUGIN_DIR, "redis.wasm")), `build the example plugin first (node parsers-wasm/build.mjs --examples): ${REDIS_PLUGIN_DIR}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-decode-redis-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { proc: redis, port } = await startRedis();
  after(() => redis.stop());

  const file = path.join(dir, "redis.pcap");
  // one connection, commands from stdin (non-interactive redis-cli sends nothing else)
  const mark = `end-${process.pid}`;
  const script = ["SET user:1 alice", "GET user:1", "GET user:none", "INCR user:1", "RPUSH list a b c", "LRANGE list 0 -1", `ECHO ${mark}`].join("\n") + "\n";
  // the ECHO request and its reply both carry the mark
  await captureMarked(file, port, `${mark}\r\n`, () => execFileSync("redis-cli", ["-p", String(port)], { input: script, timeout: 15_000 }));

  const plain = decode([file]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, "", "no built-in plugin claims RESP");

  const run = decode([file, "--plugins", REDIS_PLUGIN_DIR]);
  assert.equal(run.code, 0, run.stderr);
  const all = run.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordJson);
  // redis-cli 7 asks the server for "COMMAND DOCS" before running the script
  const recs = all.filter((r) => !(r.operation === "COMMAND" && r.resource === "DOCS"));
  assert.ok(all.length - recs.length <= 1);
  assert.deepEqual(
    recs.map((r) => [r.protocol, r.operation, r.resource, r.status, r.error]),
    [
      ["redis", "SET", "user:1", 0, false],
      ["redis", "GET", "user:1", 0, false],
      ["redis", "GET", "user:none", 0, false],
      ["redis", "INCR", "user:1", 1, true],
      ["redis", "RPUSH", "list", 0, false],
      ["redis", "LRANGE", "list", 0, false],
      ["redis", "ECHO", mark, 0, false],
    ],
  );
  for (const r of recs) {
    assert.equal(r.server, `127.0.0.1:${port}`);
    assert.equal(r.attributes["db.system"], "redis");
  }
  assert.equal(recs[3]!.attributes["db.response.status_code"], "ERR");
  // --redact: arguments masked, the command still named
  const red = decode([file, "--plugins", REDIS_PLUGIN_DIR, "--redact"]).stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as RecordJson);
  assert.ok(!red.some((r) => String(r.attributes["db.query.text"]).includes("alice")));
  // a plugin folder that does not exist is a clear one-line error
  const bad = decode([file, "--plugins", path.join(dir, "nope")]);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /nope/);
});
