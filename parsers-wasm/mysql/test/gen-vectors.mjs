#!/usr/bin/env node
// Writes test/vectors/*.json: MySQL protocol conversations built byte by byte from the protocol
// documentation (https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html), with the
// records we expect written out by hand. Run after editing: node parsers-wasm/mysql/test/gen-vectors.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { vectorEntry as vec } from "../../dist/test-support/vector-json.js";

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "vectors");

// The builders live in wire.ts (shared with the benchmark traffic); this script uses the
// compiled copy, so build first (node scripts/build.mjs --only=ts).
import { B, u16, u32, lenenc, cstr, pkt, CAPS, BASE_CAPS, greeting, login, ok, eof, err, coldef, textRow, binaryRow, queryWithAttrs, execute, cpkt, zstdPkt } from "../../dist/mysql/test/wire.js";
const { SSL: CLIENT_SSL, DEPRECATE_EOF: CLIENT_DEPRECATE_EOF } = CAPS;

/** A conversation: steps of [dir, bytes] or gaps. */
const c = (b) => ["c", b];
/** A TLS record: type (22 handshake, 23 application data), version 3.minor, a body of n bytes. */
const tlsRecord = (type, minor, n) => B([type, 3, minor, n >> 8, n & 255], Buffer.alloc(n, 0xa5));
const s = (b) => ["s", b];

// ---- vectors ----
const handshake = [];
const V = "8.0.36";

handshake.push(
  vec(
    "native password login, then a text result set with EOF packets",
    [
      s(pkt(0, greeting(V, BASE_CAPS, "mysql_native_password"))),
      c(pkt(1, login(BASE_CAPS, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password"))),
      s(pkt(2, ok())),
      c(pkt(0, B([3], "SELECT id, name FROM t WHERE id = 5 OR name = 'bob'"))),
      s(B(pkt(1, lenenc(2)), pkt(2, coldef("id")), pkt(3, coldef("name")), pkt(4, eof()), pkt(5, textRow(5, "al")), pkt(6, textRow(6, "bob")), pkt(7, eof()))),
    ],
    [
      { operation: "LOGIN", resource: "", status: 0, error: false, startNs: "2000", durationNs: "1000", attributes: { "db.system": "mysql", "mysql.command": "LOGIN", "db.user": "app", "db.namespace": "shop", "mysql.response": "OK", "mysql.server_version": V, "mysql.auth_plugin": "mysql_native_password", "mysql.auth_switch": null } },
      { operation: "COM_QUERY", resource: "SELECT id, name FROM t WHERE id = ? OR name = ?", status: 0, error: false, startNs: "4000", durationNs: "1000", attributes: { "db.query.text": "SELECT id, name FROM t WHERE id = 5 OR name = 'bob'", "db.operation.name": "SELECT", "mysql.response": "RESULT_SET", "mysql.rows": 2, "mysql.columns": 2, "db.response.status_code": "0" } },
    ],
  ),
  vec(
    "CLIENT_DEPRECATE_EOF: rows end with an OK packet (0xfe header), empty result set too",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_DEPRECATE_EOF, "mysql_native_password"))),
      c(pkt(1, login(BASE_CAPS | CLIENT_DEPRECATE_EOF, "app", Buffer.alloc(20, 7), null, "mysql_native_password"))),
      s(pkt(2, ok())),
      c(pkt(0, B([3], "SELECT n FROM t"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("n")), pkt(3, textRow(1)), pkt(4, textRow(2)), pkt(5, textRow(3)), pkt(6, ok(0, 0, 2, 0xfe)))),
      c(pkt(0, B([3], "SELECT n FROM t WHERE n > 10"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("n")), pkt(3, ok(0, 0, 2, 0xfe)))),
    ],
    [
      { operation: "LOGIN", status: 0, attributes: { "db.user": "app", "db.namespace": null } },
      { operation: "COM_QUERY", resource: "SELECT n FROM t", status: 0, attributes: { "mysql.rows": 3, "mysql.response": "RESULT_SET" } },
      { operation: "COM_QUERY", resource: "SELECT n FROM t WHERE n > ?", status: 0, attributes: { "mysql.rows": 0, "mysql.response": "RESULT_SET" } },
    ],
  ),
  vec(
    "caching_sha2_password fast path (0x01 0x03, then OK)",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_DEPRECATE_EOF, "caching_sha2_password"))),
      c(pkt(1, login(BASE_CAPS | CLIENT_DEPRECATE_EOF, "app", Buffer.alloc(32, 9), null, "caching_sha2_password"))),
      s(B(pkt(2, Buffer.from([0x01, 0x03])), pkt(3, ok()))),
      c(pkt(0, Buffer.from([0x0e]))),
      s(pkt(1, ok())),
    ],
    [
      { operation: "LOGIN", status: 0, error: false, attributes: { "mysql.auth_plugin": "caching_sha2_password", "mysql.auth_path": "fast", "mysql.response": "OK" } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK" } },
    ],
  ),
  vec(
    "caching_sha2_password full path: public key request, RSA-encrypted password, OK",
    [
      s(pkt(0, greeting(V, BASE_CAPS, "caching_sha2_password"))),
      c(pkt(1, login(BASE_CAPS, "app", Buffer.alloc(32, 9), null, "caching_sha2_password"))),
      s(pkt(2, Buffer.from([0x01, 0x04]))),
      c(pkt(3, Buffer.from([0x02]))),
      s(pkt(4, B([0x01], "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"))),
      c(pkt(5, Buffer.alloc(256, 0x5a))),
      s(pkt(6, ok())),
    ],
    [{ operation: "LOGIN", status: 0, attributes: { "mysql.auth_path": "full", "mysql.response": "OK", "db.user": "app" } }],
  ),
  vec(
    "auth switch request to mysql_native_password",
    [
      s(pkt(0, greeting(V, BASE_CAPS, "caching_sha2_password"))),
      c(pkt(1, login(BASE_CAPS, "legacy", Buffer.alloc(32, 9), null, "caching_sha2_password"))),
      s(pkt(2, B([0xfe], cstr("mysql_native_password"), Buffer.alloc(20, 0x33), [0]))),
      c(pkt(3, Buffer.alloc(20, 0x44))),
      s(pkt(4, ok())),
    ],
    [{ operation: "LOGIN", status: 0, attributes: { "mysql.auth_switch": true, "mysql.auth_plugin": "mysql_native_password", "db.user": "legacy" } }],
  ),
  vec(
    "failed login: ERR 1045 with SQLSTATE",
    [
      s(pkt(0, greeting(V, BASE_CAPS, "mysql_native_password"))),
      c(pkt(1, login(BASE_CAPS, "root", Buffer.alloc(20, 1), null, "mysql_native_password"))),
      s(pkt(2, err(1045, "28000", "Access denied for user 'root'@'localhost' (using password: YES)"))),
    ],
    [{ operation: "LOGIN", status: 1045, error: true, attributes: { "mysql.response": "ERR", "db.response.status_code": "1045", "mysql.sqlstate": "28000", "mysql.error_message": "Access denied for user 'root'@'localhost' (using password: YES)" } }],
  ),
  vec(
    "non-ASCII user, schema and SQLSTATE bytes are written as valid UTF-8",
    [
      s(pkt(0, greeting(V, BASE_CAPS, "mysql_native_password"))),
      c(pkt(1, login(BASE_CAPS, "jörg", Buffer.alloc(20, 1), "straße", "mysql_native_password"))),
      s(pkt(2, B([0xff], u16(1044), "#", Buffer.from([0x73, 0x1b, 0xe5, 0x34, 0x32]), "Zugriff verweigert für 'jörg'"))),
    ],
    [{ operation: "LOGIN", status: 1044, error: true, attributes: { "db.user": "jörg", "db.namespace": "straße", "mysql.sqlstate": "s\u001b\u5d32", "mysql.error_message": "Zugriff verweigert für 'jörg'" } }],
  ),
  vec(
    "refused before the greeting (host not allowed)",
    [s(pkt(0, err(1130, "HY000", "Host '10.0.0.9' is not allowed to connect to this MySQL server")))],
    [{ operation: "LOGIN", status: 1130, error: true, attributes: { "mysql.response": "ERR" } }],
  ),
  vec(
    "SSL request, then ciphertext (nobody reads the TLS library): one LOGIN marked TLS, and decoding stops",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_SSL, "mysql_native_password"))),
      c(pkt(1, B(u32(BASE_CAPS | CLIENT_SSL), u32(16 << 20), [0x21], Buffer.alloc(23)))),
      c(tlsRecord(22, 1, 300)), // a TLS ClientHello follows
      s(B(tlsRecord(22, 3, 122), tlsRecord(20, 3, 1), tlsRecord(23, 3, 900))), // ServerHello, ChangeCipherSpec, encrypted handshake
      c(B(tlsRecord(20, 3, 1), tlsRecord(23, 3, 53))), // the client's Finished
      c(tlsRecord(23, 3, 120)), // application data: the login, encrypted
    ],
    [{ operation: "LOGIN", status: null, error: false, startNs: "2000", attributes: { "mysql.tls": true, "mysql.response": "SSL", "db.user": null } }],
    // 6 TLS records passed over (the last the client's Finished, application data: decoding stops)
    { counters: { drops: 6, bytes_dropped: 1407 } },
  ),
  vec(
    "SSL request, then the TLS plaintext on the same connection (read from the library): one LOGIN, from the SSL request to the login's OK",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_SSL | CLIENT_DEPRECATE_EOF, "mysql_native_password"))),
      c(pkt(1, B(u32(BASE_CAPS | CLIENT_SSL | CLIENT_DEPRECATE_EOF), u32(16 << 20), [0x21], Buffer.alloc(23)))),
      c(tlsRecord(22, 1, 300)), // a ClientHello the probe saw before it knew (memory BIOs)
      c(pkt(2, login(BASE_CAPS | CLIENT_SSL | CLIENT_DEPRECATE_EOF, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password"))),
      s(pkt(3, ok())),
      c(pkt(0, B([3], "SELECT n FROM t"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("n")), pkt(3, textRow(1)), pkt(4, ok(0, 0, 2, 0xfe)))),
    ],
    [
      { operation: "LOGIN", status: 0, startNs: "2000", durationNs: "3000", attributes: { "db.user": "app", "db.namespace": "shop", "mysql.response": "OK", "mysql.tls": true, "mysql.server_version": V } },
      { operation: "COM_QUERY", resource: "SELECT n FROM t", status: 0, attributes: { "mysql.rows": 1, "mysql.response": "RESULT_SET" } },
    ],
    { counters: { drops: 1, bytes_dropped: 305 } }, // the ClientHello
  ),
  vec(
    "COM_CHANGE_USER answered with an auth switch, then OK",
    [
      c(pkt(0, B([0x11], cstr("bob"), [20], Buffer.alloc(20, 5), cstr("sales"), u16(0x21), cstr("mysql_native_password")))),
      s(pkt(1, B([0xfe], cstr("mysql_native_password"), Buffer.alloc(20, 0x33), [0]))),
      c(pkt(2, Buffer.alloc(20, 0x44))),
      s(pkt(3, ok())),
    ],
    [{ operation: "COM_CHANGE_USER", status: 0, attributes: { "db.user": "bob", "db.namespace": "sales", "mysql.auth_switch": true, "mysql.response": "OK" } }],
    { detect: false },
  ),
);

