// MySQL end to end: a real MariaDB server, real clients (mysql2 and the mariadb command-line
// client), traffic captured with tcpdump on loopback, decoded by our plugin through the plugin
// host, and compared field by field with tshark (-d tcp.port==N,mysql) and with what the
// clients themselves saw.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import mysql from "mysql2/promise";
import { startMariaDb, type MariaDb } from "./support/mariadb.js";
import { captureDecoded, tsharkFields, decodeCapture, type DecodedRecord } from "./protocol-support/index.js";
import { tempDir } from "./support/index.js";

const COMMANDS: Record<string, string> = {
  "1": "COM_QUIT", "2": "COM_INIT_DB", "3": "COM_QUERY", "4": "COM_FIELD_LIST", "14": "COM_PING",
  "17": "COM_CHANGE_USER", "22": "COM_STMT_PREPARE", "23": "COM_STMT_EXECUTE", "25": "COM_STMT_CLOSE", "26": "COM_STMT_RESET",
};
const BIG_ROWS = 3000;
const MULTI = 17 << 20; // > 16 MiB: a multi-packet payload

let db: MariaDb;
let pcap = "";
/** What the clients saw, to hold the decoder to. */
const seen = { ports: { main: 0, multi: 0, tls: 0 }, bigRows: 0, inserted: 0, version: "", multiLen: 0, bigRowLen: 0 };
let records: DecodedRecord[] = [];

before(async () => {
  db = await startMariaDb({ tls: true });
  await db.sql(
    "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';" +
      "CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('pw');",
  );
  ({ pcap, records } = await captureDecoded(db.port, "mysql", { plugins: ["mysql"] }, () => workload(db.port)));
}, { timeout: 180_000 });

after(async () => {
  await db?.stop();
});

async function workload(port: number): Promise<void> {
  const c = await mysql.createConnection({ host: "127.0.0.1", port, user: "app", password: "secret", connectTimeout: 10_000 });
  seen.ports.main = localPort(c);
  const [v] = await c.query("SELECT VERSION() AS v");
  seen.version = (v as { v: string }[])[0].v;
  await c.query("CREATE DATABASE shop");
  await c.changeUser({ user: "app", password: "secret", database: "shop" }); // COM_CHANGE_USER (auth switch)
  await c.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2))");
  const [ins] = await c.query("INSERT INTO items VALUES (1, 'alice', 9.50), (2, 'bob', 12.00), (3, 'carol', 0.99)");
  seen.inserted = (ins as mysql.ResultSetHeader).affectedRows;
  await c.query("CREATE TABLE big (id INT PRIMARY KEY, label VARCHAR(32))");
  const values = Array.from({ length: BIG_ROWS }, (_, i) => `(${i}, 'label-${i}')`).join(",");
  await c.query(`INSERT INTO big VALUES ${values}`);
  const [big] = await c.query("SELECT * FROM big ORDER BY id");
  seen.bigRows = (big as unknown[]).length;
  await c.execute("SELECT * FROM items WHERE id = ?", [1]); // PREPARE + EXECUTE
  await c.execute("SELECT * FROM items WHERE id = ?", [2]); // EXECUTE of the cached statement
  await c.execute("INSERT INTO items VALUES (?, ?, ?)", [10, "dave", 3.25]);
  c.unprepare("SELECT * FROM items WHERE id = ?"); // COM_STMT_CLOSE
  await assert.rejects(c.query("SELECT * FROM nope"), /nope/);
  await assert.rejects(c.query("INSERT INTO items VALUES (1, 'dup', 0)"), /Duplicate/);
  await assert.rejects(c.execute("SELECT * FROM nope2 WHERE id = ?", [1]), /nope2/);
  await c.ping();
  await c.end(); // COM_QUIT

  // multi-packet payloads both ways, on their own connection
  const m = await mysql.createConnection({ host: "127.0.0.1", port, user: "app", password: "secret", database: "shop", maxPreparedStatements: 4 });
  seen.ports.multi = localPort(m);
  const [len] = await m.query(`SELECT LENGTH('${"a".repeat(MULTI)}') AS n`);
  seen.multiLen = Number((len as { n: number }[])[0].n);
  const [rep] = await m.query(`SELECT REPEAT('b', ${MULTI}) AS b`);
  seen.bigRowLen = String((rep as { b: string }[])[0].b).length;
  await m.query("SELECT 1");
  await m.end();

  // failed logins: wrong password; an ed25519 account (auth switch the client cannot satisfy)
  await assert.rejects(mysql.createConnection({ host: "127.0.0.1", port, user: "app", password: "wrong" }), /Access denied/);
  await assert.rejects(
    mysql.createConnection({ host: "127.0.0.1", port, user: "edu", password: "x", authPlugins: { client_ed25519: () => () => Buffer.alloc(64, 1) } }),
    /Access denied/,
  );
  // TLS: the client sends an SSL request after the greeting, then a TLS handshake
  const t = await mysql.createConnection({ host: "127.0.0.1", port, user: "app", password: "secret", ssl: { rejectUnauthorized: false } });
  seen.ports.tls = localPort(t);
  await t.query("SELECT 'encrypted'");
  await t.end();
  // the mariadb command-line client (libmariadb): `use` is COM_INIT_DB
  await db.client(["--skip-ssl", "-uapp", "-psecret", "-e", "use shop; SELECT COUNT(*) FROM items"]);
}

