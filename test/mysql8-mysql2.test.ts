// Query attributes as a real client library encodes them: mysql2 (3.24, which sends
// CLIENT_QUERY_ATTRIBUTES in COM_QUERY and COM_STMT_EXECUTE when the server offers it) over
// loopback TCP, captured with tcpdump, decoded by our plugin through the plugin host and compared
// with what the client sent and with tshark 4.0.
//
// MySQL 8 does not run here and MariaDB never offers query attributes, so the server end is a
// small MySQL 8 stand-in written for this test from the protocol documentation: a greeting
// offering CLIENT_QUERY_ATTRIBUTES, OK to the login, and fixed answers (one-row result sets,
// STMT_PREPARE_OK with its definitions, a binary row, ERR for a table named "nope", OK to ping).
// It checks nothing of what the client sends: the bytes under test are mysql2's.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import mysql from "mysql2/promise";
import { tsharkFields, decodeCapture } from "./protocol-support/index.js";
import { startCapture } from "./support/tcpdump.js";
import { REPO_ROOT } from "./support/index.js";

const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** The decoder's wire builders (parsers-wasm/mysql/test/wire.ts), loaded from their compiled copy at run time. */
type Wire = typeof import("../parsers-wasm/mysql/test/wire.js");

/** A MySQL 8 stand-in (see the header); answers in EOF-packet mode, as mysql2 does not deprecate EOF. */
function standIn(W: Wire): net.Server {
  const caps = W.BASE_CAPS | W.CAPS["CONNECT_WITH_DB"]! | W.CAPS["QUERY_ATTRIBUTES"]!;
  return net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let loggedIn = false;
    let stmt = 0;
    sock.write(W.pkt(0, W.greeting("8.0.36", caps, "mysql_native_password")));
    const answer = (payload: Buffer) => {
      if (!loggedIn) {
        loggedIn = true;
        return sock.write(W.pkt(2, W.ok()));
      }
      const cmd = payload[0];
      const text = payload.toString("latin1");
      if (cmd === 0x01) return sock.end();
      if (cmd === 0x0e) return sock.write(W.pkt(1, W.ok()));
      if (cmd === 0x19) return; // COM_STMT_CLOSE: no answer
      if (text.includes("nope")) return sock.write(W.pkt(1, W.err(1146, "42S02", "Table 'shop.nope' doesn't exist")));
      if (cmd === 0x03) return sock.write(W.B(W.pkt(1, W.lenenc(1)), W.pkt(2, W.coldef("v")), W.pkt(3, W.eof()), W.pkt(4, W.textRow("1")), W.pkt(5, W.eof())));
      if (cmd === 0x16) {
        const params = (text.match(/\?/g) ?? []).length;
        const defs = Array.from({ length: params }, (_, i) => W.pkt(2 + i, W.coldef("?", "")));
        const n = 2 + params;
        return sock.write(W.B(W.pkt(1, W.B([0], W.u32(++stmt), W.u16(1), W.u16(params), [0], W.u16(0))), ...defs, ...(params ? [W.pkt(n, W.eof())] : []), W.pkt(n + (params ? 1 : 0), W.coldef("v")), W.pkt(n + (params ? 2 : 1), W.eof())));
      }
      if (cmd === 0x17) return sock.write(W.B(W.pkt(1, W.lenenc(1)), W.pkt(2, W.coldef("v")), W.pkt(3, W.eof()), W.pkt(4, W.B([0x00, 0x00], W.lstr("x"))), W.pkt(5, W.eof())));
      return sock.write(W.pkt(1, W.ok()));
    };
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const len = buf.readUIntLE(0, 3);
        if (buf.length < 4 + len) break;
        const payload = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        answer(payload);
      }
    });
    sock.on("error", () => sock.destroy());
  });
}

