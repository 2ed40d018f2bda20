// COM_RESET_CONNECTION and COM_CHANGE_USER on a real server: MariaDB with mysql2 (which clears
// its statement cache on reset and change-user, closes the dropped statement and prepares
// again), captured with tcpdump, decoded through the plugin host and compared with tshark 4.0
// and with the client. The vectors (mysql8.json) also EXECUTE a forgotten id.
import { test } from "node:test";
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { startMariaDb } from "./support/mariadb.js";
import { captureDecoded, tsharkFields } from "./protocol-support/index.js";

const SQL = "SELECT ? + 1 AS v";

test("mysql: COM_RESET_CONNECTION and COM_CHANGE_USER between prepared statements, against the client and tshark", { timeout: 120_000 }, async () => {
  const db = await startMariaDb({ skipGrantTables: true });
  try {
    await db.sql("CREATE DATABASE shop;");
    const got: number[] = [];
    const { pcap, records } = await captureDecoded(db.port, "mysql-reset", { plugins: ["mysql"] }, async () => {
      const c = await mysql.createConnection({ host: "127.0.0.1", port: db.port, user: "app", database: "shop", connectTimeout: 10_000 });
      const run = async (n: number) => got.push(Number(((await c.execute(SQL, [n]))[0] as { v: number }[])[0]!.v));
      await run(1);
      await c.reset();
      await run(2);
      await c.changeUser({ user: "ops", database: "shop" });
      await run(3);
      await c.end();
    });
    assert.deepEqual(got, [2, 3, 4]);
    // mysql2 closes its cached statement after the reset or change-user has dropped it on the
    // server: those CLOSEs name a statement the decoder has forgotten as well
    assert.deepEqual(records.map((r) => r.operation), [
      "LOGIN", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_RESET_CONNECTION", "COM_STMT_CLOSE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE",
      "COM_CHANGE_USER", "COM_STMT_CLOSE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_QUIT",
    ]);
    for (const [close, prep] of [[4, 1], [8, 5]] as const) {
      const id = records[prep]!.attributes["mysql.stmt_id"];
      assert.equal(records[close]!.attributes["mysql.stmt_id"], id);
      assert.equal(records[close]!.resource, `statement_id=${id}`, "the statement was forgotten with the session");
      assert.equal(records[close]!.attributes["db.query.text"], undefined);
    }
    assert.ok(records.every((r) => r.incomplete === undefined && r.status === 0), JSON.stringify(records.map((r) => [r.operation, r.status])));
    for (const r of records.filter((x) => x.operation === "COM_STMT_EXECUTE")) {
      assert.equal(r.resource, "SELECT ? + ? AS v");
      assert.equal(r.attributes["db.query.text"], SQL);
      assert.equal(r.attributes["mysql.rows"], 1);
    }
    assert.equal(records[3]!.attributes["mysql.response"], "OK");
    assert.equal(records[7]!.attributes["db.user"], "ops");
    // tshark: the same commands (by number) and statement ids
    const rows = await tsharkFields(pcap, `tcp.port==${db.port},mysql`, "mysql", ["mysql.command", "mysql.stmt_id"]);
    const names: Record<string, string> = { "1": "COM_QUIT", "17": "COM_CHANGE_USER", "22": "COM_STMT_PREPARE", "23": "COM_STMT_EXECUTE", "25": "COM_STMT_CLOSE", "31": "COM_RESET_CONNECTION" };
    const theirs = rows.flatMap((r) => (r[0] ? r[0].split(",").map((c) => names[c] ?? `?${c}`) : []));
    assert.deepEqual(records.slice(1).map((r) => r.operation), theirs);
    const theirIds = rows.flatMap((r) => (r[1] ? r[1].split(",").map(Number) : []));
    const myIds = records.filter((r) => r.attributes["mysql.stmt_id"] !== undefined).map((r) => r.attributes["mysql.stmt_id"]);
    assert.deepEqual(myIds, theirIds);
  } finally {
    await db.stop();
  }
});
