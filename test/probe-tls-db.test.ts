// Databases inside TLS, traced through uprobes on the TLS library (no keys): MariaDB with ssl on,
// where the client upgrades in-band (cleartext greeting, SSL request, then TLS on the same
// socket), and redis-server on its tls-port. The oracle is tshark decrypting a tcpdump capture
// with the client's key log (node --tls-keylog, python's keylog_filename): the probe's records
// (statements, error codes, commands, reply types) must agree with it, and no ciphertext may
// reach a decoder.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { Role, type Record as WsRecord } from "@wirescope/wire";
import { REPO_ROOT, tempDir, REDIS_PLUGIN_DIR } from "./support/index.js";
import { startMariaDb } from "./support/mariadb.js";
import { bpfAvailable } from "./probe-support.js";
import { settleRecords, readRecords, parserStatus } from "./parser-support.js";
import { selfSigned, tracedPipeline } from "./tls-support.js";
import { tsharkMessages } from "./support/resp.js";
import { captureMarked, startTcpdump } from "./support/tcpdump.js";
import { spawnTracked, waitFor } from "./support/servers.js";
import { freePort } from "./support/index.js";

const run = promisify(execFile);
const WARMUP = "SELECT * FROM mysql.user LIMIT 0";
const attr = (r: WsRecord, k: string) => r.attributes[k]?.value.value;

