// MySQL over TLS in a capture, decoded by `wirescope decode`: the MySQL decoder must tell TLS
// records from MySQL packets (parsers-wasm/mysql/pair.ts, tlsStream/awaitTls). MariaDB with ssl
// on and mysql2 over TLS (node's OpenSSL): one connection opened before tcpdump started (the
// capture begins after its SSL request, inside TLS: mid-way) that runs 3,000 small queries, so
// more than 64 KiB of ciphertext goes each way (read as MySQL, enough for a whole 64 KiB packet
// prefix), and one connection opened during the capture (greeting, SSL request, then TLS). The
// decoder is given the port (--proto PORT=mysql), as a user decoding such a capture would: with
// no port hint, content alone never claims ciphertext. Neither connection may yield a record
// read from ciphertext; the TLS records are counted (plugin_drops, plugin_bytes_dropped), and
// nothing is a framing error.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import mysql from "mysql2/promise";
import { startMariaDb } from "./support/mariadb.js";
import { captureWhile } from "./support/tcpdump.js";
import { WIRESCOPE_BIN } from "./support/index.js";

const localPort = (c: mysql.Connection) => (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;

function decode(args: string[]): { records: Record<string, unknown>[]; stats: Record<string, number>; stderr: string } {
  const r = spawnSync(process.execPath, [WIRESCOPE_BIN, "decode", ...args, "--stats", "--no-progress"], { timeout: 120_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr.toString());
  const stderr = r.stderr.toString();
  const stats = JSON.parse(/stats (\{.*\})/.exec(stderr)?.[1] ?? "{}") as Record<string, number>;
  const records = r.stdout.toString().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { records, stats, stderr };
}

test("decode: MySQL over TLS seen mid-way and from its start (MariaDB, mysql2): no record from ciphertext, the TLS records counted", { timeout: 180_000 }, async () => {
  const db = await startMariaDb({ tls: true });
  after(() => db.stop());
  await db.sql("CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';");
  const opts = { host: "127.0.0.1", port: db.port, user: "app", password: "secret", ssl: { rejectUnauthorized: false } };
  const early = await mysql.createConnection(opts); // its TLS handshake is over before the capture
  await early.query("SELECT 1");
  const ports = { early: localPort(early), late: 0 };
  const pcap = await captureWhile(db.port, "mysql-tls-midway", async () => {
    for (let i = 0; i < 3000; i++) await early.query(`SELECT ${i}`);
    const [rows] = await early.query("SELECT REPEAT('x', 200000) AS big");
    assert.equal((rows as { big: string }[])[0]!.big.length, 200000);
    const late = await mysql.createConnection(opts);
    ports.late = localPort(late);
    await late.query("SELECT 'late'");
    await late.end();
    await early.end();
  });

  const forced = decode([pcap, "--proto", `${db.port}=mysql`]);
  const byPort = (p: number) => forced.records.filter((r) => JSON.stringify(r.client ?? r).includes(`:${p}`) || (r.client as { port?: number } | undefined)?.port === p);
  const stat = (k: string) => forced.stats[`engine.${k}`] ?? 0;
  const summary = `records ${JSON.stringify(forced.records.map((r) => [r.operation, r.client, r.attributes]))}, stats ${JSON.stringify(Object.fromEntries(Object.entries(forced.stats).filter(([k]) => k.includes("mysql") || k.includes("plugin"))))}`;
  // the connection seen mid-way: nothing at all
  assert.deepEqual(byPort(ports.early), [], `the mid-way connection: ${summary}`);
  // the connection seen from its greeting: its login, asked for TLS, and nothing after it
  const late = byPort(ports.late);
  assert.equal(late.length, 1, `the connection seen from its start: ${summary}`);
  assert.equal(late[0]!.operation, "LOGIN");
  assert.equal((late[0]!.attributes as Record<string, unknown>)["mysql.tls"], true);
  assert.equal(forced.records.length, 1, summary);
  // ciphertext is counted as dropped, never read as packets (no framing error)
  assert.ok(stat("plugin_drops.mysql") >= 2, `TLS records counted on both connections: ${summary}`);
  assert.ok(stat("plugin_bytes_dropped.mysql") >= 2 * 64, summary);
  assert.equal(stat("plugin_errors.mysql"), 0, `ciphertext read as MySQL packets: ${summary}`);
  // both recognised as TLS and given up (-2): the rest of their ciphertext never enters the plugin
  assert.equal(stat("conn_dropped.broken"), 2, `given up as TLS: ${summary}`);
  assert.ok(stat("bytes_dropped.broken") > 64 << 10, summary);

  // by content alone, ciphertext is nobody's: only the late connection's cleartext start is MySQL
  const detected = decode([pcap]);
  assert.deepEqual(detected.records.map((r) => r.operation), ["LOGIN"], JSON.stringify(detected.records));
});