const commands = [
  vec(
    "prepared statement: PREPARE, EXECUTE (binary rows), CLOSE, tracked by statement id",
    [
      c(pkt(0, B([0x16], "SELECT id, name FROM t WHERE id = ? AND kind = 'x'"))),
      s(B(pkt(1, B([0x00], u32(7), u16(2), u16(1), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, eof()), pkt(4, coldef("id")), pkt(5, coldef("name")), pkt(6, eof()))),
      c(pkt(0, B([0x17], u32(7), [0], u32(1), [0], [1], B([3, 0]), u32(42)))),
      s(B(pkt(1, lenenc(2)), pkt(2, coldef("id")), pkt(3, coldef("name")), pkt(4, eof()), pkt(5, binaryRow(42, "meaning")), pkt(6, eof()))),
      c(pkt(0, B([0x19], u32(7)))),
      c(pkt(0, B([0x17], u32(9), [0], u32(1)))),
      s(pkt(1, err(1243, "HY000", "Unknown prepared statement handler (9) given to mysqld_stmt_execute"))),
    ],
    [
      { operation: "COM_STMT_PREPARE", resource: "SELECT id, name FROM t WHERE id = ? AND kind = ?", status: 0, attributes: { "mysql.response": "STMT_PREPARE_OK", "mysql.stmt_id": 7, "mysql.params": 1, "mysql.columns": 2 } },
      { operation: "COM_STMT_EXECUTE", resource: "SELECT id, name FROM t WHERE id = ? AND kind = ?", status: 0, attributes: { "mysql.stmt_id": 7, "mysql.response": "RESULT_SET", "mysql.rows": 1, "db.query.text": "SELECT id, name FROM t WHERE id = ? AND kind = 'x'" } },
      { operation: "COM_STMT_CLOSE", resource: "SELECT id, name FROM t WHERE id = ? AND kind = ?", status: 0, attributes: { "mysql.stmt_id": 7, "mysql.response": null } },
      { operation: "COM_STMT_EXECUTE", resource: "statement_id=9", status: 1243, error: true, attributes: { "mysql.stmt_id": 9, "mysql.response": "ERR", "db.query.text": null } },
    ],
    { detect: true },
  ),
  vec(
    "COM_QUERY errors, OK with affected rows and insert id",
    [
      c(pkt(0, B([3], "SELECT * FROM nope"))),
      s(pkt(1, err(1146, "42S02", "Table 'shop.nope' doesn't exist"))),
      c(pkt(0, B([3], "INSERT INTO t (name) VALUES ('x'), ('y')"))),
      s(pkt(1, ok(2, 17))),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT * FROM nope", status: 1146, error: true, attributes: { "mysql.sqlstate": "42S02", "mysql.error_message": "Table 'shop.nope' doesn't exist", "mysql.response": "ERR" } },
      { operation: "COM_QUERY", resource: "INSERT INTO t (name) VALUES (?), (?)", status: 0, error: false, attributes: { "mysql.response": "OK", "mysql.affected_rows": 2, "mysql.insert_id": 17, "db.operation.name": "INSERT" } },
    ],
  ),
  vec(
    "COM_INIT_DB, COM_PING, COM_FIELD_LIST and COM_QUIT",
    [
      c(pkt(0, B([2], "shop"))),
      s(pkt(1, ok())),
      c(pkt(0, Buffer.from([0x0e]))),
      s(pkt(1, ok())),
      c(pkt(0, B([4], cstr("agent")))),
      s(B(pkt(1, coldef("id", "agent")), pkt(2, coldef("name", "agent")), pkt(3, eof()))),
      c(pkt(0, Buffer.from([0x01]))),
    ],
    [
      { operation: "COM_INIT_DB", resource: "shop", status: 0, attributes: { "db.namespace": "shop", "mysql.response": "OK" } },
      { operation: "COM_PING", resource: "", status: 0, attributes: { "mysql.response": "OK" } },
      { operation: "COM_FIELD_LIST", resource: "agent", status: 0, attributes: { "mysql.response": "FIELD_LIST", "db.collection.name": "agent" } },
      { operation: "COM_QUIT", status: 0, attributes: { "mysql.response": null } },
    ],
    { detect: false },
  ),
  vec(
    "multiple result sets (CALL): SERVER_MORE_RESULTS_EXISTS, then the final OK",
    [
      c(pkt(0, B([3], "CALL report(2024)"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("v")), pkt(3, eof(0x0a)), pkt(4, textRow("a")), pkt(5, textRow("b")), pkt(6, eof(0x0a)), pkt(7, lenenc(1)), pkt(8, coldef("w")), pkt(9, eof(0x0a)), pkt(10, textRow("c")), pkt(11, eof(0x0a)), pkt(12, ok(0, 0, 2)))),
      c(pkt(0, B([3], "SELECT 1"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("1")), pkt(3, eof()), pkt(4, textRow(1)), pkt(5, eof()))),
    ],
    [
      { operation: "COM_QUERY", resource: "CALL report(?)", status: 0, attributes: { "mysql.response": "RESULT_SET", "mysql.rows": 3 } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "mysql.rows": 1 } },
    ],
  ),
  vec(
    "LOAD DATA LOCAL INFILE: the client uploads the file, then OK",
    [
      c(pkt(0, B([3], "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t"))),
      s(pkt(1, B([0xfb], "/tmp/x.csv"))),
      c(B(pkt(2, Buffer.from("1,a\n2,b\n")), pkt(3, Buffer.alloc(0)))),
      s(pkt(4, ok(2, 0))),
      c(pkt(0, Buffer.from([0x0e]))),
      s(pkt(1, ok())),
    ],
    [
      { operation: "COM_QUERY", resource: "LOAD DATA LOCAL INFILE ? INTO TABLE t", status: 0, attributes: { "mysql.response": "OK", "mysql.affected_rows": 2 } },
      { operation: "COM_PING", status: 0 },
    ],
  ),
  vec(
    "redaction: literals masked in db.query.text and in error messages",
    [
      c(pkt(0, B([3], "UPDATE users SET password = 'hunter2' WHERE id = 42"))),
      s(pkt(1, err(1062, "23000", "Duplicate entry 'hunter2' for key 'PRIMARY'"))),
    ],
    [{ operation: "COM_QUERY", resource: "UPDATE users SET password = ? WHERE id = ?", status: 1062, attributes: { "db.query.text": "UPDATE users SET password = ? WHERE id = ?", "mysql.error_message": "Duplicate entry ? for key ?" } }],
    { redact: true },
  ),
  vec(
    "a request left without a response is written incomplete at close",
    [c(pkt(0, B([3], "SELECT SLEEP(100)")))],
    [{ operation: "COM_QUERY", resource: "SELECT SLEEP(?)", status: null, incomplete: true, attributes: { "mysql.response": null } }],
  ),
  vec(
    "a gap in the response: that command is incomplete, the next one decodes",
    [
      c(pkt(0, B([3], "SELECT * FROM big"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("v")), pkt(3, eof()), pkt(4, textRow("a")))),
      ["gap", ["server", 500]],
      c(pkt(0, B([3], "SELECT 2"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("2")), pkt(3, eof()), pkt(4, textRow(2)), pkt(5, eof()))),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT * FROM big", status: null, incomplete: true },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "mysql.rows": 1 } },
    ],
    { modes: ["whole", "split", "bytewise", "truncated"] },
  ),
];