/** The client's local port (mysql2 keeps the socket on the callback connection). */
function localPort(c: mysql.Connection): number {
  return (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
}

const byClientPort = (port: number) => records.filter((r) => r.client.endsWith(`:${port}`));

test("mysql: tshark and our decoder see the same commands, queries, errors and statement ids", async () => {
  const rows = await tsharkFields(pcap, `tcp.port==${db.port},mysql`, "mysql", [
    "tcp.srcport", "tcp.dstport", "mysql.command", "mysql.query", "mysql.user", "mysql.error_code", "mysql.sqlstate", "mysql.error.message", "mysql.stmt_id",
  ]);
  assert.ok(rows.length > 20, "tshark dissected the capture");
  // group tshark's PDUs by client port; exclude the multi-packet connection (tshark 4.0 does not
  // reassemble 16 MiB multi-packets: it reads their continuation packets as commands)
  for (const port of new Set(rows.map((r) => (Number(r[0]) === db.port ? Number(r[1]) : Number(r[0]))))) {
    if (port === seen.ports.multi || port === seen.ports.tls) continue;
    const mine = byClientPort(port).sort((a, b) => (BigInt(a.startNs) < BigInt(b.startNs) ? -1 : 1));
    const c2s = rows.filter((r) => Number(r[0]) === port);
    const s2c = rows.filter((r) => Number(r[1]) === port);
    const split = (s: string) => (s ? s.split(",") : []);
    const tsCommands: string[] = [];
    for (const r of c2s) {
      const cmds = split(r[2]);
      if (cmds.length) tsCommands.push(...cmds.map((c) => COMMANDS[c] ?? `?${c}`));
      else if (r[4]) tsCommands.push("LOGIN");
    }
    assert.deepEqual(mine.map((r) => r.operation), tsCommands, `client port ${port}: commands`);
    // queries (COM_QUERY and COM_STMT_PREPARE) as sent
    const tsQueries = c2s.filter((r) => r[3]).map((r) => r[3]);
    const myQueries = mine.filter((r) => r.operation === "COM_QUERY" || r.operation === "COM_STMT_PREPARE").map((r) => r.attributes["db.query.text"]);
    assert.equal(myQueries.length, tsQueries.length, `client port ${port}: query count`);
    myQueries.forEach((q, i) => assert.ok(typeof q === "string" && tsQueries[i].startsWith(q.slice(0, 200)), `query ${i}: ${q} vs ${tsQueries[i]}`));
    // errors: code, SQLSTATE, message, in order
    const tsErrors = s2c.filter((r) => r[5]).map((r) => ({ code: Number(r[5]), state: r[6], msg: r[7] }));
    const myErrors = mine.filter((r) => r.error).map((r) => ({ code: r.status, state: r.attributes["mysql.sqlstate"], msg: r.attributes["mysql.error_message"] }));
    assert.deepEqual(myErrors, tsErrors, `client port ${port}: errors`);
    // statement ids: assigned by PREPARE OK, used by EXECUTE and CLOSE, in order
    const tsIds = rows.filter((r) => (Number(r[0]) === port || Number(r[1]) === port) && r[8]).flatMap((r) => split(r[8]).map(Number));
    const myIds = mine.filter((r) => r.attributes["mysql.stmt_id"] !== undefined).map((r) => r.attributes["mysql.stmt_id"]);
    assert.deepEqual(myIds, tsIds, `client port ${port}: statement ids`);
    // users of logins and COM_CHANGE_USER
    assert.deepEqual(mine.filter((r) => r.attributes["db.user"] !== undefined).map((r) => r.attributes["db.user"]), c2s.filter((r) => r[4]).map((r) => r[4]));
  }
});

test("mysql: records agree with what the clients saw", () => {
  const main = byClientPort(seen.ports.main);
  const login = main[0];
  assert.equal(login.operation, "LOGIN");
  assert.equal(login.status, 0);
  assert.equal(login.attributes["mysql.response"], "OK");
  assert.ok(String(login.attributes["mysql.server_version"]).includes(seen.version), `${login.attributes["mysql.server_version"]} vs ${seen.version}`);
  const cu = main.find((r) => r.operation === "COM_CHANGE_USER")!;
  assert.equal(cu.status, 0);
  assert.equal(cu.attributes["db.namespace"], "shop");
  assert.equal(cu.attributes["mysql.auth_switch"], true, "MariaDB answers COM_CHANGE_USER with an auth switch");
  const ins = main.find((r) => String(r.attributes["db.query.text"]).startsWith("INSERT INTO items VALUES (1,"))!;
  assert.equal(ins.attributes["mysql.affected_rows"], seen.inserted);
  assert.equal(ins.resource, "INSERT INTO items VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)");
  const big = main.find((r) => r.attributes["db.query.text"] === "SELECT * FROM big ORDER BY id")!;
  assert.equal(big.attributes["mysql.response"], "RESULT_SET");
  assert.equal(big.attributes["mysql.rows"], seen.bigRows);
  assert.equal(seen.bigRows, BIG_ROWS);
  const prep = main.filter((r) => r.operation === "COM_STMT_PREPARE");
  const exec = main.filter((r) => r.operation === "COM_STMT_EXECUTE");
  assert.equal(exec.length, 3);
  assert.equal(exec[0].resource, "SELECT * FROM items WHERE id = ?");
  assert.equal(exec[0].attributes["mysql.rows"], 1);
  assert.equal(exec[1].attributes["mysql.stmt_id"], exec[0].attributes["mysql.stmt_id"], "the cached statement is executed again");
  assert.equal(exec[2].attributes["mysql.response"], "OK");
  assert.equal(exec[2].attributes["mysql.affected_rows"], 1);
  const close = main.find((r) => r.operation === "COM_STMT_CLOSE")!;
  assert.equal(close.resource, "SELECT * FROM items WHERE id = ?");
  assert.equal(close.status, 0);
  const failedPrep = prep.find((r) => r.error)!;
  assert.equal(failedPrep.status, 1146);
  const dup = main.find((r) => r.status === 1062)!;
  assert.equal(dup.attributes["mysql.sqlstate"], "23000");
  assert.equal(main.filter((r) => r.operation === "COM_PING" && r.status === 0).length, 1);
  assert.equal(main.at(-1)!.operation, "COM_QUIT");
  assert.ok(main.every((r) => r.incomplete === undefined), "every command got its response");

  // multi-packet: a 17 MiB query and a 17 MiB row
  const multi = byClientPort(seen.ports.multi);
  assert.equal(seen.multiLen, MULTI);
  // the text kept is a prefix (16 KiB), cut inside the literal: its normalized form ends there
  const q = multi.find((r) => r.resource.startsWith("SELECT LENGTH(?"))!;
  assert.ok(q, JSON.stringify(multi.map((r) => r.resource.slice(0, 40))));
  assert.equal(q.attributes["mysql.response"], "RESULT_SET");
  assert.equal(q.attributes["mysql.rows"], 1);
  assert.ok(q.reqBytes > MULTI, "request bytes count the whole multi-packet");
  assert.equal(seen.bigRowLen, MULTI);
  const rep = multi.find((r) => r.resource.startsWith("SELECT REPEAT(?, ?)"))!;
  assert.equal(rep.attributes["mysql.rows"], 1);
  assert.ok(rep.respBytes > MULTI);
  const after = multi.find((r) => r.attributes["db.query.text"] === "SELECT 1")!;
  assert.equal(after.attributes["mysql.rows"], 1, "framing holds after the multi-packets");

  // failed logins
  const refused = records.filter((r) => r.operation === "LOGIN" && r.status === 1045);
  assert.equal(refused.length, 2);
  const ed = refused.find((r) => r.attributes["db.user"] === "edu")!;
  assert.equal(ed.attributes["mysql.auth_switch"], true);
  assert.equal(ed.attributes["mysql.auth_plugin"], "client_ed25519");
  assert.equal(ed.attributes["mysql.sqlstate"], "28000");

  // the command-line client: COM_INIT_DB
  const initDb = records.find((r) => r.operation === "COM_INIT_DB")!;
  assert.ok(initDb, "the mariadb client sends COM_INIT_DB for `use`");
  assert.equal(initDb.resource, "shop");
  assert.equal(initDb.status, 0);
  const count = records.find((r) => r.attributes["db.query.text"] === "SELECT COUNT(*) FROM items")!;
  assert.equal(count.attributes["mysql.rows"], 1);
});

test("mysql: an SSL request marks the LOGIN as TLS and decoding stops there", () => {
  const tls = byClientPort(seen.ports.tls);
  assert.equal(tls.length, 1, JSON.stringify(tls));
  assert.equal(tls[0].operation, "LOGIN");
  assert.equal(tls[0].attributes["mysql.tls"], true);
  assert.equal(tls[0].attributes["mysql.response"], "SSL");
  assert.equal(tls[0].status, null, "the outcome of an encrypted login is not visible");
  assert.ok(!records.some((r) => String(r.attributes["db.query.text"] ?? "").includes("encrypted")), "nothing is read from the TLS stream");
});

test("mysql: redaction masks literals in query text and error messages", () => {
  const red = decodeCapture(pcap, { plugins: ["mysql"], serverPort: db.port, redact: true }).records;
  assert.equal(red.length, records.length);
  const texts = red.map((r) => String(r.attributes["db.query.text"] ?? "")).join("\n");
  assert.ok(!texts.includes("alice") && !texts.includes("label-1") && !texts.includes("'dup'"), "no string literal survives");
  assert.ok(texts.includes("INSERT INTO items VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)"));
  const errs = red.filter((r) => r.error).map((r) => String(r.attributes["mysql.error_message"]));
  assert.ok(errs.some((m) => m.includes("Duplicate entry ?")), errs.join(" | "));
  assert.ok(!errs.join(" ").includes("'app'"), "user names in quotes are masked too");
});

test("mysql: a connection picked up after its handshake still decodes", async () => {
  // keep only the packets from the CREATE TABLE on: no greeting, no login, capabilities unknown
  const main = byClientPort(seen.ports.main);
  const from = main.find((r) => String(r.attributes["db.query.text"]).startsWith("CREATE TABLE items"))!;
  const cut = path.join(tempDir("wirescope-mysql-cut-"), "cut.pcap");
  const sec = (BigInt(from.startNs) / 1000n).toString();
  const epoch = `${sec.slice(0, -6)}.${sec.slice(-6)}`;
  await new Promise<void>((resolve, reject) =>
    execFile("tshark", ["-r", pcap, "-Y", `frame.time_epoch >= ${epoch} && tcp.port == ${seen.ports.main}`, "-F", "pcap", "-w", cut], { timeout: 60_000 }, (e) => (e ? reject(e) : resolve())),
  );
  const late = decodeCapture(cut, { plugins: ["mysql"], serverPort: db.port }).records;
  const want = main.filter((r) => BigInt(r.startNs) >= BigInt(from.startNs));
  const key = (r: DecodedRecord) => [r.operation, r.resource, r.status, r.attributes["mysql.rows"], r.attributes["mysql.response"], r.attributes["mysql.stmt_id"]].join("|");
  assert.deepEqual(late.map(key), want.map(key));
});
