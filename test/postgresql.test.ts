// The PostgreSQL example plugin on live traffic: node-postgres (a pool connected before the
// capture started, a fresh pool, prepared statements, errors, logins, a CancelRequest) and psql
// (COPY in and out) against Debian's postgresql, captured with tcpdump, decoded by
// `wirescope decode --plugins`, and compared field by field with tshark's pgsql dissector
// (`-d tcp.port==PORT,pgsql`): statement text, command tags and row counts, SQLSTATE and
// severity, login user/database/authentication, the cancelled backend.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { tempDir, waitFor, wirescopeDecode, WIRESCOPE_BIN, POSTGRESQL_PLUGIN_DIR } from "./support/index.js";
import type { RecordJson } from "@wirescope/wire";
import { parserPlugins, settleRecords, startParser, toRawBatches, useParserBed, waitForFleet, conversationsFromCapture } from "./parser-support.js";
import { startPostgres } from "./support/postgres.js";
import { bpfAvailable, stopByPid } from "./probe-support.js";
import { captureMarked, startTcpdump, waitForBytes } from "./support/tcpdump.js";
import { setupDatabase, pool, warm, nodePostgresTraffic, psqlTraffic, APP_PASSWORD, MD5_PASSWORD } from "./postgresql-support.js";


type Rec = RecordJson;

/** One request/response pair as tshark's messages describe it. */
interface Unit {
  kind: "Query" | "Execute" | "Login" | "Cancel";
  text?: string;
  statement?: string;
  tags: string[];
  code?: string;
  severity?: string;
  user?: string;
  database?: string;
  auth: number[];
  mech?: string;
  ssl?: boolean;
  pid?: number;
  done: boolean;
}

type Msg = Record<string, unknown>;
const str = (v: unknown): string | undefined => (v === undefined ? undefined : String(v));

/**
 * tshark's messages per client port, in capture order (`-T json --no-duplicate-keys`: a packet
 * holding several messages gives an array), turned into request/response pairs by the protocol's
 * own rules (PostgreSQL docs §55.2): the reference the plugin's records are compared with.
 */
