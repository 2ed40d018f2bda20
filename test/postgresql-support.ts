// Real PostgreSQL traffic for integration tests: node-postgres (a pool connected before the
// capture, a fresh pool, prepared statements, errors, a notice, a multi-statement query, logins
// that succeed with SCRAM and MD5 and one that fails, a CancelRequest) and psql (COPY in and out
// through \copy, an error), against a server from ./support/postgres.js.
import net from "node:net";
import pg from "pg";
import type { Postgres } from "./support/postgres.js";

export const APP_PASSWORD = "app-pw-secret";
export const MD5_PASSWORD = "md5-pw-secret";

/** Roles and the table the traffic uses (over the socket: not captured). */
export async function setupDatabase(srv: Postgres): Promise<void> {
  await srv.sql(
    [
      "CREATE ROLE trustuser LOGIN SUPERUSER",
      `CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}'`,
      "SET password_encryption = 'md5'",
      `CREATE ROLE md5user LOGIN PASSWORD '${MD5_PASSWORD}'`,
      "CREATE TABLE items (id int PRIMARY KEY, name text)",
      "GRANT ALL ON items TO app, md5user",
    ].join("; "),
  );
}

export function pool(srv: Postgres, max: number): pg.Pool {
  return new pg.Pool({ host: "127.0.0.1", port: srv.port, user: "app", password: APP_PASSWORD, database: "postgres", max });
}

/** Opens `n` connections of `p` now (so that a capture started later sees them mid-stream). */
export async function warm(p: pg.Pool, n: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: n }, () => p.connect()));
  for (const c of clients) {
    await c.query("SELECT 1");
    c.release();
  }
}

const settle = <T>(p: Promise<T>): Promise<{ ok: true; v: T } | { ok: false; e: Error & { code?: string } }> =>
  p.then((v) => ({ ok: true as const, v }), (e: Error) => ({ ok: false as const, e }));

/** The node-postgres part. Returns the SQLSTATEs of the errors it provoked, in the order written here. */
export async function nodePostgresTraffic(srv: Postgres, early: pg.Pool): Promise<string[]> {
  // the pool opened before the capture: picked up mid-stream
  await Promise.all([early.query("SELECT name FROM items WHERE id = $1", [1]), early.query("SELECT count(*) FROM items")]);
  const p = pool(srv, 3);
  try {
    await Promise.all(Array.from({ length: 6 }, (_, i) => p.query("INSERT INTO items VALUES ($1, $2)", [i + 1, `n${i + 1}`])));
    const byId = { name: "by-id", text: "SELECT id, name FROM items WHERE id = $1" };
    const c = await p.connect();
    try {
      await c.query({ ...byId, values: [2] });
      await c.query({ ...byId, values: [3] }); // Bind/Execute of the named statement only
    } finally {
      c.release();
    }
    const codes: string[] = [];
    for (const r of [
      await settle(p.query("SELECT * FROM nosuch")), // simple query: 42P01
      await settle(p.query("INSERT INTO items VALUES ($1, $2)", [1, "dup"])), // extended, at Execute: 23505
      await settle(p.query("SELECT $1::int AS n", ["abc"])), // extended, at Bind: 22P02
    ]) {
      if (r.ok) throw new Error("the statement was expected to fail");
      codes.push(r.e.code ?? "?");
    }
    await p.query("DROP TABLE IF EXISTS gone"); // NOTICE 00000
    await p.query("BEGIN; UPDATE items SET name = 'x' WHERE id = 3; COMMIT");
    await p.query("SELECT id, name FROM items ORDER BY id");
  } finally {
    await p.end();
  }
  await early.end();

  // logins: a wrong password (28P01), MD5
  const bad = new pg.Client({ host: "127.0.0.1", port: srv.port, user: "app", password: "wrong-pw-secret", database: "postgres" });
  const badLogin = await settle(bad.connect());
  if (badLogin.ok) throw new Error("login with a wrong password succeeded");
  const md5 = new pg.Client({ host: "127.0.0.1", port: srv.port, user: "md5user", password: MD5_PASSWORD, database: "postgres" });
  await md5.connect();
  await md5.query("SELECT current_user");
  await md5.end();

  // a CancelRequest on its own connection, for a query in flight: 57014
  const slow = new pg.Client({ host: "127.0.0.1", port: srv.port, user: "trustuser", database: "postgres" });
  await slow.connect();
  const sleeping = settle(slow.query("SELECT pg_sleep(20)"));
  // a cancel for a backend that is not yet running the query is ignored: wait until it is
  // (asked over the socket, not captured)
  const deadline = Date.now() + 15_000;
  while ((await srv.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(20)'")).match(/^\s*1\s*$/m) === null) {
    if (Date.now() > deadline) throw new Error("the query to cancel never started");
    await new Promise((r) => setTimeout(r, 50));
  }
  const { processID, secretKey } = slow as unknown as { processID: number; secretKey: number };
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(srv.port, "127.0.0.1", () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0);
      b.writeInt32BE(80877102, 4);
      b.writeInt32BE(processID, 8);
      b.writeInt32BE(secretKey, 12);
      s.end(b);
    });
    s.on("close", () => resolve());
    s.on("error", reject);
  });
  const cancelled = await sleeping;
  await slow.end();
  return [
    ...["42P01", "23505", "22P02"],
    "28P01",
    cancelled.ok ? "none" : cancelled.e.code ?? "?",
  ];
}

/** The psql part: COPY in and out through \copy, an error, and a final marker query. */
export async function psqlTraffic(srv: Postgres, mark: string): Promise<string> {
  const script = [
    "SELECT count(*) FROM items;",
    "\\copy items (id, name) from stdin",
    "100\thundred",
    "101\thundred-one",
    "\\.",
    "\\copy items to stdout",
    "SELECT * FROM nosuch_psql;",
    `SELECT '${mark}' AS mark;`,
    "",
  ].join("\n");
  return srv.psql(["-U", "trustuser", "-d", "postgres", "-v", "ON_ERROR_STOP=0"], script);
}
