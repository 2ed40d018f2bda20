// The Redis example plugin against a REAL redis-server and the real redis-cli: the client talks
// through a loopback relay that records both directions chunk by chunk (as the probe would), and
// the recorded connections are decoded by the host with detection, exactly as in production.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConnectionEngine } from "@wirescope/plugin-host";
import { freePort, spawnManaged, waitFor, tcpReachable, type ManagedProcess } from "@wirescope/runtime";
import { type RecordJson, recordToJson } from "@wirescope/wire";
import { registryOf, startRelay, type Relay, type CapturedConnection } from "../../../test-support/index.js";

const run = promisify(execFile);

let server: ManagedProcess | undefined;
let relay: Relay | undefined;
let dir = "";
let redisPort = 0;

async function cli(args: string[], input?: string): Promise<string> {
  const p = run("redis-cli", ["-h", "127.0.0.1", "-p", String(relay!.port), ...args], { timeout: 10_000, maxBuffer: 64 << 20 });
  if (input !== undefined) {
    p.child.stdin!.end(input);
  }
  const { stdout } = await p;
  return stdout;
}

function decode(conn: CapturedConnection, clientKnown = true): { records: RecordJson[]; flipped: boolean; plugin?: string; counters: Record<string, number> } {
  const engine = new ConnectionEngine(registryOf(["redis"]));
  const c = engine.openConnection({ clientKnown, portHint: redisPort });
  const records: RecordJson[] = [];
  for (const ch of conn.chunks) {
    records.push(...c.data(ch.dir, ch.bytes, ch.tsNs).records.map((r) => recordToJson(r)));
  }
  const last = conn.chunks.at(-1)?.tsNs ?? 0n;
  records.push(...c.close(last + 1n).records.map((r) => recordToJson(r)));
  return { records, flipped: c.flipped, plugin: c.plugin?.name, counters: engine.counters.snapshot() };
}

/** Waits until the relay saw the connection close (redis-cli exits after its reply). */
async function settled(): Promise<void> {
  await waitFor(() => relay!.connections.every((c) => c.closed) || undefined, { timeoutMs: 5000, what: "relay connections to close" });
}

