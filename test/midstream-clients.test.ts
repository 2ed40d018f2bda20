// Connections that predate the capture: a node:http keep-alive agent, a mysql2 pool and an
// interactive redis-cli open their connections and use them, THEN `wirescope capture` starts,
// then they go on. The capture is decoded with `wirescope decode` (detection by content, no
// port hints: the servers listen on free ports) and compared with what the clients did after
// the capture started: everything from the next whole message on, nothing invented, nothing
// from before, roles from content.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawn, } from "node:child_process";
import { tempDir, startRedis, wirescopeDecode, WIRESCOPE_BIN, REDIS_PLUGIN_DIR } from "./support/index.js";
import { startMariaDb } from "./support/mariadb.js";
import { bpfAvailable, runChild, CHILD_REQUIRE, start, stopByPid } from "./probe-support.js";

test("connections opened before the capture are decoded from their next message on", { timeout: 240_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-midstream-");
  const go = path.join(dir, "go");
  const db = await startMariaDb({ skipGrantTables: true });
  t.after(() => db.stop());
  await db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); INSERT INTO shop.orders VALUES (1, 10), (2, 20), (3, 30);");
  const redis = await startRedis();
  t.after(() => redis.proc.stop());

  const http = await runChild("http-server", `
import http from "node:http";
const srv = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => { res.statusCode = req.url.includes("missing") ? 404 : 200; res.end("body of " + req.url); });
});
srv.keepAliveTimeout = 120000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`);
  t.after(() => http.kill());
  const httpPort = Number((await http.waitLine(/^PORT (\d+)/))[1]);

  // the clients: connections opened and used before the capture, used again after it started
  const client = await runChild("clients", `${CHILD_REQUIRE}
import http from "node:http";
import fs from "node:fs";
const mysql = require("mysql2/promise");
const [httpPort, dbPort, go] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = (p, method = "GET", body) => new Promise((resolve, reject) => {
  const req = http.request({ port: Number(httpPort), host: "127.0.0.1", path: p, method, agent }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
  req.on("error", reject);
  req.end(body);
});
const pool = mysql.createPool({ host: "127.0.0.1", port: Number(dbPort), user: "app", database: "shop", connectionLimit: 2 });
const did = { http: [], mysql: [] };
// before the capture: both pool connections open, a statement prepared on each
for (let i = 0; i < 3; i++) await get("/before/" + i);
await Promise.all([0, 1].map((i) => pool.execute("SELECT total FROM orders WHERE id = ?", [i + 1])));
await Promise.all([0, 1].map(() => pool.query("SELECT 1")));
console.log("WARM");
while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 200));
for (let i = 0; i < 5; i++) did.http.push(["GET", "/after/" + i, await get("/after/" + i)]);
did.http.push(["POST", "/after/upload", await get("/after/upload", "POST", Buffer.alloc(20000, 97))]);
did.http.push(["GET", "/after/missing", await get("/after/missing")]);
for (let i = 0; i < 6; i++) {
  await pool.query("SELECT id, total FROM orders WHERE id = " + ((i % 3) + 1));
  did.mysql.push(["COM_QUERY", "SELECT id, total FROM orders WHERE id = ?"]);
}
// the statement prepared before the capture: its text was never seen
await pool.execute("SELECT total FROM orders WHERE id = ?", [2]);
did.mysql.push(["COM_STMT_EXECUTE", "statement_id="]);
console.log("DID " + JSON.stringify(did));
agent.destroy();
await pool.end();
console.log("DONE");
`, [String(httpPort), String(db.port), go]);
  t.after(() => client.kill());

  // an interactive redis-cli session: one connection, commands typed one at a time
  const cli = spawn("redis-cli", ["-p", String(redis.port)], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => cli.kill("SIGKILL"));
  let cliOut = "";
  cli.stdout!.on("data", (d: Buffer) => (cliOut += d));
  const type = async (line: string, expect: RegExp) => {
    const before = cliOut.length;
    cli.stdin!.write(line + "\n");
    const end = Date.now() + 10_000;
    while (!expect.test(cliOut.slice(before))) {
      if (Date.now() > end) throw new Error(`redis-cli: no answer to ${line}: ${cliOut}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await type("SET greeting hello", /OK/);
  await type("RPUSH list a b c", /3/);
  await client.waitLine(/^WARM/, 60_000);

  const file = path.join(dir, "capture.pcapng");
  // the three servers' processes: each connection seen once, from its server's side
  const pids = [http.pid, db.proc.pid, redis.proc.pid].flatMap((p) => ["--pid", String(p)]);
  const capture = await start(process.execPath, [WIRESCOPE_BIN, "capture", "--output", file, ...pids, "--mount-tracefs"], /capturing to/);
  t.after(() => stopByPid(capture));
  await new Promise((r) => setTimeout(r, 300));
  fs.writeFileSync(go, "");
  await type("GET greeting", /hello/);
  await type("LRANGE list 0 -1", /c/);
  await type("INCR counter", /1/);
  await type("GET missing", /\n/); // a nil reply prints an empty line when not on a terminal
  const did = JSON.parse((await client.waitLine(/^DID (.*)/, 60_000))[1]!) as { http: [string, string, number][]; mysql: [string, string][] };
  await client.waitLine(/^DONE/, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  await stopByPid(capture);
  cli.stdin!.end();

  if (process.env.WIRESCOPE_KEEP_CAPTURE) fs.copyFileSync(file, process.env.WIRESCOPE_KEEP_CAPTURE);
  // the Redis decoder is the example plugin, loaded beside the built-in ones
  const records = wirescopeDecode(file, ["--format", "ndjson", "--plugins", REDIS_PLUGIN_DIR]);
  const port = (a: string) => Number(a.split(":").pop());
  // other tests run beside this one: only connections to these servers count (a server port is
  // bound by one server at a time; a record of ours with a wrong orientation would be missing
  // below, so this filter hides no mistake)
  const ours = records.filter((r) => [httpPort, db.port, redis.port].includes(port(r.server)));
  const of = (proto: string) => ours.filter((r) => r.protocol === proto);

  // HTTP/1.1: exactly the requests made after the capture started, each with its status
  const h = of("http1");
  assert.deepEqual(h.map((r) => [r.operation, r.resource, r.status]), did.http, JSON.stringify(h));
  for (const r of h) assert.equal(port(r.server), httpPort, "the server end, from content");

  // MySQL: every query after the capture, the early statement named by its id only
  // (pool.end() sends COM_QUIT on each connection: on one that said nothing else since the capture
  // began, that lone byte is too little to claim it as MySQL)
  const m = of("mysql").filter((r) => !r.incomplete && r.operation !== "COM_QUIT");
  assert.deepEqual(m.map((r) => [r.operation, r.operation === "COM_STMT_EXECUTE" ? r.resource.replace(/\d+$/, "") : r.resource]), did.mysql, JSON.stringify(of("mysql")));
  const exec = m.find((r) => r.operation === "COM_STMT_EXECUTE")!;
  assert.match(exec.resource, /^statement_id=\d+$/);
  assert.equal(exec.attributes["db.query.text"], undefined, "no invented statement text");
  for (const r of of("mysql")) assert.equal(port(r.server), db.port);
  assert.ok(!ours.some((r) => r.resource.includes("/before/")), "nothing from before the capture");

  // redis-cli: the commands typed after the capture started, paired with their replies
  const rd = of("redis");
  assert.deepEqual(rd.map((r) => [r.operation, r.status, r.attributes["redis.reply_type"]]), [
    ["GET", 0, "bulk"],
    ["LRANGE", 0, "array"],
    ["INCR", 0, "integer"],
    ["GET", 0, "bulk"],
  ], JSON.stringify(rd));
  for (const r of rd) assert.equal(port(r.server), redis.port);
});
