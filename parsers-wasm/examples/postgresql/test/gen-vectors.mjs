#!/usr/bin/env node
// Writes test/vectors/*.json: PostgreSQL conversations built message by message from the protocol
// documentation (https://www.postgresql.org/docs/current/protocol-flow.html), with the records
// we expect written out by hand. Run after editing: node parsers-wasm/examples/postgresql/test/gen-vectors.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { vectorEntry as vec } from "../../../dist/test-support/vector-json.js";
// The builders are in wire.ts (shared with the benchmark traffic); this script uses the compiled
// copy, so build first (node scripts/build.mjs --only=ts).
import * as w from "../../../dist/examples/postgresql/test/wire.js";

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "vectors");
const c = (...m) => ["c", w.B(...m)];
const s = (...m) => ["s", w.B(...m)];
const gap = (dir, len) => ["gap", [dir, len]];
const PG = { "db.system": "postgresql", "db.system.name": "postgresql" };
const loginOk = [w.authOk(), w.paramStatus("server_version", "15.18"), w.paramStatus("client_encoding", "UTF8"), w.keyData(4242, 0x5eed), w.ready()];
const start = w.startup({ user: "app", database: "shop", application_name: "psql" });

// ---- startup and authentication ----
const login = [
  vec("trust login: startup answered by AuthenticationOk, parameters, key data, ReadyForQuery", [c(start), s(...loginOk)], [
    { protocol: "postgresql", operation: "LOGIN", status: 0, error: false, startNs: "1000", durationNs: "1000", reqBytes: start.length, respBytes: w.B(...loginOk).length, attributes: { ...PG, "postgresql.message": "StartupMessage", "db.user": "app", "db.namespace": "shop", "postgresql.application_name": "psql", "postgresql.auth_method": "trust", "postgresql.server_version": "15.18", "db.response.status_code": "00000", "db.query.text": null } },
  ]),
  vec("SSLRequest refused with 'N', then md5 authentication; the password is never written", [
    c(w.sslRequest()), s("N"), c(w.startup({ user: "app" })), s(w.auth(5, Buffer.from([1, 2, 3, 4]))), c(w.password("md5-hunter2-secret")), s(...loginOk),
    c(w.query("SELECT 1")), s(w.rowDescription(["?column?"]), w.dataRow(["1"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "LOGIN", status: 0, startNs: "1000", durationNs: "5000", reqBytes: 8 + w.startup({ user: "app" }).length + w.password("md5-hunter2-secret").length, attributes: { "postgresql.ssl_refused": true, "postgresql.auth_method": "md5", "db.user": "app", "db.namespace": "app" } },
    { operation: "SELECT", resource: "SELECT ?", status: 0, attributes: { "postgresql.rows": 1, "postgresql.command_tag": "SELECT", "db.query.text": "SELECT 1" } },
  ]),
  vec("GSSENCRequest refused, then SCRAM-SHA-256 (SASL) authentication", [
    c(w.gssencRequest()), s("N"), c(start), s(w.auth(10, w.B(w.cstr("SCRAM-SHA-256-PLUS"), w.cstr("SCRAM-SHA-256"), [0]))),
    c(w.saslInitial("SCRAM-SHA-256", Buffer.from("n,,n=,r=clientnonce"))), s(w.auth(11, Buffer.from("r=clientnonceserver,s=salt,i=4096"))),
    c(w.saslResponse(Buffer.from("c=biws,r=clientnonceserver,p=proof-secret"))), s(w.auth(12, Buffer.from("v=signature")), ...loginOk),
  ], [
    { operation: "LOGIN", status: 0, attributes: { "postgresql.gssenc_refused": true, "postgresql.auth_method": "SCRAM-SHA-256-PLUS", "db.user": "app" } },
  ]),
  vec("failed password authentication: FATAL 28P01", [
    c(start), s(w.auth(5, Buffer.from([9, 9, 9, 9]))), c(w.password("wrong-secret")),
    s(w.errorResponse({ S: "FATAL", V: "FATAL", C: "28P01", M: 'password authentication failed for user "app"', F: "auth.c", L: "326", R: "auth_failed" })),
  ], [
    { operation: "LOGIN", status: 1, error: true, attributes: { "db.response.status_code": "28P01", "postgresql.severity": "FATAL", "postgresql.error_message": 'password authentication failed for user "app"', "postgresql.auth_method": "md5" } },
  ]),
  vec("SSLRequest accepted: a LOGIN record marked tls, then the connection is given up (TLS follows)", [c(w.sslRequest()), s("S"), c(Buffer.from([0x16, 3, 1, 0, 0x50, 1, 0, 0, 0x4c]))], [
    { operation: "LOGIN", status: null, error: false, attributes: { "postgresql.tls": true } },
  ]),
  vec("CancelRequest: written when sent (no answer), the backend's pid kept, its secret key not", [c(w.cancelRequest(4242, 0x7e57ab1e))], [
    { operation: "CANCEL", status: 0, reqBytes: 16, resource: "", attributes: { "postgresql.backend_pid": 4242, "postgresql.message": "CancelRequest" } },
  ]),
];

// ---- simple query protocol ----
const simple = [
  vec("simple query: rows, normalised statement, rows from the command tag", [
    c(start), s(...loginOk),
    c(w.query("SELECT id, name FROM users WHERE id = 42 AND name = 'bob'")), s(w.rowDescription(["id", "name"]), w.dataRow(["42", "bob"]), w.dataRow(["42", "bob2"]), w.commandComplete("SELECT 2"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT id, name FROM users WHERE id = ? AND name = ?", status: 0, error: false, startNs: "3000", durationNs: "1000", attributes: { ...PG, "postgresql.message": "Query", "db.operation.name": "SELECT", "db.query.text": "SELECT id, name FROM users WHERE id = 42 AND name = 'bob'", "postgresql.rows": 2, "db.response.status_code": "00000" } },
  ]),
  vec("simple query error: SQLSTATE and severity, then ReadyForQuery", [
    c(start), s(...loginOk),
    c(w.query("SELECT * FROM nosuch")), s(w.errorResponse({ S: "ERROR", V: "ERROR", C: "42P01", M: 'relation "nosuch" does not exist', P: "15" }), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT * FROM nosuch", status: 1, error: true, attributes: { "db.response.status_code": "42P01", "postgresql.severity": "ERROR", "postgresql.error_message": 'relation "nosuch" does not exist', "postgresql.rows": null } },
  ]),
  vec("several statements in one Query: rows summed, the last tag, a statement count", [
    c(start), s(...loginOk),
    c(w.query("BEGIN; INSERT INTO t VALUES (1), (2); COMMIT")), s(w.commandComplete("BEGIN"), w.commandComplete("INSERT 0 2"), w.commandComplete("COMMIT"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "BEGIN", resource: "BEGIN; INSERT INTO t VALUES (?), (?); COMMIT", status: 0, attributes: { "postgresql.rows": 2, "postgresql.statements": 3, "postgresql.command_tag": "COMMIT" } },
  ]),
  vec("notice, DDL tag without a count, empty query", [
    c(start), s(...loginOk),
    c(w.query("DROP TABLE IF EXISTS gone")), s(w.noticeResponse({ S: "NOTICE", V: "NOTICE", C: "00000", M: 'table "gone" does not exist, skipping' }), w.commandComplete("DROP TABLE"), w.ready()),
    c(w.query("")), s(w.emptyQuery(), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "DROP", status: 0, attributes: { "postgresql.command_tag": "DROP TABLE", "postgresql.rows": null, "postgresql.notices": 1, "postgresql.notice_code": "00000" } },
    { operation: "QUERY", resource: "", status: 0, attributes: { "postgresql.empty_query": true } },
  ]),
  vec("quoted identifiers and dollar-quoted strings under PostgreSQL's rules", [
    c(start), s(...loginOk),
    c(w.query(`UPDATE "Accounts" SET "note" = $$it's "done"$$, n = E'a\\'b' WHERE "id" = 7`)), s(w.commandComplete("UPDATE 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "UPDATE", resource: `UPDATE "Accounts" SET "note" = ?, n = E? WHERE "id" = ?`, status: 0, attributes: { "postgresql.rows": 1 } },
  ]),
  vec("COPY FROM STDIN: the client's data counted in the request, rows from the tag", [
    c(start), s(...loginOk),
    c(w.query("COPY items (id, name) FROM STDIN")), s(w.copyInResponse(2)),
    c(w.copyData(Buffer.from("1\tone\n")), w.copyData(Buffer.from("2\ttwo\n")), w.copyDone()), s(w.commandComplete("COPY 2"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "COPY", status: 0, startNs: "3000", durationNs: "3000", reqBytes: w.query("COPY items (id, name) FROM STDIN").length + 2 * w.copyData(Buffer.from("1\tone\n")).length + 5, attributes: { "postgresql.copy": "in", "postgresql.rows": 2 } },
  ]),
  vec("COPY TO STDOUT and a failed COPY FROM STDIN (CopyFail)", [
    c(start), s(...loginOk),
    c(w.query("COPY items TO STDOUT")), s(w.copyOutResponse(2), w.copyData(Buffer.from("1\tone\n")), w.copyData(Buffer.from("2\ttwo\n")), w.copyDone(), w.commandComplete("COPY 2"), w.ready()),
    c(w.query("COPY items FROM STDIN")), s(w.copyInResponse(2)), c(w.copyFail("client gave up")),
    s(w.errorResponse({ S: "ERROR", V: "ERROR", C: "57014", M: "COPY from stdin failed: client gave up" }), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "COPY", status: 0, attributes: { "postgresql.copy": "out", "postgresql.rows": 2 } },
    { operation: "COPY", status: 1, error: true, attributes: { "postgresql.copy": "in", "db.response.status_code": "57014" } },
  ]),
  vec("redaction: literals masked in the text and in error messages", [
    c(start), s(...loginOk),
    c(w.query("SELECT * FROM users WHERE email = 'a@b.c'")), s(w.errorResponse({ S: "ERROR", V: "ERROR", C: "22P02", M: 'invalid input syntax for type integer: "abc"' }), w.ready()),
  ], [
    { operation: "LOGIN", attributes: { "db.user": "app" } },
    { operation: "SELECT", resource: "SELECT * FROM users WHERE email = ?", attributes: { "db.query.text": "SELECT * FROM users WHERE email = ?", "postgresql.error_message": "invalid input syntax for type integer: ?" } },
  ], { redact: true }),
  vec("a query picked up mid-stream (no startup seen), then a notification in between", [
    c(w.query("SELECT count(*) FROM orders")), s(w.rowDescription(["count"]), w.dataRow(["7"]), w.notification(99, "chan", "x"), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "SELECT", resource: "SELECT count(*) FROM orders", status: 0, attributes: { "postgresql.rows": 1 } },
  ]),
];

// ---- extended query protocol ----
const unnamed = [w.parse("", "SELECT $1::int + 1 AS n", [23]), w.bind("", "", ["41"]), w.describe("P", ""), w.execute(""), w.sync()];
const unnamedResp = [w.parseComplete(), w.bindComplete(), w.rowDescription(["n"]), w.dataRow(["42"]), w.commandComplete("SELECT 1"), w.ready()];
const extended = [
  vec("unnamed statement and portal: Parse/Bind/Describe/Execute/Sync is one record", [c(start), s(...loginOk), c(...unnamed), s(...unnamedResp)], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT $1::int + ? AS n", status: 0, startNs: "3000", durationNs: "1000", reqBytes: w.B(...unnamed.slice(0, 4)).length, respBytes: w.B(...unnamedResp.slice(0, 5)).length, attributes: { "postgresql.message": "Execute", "db.query.text": "SELECT $1::int + 1 AS n", "postgresql.rows": 1, "db.query.prepared_statement": null } },
  ]),
  vec("named statement prepared once, executed twice (the second time Bind names it)", [
    c(start), s(...loginOk),
    c(w.parse("s1", "UPDATE accounts SET balance = balance - $1 WHERE id = $2"), w.bind("", "s1", ["10", "7"]), w.describe("P", ""), w.execute(""), w.sync()),
    s(w.parseComplete(), w.bindComplete(), w.noData(), w.commandComplete("UPDATE 1"), w.ready("T")),
    c(w.bind("", "s1", ["5", "8"]), w.describe("P", ""), w.execute(""), w.sync()), s(w.bindComplete(), w.noData(), w.commandComplete("UPDATE 0"), w.ready("T")),
  ], [
    { operation: "LOGIN" },
    { operation: "UPDATE", resource: "UPDATE accounts SET balance = balance - $1 WHERE id = $2", status: 0, attributes: { "db.query.prepared_statement": "s1", "postgresql.rows": 1 } },
    { operation: "UPDATE", resource: "UPDATE accounts SET balance = balance - $1 WHERE id = $2", status: 0, startNs: "5000", attributes: { "db.query.prepared_statement": "s1", "postgresql.rows": 0 } },
  ]),
  vec("pipelined: three batches in one write, all answers in one write", [
    c(start), s(...loginOk),
    c(...unnamed, w.parse("", "DELETE FROM t WHERE a < $1"), w.bind("", "", ["3"]), w.describe("P", ""), w.execute(""), w.sync(), w.parse("", "INSERT INTO t VALUES ($1)"), w.bind("", "", ["x"]), w.execute(""), w.sync()),
    s(...unnamedResp, w.parseComplete(), w.bindComplete(), w.noData(), w.commandComplete("DELETE 4"), w.ready(), w.parseComplete(), w.bindComplete(), w.commandComplete("INSERT 0 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", status: 0, attributes: { "postgresql.rows": 1 } },
    { operation: "DELETE", resource: "DELETE FROM t WHERE a < $1", status: 0, attributes: { "postgresql.rows": 4 } },
    { operation: "INSERT", resource: "INSERT INTO t VALUES ($1)", status: 0, attributes: { "postgresql.rows": 1 } },
  ]),
  vec("error at Bind (bad parameter): the batch's Execute carries it, the rest is skipped up to Sync", [
    c(start), s(...loginOk),
    c(w.parse("", "SELECT * FROM t WHERE id = $1", [23]), w.bind("", "", ["abc"]), w.describe("P", ""), w.execute(""), w.sync()),
    s(w.parseComplete(), w.errorResponse({ S: "ERROR", V: "ERROR", C: "22P02", M: 'invalid input syntax for type integer: "abc"' }), w.ready()),
    c(...unnamed), s(...unnamedResp),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT * FROM t WHERE id = $1", status: 1, error: true, attributes: { "db.response.status_code": "22P02", "postgresql.message": "Execute" } },
    { operation: "SELECT", status: 0, attributes: { "postgresql.rows": 1 } },
  ]),
  vec("syntax error at Parse", [
    c(start), s(...loginOk),
    c(w.parse("", "SELEC 1"), w.bind("", ""), w.describe("P", ""), w.execute(""), w.sync()),
    s(w.errorResponse({ S: "ERROR", V: "ERROR", C: "42601", M: 'syntax error at or near "SELEC"' }), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELEC", resource: "SELEC ?", status: 1, error: true, attributes: { "db.response.status_code": "42601" } },
  ]),
  vec("prepare only (Parse, Describe statement, Sync): the Parse is the record", [
    c(start), s(...loginOk),
    c(w.parse("q7", "SELECT name FROM users WHERE id = $1"), w.describe("S", "q7"), w.sync()),
    s(w.parseComplete(), w.paramDescription([23]), w.rowDescription(["name"]), w.ready()),
    c(w.bind("", "q7", ["1"]), w.execute(""), w.sync()), s(w.bindComplete(), w.dataRow(["al"]), w.commandComplete("SELECT 1"), w.ready()),
    c(w.close("S", "q7"), w.sync()), s(w.closeComplete(), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT name FROM users WHERE id = $1", status: 0, attributes: { "postgresql.message": "Parse", "db.query.prepared_statement": "q7" } },
    { operation: "SELECT", resource: "SELECT name FROM users WHERE id = $1", status: 0, attributes: { "postgresql.message": "Execute", "db.query.prepared_statement": "q7", "postgresql.rows": 1 } },
  ]),
  vec("portal with a row limit: PortalSuspended, then the rest", [
    c(start), s(...loginOk),
    c(w.parse("", "SELECT g FROM generate_series(1, 3) g"), w.bind("cur", ""), w.execute("cur", 2), w.flush()),
    s(w.parseComplete(), w.bindComplete(), w.dataRow(["1"]), w.dataRow(["2"]), w.portalSuspended()),
    c(w.execute("cur", 2), w.sync()), s(w.dataRow(["3"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", status: 0, attributes: { "postgresql.portal_suspended": true, "postgresql.portal": "cur" } },
    { operation: "SELECT", resource: "SELECT g FROM generate_series(?, ?) g", status: 0, attributes: { "postgresql.portal_suspended": null, "postgresql.rows": 1 } },
  ]),
  vec("picked up mid-stream: a statement prepared before the capture is named, not guessed", [
    c(w.bind("", "stmtcache_9", ["5"]), w.describe("P", ""), w.execute(""), w.sync()), s(w.bindComplete(), w.rowDescription(["x"]), w.dataRow(["1"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "SELECT", resource: "", status: 0, attributes: { "db.query.prepared_statement": "stmtcache_9", "postgresql.statement_unknown": true, "postgresql.rows": 1, "db.query.text": null } },
  ]),
];

// ---- gaps and pickup ----
const q1 = w.query("SELECT a FROM t");
const r1 = w.B(w.rowDescription(["a"]), w.dataRow(["x".repeat(40)]), w.dataRow(["y"]), w.commandComplete("SELECT 2"), w.ready());
const gaps = [
  vec("a gap in the answer: the request is written incomplete, the next pair decodes", [
    c(start), s(...loginOk), c(q1), s(r1.subarray(0, 20)), gap("server", 30), s(r1.subarray(50)),
    c(w.query("SELECT 2")), s(w.rowDescription(["?column?"]), w.dataRow(["2"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT a FROM t", incomplete: true, status: null },
    { operation: "SELECT", resource: "SELECT ?", status: 0, attributes: { "postgresql.rows": 1 } },
  // the rest of the answer after the gap (28 bytes up to the ReadyForQuery that ends it) hunted
  // over; that ReadyForQuery answers nothing left: dropped
  ], { counters: { drops: 1, bytes_dropped: 28 } }),
  vec("a gap in the requests: the answer to the lost request is dropped, the next pair decodes", [
    c(start), s(...loginOk), c(w.query("SELECT lost").subarray(0, 7)), gap("client", 10), s(w.rowDescription(["x"]), w.commandComplete("SELECT 0"), w.ready()),
    c(...unnamed), s(...unnamedResp),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT $1::int + ? AS n", status: 0, attributes: { "postgresql.rows": 1 } },
  ], { counters: { drops: 1 } }),
  vec("a gap inside a batch (Parse and Bind lost): the rest is written incomplete, never given the previous statement, and the next batch decodes", [
    c(start), s(...loginOk), c(...unnamed), s(...unnamedResp),
    c(w.parse("", "DELETE FROM t WHERE id = $1").subarray(0, 9)), gap("client", 30), c(w.describe("P", ""), w.execute(""), w.sync()),
    s(w.parseComplete(), w.bindComplete(), w.noData(), w.commandComplete("DELETE 1"), w.ready()),
    c(w.query("SELECT 5")), s(w.rowDescription(["?column?"]), w.dataRow(["5"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT $1::int + ? AS n", status: 0 },
    { operation: "EXECUTE", resource: "", incomplete: true, status: null, attributes: { "postgresql.statement_unknown": true, "db.query.text": null } },
    { operation: "SELECT", resource: "SELECT ?", status: 0, attributes: { "postgresql.rows": 1 } },
  ], { counters: { drops: 1 } }),
  vec("pipelined requests with one lost in a gap: its answer is recognised by its command tag and not given to the next request", [
    c(start), s(...loginOk),
    c(w.query("SELECT 1"), w.query("UPDATE t SET a = 1").subarray(0, 8)), gap("client", 16), c(w.query("INSERT INTO t VALUES (2)")),
    s(w.rowDescription(["?column?"]), w.dataRow(["1"]), w.commandComplete("SELECT 1"), w.ready(), w.commandComplete("UPDATE 3"), w.ready(), w.commandComplete("INSERT 0 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", status: 0, attributes: { "postgresql.rows": 1 } },
    { operation: "INSERT", incomplete: true, status: null, attributes: { "postgresql.rows": null } },
  ], { counters: { drops: 2 } }),
  vec("picked up in the middle of a message: resynchronised at the next boundary", [
    gap("client", 0), c(Buffer.from("ERE id = 5\0")), gap("server", 0), s(w.dataRow(["zz"]).subarray(3), w.commandComplete("SELECT 9"), w.ready()),
    c(w.query("SELECT 3")), s(w.rowDescription(["?column?"]), w.dataRow(["3"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "SELECT", resource: "SELECT ?", status: 0, attributes: { "postgresql.rows": 1 } },
  ], { detect: false, counters: { drops: 1, bytes_dropped: 21 } }),
  vec("garbage where a message must start: a framing error, hunted over to the next message", [
    c(start), s(...loginOk), c(Buffer.from("Q\0\0\0\x02garbage!")), c(w.query("SELECT 3")),
    s(w.rowDescription(["?column?"]), w.dataRow(["3"]), w.commandComplete("SELECT 1"), w.ready()),
  ], [
    { operation: "LOGIN" },
    { operation: "SELECT", resource: "SELECT ?", status: 0, attributes: { "postgresql.rows": 1 } },
  ], { modes: ["whole", "truncated", "gapped"], counters: { errors: 1, bytes_dropped: 13 } }),
];

fs.mkdirSync(out, { recursive: true });
for (const [file, vs] of Object.entries({ login, simple, extended, gaps })) fs.writeFileSync(path.join(out, `${file}.json`), JSON.stringify(vs, null, 1) + "\n");
console.log(`wrote ${Object.values({ login, simple, extended, gaps }).reduce((n, v) => n + v.length, 0)} vectors to ${out}`);
