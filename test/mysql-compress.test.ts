// The MySQL compressed protocol (CLIENT_COMPRESS, zlib) end to end: a real MariaDB server, mysql2
// with `compress: true` and the mariadb command-line client with --compress, captured with
// tcpdump, decoded by our plugin through the plugin host, and compared with tshark 4.0 (which
// inflates the server's compressed packets too) and with what the clients saw. Small packets travel as
// is inside the compressed framing, larger ones deflated; the 2,000-row result set spans many
// compressed packets, with MySQL packets cut across them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import mysql from "mysql2/promise";
import { startMariaDb, type MariaDb } from "./support/mariadb.js";
import { captureDecoded, tsharkFields, decodeCapture, type DecodedRecord } from "./protocol-support/index.js";

const ROWS = 2000;
let db: MariaDb;
let pcap = "";
let records: DecodedRecord[] = [];
const seen = { port: 0, rows: 0, inserted: 0 };

before(async () => {
  db = await startMariaDb({ skipGrantTables: true });
  await db.sql("CREATE DATABASE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, label VARCHAR(64));");
  ({ pcap, records } = await captureDecoded(db.port, "mysql-compress", { plugins: ["mysql"] }, async () => {
    const c = await mysql.createConnection({ host: "127.0.0.1", port: db.port, user: "app", database: "shop", compress: true, connectTimeout: 10_000 });
    seen.port = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
    await c.query("SELECT 1");
    const values = Array.from({ length: ROWS }, (_, i) => `(${i}, 'label-${i}-${(i * 7919) % 1000}')`).join(",");
    const [ins] = await c.query(`INSERT INTO big VALUES ${values}`);
    seen.inserted = (ins as mysql.ResultSetHeader).affectedRows;
    const [rows] = await c.query("SELECT * FROM big ORDER BY id");
    seen.rows = (rows as unknown[]).length;
    await c.execute("SELECT label FROM big WHERE id = ?", [7]);
    await assert.rejects(c.query("SELECT * FROM nope"), /nope/);
    await c.ping();
    await c.end();
    await db.client(["--compress", "-uapp", "-e", "use shop; SELECT COUNT(*) FROM big WHERE label LIKE 'label-1%'"]);
  }));
}, { timeout: 120_000 });

after(async () => {
  await db?.stop();
});

test("mysql compressed protocol: tshark and our decoder see the same commands, queries and errors", async () => {
  const rows = await tsharkFields(pcap, `tcp.port==${db.port},mysql`, "mysql", ["tcp.srcport", "tcp.dstport", "mysql.command", "mysql.query", "mysql.error_code", "mysql.compressed_packet_length"]);
  assert.ok(rows.some((r) => r[5]), "tshark saw compressed packets");
  const split = (s: string | undefined) => (s ? s.split(",") : []);
  const ports = new Set(rows.map((r) => (Number(r[0]) === db.port ? Number(r[1]) : Number(r[0]))));
  assert.equal(ports.size, 2, "two connections (mysql2, mariadb)");
  const names: Record<string, string> = { "1": "COM_QUIT", "2": "COM_INIT_DB", "3": "COM_QUERY", "14": "COM_PING", "22": "COM_STMT_PREPARE", "23": "COM_STMT_EXECUTE" };
  for (const port of ports) {
    const mine = records.filter((r) => r.client.endsWith(`:${port}`) && r.operation !== "LOGIN");
    const c2s = rows.filter((r) => Number(r[0]) === port);
    const theirs = c2s.flatMap((r) => split(r[2]).map((c) => names[c] ?? `?${c}`));
    // tshark 4.0 cannot dissect a client packet sent deflated (here only the 47 KiB INSERT: the
    // other requests are under 50 bytes and travel as is): it shows an unknown command (205
    // here), as on the synthesized captures. Where it does, our record is that INSERT.
    const unknown = theirs.flatMap((c, i) => (c.startsWith("?") ? [i] : []));
    assert.ok(unknown.length <= 1, `tshark could not dissect ${unknown.length} commands`);
    for (const i of unknown) assert.match(String(mine[i]?.attributes["db.query.text"]), /^INSERT INTO big VALUES \(0, 'label-0-0'\)/, `client port ${port}: command ${i}`);
    assert.deepEqual(
      mine.map((r, i) => (unknown.includes(i) ? theirs[i] : r.operation)),
      theirs,
      `client port ${port}: commands`,
    );
    const tsQueries = c2s.flatMap((r) => split(r[3]));
    const myQueries = mine.filter((r, i) => (r.operation === "COM_QUERY" || r.operation === "COM_STMT_PREPARE") && !unknown.includes(i)).map((r) => String(r.attributes["db.query.text"]));
    // tshark's list is comma-separated: compare the queries joined
    assert.equal(myQueries.join(","), tsQueries.join(","), `client port ${port}: queries`);
    const tsErrors = rows.filter((r) => Number(r[1]) === port).flatMap((r) => split(r[4]).map(Number));
    assert.deepEqual(mine.filter((r) => r.error).map((r) => r.status), tsErrors, `client port ${port}: errors`);
    assert.ok(mine.every((r) => r.attributes["mysql.compression"] === "zlib" && r.attributes["mysql.compressed_lost"] === undefined), `client port ${port}: every record zlib, nothing lost`);
  }
});

