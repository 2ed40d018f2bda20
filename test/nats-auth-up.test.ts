// `wirescope up --no-demo` with its generated NATS users and InfluxDB admin, end to end: records
// reach InfluxDB (which refuses anonymous queries), `top` reads them with the data dir's user, the
// server refused nothing the components needed (no permission violation in its log), no password
// is on a command line, in up's output or in the logs, and no control port answers on a
// non-loopback address of this machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { readNatsCredentials, readInfluxCredentials, NATS_ROLES } from "@wirescope/runtime";
import { REPO_ROOT, portPicker, stackPorts, stackArgs, privateRun, stopUp, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";


/** How a TCP connect to host:port ends: "connected" or the error code (ECONNREFUSED, ...). */
function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 2000 });
    s.once("connect", () => (s.destroy(), resolve("connected")));
    s.once("timeout", () => (s.destroy(), resolve("timeout")));
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

test("up with NATS users and InfluxDB auth: records reach InfluxDB, nothing refused, no password shown, control ports loopback only", { timeout: 300_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const external = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)?.address;
  assert.ok(external, "this machine needs a non-loopback IPv4 address to check that control ports refuse it");
  const dataDir = tempDir("wirescope-up-auth-");
  const pick = portPicker();
  const ports = { ...(await stackPorts(1, 1, pick)), probeMetrics: await pick(), parserMetrics: await pick(), aggregatorMetrics: await pick() };
  const upArgs = [
    ...stackArgs(dataDir, ports),
    "--probe-metrics-port", String(ports.probeMetrics),
    "--parser-metrics-port", String(ports.parserMetrics),
    "--aggregator-metrics-port", String(ports.aggregatorMetrics),
    "--no-install", "--no-build", "--no-demo", "--influx-auth",
    // this probe traces the whole machine: on a busy one, other tests' traffic can put the
    // pipeline over its budget, and this test's two connections must not be sampled out
    "--pipeline-cpu-budget", "0",
  ];
  // A private /run: the probe's single-instance lock is this stack's alone.
  const up = spawn(...privateRun([process.execPath, "bin/wirescope.js", "up", ...upArgs]), {
    cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  const app = http.createServer((_req, res) => res.end("ok"));
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    assert.doesNotMatch(out, /capture is OFF/, out);
    const creds = readNatsCredentials(dataDir);
    assert.ok(creds, "credentials generated into the data dir");
    for (const f of ["nats-auth.json", "nats-server.conf", "influxdb/influxdb.conf"]) assert.equal(fs.statSync(path.join(dataDir, f)).mode & 0o777, 0o600, f);

    // Traffic the probe sees; its records must travel probe → parser → aggregator → InfluxDB.
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    const appPort = (app.address() as net.AddressInfo).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const get = () => new Promise<void>((resolve, reject) => http.get({ host: "127.0.0.1", port: appPort, path: "/auth-check", agent }, (res) => res.resume().on("end", resolve)).on("error", reject));
    // InfluxDB answers only its users (generated into the data dir): the aggregator writes as the
    // writer, `top` reads as the reader, the admin is up's own.
    const admin = readInfluxCredentials(dataDir);
    const writer = readInfluxCredentials(dataDir, "writer");
    const reader = readInfluxCredentials(dataDir, "reader");
    assert.ok(admin && writer && reader, "InfluxDB users generated into the data dir");
    assert.equal(fs.statSync(path.join(dataDir, "influx-auth.json")).mode & 0o777, 0o600);
    const query = (q: string, auth?: { user: string; password: string }) =>
      fetch(`http://127.0.0.1:${ports.influx}/query?${new URLSearchParams({ q, db: "wirescope" })}`, {
        headers: auth ? { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}` } : {},
        signal: AbortSignal.timeout(10_000),
      });
    assert.equal((await query("SHOW MEASUREMENTS")).status, 401, "no credentials: refused");
    assert.equal((await query("SHOW MEASUREMENTS", { user: admin.user, password: "wrong" })).status, 401, "wrong password: refused");
    // `top` as a CLI user reads InfluxDB with the reader from the data dir: the traced app's row
    // appears once its first window is written (measurements of the pipeline itself come earlier).
    const runTop = () => spawnSync(process.execPath, ["bin/wirescope.js", "top", "--once", "--range", "5m", "--data-dir", dataDir, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    let top = runTop();
    await waitFor(
      async () => {
        for (let i = 0; i < 20; i++) await get();
        top = runTop();
        assert.equal(top.status, 0, `top: ${top.stdout}${top.stderr}`);
        return new RegExp(`:${appPort}\\s+server`).test(top.stdout);
      },
      { timeoutMs: 120_000, intervalMs: 2000, what: `the traced app (port ${appPort}) in top` },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${top.stdout}${top.stderr}`));
    agent.destroy();
    assert.doesNotMatch(top.stdout + top.stderr, /refused|HTTP 40[13]/);
    const measurements = await query("SHOW MEASUREMENTS", reader);
    assert.equal(measurements.status, 200);
    assert.match(await measurements.text(), /"values"/);
    // The aggregator holds the writer, not the admin (its environment, readable by root only).
    const aggregatorPid = Number(/^aggregator\s+(\d+)\s/m.exec(out)?.[1]);
    const environ = fs.readFileSync(`/proc/${aggregatorPid}/environ`, "utf8").split("\0");
    assert.ok(environ.includes(`WIRESCOPE_INFLUX_USER=${writer.user}`), "the aggregator writes as the writer");
    assert.ok(!environ.some((e) => e.includes(admin.password)), "the aggregator does not have the admin's password");
    assert.match(await (await query("SHOW MEASUREMENTS", writer)).text(), /requires READ/, "the writer cannot read");

    // `status` as a CLI user: its NATS user comes from the data dir; everything SERVING.
    const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "10000", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(st.status, 0, `${st.stdout}${st.stderr}`);
    const rows = JSON.parse(st.stdout) as { component: string; health: string }[];
    for (const c of ["nats", "influxdb", "probe", "parser", "aggregator"]) assert.equal(rows.find((r) => r.component === c)?.health, "SERVING", st.stdout);

    // The server refused nothing the stack needed.
    const natsLog = fs.readFileSync(path.join(dataDir, "logs", "nats-server.log"), "utf8");
    assert.doesNotMatch(natsLog, /Violation/, "permission violations in the nats-server log");

    // No password on any command line (world-readable), in up's output, in status or in the logs.
    const passwords = [...NATS_ROLES.map((r) => creds[r].password), admin.password, writer.password, reader.password];
    const pids = [...out.matchAll(/^(?:nats-server|influxd|probe|parser|aggregator)\s+(\d+)\s/gm)].map((m) => Number(m[1]));
    assert.equal(pids.length, 5, out);
    const shown = [out, st.stdout, st.stderr, top.stdout, top.stderr, ...pids.map((p) => fs.readFileSync(`/proc/${p}/cmdline`, "utf8"))];
    for (const f of fs.readdirSync(path.join(dataDir, "logs"))) shown.push(fs.readFileSync(path.join(dataDir, "logs", f), "utf8"));
    for (const p of passwords) assert.ok(!shown.some((s) => s.includes(p)), "a password is visible");

    // Control and metrics ports and the servers answer on loopback only.
    for (const [what, port] of Object.entries(ports)) {
      assert.equal(await connectOutcome("127.0.0.1", port), "connected", `${what} on loopback`);
      assert.equal(await connectOutcome(external, port), "ECONNREFUSED", `${what} on ${external}`);
    }
  } finally {
    app.close();
    await stopUp(up, exited);
  }
});