// mysql2 over TLS (node's OpenSSL, memory BIOs), in its own node so --tls-keylog writes the keys
const MYSQL2_CLIENT = `
const mysql = require(${JSON.stringify(path.join(REPO_ROOT, "node_modules/mysql2/promise"))});
(async () => {
  const c = await mysql.createConnection({ host: "127.0.0.1", port: Number(process.argv[2]), user: "app", password: "secret", ssl: { rejectUnauthorized: false } });
  await c.query("CREATE DATABASE IF NOT EXISTS tlsdb");
  await c.query("CREATE TABLE tlsdb.t (id INT PRIMARY KEY, name VARCHAR(32))");
  await c.query("INSERT INTO tlsdb.t VALUES (1, 'one'), (2, 'two')");
  await c.query("SELECT name FROM tlsdb.t WHERE id = 2");
  await c.query("INSERT INTO tlsdb.t VALUES (1, 'dup')").catch(() => {});
  await c.query("SELECT * FROM tlsdb.nope").catch(() => {});
  await c.query("SELECT 'done'");
  await c.end();
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** tshark's MySQL PDUs of the decrypted capture: [srcport, dstport, command, query, user, error code]. */
function tsharkMysql(pcap: string, keylog: string, port: number): string[][] {
  const out = execFileSync("tshark", ["-r", pcap, "-o", `tls.keylog_file:${keylog}`, "-d", `tcp.port==${port},mysql`, "-Y", "mysql", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
    "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "mysql.command", "-e", "mysql.query", "-e", "mysql.user", "-e", "mysql.error_code"], { encoding: "utf8", timeout: 60_000 });
  return out.trim().split("\n").filter(Boolean).map((l) => l.split("\t"));
}

test("probe TLS: MariaDB with ssl, in-band upgrade (mysql2 over node's OpenSSL, the mariadb client over libssl), statements and errors match tshark's decryption", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-mysql-");
  const db = await startMariaDb({ tls: true });
  t.after(() => db.stop());
  await db.sql("CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';");
  const { parser, nc, counters } = await tracedPipeline(t, dir, db.port, () => db.client(["--ssl", "--ssl-verify-server-cert=0", "-uapp", "-psecret", "-e", WARMUP]).catch(() => ""));

  const pcap = path.join(dir, "mysql.pcap");
  const keylog = path.join(dir, "keylog.txt");
  const tcpdump = await startTcpdump(pcap, ["-i", "lo", `tcp port ${db.port}`]);
  t.after(() => tcpdump.stop());
  fs.writeFileSync(path.join(dir, "client.cjs"), MYSQL2_CLIENT);
  await run(process.execPath, [`--tls-keylog=${keylog}`, path.join(dir, "client.cjs"), String(db.port)], { timeout: 30_000 });
  await db.client(["--ssl", "--ssl-verify-server-cert=0", "-uapp", "-psecret", "-e", "SELECT 'from the cli'; SELECT * FROM tlsdb.missing"]).catch(() => "");

  // the records of this test's connections: not those of a warm-up connection (its query marks it)
  const ours = (l: { record: WsRecord }[]) => {
    const all = l.map((s) => s.record).filter((r) => r.server?.port === db.port);
    const warm = new Set(all.filter((r) => r.resource === WARMUP.replace("0", "?")).map((r) => r.client?.port));
    return all.filter((r) => !warm.has(r.client?.port));
  };
  // both ends of both clients: the mariadb client's failed SELECT, mysql2's COM_QUIT
  const complete = (l: WsRecord[]) => l.filter((r) => r.resource === "SELECT * FROM tlsdb.missing" || (r.operation === "COM_QUIT" && r.client?.process?.name === "node")).length >= 4;
  const deadline = Date.now() + 40_000;
  while (!complete(ours(await readRecords(nc).catch(() => []))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(nc, 1500, 20_000));
  await tcpdump.stop();
  t.diagnostic(`probe: ${JSON.stringify(Object.fromEntries(Object.entries(await counters()).filter(([k]) => k.startsWith("tls."))))}`);
  t.diagnostic(`parser: ${JSON.stringify((await parserStatus(parser)).counters)}`);
  t.diagnostic(`records: ${JSON.stringify(records.map((r) => [r.protocol, Role[r.role], r.client?.process?.name, r.operation, attr(r, "db.query.text"), Number(r.status ?? -1), attr(r, "tls")]))}`);
  const rows = tsharkMysql(pcap, keylog, db.port);
  t.diagnostic(`tshark: ${JSON.stringify(rows)}`);

  // tshark's view of the mysql2 connection (the one with a key log): the login inside TLS
  // (user app), then the commands, queries and error codes
  const login = rows.find((r) => r[4] === "app");
  assert.ok(login, "tshark decrypted the login");
  const clientPort = Number(login[0]);
  const c2s = rows.filter((r) => Number(r[0]) === clientPort && r[2]);
  const errors = rows.filter((r) => Number(r[1]) === clientPort && r[5]).map((r) => Number(r[5]));
  assert.deepEqual(errors, [1062, 1146], "tshark saw both errors");
  // the pipeline keeps statements with their literals masked
  const mask = (q: string) => q.replace(/'[^']*'/g, "?").replace(/\b\d+\b/g, "?");
  const theirs = c2s.map((r) => [r[2] === "3" ? "COM_QUERY" : r[2] === "1" ? "COM_QUIT" : `?${r[2]}`, r[3] ? mask(r[3]) : null]);
  assert.equal(theirs.length, 8);
  for (const role of [Role.CLIENT, Role.SERVER]) {
    const mine = records.filter((r) => r.role === role && r.client?.port === clientPort);
    // one LOGIN, from the SSL request in cleartext to the OK of the login inside TLS (tshark's
    // user): the plaintext continues the cleartext's session; then the commands
    const [login2, ...rest] = mine;
    assert.equal(mine.filter((r) => r.operation === "LOGIN").length, 1, `${Role[role]}: one LOGIN`);
    assert.equal(login2?.operation, "LOGIN", `${Role[role]}: the login`);
    assert.equal(attr(login2!, "mysql.tls"), true, "it asked for TLS");
    assert.equal(attr(login2!, "db.user"), login[4]);
    assert.equal(Number(login2!.status), 0);
    assert.equal(attr(login2!, "tls"), true);
    assert.ok(attr(login2!, "mysql.server_version"), "the cleartext greeting carries over");
    assert.deepEqual(rest.map((r) => [r.operation, attr(r, "db.query.text") ?? null]), theirs, `${Role[role]} records = tshark`);
    assert.deepEqual(rest.filter((r) => r.error).map((r) => Number(r.status)), errors, `${Role[role]}: error codes`);
    for (const r of rest) {
      assert.equal(attr(r, "tls"), true);
      assert.equal(attr(r, "tls.library"), "openssl");
      assert.equal(r.incomplete, false);
    }
  }
  // the mariadb client (libssl on its socket): both ends, the statements it ran
  for (const role of [Role.CLIENT, Role.SERVER]) {
    // its connection is the one that ran the failing SELECT (a warm-up connection traced before
    // the library's uprobes were attached is ciphertext after its SSL request: a LOGIN of its own)
    const port = records.find((r) => r.role === role && r.resource === "SELECT * FROM tlsdb.missing")?.client?.port;
    const cli = records.filter((r) => r.role === role && r.client?.process?.name === "mariadb" && r.client?.port === port);
    assert.deepEqual(cli.map((r) => [r.operation, attr(r, "db.query.text") ?? null, Number(r.status)]),
      [["LOGIN", null, 0], ["COM_QUERY", "SELECT ?", 0], ["COM_QUERY", "SELECT * FROM tlsdb.missing", 1146], ["COM_QUIT", null, 0]], `${Role[role]}: the mariadb client`);
    assert.equal(attr(cli[0]!, "db.user"), "app");
    assert.equal(attr(cli[0]!, "mysql.tls"), true);
    assert.ok(cli.every((r) => attr(r, "tls") === true));
  }
  const c = await counters();
  assert.ok((c["tls.linked_after_call"] ?? 0) >= 1, "mysql2's memory BIO linked by the ClientHello after the SSL request");
  assert.ok((c["tls.cipher_bytes_saved"] ?? 0) > 2000, "ciphertext not published");
  const st = (await parserStatus(parser)).counters;
  assert.deepEqual(Object.entries(st).filter(([k, v]) => /desync|resync|before_detect/.test(k) && v > 0), [], "no ciphertext reached the decoder, the login inside TLS was detected");
  // The warm-up runs while the probe starts. The probe attaches its syscall tracepoints only after
  // the uprobes of every TLS library mapped then (docs/probe.md, "Start"), so a warm-up is seen
  // with its plaintext, or mid-way and linked at its next libssl call, or not at all. Were one seen
  // from its connect before the uprobes, its ends would give one LOGIN each (mysql.tls, no status,
  // before any TLS open) and stop there (broken): those would be the only connections given up.
  const cipherEnds = records.filter((r) => r.operation === "LOGIN" && attr(r, "mysql.tls") === true && attr(r, "tls") === undefined);
  assert.ok(cipherEnds.every((r) => r.client?.process?.name === "mariadb" && r.status === undefined), "only warm-up connections");
  assert.equal(st["conn_dropped.broken"] ?? 0, cipherEnds.length, "each connection given up is a warm-up's ciphertext");
  assert.ok((st["conn_tls_continued"] ?? 0) >= 4, "both ends of both clients: the plaintext went on in the cleartext's session");
});

// python speaking RESP, one command at a time, over TLS (python's ssl: libssl.so.3 on the socket) or not
const PY_REDIS = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if sys.argv[2] == "tls":
    s = ctx.wrap_socket(s)
for line in sys.stdin.read().splitlines():
    args = line.split(" ")
    s.sendall(("*%d\\r\\n" % len(args) + "".join("$%d\\r\\n%s\\r\\n" % (len(a), a) for a in args)).encode())
    s.recv(65536)
s.close()
`;