test("mysql compressed protocol: records agree with what the clients saw", () => {
  const main = records.filter((r) => r.client.endsWith(`:${seen.port}`));
  assert.equal(main[0]!.operation, "LOGIN");
  assert.equal(main[0]!.attributes["mysql.compression"], "zlib");
  assert.ok(main.every((r) => r.incomplete === undefined), "every command got its response");
  const ins = main.find((r) => String(r.attributes["db.query.text"]).startsWith("INSERT INTO big"))!;
  assert.equal(ins.attributes["mysql.affected_rows"], seen.inserted);
  assert.equal(seen.inserted, ROWS);
  const big = main.find((r) => r.attributes["db.query.text"] === "SELECT * FROM big ORDER BY id")!;
  assert.equal(big.attributes["mysql.rows"], seen.rows);
  assert.equal(seen.rows, ROWS);
  const exec = main.find((r) => r.operation === "COM_STMT_EXECUTE")!;
  assert.equal(exec.resource, "SELECT label FROM big WHERE id = ?");
  assert.equal(exec.attributes["mysql.rows"], 1);
  assert.equal(main.at(-1)!.operation, "COM_QUIT");
  const cli = records.filter((r) => !r.client.endsWith(`:${seen.port}`));
  const count = cli.find((r) => String(r.attributes["db.query.text"]).startsWith("SELECT COUNT(*)"))!;
  assert.equal(count.attributes["mysql.rows"], 1);
  assert.equal(count.attributes["mysql.compression"], "zlib");
});

test("mysql compressed protocol: a capture that starts after the login finds the compressed framing at the next command", async () => {
  // mysql2 writes a compressed packet's 7-byte header and its payload apart: the capture cut at
  // the header of its first command (SELECT 1), and cut between that header and its payload
  const frames = await tsharkFields(pcap, `tcp.port==${db.port},mysql`, `tcp.srcport == ${seen.port} && tcp.len > 0`, ["frame.number", "tcp.payload"]);
  const at = frames.findIndex((r) => r[1]!.endsWith(Buffer.from("SELECT 1").toString("hex")));
  assert.ok(at > 0 && frames[at - 1]![1]!.length === 14, `the first command's payload and header: ${JSON.stringify(frames.slice(0, at + 1))}`);
  const full = records.filter((r) => r.client.endsWith(`:${seen.port}`) && r.operation !== "LOGIN");
  const facts = (r: DecodedRecord) => [r.operation, r.resource, r.status, r.attributes["mysql.rows"] ?? null, r.attributes["mysql.affected_rows"] ?? null];
  const decodeFrom = (frame: string) => {
    const cut = pcap.replace(/\.pcap(ng)?$/, `-from-${frame}.pcap`);
    execFileSync("editcap", ["-r", pcap, cut, `${frame}-1000000`]);
    return decodeCapture(cut, { plugins: ["mysql"], serverPort: db.port }).records.filter((r) => r.client.endsWith(`:${seen.port}`));
  };
  const late = decodeFrom(frames[at - 1]![0]!);
  assert.deepEqual(late.map(facts), full.map(facts), "from the header on: every command, as decoded with the login seen");
  assert.ok(late.every((r) => r.attributes["mysql.compressed"] === true && r.incomplete === undefined));
  // which compression it is, the first deflated payload says (the INSERT's): zlib from then on
  const ins = late.findIndex((r) => String(r.attributes["db.query.text"]).startsWith("INSERT INTO big"));
  assert.ok(ins > 0 && late.slice(ins).every((r) => r.attributes["mysql.compression"] === "zlib"));
  // from the payload on: SELECT 1 looks like a plain command (and is written incomplete), the
  // INSERT's header then cannot be a plain one: its compressed packet decides
  const mid = decodeFrom(frames[at]![0]!);
  assert.deepEqual(mid.slice(1).map(facts), full.slice(1).map(facts), "from the next command on, exact");
  assert.equal(mid[0]!.resource, "SELECT ?");
  assert.equal(mid[0]!.incomplete, true);
});