function tsharkUnits(file: string, port: number): Map<number, Unit[]> {
  const r = spawnSync("tshark", ["-r", file, "-d", `tcp.port==${port},pgsql`, "-T", "json", "--no-duplicate-keys"], { timeout: 120_000, maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, r.stderr?.toString());
  const packets = JSON.parse(r.stdout.toString()) as { _source: { layers: { tcp: Record<string, string>; pgsql?: Msg | Msg[] } } }[];
  const byClient = new Map<number, { units: Unit[]; queue: Unit[]; stmts: Map<string, string>; portals: Map<string, { text?: string; statement: string }>; login?: Unit; ssl: boolean; failedBatch: boolean }>();
  const state = (client: number) => {
    let s = byClient.get(client);
    if (!s) byClient.set(client, (s = { units: [], queue: [], stmts: new Map(), portals: new Map(), ssl: false, failedBatch: false }));
    return s;
  };
  const unit = (kind: Unit["kind"], extra: Partial<Unit> = {}): Unit => ({ kind, tags: [], auth: [], done: false, ...extra });
  for (const p of packets) {
    const l = p._source.layers;
    if (!l.pgsql) continue;
    const src = Number(l.tcp["tcp.srcport"]);
    const fromClient = src !== port;
    const s = state(fromClient ? src : Number(l.tcp["tcp.dstport"]));
    for (const m of Array.isArray(l.pgsql) ? l.pgsql : [l.pgsql]) {
      const type = String(m["pgsql.type"]);
      const current = () => s.queue.find((u) => !u.done);
      if (fromClient) {
        if (type === "SSL request") s.ssl = true;
        else if (type === "Startup message") {
          const names = ([] as unknown[]).concat(m["pgsql.parameter_name"] ?? []).map(String);
          const values = ([] as unknown[]).concat(m["pgsql.parameter_value"] ?? []).map(String);
          const param = (k: string) => values[names.indexOf(k)];
          const u = unit("Login", { user: param("user"), database: param("database") ?? param("user"), ssl: s.ssl });
          s.login = u;
          s.units.push(u);
        } else if (type === "Cancel request") s.units.push(unit("Cancel", { pid: Number(m["pgsql.pid"]), done: true }));
        else if (type === "Simple query") {
          const u = unit("Query", { text: str(m["pgsql.query"]) });
          s.units.push(u);
          s.queue.push(u);
        } else if (type === "Parse") s.stmts.set(String(m["pgsql.statement"] ?? ""), String(m["pgsql.query"] ?? ""));
        else if (type === "Bind") {
          const st = String(m["pgsql.statement"] ?? "");
          s.portals.set(String(m["pgsql.portal"] ?? ""), { text: s.stmts.get(st), statement: st });
        } else if (type === "Execute") {
          const b = s.portals.get(String(m["pgsql.portal"] ?? ""));
          const u = unit("Execute", { text: b?.text, statement: b?.statement });
          if (!s.failedBatch) {
            s.units.push(u);
            s.queue.push(u);
          }
        } else if (type === "Sync") s.failedBatch = false;
        continue;
      }
      if (type === "Authentication request" && s.login && !s.login.done) {
        s.login.auth.push(Number(m["pgsql.authtype"]));
        if (m["pgsql.auth.sasl.mech"] !== undefined) s.login.mech ??= String(([] as unknown[]).concat(m["pgsql.auth.sasl.mech"])[0]);
      } else if (type === "Command completion") {
        const u = current();
        if (u) {
          u.tags.push(String(m["pgsql.tag"]));
          if (u.kind === "Execute") u.done = true;
        }
      } else if (type === "Error") {
        const target = s.login && !s.login.done ? s.login : current();
        if (target) {
          target.code = str(m["pgsql.code"]);
          target.severity = str(m["pgsql.text"] ?? m["pgsql.severity"]);
          if (target.kind === "Execute") {
            target.done = true;
            // the server skips the rest of the batch: its Executes never ran
            for (const u of s.queue) if (!u.done && u.kind === "Execute") u.done = true;
          }
          if (target.kind === "Login") target.done = true;
        }
      } else if (type === "Ready for query") {
        if (s.login && !s.login.done) s.login.done = true;
        else {
          const u = current();
          if (u && u.kind === "Query") u.done = true;
        }
      }
    }
  }
  return new Map([...byClient].map(([k, v]) => [k, v.units]));
}

/** `wirescope decode FILE --plugins <the example's build>` → records. */
function decode(file: string): Rec[] {
  return wirescopeDecode(file, ["--plugins", POSTGRESQL_PLUGIN_DIR]);
}

/** "INSERT 0 5" → "INSERT"; the row count is the last number. */
const tagName = (t: string) => t.replace(/( \d+)+$/, "");
const tagRows = (t: string) => (/ (\d+)$/.exec(t) ? Number(/ (\d+)$/.exec(t)![1]) : undefined);

describe("postgresql example plugin", { timeout: 300_000 }, () => {
  const bed = useParserBed();
  /** The capture of the first test and how many records `wirescope decode` made of it. */
  let captured = "";
  let decoded = 0;
  let capturedServerPort = 0;

  it("agrees with tshark's pgsql dissector on live node-postgres and psql traffic", { timeout: 180_000 }, async () => {
    assert.ok(fs.existsSync(path.join(POSTGRESQL_PLUGIN_DIR, "postgresql.wasm")), "build the example plugin first (node parsers-wasm/build.mjs --examples)");
    const srv = await startPostgres();
    after(() => srv.stop());
    await setupDatabase(srv);
    // a pool whose connections exist before the capture: they are picked up mid-stream
    const early = pool(srv, 2);
    await warm(early, 2);

    const dir = tempDir("ws-pg-");
    const file = path.join(dir, "pg.pcap");
    const mark = `done-${process.pid}`;
    await captureMarked(file, srv.port, mark, async () => {
      const codes = await nodePostgresTraffic(srv, early);
      assert.deepEqual(codes, ["42P01", "23505", "22P02", "28P01", "57014"], "the server answered the provoked errors");
      const psqlOut = await psqlTraffic(srv, mark);
      assert.match(psqlOut, /101\thundred-one/);
    });

    const records = decode(file);
    const text = JSON.stringify(records);
    for (const secret of [APP_PASSWORD, MD5_PASSWORD, "wrong-pw-secret"]) assert.ok(!text.includes(secret), `${secret} in the records`);

    const theirs = tsharkUnits(file, srv.port);
    const ours = new Map<number, Rec[]>();
    for (const r of records) {
      assert.equal(r.protocol, "postgresql");
      assert.equal(r.server, `127.0.0.1:${srv.port}`);
      assert.equal(r.attributes["db.system.name"], "postgresql");
      const port = Number(r.client.split(":").pop());
      if (!ours.has(port)) ours.set(port, []);
      ours.get(port)!.push(r);
    }
    assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), "the same connections");
    let compared = 0;
    for (const [port, units] of theirs) {
      const recs = ours.get(port)!.sort((a, b) => (BigInt(a.startNs) < BigInt(b.startNs) ? -1 : 1));
      assert.equal(recs.length, units.length, `client ${port}: ${recs.length} records vs tshark's ${units.length}:\n${recs.map((r) => JSON.stringify(r)).join("\n")}\n${JSON.stringify(units)}`);
      units.forEach((u, i) => {
        const r = recs[i]!;
        const a = r.attributes;
        const what = `client ${port} #${i} (${u.kind} ${u.text ?? ""})`;
        assert.ok(!r.incomplete, `${what}: complete`);
        assert.equal(r.error, u.code !== undefined, `${what}: error`);
        assert.equal(r.status, u.code !== undefined ? 1 : 0, `${what}: status`);
        assert.equal(a["db.response.status_code"], u.code ?? "00000", `${what}: SQLSTATE`);
        assert.equal(a["postgresql.severity"], u.severity, `${what}: severity`);
        if (u.kind === "Login") {
          assert.equal(r.operation, "LOGIN", what);
          assert.equal(a["db.user"], u.user, `${what}: user`);
          assert.equal(a["db.namespace"], u.database, `${what}: database`);
          const method = u.auth.includes(10) ? u.mech : u.auth.includes(5) ? "md5" : u.auth.includes(3) ? "password" : "trust";
          assert.equal(a["postgresql.auth_method"], method, `${what}: authentication`);
          assert.equal(a["postgresql.ssl_refused"], u.ssl ? true : undefined, `${what}: SSLRequest`);
        } else if (u.kind === "Cancel") {
          assert.equal(r.operation, "CANCEL", what);
          assert.equal(a["postgresql.backend_pid"], u.pid, `${what}: backend`);
        } else {
          assert.equal(a["postgresql.message"], u.kind, `${what}: message`);
          assert.equal(a["db.query.text"], u.text, `${what}: statement`);
          assert.equal(a["db.query.prepared_statement"], u.statement ? u.statement : undefined, `${what}: statement name`);
          const last = u.tags.at(-1);
          assert.equal(a["postgresql.command_tag"], last === undefined ? undefined : tagName(last), `${what}: command tag`);
          const counts = u.tags.map(tagRows).filter((n): n is number => n !== undefined);
          assert.equal(a["postgresql.rows"], counts.length ? counts.reduce((x, y) => x + y, 0) : undefined, `${what}: rows`);
          assert.equal(r.operation, (u.text ?? "").trim().split(/[\s(;]/)[0]!.toUpperCase(), `${what}: operation`);
        }
        compared++;
      });
    }
    // what the traffic contains, as a floor: logins, the mid-stream pool, errors, COPY both ways, the cancel
    const all = [...ours.values()].flat();
    assert.ok(compared >= 30, `pairs compared: ${compared}`);
    assert.equal(all.filter((r) => r.operation === "LOGIN").length, 8);
    assert.ok(all.some((r) => r.attributes["postgresql.auth_method"] === "md5"));
    assert.ok(all.some((r) => r.attributes["db.response.status_code"] === "28P01"));
    assert.deepEqual(all.filter((r) => r.attributes["postgresql.copy"]).map((r) => [r.attributes["postgresql.copy"], r.attributes["postgresql.rows"]]), [["in", 2], ["out", 8]]);
    assert.equal(all.filter((r) => r.operation === "CANCEL").length, 1);
    assert.ok(all.some((r) => r.attributes["db.query.prepared_statement"] === "by-id" && !r.attributes["postgresql.statement_unknown"]));
    const earlyPorts = [...ours].filter(([, rs]) => !rs.some((r) => r.operation === "LOGIN" || r.operation === "CANCEL")).map(([p]) => p);
    assert.equal(earlyPorts.length, 2, "both connections of the pool opened before the capture are decoded");
    captured = file;
    decoded = records.length;
    capturedServerPort = srv.port;
  });

  it("resynchronises after packets lost from a live capture: nothing paired across the gap", { timeout: 120_000 }, async () => {
    assert.ok(captured, "needs the capture of the previous test");
    const full = decode(captured);
    const psqlClient = full.find((r) => r.attributes["postgresql.application_name"] === "psql")!.client;
    const psqlPort = Number(psqlClient.split(":").pop());
    const serverPort = Number(full[0]!.server.split(":").pop());
    const frame = (filter: string): string => {
      const r = spawnSync("tshark", ["-r", captured, "-d", `tcp.port==${serverPort},pgsql`, "-Y", filter, "-T", "fields", "-e", "frame.number"], { timeout: 60_000 });
      const frames = r.stdout.toString().split("\n").filter(Boolean);
      assert.equal(frames.length, 1, `${filter}: ${frames.join(",")}`);
      return frames[0]!;
    };
    const dropped = (what: string, filter: string): Rec[] => {
      const out = path.join(tempDir("ws-pg-gap-"), `${what}.pcap`);
      const r = spawnSync("editcap", [captured, out, frame(filter)], { timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr.toString());
      return decode(out);
    };
    const key = (r: Rec) => JSON.stringify([r.startNs, r.operation, r.resource, r.status, r.attributes["postgresql.rows"], r.attributes["db.response.status_code"]]);
    const fullKeys = new Set(full.map(key));
    const stream = (rs: Rec[]) => rs.filter((r) => r.client === psqlClient);
    const before = stream(full);
    assert.ok(before.length >= 6);

    // the answer to `\copy items to stdout` lost: that request and the one sent before the loss was
    // noticed are written incomplete, nothing else on the connection changes
    const lostAnswer = stream(dropped("answer", `tcp.dstport==${psqlPort} && pgsql.type == "CopyOut response"`));
    assert.equal(lostAnswer.length, before.length, "every request still has its record");
    const incomplete = lostAnswer.filter((r) => r.incomplete);
    assert.ok(incomplete.length >= 1 && incomplete.length <= 2, `incomplete: ${incomplete.map((r) => r.resource)}`);
    assert.equal(incomplete[0]!.resource, "COPY items TO STDOUT");
    for (const r of incomplete) assert.equal(r.status, null);
    for (const r of lostAnswer.filter((x) => !x.incomplete)) assert.ok(fullKeys.has(key(r)), `paired as in the full capture: ${JSON.stringify(r)}`);
    assert.ok(!lostAnswer.at(-1)!.incomplete, "decoding resumed after the gap");

    // a request lost: its answer is dropped (never given to the next request), the rest unchanged
    const lostRequest = stream(dropped("request", `tcp.srcport==${psqlPort} && pgsql.query contains "nosuch_psql"`));
    assert.equal(lostRequest.length, before.length - 1);
    for (const r of lostRequest) {
      assert.ok(!r.incomplete, JSON.stringify(r));
      assert.ok(fullKeys.has(key(r)), `paired as in the full capture: ${JSON.stringify(r)}`);
    }
    assert.ok(!lostRequest.some((r) => String(r.resource).includes("nosuch_psql")));
  });

  it("decodes the eBPF probe's capture (`wirescope capture`, started after the pool connected) as it decodes tcpdump's", { timeout: 180_000 }, async (t) => {
    if (!bpfAvailable(t)) return;
    const srv = await startPostgres();
    after(() => srv.stop());
    await setupDatabase(srv);
    const early = pool(srv, 2);
    await warm(early, 2);
    const dir = tempDir("ws-pg-probe-");
    const tcpdumpFile = path.join(dir, "tcpdump.pcap");
    const probeFile = path.join(dir, "probe.pcapng");
    const dump = await startTcpdump(tcpdumpFile, ["-i", "lo", `tcp port ${srv.port}`]);
    after(() => dump.stop());
    const capture = spawn(process.execPath, [WIRESCOPE_BIN, "capture", "--output", probeFile, "--port", String(srv.port), "--mount-tracefs"], { stdio: ["ignore", "ignore", "pipe"] });
    const stopCapture = () => stopByPid(capture);
    after(stopCapture);
    let err = "";
    capture.stderr!.on("data", (d: Buffer) => (err += d));
    await waitFor(async () => /capturing to/.test(err), { timeoutMs: 20_000, what: `wirescope capture to start: ${err}` });

    await nodePostgresTraffic(srv, early);
    const mark = `probe-${process.pid}`;
    await psqlTraffic(srv, mark);
    await waitForBytes(tcpdumpFile, mark, 15_000, 2);
    await new Promise((r) => setTimeout(r, 500));
    await stopCapture();
    await dump.stop();

    const key = (r: Rec) => JSON.stringify([r.operation, r.resource, r.status, !!r.incomplete, r.attributes["postgresql.rows"], r.attributes["db.response.status_code"], r.attributes["db.user"]]);
    // only this server's connections (the probe's port filter is not what is tested here)
    const ours = (rs: Rec[]) => rs.filter((r) => r.server === `127.0.0.1:${srv.port}`);
    const want = ours(decode(tcpdumpFile)).map(key).sort();
    const got = ours(decode(probeFile)).map(key).sort();
    assert.ok(want.length >= 30, `tcpdump records: ${want.length}`);
    assert.deepEqual(got, want, "the same records from the probe's capture");
  });

  it("a session upgraded to TLS: a LOGIN record marked tls, no status, and nothing decoded from the encrypted bytes", { timeout: 120_000 }, async () => {
    const srv = await startPostgres({ tls: true });
    after(() => srv.stop());
    await srv.sql("CREATE ROLE trustuser LOGIN SUPERUSER");
    const file = path.join(tempDir("ws-pg-tls-"), "tls.pcap");
    const mark = `tls-${process.pid}`;
    await captureMarked(file, srv.port, mark, async () => {
      // the same statement over TLS (psql's default sslmode=prefer upgrades) and in clear
      assert.match(await srv.psql(["-U", "trustuser", "-d", "postgres", "-c", `SELECT '${mark}'`]), new RegExp(mark));
      assert.match(await srv.psql(["-U", "trustuser", "-d", "postgres", "-c", `SELECT '${mark}'`], undefined, { PGSSLMODE: "disable" }), new RegExp(mark));
    });
    const recs = decode(file);
    const logins = recs.filter((r) => r.operation === "LOGIN");
    assert.equal(logins.length, 2, JSON.stringify(recs));
    const tls = logins.find((r) => r.attributes["postgresql.tls"] === true)!;
    assert.ok(tls, "the upgraded session's LOGIN");
    assert.equal(tls.status, null);
    assert.equal(tls.attributes["db.response.status_code"], undefined);
    const clear = logins.find((r) => r !== tls)!;
    assert.equal(clear.status, 0);
    assert.equal(clear.attributes["db.user"], "trustuser");
    // one statement decoded: the one in clear, on the clear session's connection
    const selects = recs.filter((r) => r.operation === "SELECT");
    assert.deepEqual(selects.map((r) => [r.client, r.attributes["db.query.text"]]), [[clear.client, `SELECT '${mark}'`]]);
    // tshark sees the SSLRequest on the upgraded connection and TLS after it
    const t = spawnSync("tshark", ["-r", file, "-d", `tcp.port==${srv.port},pgsql`, "-Y", `tcp.srcport==${tls.client.split(":").pop()} && pgsql`, "-T", "fields", "-e", "pgsql.type"], { timeout: 60_000 });
    assert.match(t.stdout.toString(), /SSL request/);
  });

  it("is added with `wirescope plugin add` and hot-loaded by every parser replica", { timeout: 120_000 }, async () => {
    assert.ok(captured, "needs the capture of the previous test");
    const P = 64;
    const empty = tempDir("wirescope-noplugins-");
    const fleet = [await startParser(bed.nats.url, ["--builtin-dir", empty], "pg-a"), await startParser(bed.nats.url, ["--builtin-dir", empty], "pg-b")];
    bed.procs.push(...fleet);
    await waitForFleet(fleet, P);
    const add = spawnSync(process.execPath, [WIRESCOPE_BIN, "plugin", "add", path.join(POSTGRESQL_PLUGIN_DIR, "postgresql.wasm"), "--manifest", path.join(POSTGRESQL_PLUGIN_DIR, "postgresql.json"), "--nats-url", bed.nats.url], { timeout: 30_000 });
    assert.equal(add.status, 0, add.stderr.toString());
    assert.match(add.stdout.toString(), /added postgresql 1\.0\.0/);
    await waitFor(async () => (await Promise.all(fleet.map(parserPlugins))).every((l) => l.includes("postgresql@1.0.0")), { timeoutMs: 15_000, what: "postgresql loaded by both replicas" });

    // the captured connections, replayed as the probe would publish them
    // connections whose SYN the capture missed are oriented by a port guess: we know the server's
    const convs = conversationsFromCapture(captured).map((c) =>
      c.client.port === capturedServerPort ? { ...c, client: c.server, server: c.client, chunks: c.chunks.map((ch) => ({ ...ch, dir: (1 - ch.dir) as 0 | 1 })) } : c,
    );
    const plan = toRawBatches(convs, { partitions: P, firstKey: 50_000n });
    for (const b of plan.batches) bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
    await bed.nc.flush();
    const keys = new Set(plan.batches.map((b) => b.connKey));
    const seen = (await settleRecords(bed.nc, 1500, 30_000)).filter((x) => keys.has(x.record.connKey));
    assert.equal(seen.length, decoded, "the fleet makes the records `wirescope decode` made");
    assert.ok(seen.every((x) => x.record.protocol === "postgresql"));
    assert.deepEqual(new Set(seen.map((x) => x.parserId)), new Set(fleet.map((p) => p.instance)), "records from both replicas");
    for (const p of fleet) await p.proc.stop();
  });
});
