// `wirescope up --nats-cluster 3` (no probe, no demo): three routed nats-servers, the services'
// stream, buckets and plugin store in 3 replicas, every service given the three URLs. With the
// first server killed, `status` and `tail` still work when told only that server's URL (they add
// up's members from the data dir), the services stay healthy, and up starts the server again.
// The same kill under traffic, with loss counted, is in nats-kill.faults.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { create, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema } from "@wirescope/wire";
import { REPO_ROOT, portPicker, stackPorts, stackArgs, stopUp, tempDir, upNatsUser, waitFor } from "./support/index.js";

const run = promisify(execFile);

test("up --nats-cluster 3: replicas 3, services on every URL; status and tail work with the first server killed, up restarts it", { timeout: 240_000 }, async () => {
  const dataDir = tempDir("wirescope-up-cluster-");
  // every port from one picker: two picks apart from each other could get the same port
  const pick = portPicker();
  const ports = await stackPorts(1, 1, pick);
  const natsPorts = [ports.nats, await pick(), await pick()];
  const urls = natsPorts.map((p) => `nats://127.0.0.1:${p}`);
  const args = [...stackArgs(dataDir, ports), "--nats-url", urls.join(","), "--nats-cluster", "3", "--no-install", "--no-build", "--no-demo", "--no-probe", "--parser-metrics-port", "0", "--aggregator-metrics-port", "0"];
  const up = spawn(process.execPath, ["bin/wirescope.js", "up", ...args], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  const cli = (...a: string[]) => run(process.execPath, ["bin/wirescope.js", ...a, "--data-dir", dataDir, "--nats-url", urls[0], "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, timeout: 60_000 }).catch((e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? "", stderr: `${e.stderr ?? ""} (exit ${e.code})` }));
  let nc: NatsConnection | undefined;
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    assert.match(out, /^nats: 3 servers routed into one cluster, JetStream replicas 3$/m);
    for (let i = 1; i <= 3; i++) assert.match(out, new RegExp(`^nats-server-${i}\\s+\\d+\\s+nats://127\\.0\\.0\\.1:${natsPorts[i - 1]}\\s+ready`, "m"));
    const cfg = path.join(dataDir, "nats-cluster", "wirescope-1.conf");
    assert.equal(fs.statSync(cfg).mode & 0o777, 0o600, "the config with the route password is private");

    // What the services created lives in 3 copies.
    nc = await connect({ servers: urls, ...upNatsUser(dataDir, "parser") });
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info("OBJ_wirescope-plugins").catch(() => undefined)) !== undefined, { timeoutMs: 30_000, what: "the plugin store" });
    for (const s of ["WIRESCOPE_RECORDS", "KV_wirescope-parsers", "KV_wirescope-services", "OBJ_wirescope-plugins"]) {
      assert.equal((await jsm.streams.info(s)).config.num_replicas, 3, `${s} replicas`);
    }
    for (const c of ["parser", "aggregator"]) {
      const pid = Number([...out.matchAll(new RegExp(`^${c}\\s+(\\d+)\\s`, "gm"))].at(-1)![1]);
      const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      assert.ok(env.includes(`WIRESCOPE_NATS_URL=${urls.join(",")}`), `${c} has every URL`);
      assert.ok(env.includes("WIRESCOPE_NATS_REPLICAS=3"), `${c} creates in 3 replicas`);
    }

    // The first server (the only URL status and tail are given) killed.
    const first = Number(/^nats-server-1\s+(\d+)\s/m.exec(out)![1]);
    process.kill(first, "SIGKILL");
    const tail = cli("tail", "--limit", "1");
    // A record published by the parser's user reaches tail through another member. Published
    // until tail has it: its subscription may not be in place yet.
    const record = toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "n", parserId: "cluster-test", records: [create(RecordSchema, { protocol: "http", operation: "GET", resource: "/through-the-cluster" })] }));
    let got = "";
    void tail.then((r) => (got = r.stdout + r.stderr));
    await waitFor(
      () => {
        nc!.publish("wirescope.records.0", record);
        return got !== "";
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "tail to print the record" },
    );
    assert.match(got, /through-the-cluster/, got);
    // The services are found through the other members. A service whose connection was on the
    // killed server is NOT_SERVING until it has reconnected (and a busy machine may delay that,
    // or its answer), so health is awaited, bounded; every status read is kept for the failure.
    type Row = { component: string; address: string; health: string; restarts?: number; error?: string; warnings?: string[] };
    const reads: string[] = [];
    await waitFor(
      async () => {
        const st = await cli("status", "--json", "--timeout", "5000");
        const rows = JSON.parse(st.stdout || "[]") as Row[];
        reads.push(rows.map((r) => `${r.component} ${r.address} ${r.health}${r.error ? ` (${r.error})` : ""}${r.warnings?.length ? ` [${r.warnings.join("; ")}]` : ""}`).join("\n") || st.stderr);
        const nats = rows.filter((r) => r.component === "nats");
        assert.equal(nats.length, 3, st.stdout);
        assert.ok(nats.filter((r) => r.health === "SERVING").length >= 2, `two members answer: ${st.stdout}`);
        return ["parser", "aggregator"].every((c) => rows.find((r) => r.component === c)?.health === "SERVING");
      },
      { timeoutMs: 45_000, intervalMs: 1000, what: "parser and aggregator found through the other members and SERVING" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${reads.map((r, i) => `-- status read ${i + 1}\n${r}`).join("\n")}`));

    // up starts it again; then every row is SERVING, the restart counted on its own row.
    await waitFor(() => /restarted nats-server-1 \(pid \d+\), restart #1/.test(out), { timeoutMs: 60_000, intervalMs: 200, what: "up to restart nats-server-1" });
    let last = "";
    await waitFor(
      async () => {
        const s = await cli("status", "--json", "--timeout", "5000");
        last = s.stdout + s.stderr;
        const r = JSON.parse(s.stdout || "[]") as { component: string; address: string; health: string; restarts?: number }[];
        return r.length > 0 && r.every((x) => ["SERVING", "DISABLED"].includes(x.health)) && r.find((x) => x.address === urls[0])?.restarts === 1;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: "every row SERVING with nats-server-1 restarted once" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${last}`));
    const logTail = (c: string) => fs.readFileSync(path.join(dataDir, "logs", `${c}.log`), "utf8").split("\n").filter((l) => !l.includes('"level":30')).slice(-8).join("\n");
    for (const c of ["parser", "aggregator"]) assert.doesNotMatch(out, new RegExp(`restarted ${c}`), `${c} kept running:\n${out}\n${logTail(c)}`);
  } finally {
    await nc?.close();
    await stopUp(up, exited);
  }
});
