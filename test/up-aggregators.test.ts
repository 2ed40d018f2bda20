// `wirescope up --aggregators 2` end to end (no probe, no demo): two aggregator processes on the
// next control ports share the 64 records partitions, `status` lists both with their share, and
// records published as the parsers publish them are counted exactly once in InfluxDB, each
// service by one instance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Record as WRecord } from "@wirescope/wire";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { REPO_ROOT, stackPorts, stackArgs, stopUp, tempDir, upNatsUser, waitFor } from "./support/index.js";
import { ownedIn, publishPartitioned, rows } from "./aggregator-support.js";

const run = promisify(execFile);
const P = 64;

type Row = { component: string; instance: string; address: string; health: string; info: Record<string, string>; error?: string };

test("up --aggregators 2: both instances run, split the partitions, and count every request once", { timeout: 240_000 }, async () => {
  const dataDir = tempDir("wirescope-up-aggregators-");
  const ports = await stackPorts(2);
  const args = [...stackArgs(dataDir, ports), "--aggregators", "2", "--no-install", "--no-build", "--no-demo", "--no-probe", "--parser-metrics-port", "0", "--aggregator-metrics-port", "0"];
  const up = spawn(process.execPath, ["bin/wirescope.js", "up", ...args], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  const status = async () => {
    const r = await run(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "5000", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, timeout: 60_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }));
    return JSON.parse(r.stdout || "[]") as Row[];
  };
  let nc: NatsConnection | undefined;
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    assert.match(out, new RegExp(`^aggregator\\s+\\d+\\s+grpc://127\\.0\\.0\\.1:${ports.aggregator}\\s+ready`, "m"), out);
    assert.match(out, new RegExp(`^aggregator-2\\s+\\d+\\s+grpc://127\\.0\\.0\\.1:${ports.aggregator + 1}\\s+ready`, "m"), out);

    // Both listed by status, SERVING, agreeing on two members and splitting the partitions.
    let last: Row[] = [];
    await waitFor(
      async () => {
        last = (await status()).filter((r) => r.component === "aggregator");
        if (last.length !== 2 || !last.every((r) => r.health === "SERVING" && (r.info.members ?? "").split(",").length === 2)) return false;
        const all = last.flatMap((r) => ownedIn(r.info.partitions_owned));
        return all.length === P && new Set(all).size === P && last.every((r) => ownedIn(r.info.partitions_owned).length > 0);
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: "two aggregators sharing the partitions" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${JSON.stringify(last, null, 1)}`));
    assert.deepEqual(last.map((r) => r.address.replace(/^grpc:\/\//, "")).sort(), [`127.0.0.1:${ports.aggregator}`, `127.0.0.1:${ports.aggregator + 1}`]);

    // 16 services called over keep-alive connections, published as the parsers publish them.
    nc = await connect({ servers: `nats://127.0.0.1:${ports.nats}`, ...upNatsUser(dataDir, "parser") });
    const sent = new Map<string, number>();
    const records: WRecord[] = [];
    const now = Date.now();
    for (let i = 0; i < 1600; i++) {
      const s = i % 16;
      const d = 1 + (i % 40);
      records.push(makeRecord({ startMs: now - 2000 + (i % 1500), durationMs: d, resource: `/r${i % 3}`, status: i % 17 === 0 ? 503 : 200, server: { service: `api-${s}:80`, address: "10.4.0.1", port: 80 + s, pid: 10 + s }, client: { service: "load", address: "10.4.0.2", port: 50000 + (i % 64), pid: 9 }, connKey: BigInt(i % 64) }));
      sent.set(`api-${s}:80`, (sent.get(`api-${s}:80`) ?? 0) + 1);
    }
    await publishPartitioned(nc, records, 100, P);

    // Each window closes by the wall clock (10 s windows, 5 s grace by default).
    const db = "wirescope";
    const influx = `http://127.0.0.1:${ports.influx}`;
    const total = async () => ((await rows(influx, db, "SELECT sum(requests) FROM red WHERE role = 'server'").catch(() => []))[0]?.sum as number | undefined) ?? 0;
    await waitFor(async () => (await total()) === records.length, { timeoutMs: 90_000, intervalMs: 1000, what: `${records.length} server requests in InfluxDB` });
    for (const r of await rows(influx, db, "SELECT sum(requests) FROM red WHERE role = 'server' GROUP BY service")) assert.equal(r.sum, sent.get(r.service as string), `requests of ${r.service}`);

    // Each service counted by one instance, and the services spread over both.
    const listed = (await status()).filter((r) => r.component === "aggregator").map((r) => {
      const i = (r.info.services ?? "").indexOf(": ");
      return i < 0 ? [] : r.info.services!.slice(i + 2).split(",");
    });
    const servers = listed.flat().filter((s) => s.startsWith("api-"));
    assert.deepEqual(servers.sort(), [...sent.keys()].sort(), `each service listed by exactly one instance: ${JSON.stringify(listed)}`);
    assert.ok(listed.every((l) => l.length > 0), `both instances count services: ${JSON.stringify(listed)}`);
    assert.doesNotMatch(out, /restarted aggregator/, out);
  } finally {
    await nc?.close();
    await stopUp(up, exited);
  }
});
