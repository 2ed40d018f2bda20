// Every MySQL capture in ../shared/captures decodes to what its truth file (tshark 4.0) says:
// per TCP stream, the same commands in the same order, with the same query text, outcome, error
// code, SQLSTATE and message, row and affected-row counts, and prepared statement ids.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeCapture, type DecodedRecord } from "./protocol-support/index.js";
import { truths, serverPort, truthStream } from "./protocol-support/truth.js";

const all = truths("mysql");

test("mysql captures: the shared captures are there", () => {
  assert.ok(all.length >= 3, `expected the MySQL captures in ../shared/captures/mysql, found ${all.length}`);
});

for (const { file, truth } of all) {
  test(`mysql capture ${truth.capture} matches its truth file`, () => {
    const { records, counters } = decodeCapture(file, { plugins: ["mysql"], serverPort: serverPort(truth, 3306) });
    assert.equal(Object.keys(counters).filter((k) => k.startsWith("plugin_traps")).length, 0, `plugin trapped: ${JSON.stringify(counters)}`);
    const byStream = new Map<number, DecodedRecord[]>();
    for (const r of records) byStream.set(truthStream(truth, r), [...(byStream.get(truthStream(truth, r)) ?? []), r]);
    const truthStreams = new Set(truth.transactions.map((t) => t.tcp_stream as number));
    for (const stream of truthStreams) {
      const want = truth.transactions.filter((t) => t.tcp_stream === stream);
      const got = byStream.get(stream) ?? [];
      assert.equal(got.length, want.length, `stream ${stream}: ${got.length} records, truth has ${want.length}: ${JSON.stringify(got.map((r) => r.operation))}`);
      want.forEach((w, i) => compare(`stream ${stream} #${i} (frame ${w.request_frame})`, got[i], w));
    }
    // Streams tshark could not decode at all: whatever we emit there must be a LOGIN refusal
    // (the server's ERR before any greeting, which tshark 4.0 leaves undissected).
    for (const [stream, recs] of byStream) {
      if (truthStreams.has(stream)) continue;
      for (const r of recs) assert.equal(r.operation, "LOGIN", `stream ${stream}: unexpected ${r.operation} where tshark decoded nothing`);
    }
  });
}

function compare(where: string, r: DecodedRecord, w: Record<string, unknown>): void {
  const a = r.attributes;
  assert.equal(r.protocol, "mysql", where);
  assert.equal(r.operation, w.command, `${where}: command`);
  assert.equal(a["mysql.command"], w.command, `${where}: mysql.command`);
  if (typeof w.query === "string") assert.equal(a["db.query.text"], w.query, `${where}: query`);
  if (w.outcome === "NO_RESPONSE_IN_FILE") {
    // nothing came back: either none is expected (COM_QUIT, COM_STMT_CLOSE) or the capture ended
    assert.ok(r.incomplete === true || a["mysql.response"] === undefined, `${where}: expected no response, got ${a["mysql.response"]}`);
    if (r.incomplete) assert.equal(r.status, null, `${where}: incomplete records have no status`);
    return;
  }
  assert.equal(r.incomplete, undefined, `${where}: not incomplete`);
  assert.equal(a["mysql.response"], w.outcome, `${where}: outcome`);
  assert.equal(r.error, w.outcome === "ERR", `${where}: error flag`);
  assert.equal(r.status, (w.error_code as number | undefined) ?? 0, `${where}: status`);
  if (w.outcome === "ERR") {
    assert.equal(a["mysql.sqlstate"], w.sqlstate, `${where}: sqlstate`);
    assert.equal(a["mysql.error_message"], w.error_message, `${where}: error message`);
  }
  if (typeof w.rows === "number") assert.equal(a["mysql.rows"], w.rows, `${where}: rows`);
  if (typeof w.num_fields === "number") assert.equal(a["mysql.columns"], w.num_fields, `${where}: columns`);
  if (typeof w.affected_rows === "number" && w.command !== "LOGIN") assert.equal(a["mysql.affected_rows"], w.affected_rows, `${where}: affected rows`);
  if (typeof w.insert_id === "number") assert.equal(a["mysql.insert_id"], w.insert_id, `${where}: insert id`);
  if (typeof w.stmt_id === "number") assert.equal(a["mysql.stmt_id"], w.stmt_id, `${where}: stmt id`);
  if (typeof w.stmt_id_assigned === "number") {
    assert.equal(a["mysql.stmt_id"], w.stmt_id_assigned, `${where}: stmt id assigned`);
    assert.equal(a["mysql.params"], w.num_params, `${where}: params`);
    assert.equal(a["mysql.columns"], w.num_columns, `${where}: columns`);
  }
  if (w.command === "LOGIN") assert.equal(a["db.user"], w.user, `${where}: user`);
  if (w.command === "COM_INIT_DB") {
    assert.equal(a["db.namespace"], w.schema, `${where}: schema`);
    assert.equal(r.resource, w.schema, `${where}: resource`);
  }
  if (w.command === "COM_FIELD_LIST") assert.equal(r.resource, w.table, `${where}: table`);
  // the resource is the statement with its literals masked
  if (typeof w.query === "string") assert.ok(!/'[^']*'|"[^"]*"|\b\d+\b/.test(r.resource), `${where}: literals left in resource ${r.resource}`);
}