commands.push(
  vec(
    "read-only cursor: EXECUTE answers columns only (SERVER_STATUS_CURSOR_EXISTS), rows come with COM_STMT_FETCH",
    [
      c(pkt(0, B([0x17], u32(5), [1], u32(1)))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("id")), pkt(3, eof(0x42)))),
      c(pkt(0, B([0x1c], u32(5), u32(2)))),
      s(B(pkt(1, B([0x00], [0x00], u32(1))), pkt(2, B([0x00], [0x00], u32(2))), pkt(3, eof(0x42)))),
      c(pkt(0, B([0x1a], u32(5)))),
      s(pkt(1, ok())),
    ],
    [
      { operation: "COM_STMT_EXECUTE", status: 0, attributes: { "mysql.stmt_id": 5, "mysql.response": "RESULT_SET", "mysql.rows": 0, "mysql.columns": 1 } },
      { operation: "COM_STMT_FETCH", status: 0, attributes: { "mysql.stmt_id": 5, "mysql.response": "RESULT_SET", "mysql.rows": 2 } },
      { operation: "COM_STMT_RESET", status: 0, attributes: { "mysql.stmt_id": 5, "mysql.response": "OK" } },
    ],
    { detect: false },
  ),
  vec(
    "COM_STATISTICS answers with a plain string",
    [c(pkt(0, Buffer.from([0x09]))), s(pkt(1, Buffer.from("Uptime: 5  Threads: 1  Questions: 9  Slow queries: 0")))],
    [{ operation: "COM_STATISTICS", status: 0, attributes: { "mysql.response": "STATISTICS" } }],
    { detect: false },
  ),
  vec(
    "a binlog dump is a stream: the command is written and decoding stops",
    [c(pkt(0, B([0x12], u32(4), u16(0), u32(1), "binlog.000001"))), s(pkt(1, B([0x00], Buffer.alloc(30, 1))))],
    [{ operation: "COM_BINLOG_DUMP", status: 0, attributes: { "mysql.response": "STREAM" } }],
    { detect: false },
  ),
);

