// The Redis example plugin against tshark's RESP dissector, field by field, on a live tcpdump
// capture of redis-cli talking to redis-server on loopback: for every request/response pair, the
// command, its key, whether the reply is an error (and its code), and the reply's type must be
// what tshark decoded from the same packets.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, wirescopeDecode, REDIS_PLUGIN_DIR } from "./support/index.js";
import { captureMarked } from "./support/tcpdump.js";
import { tsharkMessages } from "./support/resp.js";


test("redis plugin agrees with tshark's RESP dissector on a live redis-cli ↔ redis-server capture", { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(path.join(REDIS_PLUGIN_DIR, "redis.wasm")), `build the example plugin first (node parsers-wasm/build.mjs --examples)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-redis-tshark-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { proc: redis, port } = await startRedis();
  after(() => redis.stop());

  const file = path.join(dir, "redis.pcap");
  const mark = `done-${process.pid}`;
  const cmds = [
    "SET session:42 token-value",
    "GET session:42",
    "GET session:missing",
    "INCR counter",
    "INCR session:42", // ERR value is not an integer
    "LPUSH session:42 x", // WRONGTYPE
    "RPUSH queue a b c",
    "LRANGE queue 0 -1",
    "HSET h f1 v1 f2 v2",
    "HGETALL h",
    "EXISTS queue",
    "NOSUCH arg", // ERR unknown command
    `ECHO ${mark}`,
  ];
  await captureMarked(file, port, `${mark}\r\n`, () => execFileSync("redis-cli", ["-p", String(port)], { input: cmds.join("\n") + "\n", timeout: 15_000 }));

  const ours = wirescopeDecode(file, ["--plugins", REDIS_PLUGIN_DIR]);
  const theirs = tsharkMessages(file, port, ["-d", `tcp.port==${port},resp`]);

  // the same number of requests and replies, paired in order
  assert.equal(theirs.requests.length, theirs.replies.length, "tshark: requests vs replies");
  assert.equal(ours.length, theirs.requests.length, `records ${ours.length} vs tshark requests ${theirs.requests.length}`);
  assert.ok(ours.length >= cmds.length, "redis-cli may add COMMAND DOCS, never fewer");
  ours.forEach((r, i) => {
    const req = theirs.requests[i]!;
    const rep = theirs.replies[i]!;
    const what = `pair ${i} (${req.join(" ")})`;
    assert.equal(r.operation, req[0]!.toUpperCase(), `${what}: command`);
    assert.equal(r.resource, req.length > 1 ? req[1] : req[0]!.toUpperCase(), `${what}: key`);
    assert.equal(r.attributes["db.query.text"], [req[0]!.toUpperCase(), ...req.slice(1)].join(" "), `${what}: text`);
    assert.equal(r.error, rep.kind === "error", `${what}: error`);
    assert.equal(r.status, rep.kind === "error" ? 1 : 0, `${what}: status`);
    assert.equal(r.attributes["db.response.status_code"], rep.error, `${what}: error code`);
    assert.equal(r.attributes["redis.reply_type"], rep.kind, `${what}: reply type`);
  });
  // the errors the script provokes are there, with the server's codes
  assert.deepEqual(
    ours.filter((r) => r.error).map((r) => [r.operation, r.attributes["db.response.status_code"]]),
    [
      ["INCR", "ERR"],
      ["LPUSH", "WRONGTYPE"],
      ["NOSUCH", "ERR"],
    ],
  );
});
