// NATS users of `wirescope up` (services/runtime/src/nats-permissions.ts) on a real nats-server with
// the generated config: anonymous clients are refused, and each component's user is held to its
// subjects (the probe cannot read records, the parser cannot write the plugin store, ...).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import {
  connectNats,
  silentLogger,
  NatsError,
  loadConfig,
  prepareNatsAuth,
  readNatsCredentials,
  inboxPrefixFor,
  NATS_NAMES,
  NATS_CREDENTIALS_FILE,
  NATS_SERVER_CONFIG_FILE,
  REGISTRY_BUCKET,
  announce,
  openRegistry,
  watchAnnounced,
  DEFAULTS,
  INFLUX_CREDENTIALS_FILE,
  prepareInfluxAuth,
  readInfluxCredentials,
  Counters,
  type NatsRole,
} from "@wirescope/runtime";
import {
  startInfluxd,
  ensureInfluxUsers,
} from "@wirescope/cli/local-stack/index";
import { DEFAULT_PARSER_OPTIONS, PLUGIN_BUCKET } from "@wirescope/parser";
import { defaultAggregatorOptions, detectInflux, ensureDatabase, ParserWatermarks, watchParserWatermarks } from "@wirescope/aggregator";
import { Kvm } from "@nats-io/kv";
import { startNats, tempDir, waitFor, WIRESCOPE_BIN, REDIS_PLUGIN_DIR } from "./support/index.js";

const enc = new TextEncoder();

test("the permission table names the streams and buckets the components really use", () => {
  assert.equal(NATS_NAMES.recordsStream, DEFAULT_PARSER_OPTIONS.recordsStream);
  assert.equal(NATS_NAMES.recordsStream, defaultAggregatorOptions.stream);
  assert.equal(NATS_NAMES.membersBucket, DEFAULT_PARSER_OPTIONS.membersBucket);
  assert.equal(NATS_NAMES.progressBucket, DEFAULT_PARSER_OPTIONS.progressBucket);
  assert.equal(NATS_NAMES.kafkaTopicsBucket, DEFAULT_PARSER_OPTIONS.topicNamesBucket);
  assert.equal(NATS_NAMES.pluginBucket, DEFAULT_PARSER_OPTIONS.pluginBucket);
  assert.equal(NATS_NAMES.pluginBucket, PLUGIN_BUCKET);
  assert.equal(NATS_NAMES.aggregatorStateBucket, defaultAggregatorOptions.stateBucket);
  assert.equal(NATS_NAMES.membersBucket, defaultAggregatorOptions.parsersBucket);
  assert.equal(NATS_NAMES.registryBucket, REGISTRY_BUCKET);
});