// TLS application data records of 22 bytes (`17 03 03 00 16`): read as MySQL, a COM_STMT_PREPARE
// (0x16) of 197,399 bytes (03 03 17) with sequence id 0, whose 64 KiB prefix is ciphertext
const smallRecords = B(...Array.from({ length: 2500 }, (_, i) => B([23, 3, 3, 0, 22], Buffer.alloc(22, i & 255))));
const midway = [
  vec(
    "TLS seen mid-way (the capture began after the SSL request): application data is counted, never decoded",
    [
      s(B(tlsRecord(23, 3, 300), tlsRecord(23, 3, 40))), // server records: passed over
      c(smallRecords), // the client's: decoding stops at the first
      s(tlsRecord(23, 3, 500)),
      c(tlsRecord(23, 3, 90)),
    ],
    [],
    { detect: false, modes: ["whole"], counters: { drops: 3, bytes_dropped: 305 + 45 + smallRecords.length } },
  ),
  vec(
    "TLS seen mid-way from its handshake: records chained across chunks, a record cut by a chunk waits, nothing decoded",
    [
      c(tlsRecord(22, 1, 200)), // ClientHello
      s(B(tlsRecord(22, 3, 90), tlsRecord(20, 3, 1), tlsRecord(23, 3, 50).subarray(0, 20))), // ServerHello, ChangeCipherSpec, the encrypted handshake cut
      s(tlsRecord(23, 3, 50).subarray(20)),
      c(tlsRecord(20, 3, 1).subarray(0, 3)), // a header cut: waits
      c(B(tlsRecord(20, 3, 1).subarray(3), tlsRecord(22, 3, 40))),
      c(tlsRecord(23, 3, 30)), // application data
      s(tlsRecord(23, 3, 70)),
    ],
    [],
    { detect: false, counters: { drops: 7, bytes_dropped: 205 + 95 + 6 + 55 + 6 + 45 + 35 } },
  ),
  vec(
    // tlsStream's header cut by the chunk's end after a whole record: the bytes it has fit, so the
    // chunk is TLS at once and its record is passed over (counted) there; taken for not TLS, or
    // for not known yet, the client's bytes would wait and the counters differ (drops 1)
    "TLS seen mid-way: a chunk that ends 3 bytes into the header after a whole record is TLS already",
    [
      c(B(tlsRecord(22, 1, 60), tlsRecord(22, 1, 40).subarray(0, 3))), // a record, then 3 bytes of the next header
      s(tlsRecord(22, 3, 80)),
    ],
    [],
    { detect: false, counters: { drops: 2, bytes_dropped: 65 + 85 } },
  ),
  vec(
    "TLS plaintext read from the library after an SSL request: the new session starts with the login (sequence 2)",
    [
      c(pkt(2, login(BASE_CAPS | CLIENT_SSL | CLIENT_DEPRECATE_EOF, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password"))),
      s(pkt(3, ok())),
      c(pkt(0, B([3], "SELECT n FROM t"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("n")), pkt(3, textRow(1)), pkt(4, ok(0, 0, 2, 0xfe)))),
    ],
    [
      { operation: "LOGIN", status: 0, attributes: { "db.user": "app", "db.namespace": "shop", "mysql.response": "OK", "mysql.tls": null } },
      { operation: "COM_QUERY", resource: "SELECT n FROM t", status: 0, attributes: { "mysql.rows": 1, "mysql.response": "RESULT_SET" } },
    ],
  ),
  vec(
    "picked up after the handshake, EOF packets: capabilities inferred from the first result set",
    [
      c(pkt(0, B([3], "SELECT a, b FROM t"))),
      s(B(pkt(1, lenenc(2)), pkt(2, coldef("a")), pkt(3, coldef("b")), pkt(4, eof()), pkt(5, textRow(1, 2)), pkt(6, eof()))),
      c(pkt(0, B([0x16], "SELECT a FROM t WHERE a = ?"))),
      s(B(pkt(1, B([0x00], u32(3), u16(1), u16(1), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, eof()), pkt(4, coldef("a")), pkt(5, eof()))),
      c(pkt(0, B([0x17], u32(3), [0], u32(1), [0], [1], B([3, 0]), u32(1)))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("a")), pkt(3, eof()), pkt(4, B([0x00], [0x00], u32(1))), pkt(5, eof()))),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT a, b FROM t", status: 0, attributes: { "mysql.rows": 1 } },
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 3 } },
      { operation: "COM_STMT_EXECUTE", resource: "SELECT a FROM t WHERE a = ?", status: 0, attributes: { "mysql.rows": 1, "mysql.stmt_id": 3 } },
    ],
  ),
  vec(
    "picked up after the handshake, CLIENT_DEPRECATE_EOF: inferred from rows following the columns",
    [
      c(pkt(0, B([3], "SELECT a FROM t"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("a")), pkt(3, textRow(1)), pkt(4, textRow(2)), pkt(5, ok(0, 0, 2, 0xfe)))),
      c(pkt(0, B([0x16], "SELECT a FROM t WHERE a = ?"))),
      s(B(pkt(1, B([0x00], u32(4), u16(1), u16(1), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, coldef("a")))),
      c(pkt(0, B([3], "SELECT b FROM t"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("b")), pkt(3, ok(0, 0, 2, 0xfe)))),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT a FROM t", status: 0, attributes: { "mysql.rows": 2 } },
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 4, "mysql.params": 1, "mysql.columns": 1 } },
      { operation: "COM_QUERY", resource: "SELECT b FROM t", status: 0, attributes: { "mysql.rows": 0 } },
    ],
  ),
  vec(
    "picked up mid-response: bytes before the first command are dropped, then decoding starts",
    [
      s(B(pkt(7, textRow("tail")), pkt(8, eof()))),
      c(pkt(0, B([3], "SELECT 3"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("3")), pkt(3, eof()), pkt(4, textRow(3)), pkt(5, eof()))),
    ],
    [{ operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "mysql.rows": 1 } }],
    // the response to no command (one dropped), its 18 bytes passed over
    { detect: false, counters: { drops: 1, bytes_dropped: 18 } },
  ),
  vec(
    "resynchronises after any loss, and from any starting byte: a pool connection's traffic",
    [
      c(pkt(0, B([3], "SELECT id, total FROM orders WHERE customer_id = 42"))),
      s(B(pkt(1, lenenc(2)), pkt(2, coldef("id")), pkt(3, coldef("total")), pkt(4, eof()), pkt(5, textRow(1, "9.50")), pkt(6, textRow(2, "12.00")), pkt(7, eof()))),
      // a statement prepared before the capture started: named by its id, never given a text
      c(pkt(0, B([0x17], u32(12), [0], u32(1), [1], [0], B([3, 0]), u32(42)))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("n")), pkt(3, eof()), pkt(4, B([0x00], [0x00], u32(7))), pkt(5, eof()))),
      c(pkt(0, B([3], "INSERT INTO audit (who, what) VALUES ('app', 'checkout')"))),
      s(pkt(1, ok(1, 77))),
      c(pkt(0, B([3], "SELECT 1"))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("1")), pkt(3, eof()), pkt(4, textRow(1)), pkt(5, eof()))),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT id, total FROM orders WHERE customer_id = ?", status: 0, attributes: { "mysql.rows": 2 } },
      { operation: "COM_STMT_EXECUTE", resource: "statement_id=12", status: 0, attributes: { "mysql.stmt_id": 12, "db.query.text": null, "mysql.rows": 1 } },
      { operation: "COM_QUERY", resource: "INSERT INTO audit (who, what) VALUES (?, ?)", status: 0, startNs: "5000", durationNs: "1000", attributes: { "mysql.affected_rows": 1, "mysql.insert_id": 77 } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, startNs: "7000", durationNs: "1000", attributes: { "mysql.rows": 1 } },
    ],
    { resync: { steps: 4, tail: 2 } },
  ),
];

