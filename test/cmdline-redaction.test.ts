// Secrets on process command lines never reach the records: a real curl carrying an
// Authorization header, a cookie, a bearer token, user:password and ?password= in its URLs, and a
// real node:http server started with --db-password=…, -p…, PGPASSWORD=…, a postgres://user:pass@
// URL and --api-token …, are traced by the real probe (`wirescope probe`, eBPF) and decoded by the
// real parser. No byte of any raw batch the probe publishes, of any message in the records stream,
// or of any line of `wirescope tail` holds any of those secrets: the probe's ConnEvents carry both
// command lines, masked, and records carry none (a record's process is its identity).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { RawBatchSchema, RecordBatchSchema, type Record as WsRecord } from "@wirescope/wire";
import { checkHealth, ServingStatus } from "@wirescope/runtime";
import { startNats, freePort, spawnTracked, tempDir, waitFor, waitSubscribed, WIRESCOPE_BIN, PLUGINS_DIR } from "./support/index.js";
import { bpfAvailable, runChild } from "./probe-support.js";
import { natsClient, settleRecords, startParser } from "./parser-support.js";
import { jetstreamManager } from "@nats-io/jetstream";

const secret = (tag: string) => `${tag}-${randomBytes(6).toString("hex")}`;

test("command-line secrets of a traced curl and server are masked in the probe's batches, and records and `wirescope tail` carry no command line", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const S = {
    bearer: secret("BEARER"), userPass: secret("USERPASS"), cookie: secret("COOKIE"), oauth: secret("OAUTH"),
    query: secret("QUERYPW"), urlPass: secret("URLPASS"),
    dbPassword: secret("DBPW"), mysqlP: secret("MYSQLP"), pg: secret("PGPW"), dsn: secret("DSNPW"), apiToken: secret("APITOKEN"),
  };
  const nats = await startNats({ jetstream: true, monitor: true });
  t.after(() => nats.stop());
  const dir = tempDir("wirescope-cmdline-");
  const port = await freePort();

  // The server answers after 1.5 s, so that curl is still alive when the probe reads its /proc.
  const server = await runChild(
    "secret-server",
    `import http from "node:http";
const srv = http.createServer((req, res) => setTimeout(() => res.end("ok " + req.url), 1500));
srv.listen(Number(process.argv[2]), "127.0.0.1", () => console.log("LISTENING"));`,
    [String(port), `--db-password=${S.dbPassword}`, `-p${S.mysqlP}`, `PGPASSWORD=${S.pg}`, `postgres://app:${S.dsn}@db/orders`, "--api-token", S.apiToken],
  );
  t.after(() => server.kill());
  await server.waitLine(/^LISTENING/);

  const grpcPort = await freePort();
  const probe = await spawnTracked(
    "probe",
    process.execPath,
    [WIRESCOPE_BIN, "probe", "--nats-url", nats.url, "--grpc-port", String(grpcPort), "--lock-file", path.join(dir, "probe.lock"),
      "--mount-tracefs", "--batch-ms", "10", "--log-level", "warn", "--allow-port", String(port)],
    { logFile: path.join(dir, "probe.log") },
  );
  t.after(() => probe.stop());
  await waitFor(async () => {
    if (probe.hasExited) throw new Error(`probe exited: ${probe.tail()}`);
    return (await checkHealth(`127.0.0.1:${grpcPort}`)).status === ServingStatus.SERVING;
  }, { timeoutMs: 60_000, what: "probe SERVING" });
  const parser = await startParser(nats.url, ["--builtin-dir", PLUGINS_DIR], "cmdline-parser");
  t.after(() => parser.proc.stop());

  // `wirescope tail` follows the records while the traffic runs.
  const tail = spawn(process.execPath, [WIRESCOPE_BIN, "tail", "--nats-url", nats.url], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => tail.kill("SIGKILL"));
  let tailOut = "";
  tail.stdout.on("data", (d: Buffer) => (tailOut += d.toString()));
  tail.stderr.on("data", (d: Buffer) => (tailOut += d.toString()));
  // its subscription is up (nats-server's monitoring lists it) before any traffic
  await waitSubscribed(nats.monitorPort!, "wirescope-tail", "wirescope.records.>", () => {
    if (tail.exitCode !== null) throw new Error(`tail exited: ${tailOut}`);
  });

  // Every raw batch the probe publishes, from before the traffic on.
  const nc = await natsClient(nats.url);
  t.after(() => nc.close());
  const raw: Uint8Array[] = [];
  const rawSub = nc.subscribe("wirescope.raw.>", { callback: (_e, m) => void raw.push(m.data) });
  await nc.flush();

  const curl = spawn(
    "curl",
    ["-sS", "--max-time", "20",
      "-H", `Authorization: Bearer ${S.bearer}`,
      "-u", `bob:${S.userPass}`,
      "-b", `sid=${S.cookie}`,
      "--oauth2-bearer", S.oauth,
      `http://127.0.0.1:${port}/login?user=bob&password=${S.query}`,
      `http://alice:${S.urlPass}@127.0.0.1:${port}/second`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let curlOut = "";
  curl.stdout.on("data", (d: Buffer) => (curlOut += d.toString()));
  curl.stderr.on("data", (d: Buffer) => (curlOut += d.toString()));
  const code = await new Promise<number | null>((r) => curl.once("exit", (c) => r(c)));
  assert.equal(code, 0, curlOut);
  assert.match(curlOut, /ok \/login.*ok \/second/s);

  // Both requests, from both ends (client socket and server socket), land in the stream.
  let records: WsRecord[] = [];
  await waitFor(
    async () => {
      records = (await settleRecords(nc, 1000, 20_000)).map((s) => s.record);
      return records.filter((r) => r.resource.startsWith("/second")).length > 0 && records.filter((r) => r.resource.startsWith("/login")).length > 0;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: "the two requests in the records stream" },
  ).catch((e: unknown) => assert.fail(`${String(e)}; records: ${records.map((r) => r.resource).join(", ")}`));
  await waitFor(() => /\/second/.test(tailOut), { timeoutMs: 20_000, what: "tail to print the records" });

  // Records name each traced end's process by its identity, without exe or command line.
  const procs = records.flatMap((r) => [r.client?.process, r.server?.process]).filter((p) => p && p.pid);
  assert.ok(procs.some((p) => p!.name === "curl") && procs.some((p) => p!.name === "node"), `both processes named in the records: ${procs.map((p) => p!.name).join(", ")}`);
  for (const p of procs) assert.deepEqual([p!.exe, p!.cmdline], ["", ""], `${p!.name}: no exe or command line in a record`);

  // The probe's ConnEvents carry the command lines, masked.
  rawSub.unsubscribe();
  const processes = raw.flatMap((b) => fromBinary(RawBatchSchema, b).conns.map((c) => c.process));
  const cmdlines = new Set(processes.map((p) => p?.cmdline ?? "").filter(Boolean));
  const curlLine = [...cmdlines].find((c) => c.startsWith("curl "));
  const serverLine = [...cmdlines].find((c) => c.includes("secret-server"));
  assert.ok(curlLine, `curl's command line in the raw batches: ${[...cmdlines].join(" | ")}`);
  assert.ok(serverLine, `the server's command line in the raw batches: ${[...cmdlines].join(" | ")}`);
  assert.match(curlLine, /-H Authorization: \[REDACTED\]/);
  assert.match(curlLine, /login\?user=bob&password=\[REDACTED\]/);
  assert.match(curlLine, /http:\/\/alice:\[REDACTED\]@127\.0\.0\.1/);
  assert.match(serverLine, /--db-password=\[REDACTED\] -p\[REDACTED\] PGPASSWORD=\[REDACTED\] postgres:\/\/app:\[REDACTED\]@db\/orders --api-token \[REDACTED\]/);

  // Every byte of every message in the stream, and everything tail printed.
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("WIRESCOPE_RECORDS");
  let stored = "";
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage("WIRESCOPE_RECORDS", { seq });
    assert.ok(m, `stream message ${seq} is there`);
    fromBinary(RecordBatchSchema, m.data); // a well-formed batch
    stored += Buffer.from(m.data).toString("latin1");
  }
  tail.kill("SIGTERM");
  // (a raw batch's payload is the traffic itself, headers and query included: the parser redacts
  // those before records leave it; the probe's process identities carry none)
  const identities = processes.map((p) => JSON.stringify(p ?? {})).join("\n");
  for (const [what, s] of Object.entries(S)) {
    assert.ok(!identities.includes(s), `${what} secret in a raw batch's process identity`);
    assert.ok(!stored.includes(s), `${what} secret in the records stream`);
    assert.ok(!tailOut.includes(s), `${what} secret in wirescope tail`);
  }
});