describe("redis plugin with redis-server and redis-cli", { timeout: 60_000 }, () => {
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "wirescope-redis-"));
    redisPort = await freePort();
    server = await spawnManaged("redis-server", "redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
      logFile: path.join(dir, "redis.log"),
    });
    await waitFor(() => tcpReachable("127.0.0.1", redisPort, 500), { timeoutMs: 10_000, what: "redis-server to listen" });
    relay = await startRelay(redisPort);
  });

  after(async () => {
    await relay?.close();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("SET, GET, INCR, LRANGE: one connection each, paired with replies", async () => {
    const first = relay!.connections.length;
    assert.equal((await cli(["SET", "greeting", "hello world"])).trim(), "OK");
    assert.equal((await cli(["GET", "greeting"])).trim(), "hello world");
    assert.equal((await cli(["INCR", "counter"])).trim(), "1");
    await cli(["RPUSH", "list", "a", "b", "c"]);
    assert.equal((await cli(["LRANGE", "list", "0", "-1"])).trim(), "a\nb\nc");
    await settled();
    const conns = relay!.connections.slice(first);
    assert.equal(conns.length, 5);
    const got = conns.map((c) => decode(c));
    for (const g of got) {
      assert.equal(g.plugin, "redis", JSON.stringify(g.counters));
      assert.equal(g.counters["plugin_traps.redis"] ?? 0, 0);
    }
    const find = (op: string) => got.flatMap((g) => g.records).filter((r) => r.operation === op);
    const set = find("SET");
    assert.equal(set.length, 1);
    assert.equal(set[0]!.resource, "greeting");
    assert.equal(set[0]!.status, 0);
    assert.equal(set[0]!.attributes["db.query.text"], "SET greeting hello world");
    assert.equal(set[0]!.attributes["redis.reply_type"], "simple");
    assert.ok(BigInt(set[0]!.durationNs) >= 0n);
    assert.equal(find("GET")[0]!.attributes["redis.reply_type"], "bulk");
    assert.equal(find("GET")[0]!.respBytes, "$11\r\nhello world\r\n".length);
    assert.equal(find("INCR")[0]!.attributes["redis.reply_type"], "integer");
    const lr = find("LRANGE")[0]!;
    assert.equal(lr.resource, "list");
    assert.equal(lr.attributes["redis.reply_type"], "array");
    assert.equal(lr.respBytes, "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n".length);
    // every request the client sent has a reply: nothing incomplete
    assert.deepEqual(got.flatMap((g) => g.records).filter((r) => r.incomplete), []);
  });

  test("error replies from the server are errors with the server's code", async () => {
    const first = relay!.connections.length;
    await cli(["SET", "str", "x"]);
    const out1 = await cli(["LPUSH", "str", "y"]);
    assert.match(out1, /WRONGTYPE/);
    const out2 = await cli(["NOSUCHCOMMAND", "a"]);
    assert.match(out2, /ERR unknown command/);
    await settled();
    const recs = relay!.connections.slice(first).flatMap((c) => decode(c).records);
    const lpush = recs.find((r) => r.operation === "LPUSH")!;
    assert.equal(lpush.error, true);
    assert.equal(lpush.status, 1);
    assert.equal(lpush.attributes["db.response.status_code"], "WRONGTYPE");
    const bad = recs.find((r) => r.operation === "NOSUCHCOMMAND")!;
    assert.equal(bad.error, true);
    assert.equal(bad.attributes["db.response.status_code"], "ERR");
  });

  test("pipelined commands (redis-cli --pipe) pair in order", async () => {
    const first = relay!.connections.length;
    const n = 500;
    let input = "";
    for (let i = 0; i < n; i++) input += `*3\r\n$3\r\nSET\r\n$${`k${i}`.length}\r\nk${i}\r\n$${`v${i}`.length}\r\nv${i}\r\n`;
    const out = await cli(["--pipe"], input);
    assert.match(out, new RegExp(`errors: 0, replies: ${n}`));
    await settled();
    const conns = relay!.connections.slice(first);
    assert.equal(conns.length, 1);
    const { records } = decode(conns[0]!);
    // redis-cli --pipe appends an ECHO with a random marker to know when it is done
    const sets = records.filter((r) => r.operation === "SET");
    assert.equal(sets.length, n);
    sets.forEach((r, i) => {
      assert.equal(r.resource, `k${i}`);
      assert.equal(r.status, 0);
    });
    assert.ok(records.some((r) => r.operation === "ECHO" && r.status === 0));
  });

  test("a large value is skipped, not buffered, and the pair still completes", async () => {
    const first = relay!.connections.length;
    const big = "x".repeat(3 * 1024 * 1024);
    assert.equal((await cli(["-x", "SET", "big"], big)).trim(), "OK");
    assert.equal((await cli(["STRLEN", "big"])).trim(), String(big.length));
    await cli(["GET", "big"]);
    await settled();
    const recs = relay!.connections.slice(first).flatMap((c) => decode(c).records);
    const set = recs.find((r) => r.operation === "SET")!;
    assert.equal(set.status, 0);
    assert.equal(set.attributes["db.query.text"], "SET big ?");
    assert.ok(set.reqBytes > big.length, `reqBytes ${set.reqBytes}`);
    const get = recs.find((r) => r.operation === "GET")!;
    assert.equal(get.status, 0);
    assert.equal(get.respBytes, `$${big.length}\r\n`.length + big.length + 2);
  });

  test("unknown orientation: the host works out which end is the client", async () => {
    const first = relay!.connections.length;
    await cli(["PING"]);
    await settled();
    const conn = relay!.connections[first]!;
    // Present the bytes with directions swapped, as a probe that cannot tell would.
    const swapped: CapturedConnection = { ...conn, chunks: conn.chunks.map((c) => ({ ...c, dir: (1 - c.dir) as 0 | 1 })) };
    const g = decode(swapped, false);
    assert.equal(g.flipped, true);
    assert.equal(g.records.length, 1);
    assert.equal(g.records[0]!.operation, "PING");
    assert.equal(g.records[0]!.status, 0);
  });
});