// ---- MySQL 8 features that MariaDB never negotiates ----
const QA = CAPS.QUERY_ATTRIBUTES;
const OM = CAPS.OPTIONAL_RESULTSET_METADATA;
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", flags: 1, format: "w3c" };
const caps8 = BASE_CAPS | CLIENT_DEPRECATE_EOF | QA;
const login8 = (caps) => [s(pkt(0, greeting(V, caps, "caching_sha2_password"))), c(pkt(1, login(caps, "app", Buffer.alloc(32, 9), "shop", "caching_sha2_password"))), s(B(pkt(2, Buffer.from([0x01, 0x03])), pkt(3, ok())))];
const LOGIN8 = { operation: "LOGIN", status: 0, attributes: { "mysql.auth_path": "fast", "mysql.response": "OK" } };
const rows1 = (first = 1) => B(pkt(first, lenenc(1)), pkt(first + 1, coldef("v")), pkt(first + 2, textRow("x")), pkt(first + 3, ok(0, 0, 2, 0xfe)));

const mysql8 = [
  vec(
    "CLIENT_QUERY_ATTRIBUTES: every COM_QUERY starts with the attribute block, the statement follows it",
    [
      ...login8(caps8),
      c(pkt(0, queryWithAttrs("SELECT id FROM orders WHERE id = 7", []))),
      s(rows1()),
      // the documentation's example: one attribute a='1'
      c(pkt(0, queryWithAttrs("select @@version_comment limit 1", [{ name: "a", value: "1" }]))),
      s(rows1()),
      // a trace context, an integer, a NULL and an unnamed value
      c(pkt(0, queryWithAttrs("UPDATE carts SET qty = 2 WHERE id = 9", [{ name: "traceparent", value: TP }, { name: "tenant", value: 42 }, { name: "gone", value: null }, { value: "anonymous" }]))),
      s(pkt(1, ok(1, 0))),
      c(pkt(0, queryWithAttrs("SELECT * FROM nope", [{ name: "request_id", value: "r-1" }]))),
      s(pkt(1, err(1146, "42S02", "Table 'shop.nope' doesn't exist"))),
    ],
    [
      LOGIN8,
      { operation: "COM_QUERY", resource: "SELECT id FROM orders WHERE id = ?", status: 0, attributes: { "db.query.text": "SELECT id FROM orders WHERE id = 7", "db.operation.name": "SELECT", "mysql.rows": 1, "mysql.query_attributes": null } },
      { operation: "COM_QUERY", resource: "select @@version_comment limit ?", status: 0, attributes: { "db.query.text": "select @@version_comment limit 1", "mysql.query_attributes": ["a"], "mysql.rows": 1 } },
      { operation: "COM_QUERY", resource: "UPDATE carts SET qty = ? WHERE id = ?", status: 0, trace: TRACE, attributes: { "db.query.text": "UPDATE carts SET qty = 2 WHERE id = 9", "db.operation.name": "UPDATE", "mysql.query_attributes": ["traceparent", "tenant", "gone"], "mysql.affected_rows": 1 } },
      { operation: "COM_QUERY", resource: "SELECT * FROM nope", status: 1146, error: true, attributes: { "db.query.text": "SELECT * FROM nope", "mysql.query_attributes": ["request_id"] } },
    ],
  ),
  vec(
    "CLIENT_QUERY_ATTRIBUTES in COM_STMT_EXECUTE: positional parameters, then the attributes, counted together",
    [
      ...login8(caps8),
      c(pkt(0, B([0x16], "SELECT name FROM users WHERE id = ? AND kind = ?"))),
      s(B(pkt(1, B([0x00], u32(3), u16(1), u16(2), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, coldef("?", "")), pkt(4, coldef("name", "users")))),
      c(pkt(0, execute(3, [{ value: 5 }, { value: null }, { name: "traceparent", value: TP }], true))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("name", "users")), pkt(3, B([0x00], [0x00], lenenc(3), "bob")), pkt(4, ok(0, 0, 2, 0xfe)))),
      // a statement without parameters, no attributes: parameter_count 0
      c(pkt(0, B([0x16], "SELECT 1"))),
      s(B(pkt(1, B([0x00], u32(4), u16(1), u16(0), [0], u16(0))), pkt(2, coldef("1", "")))),
      c(pkt(0, execute(4, [], true))),
      s(B(pkt(1, lenenc(1)), pkt(2, coldef("1", "")), pkt(3, B([0x00], [0x00], [1, 0, 0, 0, 0, 0, 0, 0])), pkt(4, ok(0, 0, 2, 0xfe)))),
    ],
    [
      LOGIN8,
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 3, "mysql.params": 2 } },
      { operation: "COM_STMT_EXECUTE", resource: "SELECT name FROM users WHERE id = ? AND kind = ?", status: 0, trace: TRACE, attributes: { "mysql.stmt_id": 3, "mysql.query_attributes": ["traceparent"], "mysql.rows": 1 } },
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 4, "mysql.params": 0 } },
      { operation: "COM_STMT_EXECUTE", resource: "SELECT ?", status: 0, attributes: { "mysql.stmt_id": 4, "mysql.query_attributes": null, "mysql.rows": 1 } },
    ],
  ),
  vec(
    "query attributes on a connection picked up after its handshake: recognised by their shape",
    [
      c(pkt(0, queryWithAttrs("SELECT a FROM t", []))),
      s(rows1()),
      c(pkt(0, queryWithAttrs("SELECT b FROM t WHERE b = 'z'", [{ name: "traceparent", value: TP }]))),
      s(rows1()),
      c(pkt(0, execute(12, [{ value: "q" }, { name: "w", value: 1 }], true))),
      s(pkt(1, ok(1, 0))),
      c(pkt(0, queryWithAttrs("SELECT 2", []))),
      s(rows1()),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT a FROM t", status: 0, attributes: { "db.query.text": "SELECT a FROM t", "mysql.rows": 1 } },
      { operation: "COM_QUERY", resource: "SELECT b FROM t WHERE b = ?", status: 0, trace: TRACE, attributes: { "db.query.text": "SELECT b FROM t WHERE b = 'z'", "mysql.query_attributes": ["traceparent"] } },
      { operation: "COM_STMT_EXECUTE", resource: "statement_id=12", status: 0, attributes: { "mysql.stmt_id": 12, "mysql.query_attributes": ["w"], "db.query.text": null } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "db.query.text": "SELECT 2", "mysql.rows": 1 } },
    ],
    // binary commands alone do not claim a connection seen mid-way: a text query does
    { resync: { steps: 2, tail: 3 } },
  ),
  vec(
    "picked up after the greeting: a client claiming CLIENT_QUERY_ATTRIBUTES to a server that did not offer it sends text",
    [
      c(pkt(1, login(caps8, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password"))),
      s(pkt(2, ok())),
      c(pkt(0, B([3], "SELECT 1"))),
      s(rows1()),
      c(pkt(0, B([3], "SELECT name FROM t WHERE id = 3"))),
      s(rows1()),
    ],
    [
      { operation: "LOGIN", status: 0 },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "db.query.text": "SELECT 1" } },
      { operation: "COM_QUERY", resource: "SELECT name FROM t WHERE id = ?", status: 0, attributes: { "db.query.text": "SELECT name FROM t WHERE id = 3" } },
    ],
  ),
  vec(
    "a query text that looks like an attribute header on a connection without CLIENT_QUERY_ATTRIBUTES stays text",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_DEPRECATE_EOF, "mysql_native_password"))),
      c(pkt(1, login(BASE_CAPS | CLIENT_DEPRECATE_EOF, "app", Buffer.alloc(20, 7), null, "mysql_native_password"))),
      s(pkt(2, ok())),
      c(pkt(0, B([3], "\n\u0001SELECT 1"))),
      s(rows1()),
    ],
    [{ operation: "LOGIN", status: 0 }, { operation: "COM_QUERY", status: 0, attributes: { "db.query.text": "\n\u0001SELECT 1", "mysql.query_attributes": null } }],
    { detect: false },
  ),
  vec(
    "an attribute block that does not parse: the statement is unknown, never the block's bytes",
    [...login8(caps8), c(pkt(0, B([3], [2, 1, 0, 1, 0xfe, 0], "SELECT 1"))), s(pkt(1, ok())), c(pkt(0, queryWithAttrs("SELECT 3", []))), s(rows1())],
    [LOGIN8, { operation: "COM_QUERY", resource: "", status: 0, attributes: { "db.query.text": null } }, { operation: "COM_QUERY", resource: "SELECT ?", status: 0 }],
    { detect: false, counters: { errors: 1 } },
  ),
  vec(
    "CLIENT_OPTIONAL_RESULTSET_METADATA: resultset_metadata=NONE leaves out the column definitions",
    [
      ...login8(caps8 | OM),
      c(pkt(0, queryWithAttrs("SET resultset_metadata = NONE", []))),
      s(pkt(1, ok())),
      c(pkt(0, queryWithAttrs("SELECT a, b FROM t", []))),
      s(B(pkt(1, B(lenenc(2), [0])), pkt(2, textRow(1, 2)), pkt(3, textRow(3, 4)), pkt(4, ok(0, 0, 2, 0xfe)))),
      c(pkt(0, queryWithAttrs("SELECT c FROM t", []))),
      s(B(pkt(1, B(lenenc(1), [1])), pkt(2, coldef("c")), pkt(3, textRow(5)), pkt(4, ok(0, 0, 2, 0xfe)))),
      c(pkt(0, B([0x16], "SELECT a FROM t WHERE a > ?"))),
      s(pkt(1, B([0x00], u32(8), u16(1), u16(1), [0], u16(0), [0]))),
      c(pkt(0, execute(8, [{ value: 0 }], true))),
      s(B(pkt(1, B(lenenc(1), [0])), pkt(2, B([0x00], [0x00], u32(1))), pkt(3, ok(0, 0, 2, 0xfe)))),
    ],
    [
      { operation: "LOGIN", status: 0 },
      { operation: "COM_QUERY", resource: "SET resultset_metadata = NONE", status: 0 },
      { operation: "COM_QUERY", resource: "SELECT a, b FROM t", status: 0, attributes: { "mysql.response": "RESULT_SET", "mysql.columns": 2, "mysql.rows": 2 } },
      { operation: "COM_QUERY", resource: "SELECT c FROM t", status: 0, attributes: { "mysql.columns": 1, "mysql.rows": 1 } },
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 8, "mysql.params": 1, "mysql.columns": 1 } },
      { operation: "COM_STMT_EXECUTE", resource: "SELECT a FROM t WHERE a > ?", status: 0, attributes: { "mysql.rows": 1, "mysql.columns": 1 } },
    ],
  ),
  vec(
    "CLIENT_OPTIONAL_RESULTSET_METADATA with EOF packets: the EOF after the (absent) definitions remains",
    [
      ...login8((caps8 & ~CLIENT_DEPRECATE_EOF) | OM),
      c(pkt(0, queryWithAttrs("SELECT a FROM t", []))),
      s(B(pkt(1, B(lenenc(1), [0])), pkt(2, eof()), pkt(3, textRow(1)), pkt(4, eof()))),
      c(pkt(0, B([0x16], "SELECT a FROM t WHERE a = ?"))),
      s(B(pkt(1, B([0x00], u32(9), u16(1), u16(1), [0], u16(0), [0])), pkt(2, eof()), pkt(3, eof()))),
      c(pkt(0, Buffer.from([0x0e]))),
      s(pkt(1, ok())),
    ],
    [
      { operation: "LOGIN", status: 0 },
      { operation: "COM_QUERY", resource: "SELECT a FROM t", status: 0, attributes: { "mysql.rows": 1, "mysql.columns": 1 } },
      { operation: "COM_STMT_PREPARE", status: 0, attributes: { "mysql.stmt_id": 9, "mysql.response": "STMT_PREPARE_OK" } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK" } },
    ],
  ),
  vec(
    "COM_RESET_CONNECTION forgets prepared statements: a later EXECUTE of the old id has no text",
    [
      c(pkt(0, B([0x16], "SELECT v FROM kv WHERE k = ?"))),
      s(B(pkt(1, B([0x00], u32(1), u16(1), u16(1), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, coldef("v", "kv")))),
      c(pkt(0, Buffer.from([0x1f]))),
      s(pkt(1, ok())),
      c(pkt(0, execute(1, [{ value: "a" }], false))),
      s(pkt(1, err(1243, "HY000", "Unknown prepared statement handler (1) given to mysqld_stmt_execute"))),
    ],
    [
      { operation: "COM_STMT_PREPARE", resource: "SELECT v FROM kv WHERE k = ?", status: 0 },
      { operation: "COM_RESET_CONNECTION", resource: "", status: 0, attributes: { "mysql.response": "OK" } },
      { operation: "COM_STMT_EXECUTE", resource: "statement_id=1", status: 1243, error: true, attributes: { "db.query.text": null } },
    ],
    { detect: false },
  ),
  vec(
    "COM_CHANGE_USER with caching_sha2_password (fast path) forgets prepared statements",
    [
      ...login8(caps8),
      c(pkt(0, B([0x16], "SELECT v FROM kv WHERE k = ?"))),
      s(B(pkt(1, B([0x00], u32(2), u16(1), u16(1), [0], u16(0))), pkt(2, coldef("?", "")), pkt(3, coldef("v", "kv")))),
      c(pkt(0, B([0x11], cstr("ops"), [32], Buffer.alloc(32, 5), cstr("audit"), u16(0xff), cstr("caching_sha2_password"), [0]))),
      s(B(pkt(1, Buffer.from([0x01, 0x03])), pkt(2, ok()))),
      c(pkt(0, execute(2, [{ value: "a" }], true))),
      s(pkt(1, err(1243, "HY000", "Unknown prepared statement handler (2) given to mysqld_stmt_execute"))),
    ],
    [
      LOGIN8,
      { operation: "COM_STMT_PREPARE", status: 0 },
      { operation: "COM_CHANGE_USER", status: 0, attributes: { "db.user": "ops", "db.namespace": "audit", "mysql.auth_plugin": "caching_sha2_password", "mysql.auth_path": "fast", "mysql.response": "OK" } },
      { operation: "COM_STMT_EXECUTE", resource: "statement_id=2", status: 1243, error: true },
    ],
  ),
  vec(
    "auth switch to caching_sha2_password, then full authentication with the server's public key",
    [
      s(pkt(0, greeting(V, caps8, "mysql_native_password"))),
      c(pkt(1, login(caps8, "app", Buffer.alloc(20, 9), null, "mysql_native_password"))),
      s(pkt(2, B([0xfe], cstr("caching_sha2_password"), Buffer.alloc(20, 0x33), [0]))),
      c(pkt(3, Buffer.alloc(32, 0x44))),
      s(pkt(4, Buffer.from([0x01, 0x04]))),
      c(pkt(5, Buffer.from([0x02]))),
      s(pkt(6, B([0x01], "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"))),
      c(pkt(7, Buffer.alloc(256, 0x5a))),
      s(pkt(8, ok())),
      c(pkt(0, queryWithAttrs("SELECT 1", []))),
      s(rows1()),
    ],
    [
      { operation: "LOGIN", status: 0, attributes: { "mysql.auth_switch": true, "mysql.auth_plugin": "caching_sha2_password", "mysql.auth_path": "full", "mysql.response": "OK", "db.user": "app" } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "db.query.text": "SELECT 1" } },
    ],
  ),
];

