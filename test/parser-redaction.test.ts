// Redaction before anything leaves the parser: real HTTP/1.1 (node:http client and server) and
// real MySQL (mysql2 against MariaDB) traffic carrying an Authorization header, cookies, a
// configured secret header, a credential in the query string and a SQL password literal. With
// redaction on (the default) none of these secrets is in any byte published to JetStream; with
// it turned off per protocol (--no-redact), the SQL literal does appear, which shows the check
// can fail.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import mysql from "mysql2/promise";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNats, type TestServer, PLUGINS_DIR } from "./support/index.js";
import { startMariaDb, type MariaDb } from "./support/mariadb.js";
import { captureThroughRelay, natsClient, settleRecords, startParser, toRawBatches, type Conversation, type ParserProc } from "./parser-support.js";

const P = 64;
const SECRETS = {
  auth: "AUTH-SECRET-7f3a",
  cookie: "COOKIE-SECRET-91b2",
  setCookie: "SETCOOKIE-SECRET-55e1",
  apiKey: "APIKEY-SECRET-0c4d",
  query: "QUERY-SECRET-a8d0",
  sql: "PW-SECRET-hunter2",
};

describe("redaction of published records", { timeout: 180_000 }, () => {
  let nats: TestServer;
  let db: MariaDb;
  let web: http.Server;
  let webPort = 0;
  let nc: NatsConnection;
  const procs: ParserProc[] = [];
  let convs: Conversation[] = [];

  before(async () => {
    nats = await startNats({ jetstream: true });
    db = await startMariaDb({ skipGrantTables: true });
    web = http.createServer((req, res) => {
      res.setHeader("Set-Cookie", `sid=${SECRETS.setCookie}; HttpOnly`);
      res.end(`hello ${req.url}`);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    webPort = (web.address() as { port: number }).port;
    nc = await natsClient(nats.url);

    const httpConvs = await captureThroughRelay(webPort, "node", async (relay) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (const p of ["/login", `/api?access_token=${SECRETS.query}&x=1`, "/me"]) {
        await new Promise<void>((resolve, reject) => {
          const req = http.request(
            {
              host: "127.0.0.1",
              port: relay,
              path: p,
              agent,
              headers: { Authorization: `Bearer ${SECRETS.auth}`, Cookie: `sid=${SECRETS.cookie}`, "X-Api-Key": SECRETS.apiKey },
            },
            (res) => {
              res.resume();
              res.on("end", resolve);
            },
          );
          req.on("error", reject);
          req.end();
        });
      }
      agent.destroy();
    });
    const sqlConvs = await captureThroughRelay(db.port, "mariadbd", async (relay) => {
      const c = await mysql.createConnection({ host: "127.0.0.1", port: relay, user: "root" });
      await c.query("CREATE DATABASE IF NOT EXISTS app");
      await c.query("CREATE TABLE app.users (name VARCHAR(32), password VARCHAR(64))");
      await c.query(`INSERT INTO app.users VALUES ('alice', '${SECRETS.sql}')`);
      await c.query(`SELECT name FROM app.users WHERE password = '${SECRETS.sql}'`);
      await c.end();
    });
    convs = [...httpConvs, ...sqlConvs];
  });
  after(async () => {
    await nc?.close();
    for (const p of procs) await p.proc.stop();
    web?.close();
    await db?.stop();
    await nats?.stop();
  });

  async function publishedBytes(args: string[], firstKey: bigint): Promise<{ text: string; protocols: Set<string> }> {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge("WIRESCOPE_RECORDS").catch(() => undefined);
    const p = await startParser(nats.url, ["--builtin-dir", PLUGINS_DIR, "--redact-header", "x-api-key", ...args], "redact");
    procs.push(p);
    for (const b of toRawBatches(convs, { partitions: P, firstKey }).batches) nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
    await nc.flush();
    const seen = await settleRecords(nc, 1500, 30_000);
    await p.proc.stop();
    // Every byte of every stored message, not just the fields we know about.
    const info = await jsm.streams.info("WIRESCOPE_RECORDS");
    let text = "";
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage("WIRESCOPE_RECORDS", { seq });
      assert.ok(m, `stream message ${seq} is there`);
      text += Buffer.from(m.data).toString("latin1");
    }
    return { text, protocols: new Set(seen.map((s) => s.record.protocol)) };
  }

  it("publishes no credential and no SQL literal by default", async () => {
    const { text, protocols } = await publishedBytes([], 50_000n);
    assert.ok(protocols.has("http1") && protocols.has("mysql"), `protocols: ${[...protocols]}`);
    assert.ok(text.includes("/api"), "the HTTP records are there");
    assert.ok(/SELECT name FROM app\.users WHERE password = \?/.test(text), "the SQL statement is there, masked");
    for (const [what, secret] of Object.entries(SECRETS)) assert.ok(!text.includes(secret), `${what} secret published`);
  });

  it("shows literals again when redaction is turned off for a protocol", async () => {
    const { text } = await publishedBytes(["--no-redact", "mysql,http1"], 60_000n);
    assert.ok(text.includes(SECRETS.sql), "SQL literal with --no-redact mysql");
    // (the HTTP plugins mask credential-like query parameters even without the redact flag)
    assert.ok(!text.includes(SECRETS.auth), "the HTTP plugin never writes header values");
  });
});