test("mysql2's query attributes: the statement, attribute names and trace context, against the client and tshark", { timeout: 120_000 }, async () => {
  const W = (await import(pathToFileURL(path.join(REPO_ROOT, "parsers-wasm/dist/mysql/test/wire.js")).href)) as Wire;
  const server = standIn(W);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const cap = await startCapture(port, "mysql8-mysql2");
  const sent: { sql: string; names: string[]; trace: boolean; strings?: boolean }[] = [];
  try {
    const c = await mysql.createConnection({ host: "127.0.0.1", port, user: "app", password: "x", database: "shop" });
    const q = async (sql: string, attributes?: Record<string, string | number | boolean | null | Date>) => {
      sent.push({ sql, names: Object.keys(attributes ?? {}), trace: attributes?.["traceparent"] === TP, strings: Object.values(attributes ?? {}).every((v) => typeof v === "string") });
      await c.query({ sql, attributes });
    };
    await q("SELECT v FROM t WHERE id = 1", { traceparent: TP, tenant: 42, note: null, at: new Date(Date.UTC(2026, 11, 1, 12, 0, 0)), flag: true, ratio: 0.25 });
    await q("SELECT 2");
    await q("SELECT 3", { request_id: "r-9" });
    sent.push({ sql: "SELECT v FROM t WHERE id = ?", names: [], trace: false }); // the PREPARE
    sent.push({ sql: "SELECT v FROM t WHERE id = ?", names: ["traceparent"], trace: true });
    await c.execute({ sql: "SELECT v FROM t WHERE id = ?", values: [5], attributes: { traceparent: TP } });
    sent.push({ sql: "SELECT * FROM nope", names: ["a"], trace: false });
    await assert.rejects(c.query({ sql: "SELECT * FROM nope", attributes: { a: "b" } }), /nope/);
    await c.ping();
    await c.end();
  } finally {
    await cap.stop();
    server.close();
  }
  const { records } = decodeCapture(cap.file, { plugins: ["mysql"], serverPort: port });
  const cmds = records.filter((r) => r.operation !== "LOGIN");
  assert.deepEqual(
    cmds.map((r) => r.operation),
    ["COM_QUERY", "COM_QUERY", "COM_QUERY", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_QUERY", "COM_PING", "COM_QUIT"],
  );
  assert.ok(records.every((r) => r.incomplete === undefined), "every command paired with its answer");
  sent.forEach((s, i) => {
    const r = cmds[i]!;
    const where = `${r.operation} ${s.sql}`;
    if (r.operation === "COM_STMT_EXECUTE") assert.equal(r.resource, "SELECT v FROM t WHERE id = ?", where);
    else assert.equal(r.attributes["db.query.text"], s.sql, where);
    assert.deepEqual(r.attributes["mysql.query_attributes"] ?? [], s.names, `${where}: attribute names`);
    if (s.trace) assert.deepEqual(r.trace, { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", flags: 1, format: "w3c" }, `${where}: trace`);
    else assert.equal(r.trace, undefined, `${where}: no trace`);
  });
  assert.equal(cmds[5]!.status, 1146);

  // tshark 4.0: where it dissects the query (string-valued attributes only; it reads every value
  // as a length-encoded string), it shows the same statement and names
  const rows = await tsharkFields(cap.file, `tcp.port==${port},mysql`, "mysql.command == 3", ["mysql.query", "mysql.query_attr_name", "_ws.malformed"]);
  assert.equal(rows.length, 4, "tshark saw the four COM_QUERY");
  let compared = 0;
  rows.forEach((row, i) => {
    const s = sent.filter((_, j) => cmds[j]!.operation === "COM_QUERY")[i]!;
    if (row[2] || !row[0]) {
      // malformed, or no statement shown
      assert.equal(s.strings, false, `tshark 4.0 fails only on non-string values: ${s.sql}`);
      return;
    }
    assert.equal(row[0], s.sql);
    assert.deepEqual(row[1] ? row[1].split(",") : [], s.names);
    compared++;
  });
  assert.equal(compared, 3);
});