// the compressed protocol
const Z = BASE_CAPS | CLIENT_DEPRECATE_EOF | CAPS.COMPRESS;
const threeRows = B(pkt(1, lenenc(2)), pkt(2, coldef("id", "customers")), pkt(3, coldef("name", "customers")), pkt(4, textRow(1, "ann")), pkt(5, textRow(2, "bo")), pkt(6, textRow(3, "cy")), pkt(7, ok(0, 0, 2, 0xfe)));
const compression = [
  vec(
    "CLIENT_COMPRESS (zlib): small packets sent as is, larger ones deflated, a packet spanning two compressed packets",
    [
      s(pkt(0, greeting(V, Z, "caching_sha2_password"))),
      c(pkt(1, login(Z, "app", Buffer.alloc(32, 9), "shop", "caching_sha2_password"))),
      s(B(pkt(2, Buffer.from([0x01, 0x03])), pkt(3, ok()))),
      c(cpkt(0, pkt(0, B([3], "SELECT 1")), false)),
      s(cpkt(1, B(pkt(1, lenenc(1)), pkt(2, coldef("1", "")), pkt(3, textRow(1)), pkt(4, ok(0, 0, 2, 0xfe))), true)),
      c(cpkt(0, pkt(0, B([3], "SELECT id, name FROM customers WHERE region = 'north' AND active = 1 ORDER BY id LIMIT 100")), true)),
      // the third row's packet starts in the first compressed packet and ends in the second
      s(B(cpkt(1, threeRows.subarray(0, 120), true), cpkt(2, threeRows.subarray(120), false))),
      // stored blocks (level 0), and a result set large and varied enough for dynamic Huffman codes
      c(cpkt(0, pkt(0, B([3], "SELECT label FROM big WHERE id BETWEEN 1 AND 40 ORDER BY id")), true, 0)),
      s(cpkt(1, B(pkt(1, lenenc(1)), pkt(2, coldef("label", "big")), ...Array.from({ length: 40 }, (_, i) => pkt(3 + i, textRow(`label-${i * 7919}-${"xyz".repeat(i % 5)}`))), pkt(43, ok(0, 0, 2, 0xfe))), true, 9)),
      c(cpkt(0, pkt(0, Buffer.from([0x0e])), false)),
      s(cpkt(1, pkt(1, ok()), false)),
    ],
    [
      { operation: "LOGIN", status: 0, attributes: { "mysql.compressed": true, "mysql.compression": "zlib", "mysql.auth_path": "fast" } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "mysql.rows": 1, "mysql.compression": "zlib", "mysql.compressed_lost": null } },
      { operation: "COM_QUERY", resource: "SELECT id, name FROM customers WHERE region = ? AND active = ? ORDER BY id LIMIT ?", status: 0, attributes: { "db.query.text": "SELECT id, name FROM customers WHERE region = 'north' AND active = 1 ORDER BY id LIMIT 100", "mysql.rows": 3, "mysql.columns": 2 } },
      { operation: "COM_QUERY", resource: "SELECT label FROM big WHERE id BETWEEN ? AND ? ORDER BY id", status: 0, attributes: { "mysql.rows": 40 } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK", "mysql.compressed": true } },
    ],
    // bytes lost anywhere after the login, compressed or deflated, either way: the framing of
    // both layers recovers; a capture that starts after the login finds the compressed framing
    // at the next command
    { resync: { from: 3, steps: 9, tail: 1 } },
  ),
  vec(
    "compressed (zlib) connection picked up after its login: the compressed framing is found at a command, deflated or sent as is",
    [
      c(cpkt(0, pkt(0, B([3], "SELECT id, name FROM customers WHERE region = 'north' AND active = 1 ORDER BY id LIMIT 100")), true)),
      s(B(cpkt(1, threeRows.subarray(0, 120), true), cpkt(2, threeRows.subarray(120), false))),
      c(cpkt(0, pkt(0, B([3], "SELECT 1")), false)),
      s(cpkt(1, B(pkt(1, lenenc(1)), pkt(2, coldef("1", "")), pkt(3, textRow(1)), pkt(4, ok(0, 0, 2, 0xfe))), true)),
      c(cpkt(0, pkt(0, Buffer.from([0x0e])), false)),
      s(cpkt(1, pkt(1, ok()), false)),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT id, name FROM customers WHERE region = ? AND active = ? ORDER BY id LIMIT ?", status: 0, startNs: "1000", durationNs: "1000", attributes: { "mysql.rows": 3, "mysql.columns": 2, "mysql.compressed": true, "mysql.compression": "zlib" } },
      { operation: "COM_QUERY", resource: "SELECT ?", status: 0, attributes: { "mysql.rows": 1, "mysql.compressed": true } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK", "mysql.compressed": true } },
    ],
    { resync: { steps: 4, tail: 1 } },
  ),
  vec(
    "compressed (zstd) connection picked up after its login: commands sent as is decode, a zstd frame is counted",
    [
      c(cpkt(0, pkt(0, B([3], "SELECT * FROM big")), false)),
      s(zstdPkt(1, threeRows)),
      c(cpkt(0, pkt(0, Buffer.from([0x0e])), false)),
      s(cpkt(1, pkt(1, ok()), false)),
    ],
    [
      { operation: "COM_QUERY", resource: "SELECT * FROM big", status: null, incomplete: true, attributes: { "mysql.compressed": true, "mysql.compression": "zstd", "mysql.compressed_lost": 1 } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK", "mysql.compressed": true } },
    ],
    // the zstd payload is a message dropped
    { resync: { steps: 2, tail: 1 }, counters: { drops: 1 } },
  ),
  vec(
    "zstd compression: payloads sent as is decode, zstd frames are counted and decoding resumes at the next command",
    [
      s(pkt(0, greeting(V, BASE_CAPS | CLIENT_DEPRECATE_EOF | CAPS.ZSTD, "mysql_native_password"))),
      c(pkt(1, B(login(BASE_CAPS | CLIENT_DEPRECATE_EOF | CAPS.ZSTD, "app", Buffer.alloc(20, 9), null, "mysql_native_password"), [3]))),
      s(pkt(2, ok())),
      c(cpkt(0, pkt(0, B([3], "SELECT * FROM big")), false)),
      s(zstdPkt(1, threeRows)),
      c(cpkt(0, pkt(0, Buffer.from([0x0e])), false)),
      s(cpkt(1, pkt(1, ok()), false)),
    ],
    [
      { operation: "LOGIN", status: 0, attributes: { "mysql.compressed": true, "mysql.compression": "zstd" } },
      { operation: "COM_QUERY", resource: "SELECT * FROM big", status: null, incomplete: true, attributes: { "mysql.compressed_lost": 1 } },
      { operation: "COM_PING", status: 0, attributes: { "mysql.response": "OK", "mysql.compression": "zstd" } },
    ],
    { resync: { from: 3, steps: 5, tail: 1 }, modes: ["whole", "split", "bytewise", "truncated", "gapped", "resync"], counters: { drops: 1 } },
  ),
];

fs.mkdirSync(out, { recursive: true });
const write = (name, v) => fs.writeFileSync(path.join(out, name), JSON.stringify(v, null, 1) + "\n");
write("handshake.json", handshake);
write("commands.json", commands);
write("midway.json", midway);
write("mysql8.json", mysql8);
write("compression.json", compression);
console.error(`wrote ${handshake.length + commands.length + midway.length + mysql8.length + compression.length} vectors to ${path.relative(process.cwd(), out)}`);