test("generated NATS users: no anonymous access, each component held to its subjects", { timeout: 60_000 }, async () => {
  const dataDir = tempDir("wirescope-nats-auth-");
  const { creds, configFile } = prepareNatsAuth(dataDir);
  for (const f of [NATS_CREDENTIALS_FILE, NATS_SERVER_CONFIG_FILE]) assert.equal(fs.statSync(path.join(dataDir, f)).mode & 0o777, 0o600, f);
  // Second run: the same credentials (running children keep working), the config rewritten.
  assert.deepEqual(prepareNatsAuth(dataDir).creds, creds);
  const nats = await startNats({ jetstream: true, extraArgs: ["-c", configFile] });
  after(() => nats.stop());
  const log = silentLogger();
  const url = nats.url;

  // No credentials: refused at connect, so neither raw data in nor records out.
  await assert.rejects(connectNats({ url }, log, { retry: false }), (e: unknown) => e instanceof NatsError && e.code === "auth");
  await assert.rejects(connectNats({ url, user: creds.probe.user, password: "wrong" }, log, { retry: false }), (e: unknown) => e instanceof NatsError && e.code === "auth");

  // CLI commands find their user in the data dir; a component run by hand finds its own.
  assert.equal(loadConfig({ env: {}, argv: ["--data-dir", dataDir, "--nats-url", url] }).config.nats.user, creds.cli.user);
  assert.equal(loadConfig({ env: {}, component: "parser", argv: ["--data-dir", dataDir] }).config.nats.password, creds.parser.password);
  assert.equal(loadConfig({ env: { WIRESCOPE_NATS_USER: "someone" }, argv: ["--data-dir", dataDir] }).config.nats.password, undefined, "explicit credentials win");
  assert.deepEqual(readNatsCredentials(dataDir), creds);

  const as = async (role: NatsRole) => {
    const { config } = loadConfig({ env: {}, component: role === "cli" ? undefined : role, argv: ["--data-dir", dataDir, "--nats-url", url] });
    const nc = await connectNats(config.nats, log, { retry: false });
    after(() => nc.close());
    return nc;
  };
  const probe = await as("probe");
  const parser = await as("parser");
  const aggregator = await as("aggregator");
  const cli = await as("cli");

  // What the server refuses, in its own words (its log names the user and the subject).
  const natsLog = path.join(nats.dir, "nats.log");
  const refused = async (role: NatsRole, kind: "Publish" | "Subscription", subject: string) => {
    const line = `${kind} Violation - User "${creds[role].user}", Subject "${subject}"`;
    await waitFor(() => fs.readFileSync(natsLog, "utf8").includes(line), { timeoutMs: 5000, intervalMs: 20, what: line });
  };
  const refusedSub = async (role: NatsRole, nc: NatsConnection, subject: string) => {
    let got = 0;
    let error = "";
    nc.subscribe(subject, {
      callback: (err) => {
        if (err) error = err.message;
        else got++;
      },
    });
    await nc.flush();
    await refused(role, "Subscription", subject);
    await waitFor(() => /permissions violation/i.test(error), { timeoutMs: 5000, intervalMs: 20, what: "the client told of the refusal" });
    return () => got;
  };
  const refusedPub = async (role: NatsRole, nc: NatsConnection, subject: string) => {
    nc.publish(subject, enc.encode("x"));
    await nc.flush();
    await refused(role, "Publish", subject);
  };

  // The probe publishes raw data, the parser receives it.
  const rawSub = parser.subscribe("wirescope.raw.>", { max: 1 });
  await parser.flush();
  probe.publish("wirescope.raw.3", enc.encode("raw"));
  for await (const m of rawSub) assert.equal(m.subject, "wirescope.raw.3");

  // The probe cannot read records nor raw data, nor publish records.
  const probeGotRecords = await refusedSub("probe", probe, "wirescope.records.>");
  parser.publish("wirescope.records.1", enc.encode("record"));
  await parser.flush();
  await probe.flush();
  assert.equal(probeGotRecords(), 0, "no record reached the probe");
  await refusedSub("probe", probe, "wirescope.raw.>");
  await refusedPub("probe", probe, "wirescope.records.0");
  // The aggregator cannot inject raw data.
  await refusedPub("aggregator", aggregator, "wirescope.raw.0");

  // The probe reports requests served while shed; the aggregators hear them; a parser may not
  // forge them.
  const shedSub = aggregator.subscribe("wirescope.shed", { max: 1 });
  await aggregator.flush();
  probe.publish("wirescope.shed", enc.encode("shed"));
  for await (const m of shedSub) assert.equal(m.subject, "wirescope.shed");
  await refusedPub("parser", parser, "wirescope.shed");

  // The CLI writes the plugin store; the parser reads it and cannot write it.
  const store = await new Objm(cli).create(PLUGIN_BUCKET);
  await store.putBlob({ name: "x.wasm" }, enc.encode("plugin"));
  const read = await (await new Objm(parser).create(PLUGIN_BUCKET)).getBlob("x.wasm");
  assert.equal(new TextDecoder().decode(read!), "plugin");
  const parserStore = await new Objm(parser).create(PLUGIN_BUCKET);
  await assert.rejects(parserStore.putBlob({ name: "evil.wasm" }, enc.encode("evil")), /permission|timeout/i);
  assert.equal(await store.getBlob("evil.wasm"), null, "nothing written by the parser");

  // The commands themselves, as a user runs them: `plugin add|list|remove` with the CLI user from
  // the data dir; what they write, the parser reads.
  const cmd = (...args: string[]) => {
    const r = spawnSync(process.execPath, [WIRESCOPE_BIN, ...args, "--data-dir", dataDir, "--nats-url", url], { encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, `wirescope ${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  assert.match(cmd("plugin", "add", path.join(REDIS_PLUGIN_DIR, "redis.wasm"), "--manifest", path.join(REDIS_PLUGIN_DIR, "redis.json")), /^added redis /);
  assert.match(cmd("plugin", "list"), /redis/);
  const names = (await (await new Objm(parser).create(PLUGIN_BUCKET)).list()).filter((i) => !i.deleted).map((i) => i.name);
  assert.ok(names.some((n) => n.includes("redis")), `parser sees ${names.join(", ")}`);
  cmd("plugin", "remove", "redis");
  assert.doesNotMatch(cmd("plugin", "list"), /redis/);
  assert.doesNotMatch(fs.readFileSync(natsLog, "utf8"), /User "wirescope-cli"/, "the CLI was refused nothing");

  // The aggregator makes the records stream and its consumer; the probe cannot reach the stream
  // through JetStream either (consumer API refused).
  const ajsm = await jetstreamManager(aggregator);
  await ajsm.streams.add({ name: NATS_NAMES.recordsStream, subjects: [NATS_NAMES.recordsSubjects] });
  await ajsm.consumers.add(NATS_NAMES.recordsStream, { durable_name: "agg" });
  // Each user's reply inboxes are its own: the aggregator's pulls deliver records to its inbox,
  // and the probe can subscribe neither to every inbox nor to the aggregator's.
  assert.equal(inboxPrefixFor(creds.aggregator.user), "_INBOX.wirescope-aggregator");
  const probeGotAll = await refusedSub("probe", probe, "_INBOX.>");
  const probeGotAggregators = await refusedSub("probe", probe, `${inboxPrefixFor(creds.aggregator.user)}.>`);
  await jetstream(parser).publish("wirescope.records.7", enc.encode("record through a pull"));
  const pulled = await (await jetstream(aggregator).consumers.get(NATS_NAMES.recordsStream, "agg")).next({ expires: 5000 });
  assert.equal(new TextDecoder().decode(pulled?.data), "record through a pull", "the aggregator's pull, through its own inbox");
  pulled?.ack();
  await probe.flush();
  assert.equal(probeGotAll() + probeGotAggregators(), 0, "no reply reached the probe");
  assert.doesNotMatch(fs.readFileSync(natsLog, "utf8"), new RegExp(`User "(${creds.aggregator.user}|${creds.parser.user}|${creds.cli.user})", Subject "_INBOX`), "every other user's inboxes allowed");
  await assert.rejects(
    (async () => {
      const jsm = await jetstreamManager(probe);
      await jsm.consumers.add(NATS_NAMES.recordsStream, { durable_name: "snoop" });
    })(),
    /permission|timeout/i,
  );
  // The probe follows the registry with a KV watch (its pipeline exclusions): a parser's entry
  // reaches it through its own user, nothing refused.
  const parserEntry = announce(await openRegistry(parser), { component: "parser", instance: "auth", address: "127.0.0.1:1", node: "n", pid: 4242, startedAt: Date.now() }, () => {});
  after(() => parserEntry.stop());
  const watching = new AbortController();
  after(() => watching.abort());
  let seen: number[] = [];
  let watchErrors = 0;
  watchAnnounced(probe, { signal: watching.signal, onChange: (l) => (seen = l.map((a) => a.pid)), onError: () => void watchErrors++ });
  await waitFor(() => seen.includes(4242), { timeoutMs: 10_000, intervalMs: 20, what: "the parser's entry through the probe's watch" });
  assert.equal(watchErrors, 0);
  assert.doesNotMatch(fs.readFileSync(natsLog, "utf8"), new RegExp(`User "${creds.probe.user}", Subject "\\$(JS|KV)[^"]*${REGISTRY_BUCKET}`), "the probe's watch was refused nothing");
  // The aggregator reads the parsers' watermarks from their membership bucket (a watch through its
  // own user) and cannot write there. Started before any parser, it waits for the bucket, which
  // its user may not create, without failing and restarting its watch meanwhile.
  const marks = new ParserWatermarks(60_000);
  const watchingParsers = new AbortController();
  const watchCounters = new Counters();
  const parsersWatch = watchParserWatermarks(aggregator, NATS_NAMES.membersBucket, marks, watchCounters, silentLogger(), watchingParsers.signal);
  after(() => (watchingParsers.abort(), parsersWatch.stop()));
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(Object.keys(watchCounters.snapshot()).filter((k) => k.startsWith("parser_watch_restarts")), [], "no restart while the bucket is missing");
  const parserKv = await new Kvm(parser).create(NATS_NAMES.membersBucket, { history: 1, ttl: 60_000 });
  await parserKv.put("auth-parser", JSON.stringify({ id: "auth-parser", publishedThroughMs: 1234 }));
  await waitFor(() => marks.lowest(Date.now()) === 1234, { timeoutMs: 10_000, intervalMs: 20, what: "the parser's watermark through the aggregator's watch" });
  const aggregatorKv = await new Kvm(aggregator).open(NATS_NAMES.membersBucket);
  await assert.rejects(aggregatorKv.put("auth-parser", JSON.stringify({ id: "auth-parser", publishedThroughMs: 0 })), /permission|timeout/i);
  assert.equal(marks.lowest(Date.now()), 1234, "nothing written by the aggregator");
  assert.doesNotMatch(fs.readFileSync(natsLog, "utf8"), new RegExp(`User "${creds.aggregator.user}", Subject "\\$(JS\\.API\\.(STREAM|CONSUMER|DIRECT)[^"]*KV_${NATS_NAMES.membersBucket}|JS\\.FC)`), "the aggregator's watch was refused nothing");
  // Without credentials a raw client gets no further than the handshake.
  await assert.rejects(connect({ servers: url, timeout: 3000 }), /authorization/i);
});

test("influxd with the generated users: the admin created on the first start and checked on later ones, a writer for the aggregator and a reader for the CLI, each held to its privilege, anonymous refused", { timeout: 90_000 }, async () => {
  const dataDir = tempDir("wirescope-influx-auth-");
  // A data dir from before the writer and reader: its admin is kept, the other two added.
  const old = { user: "wirescope-admin", password: "kept" };
  fs.writeFileSync(path.join(dataDir, INFLUX_CREDENTIALS_FILE), JSON.stringify(old), { mode: 0o644 });
  assert.equal(readInfluxCredentials(dataDir, "reader"), undefined);
  const users = prepareInfluxAuth(dataDir);
  const { admin, writer, reader } = users;
  assert.deepEqual(admin, old);
  assert.deepEqual([writer.user, reader.user], ["wirescope-writer", "wirescope-reader"]);
  assert.equal(fs.statSync(path.join(dataDir, INFLUX_CREDENTIALS_FILE)).mode & 0o777, 0o600);
  assert.deepEqual(prepareInfluxAuth(dataDir), users, "kept across runs");
  assert.deepEqual(loadConfig({ env: {}, argv: ["--data-dir", dataDir] }).config.influx, { ...DEFAULTS.influx, ...reader }, "commands read");
  assert.deepEqual(loadConfig({ env: {}, component: "aggregator", argv: ["--data-dir", dataDir] }).config.influx, { ...DEFAULTS.influx, ...writer }, "the aggregator writes");
  const dir = path.join(dataDir, "influxdb");
  const basic = (auth?: { user: string; password: string }): Record<string, string> => (auth ? { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}` } : {});
  const q = (url: string, auth?: { user: string; password: string }, statement = "SHOW DATABASES") =>
    fetch(`${url}/query?db=wirescope&q=${encodeURIComponent(statement)}`, { headers: basic(auth) }).then(async (r) => (r.status === 200 && (await r.text()).includes('"error"') ? 403 : r.status));
  const write = (url: string, auth: { user: string; password: string }) => fetch(`${url}/write?db=wirescope`, { method: "POST", headers: basic(auth), body: "m v=1" }).then((r) => r.status);
  let srv = await startInfluxd({ dir, admin });
  try {
    assert.equal(await q(srv.url), 401);
    assert.equal(await q(srv.url, admin), 200);
    assert.equal(await q(srv.url, admin, "CREATE DATABASE wirescope"), 200);
    const grants = [
      { ...writer, privilege: "WRITE" as const },
      { ...reader, privilege: "READ" as const },
    ];
    await ensureInfluxUsers(srv.url, admin, "wirescope", grants);
    await ensureInfluxUsers(srv.url, admin, "wirescope", grants); // every start does it again
    const flavor = await detectInflux({ url: srv.url, database: "wirescope", ...writer });
    await ensureDatabase({ url: srv.url, database: "wirescope", ...writer }, flavor); // exists: enough for the writer
    // the writer on a database nobody made: a clear error, naming what to do
    await assert.rejects(ensureDatabase({ url: srv.url, database: "other", ...writer }, flavor), /database other does not exist .* may not create it: create it as an admin and GRANT WRITE/);
    assert.equal(await write(srv.url, writer), 204, "the writer writes");
    assert.equal(await q(srv.url, writer, "SELECT * FROM m"), 403, "and cannot read");
    assert.equal(await q(srv.url, writer, "DROP DATABASE wirescope"), 403, "nor drop");
    assert.equal(await q(srv.url, reader, "SELECT * FROM m"), 200, "the reader reads");
    assert.equal(await write(srv.url, reader), 403, "and cannot write");
    assert.equal(await q(srv.url, reader, `CREATE USER x WITH PASSWORD 'x' WITH ALL PRIVILEGES`), 403, "nor make users");
    const port = srv.port;
    await srv.stop(5000);
    // A restart (supervision, next `up`): the users exist, the same credentials are accepted.
    srv = await startInfluxd({ dir, port, admin });
    assert.equal(await q(srv.url, admin), 200);
    assert.equal(await q(srv.url, reader, "SELECT * FROM m"), 200);
    await srv.stop(5000);
    // Credentials that disagree with the data: a clear error, not a stack that cannot write.
    await assert.rejects(startInfluxd({ dir, port, admin: { user: admin.user, password: "other" } }), /refuses wirescope-admin/);
  } finally {
    await srv.stop(5000);
  }
});
