// `wirescope up --nats-tls` (no probe, no demo): nats-server takes mutual TLS clients only, with
// certificates of a CA `up` made into the data dir (keys 0600), one per component. A plaintext
// client is refused, and so are one that does not trust that CA and one without a client
// certificate of it; the services verify the server, show theirs and run; `status` and `tail`
// find the CA and the CLI's certificate through the data dir; a record sent over TLS reaches tail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { create, toBinary } from "@bufbuild/protobuf";
import { NATS_ROLES } from "@wirescope/runtime";
import { natsClientCert, natsTlsFiles } from "@wirescope/cli/local-stack/index";
import { RecordBatchSchema, RecordSchema } from "@wirescope/wire";
import { REPO_ROOT, stackPorts, stackArgs, stopUp, tempDir, upNatsUser, waitFor } from "./support/index.js";

const run = promisify(execFile);

test("up --nats-tls: TLS only, with the stack's own CA; plaintext and unknown-CA clients refused; services, status and tail work", { timeout: 240_000 }, async () => {
  const dataDir = tempDir("wirescope-up-tls-");
  const ports = await stackPorts();
  const args = [...stackArgs(dataDir, ports), "--nats-tls", "--no-install", "--no-build", "--no-demo", "--no-probe", "--parser-metrics-port", "0", "--aggregator-metrics-port", "0"];
  const up = spawn(process.execPath, ["bin/wirescope.js", "up", ...args], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  const url = `nats://127.0.0.1:${ports.nats}`;
  const cli = (...a: string[]) => run(process.execPath, ["bin/wirescope.js", ...a, "--data-dir", dataDir, "--nats-url", url, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, timeout: 60_000 }).catch((e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? "", stderr: `${e.stderr ?? ""} (exit ${e.code})` }));
  let nc: NatsConnection | undefined;
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    assert.match(out, /^nats-server\s+\d+\s+tls:\/\/127\.0\.0\.1:\d+\s+ready/m);
    const files = natsTlsFiles(dataDir);
    for (const k of [files.key, path.join(path.dirname(files.ca), "ca.key")]) assert.equal(fs.statSync(k).mode & 0o777, 0o600, `${k} is private`);
    const user = upNatsUser(dataDir, "parser");

    const mine = natsClientCert(dataDir, "parser");
    for (const role of NATS_ROLES) assert.equal(fs.statSync(natsClientCert(dataDir, role).key).mode & 0o777, 0o600, `${role}'s client key is private`);
    // Refused: plaintext, TLS without trusting the stack's CA, and TLS without a client certificate.
    await assert.rejects(connect({ servers: url, ...user, timeout: 5000 }), "a plaintext client is refused");
    await assert.rejects(connect({ servers: url, ...user, timeout: 5000, tls: { certFile: mine.cert, keyFile: mine.key } }), "a client that does not trust the stack's CA is refused");
    await assert.rejects(connect({ servers: url, ...user, timeout: 5000, tls: { caFile: files.ca } }), "a client without a certificate of the stack's CA is refused");
    // Accepted: TLS verified with the CA, and the client's certificate shown.
    nc = await connect({ servers: url, ...user, tls: { caFile: files.ca, certFile: mine.cert, keyFile: mine.key } });
    assert.equal(nc.info?.tls_required, true);

    // The services verified the server and serve; status finds the CA through the data dir.
    const st = await cli("status", "--json", "--timeout", "5000");
    const rows = JSON.parse(st.stdout || "[]") as { component: string; health: string }[];
    for (const c of ["nats", "influxdb", "parser", "aggregator"]) assert.equal(rows.find((r) => r.component === c)?.health, "SERVING", `${c}: ${st.stdout}${st.stderr}`);

    // A record sent over TLS reaches tail (which also finds the CA through the data dir).
    const tail = cli("tail", "--limit", "1");
    let got = "";
    void tail.then((r) => (got = r.stdout + r.stderr));
    const record = toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "n", parserId: "tls-test", records: [create(RecordSchema, { protocol: "http", operation: "GET", resource: "/over-tls" })] }));
    await waitFor(
      () => {
        nc!.publish("wirescope.records.0", record);
        return got !== "";
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "tail to print the record" },
    );
    assert.match(got, /over-tls/, got);
  } finally {
    await nc?.close();
    await stopUp(up, exited);
  }
});