const REDIS_CMDS = ["SET session:42 token-value", "GET session:42", "GET session:missing", "INCR session:42", "LPUSH session:42 x", "RPUSH queue a b c", "LRANGE queue 0 -1", "NOSUCH arg", "ECHO done"];

// tshark 4.0's RESP dissector is bound to tcp.port and cannot be put under TLS (`-d tls.port==N,resp`
// is refused), so its oracle is the same commands sent in cleartext to the same server's plain port
// (the database emptied in between): the TLS connection's records must equal tshark's decoding.
test("probe TLS: redis-server on its tls-port, python ssl and redis-cli --tls, the Redis plugin's records (both ends) match tshark's decoding of the same commands in cleartext", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-redis-");
  const tls = selfSigned(dir);
  const port = await freePort();
  const plain = await freePort();
  const redis = await spawnTracked("redis-server", "redis-server", ["--port", String(plain), "--tls-port", String(port), "--tls-cert-file", tls.cert, "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.cert, "--tls-auth-clients", "no", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { logFile: path.join(dir, "redis.log") });
  t.after(() => redis.stop());
  const cli = (args: string[], input: string) => new Promise<void>((res) => {
    const p = execFile("redis-cli", args, { timeout: 15_000 }, () => res());
    p.stdin!.end(input);
  });
  const tlsCli = ["--tls", "--insecure", "-p", String(port)];
  await waitFor(async () => (await run("redis-cli", [...tlsCli, "PING"], { timeout: 5000 }).catch(() => ({ stdout: "" }))).stdout.includes("PONG"), { timeoutMs: 15_000, what: "redis-server TLS PING" });
  const { parser, nc, counters } = await tracedPipeline(t, dir, port, () => cli(tlsCli, "PING\n"), ["--plugin-dir", REDIS_PLUGIN_DIR]);

  fs.writeFileSync(path.join(dir, "client.py"), PY_REDIS);
  const py = (p: number, mode: string) => new Promise<void>((res, rej) => {
    const c = execFile("python3", [path.join(dir, "client.py"), String(p), mode], { timeout: 20_000 }, (e) => (e ? rej(e) : res()));
    c.stdin!.end(REDIS_CMDS.join("\n") + "\n");
  });
  const pcap = path.join(dir, "redis.pcap");
  await captureMarked(pcap, plain, "done\r\n", () => py(plain, "plain")); // the last command and its reply end in "done"
  await run("redis-cli", ["-p", String(plain), "FLUSHALL"], { timeout: 10_000 });
  await py(port, "tls");
  await cli(tlsCli, "SET cli:key v\nGET cli:key\nNOSUCH\n");

  const ours = (l: { record: WsRecord }[]) => l.map((s) => s.record).filter((r) => r.server?.port === port && r.operation !== "PING");
  const complete = (l: WsRecord[]) => l.filter((r) => r.operation === "ECHO" || (r.operation === "NOSUCH" && r.client?.process?.name === "redis-cli")).length >= 4;
  const deadline = Date.now() + 40_000;
  while (!complete(ours(await readRecords(nc).catch(() => []))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(nc, 1500, 20_000));
  t.diagnostic(`probe: ${JSON.stringify(Object.fromEntries(Object.entries(await counters()).filter(([k]) => k.startsWith("tls."))))}`);
  t.diagnostic(`parser: ${JSON.stringify((await parserStatus(parser)).counters)}`);
  t.diagnostic(`records: ${JSON.stringify(records.map((r) => [Role[r.role], r.client?.process?.name, r.operation, Number(r.status ?? -1), attr(r, "db.response.status_code"), attr(r, "redis.reply_type")]))}`);
  const theirs = tsharkMessages(pcap, plain, ["-d", `tcp.port==${plain},resp`]);
  assert.equal(theirs.requests.length, REDIS_CMDS.length, "tshark: one request per command");
  const expected = theirs.requests.map((req, i) => [req[0]!.toUpperCase(), theirs.replies[i]!.kind === "error" ? 1 : 0, theirs.replies[i]!.error, theirs.replies[i]!.kind]);
  for (const role of [Role.CLIENT, Role.SERVER]) {
    const mine = records.filter((r) => r.role === role && r.client?.process?.name === "python3");
    assert.deepEqual(mine.map((r) => [r.operation, Number(r.status), attr(r, "db.response.status_code"), attr(r, "redis.reply_type")]), expected, `${Role[role]} records = tshark`);
    assert.ok(mine.every((r) => attr(r, "tls") === true && attr(r, "tls.library") === "openssl" && r.protocol === "redis"));
    // redis-cli --tls: after its COMMAND DOCS, the three commands it was given
    const cliRecs = records.filter((r) => r.role === role && r.client?.process?.name === "redis-cli" && r.operation !== "COMMAND");
    assert.deepEqual(cliRecs.map((r) => [r.operation, attr(r, "db.response.status_code")]), [["SET", undefined], ["GET", undefined], ["NOSUCH", "ERR"]], `${Role[role]}: redis-cli`);
    assert.ok(cliRecs.every((r) => attr(r, "tls") === true));
  }
  const c = await counters();
  assert.ok((c["tls.cipher_bytes_saved"] ?? 0) > 1000, "ciphertext not published");
  const st = (await parserStatus(parser)).counters;
  assert.deepEqual(Object.entries(st).filter(([k, v]) => /desync|resync|broken/.test(k) && v > 0), [], "no ciphertext reached the decoder");
});
