// `wirescope parser` started three times on ephemeral control ports: `wirescope status` finds all
// three through the registry, and a stopped replica leaves it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { checkHealth, ServingStatus, type ManagedProcess } from "@wirescope/runtime";
import { REPO_ROOT, startNats, spawnTracked, tempDir, waitFor } from "./support/index.js";


interface Row {
  component: string;
  instance: string;
  address: string;
  health: string;
}

function status(natsUrl: string, influxUrl = "http://127.0.0.1:9"): { code: number | null; rows: Row[]; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "10000", "--nats-url", natsUrl, "--influx-url", influxUrl, "--grpc-host", "127.0.0.9"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, rows: r.stdout ? (JSON.parse(r.stdout) as Row[]) : [], stderr: r.stderr };
}

test("three parser replicas on ephemeral ports are all listed by status; a stopped one leaves", { timeout: 180_000 }, async () => {
  const nats = await startNats({ jetstream: true });
  const dir = tempDir("wirescope-replicas-");
  const replicas: ManagedProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      replicas.push(
        await spawnTracked(`parser-${i}`, process.execPath, ["bin/wirescope.js", "parser", "--grpc-port", "0", "--instance", `replica-${i}`], {
          cwd: REPO_ROOT,
          env: { ...process.env, WIRESCOPE_NATS_URL: nats.url, WIRESCOPE_LOG_FORMAT: "json", WIRESCOPE_DATA_DIR: dir },
          logFile: path.join(dir, `parser-${i}.log`),
        }),
      );
    }
    const parsers = () => status(nats.url).rows.filter((r) => r.component === "parser");
    const all = await waitFor(
      () => {
        const p = parsers();
        return p.length === 3 && p.every((r) => r.health === "SERVING") ? p : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: "three SERVING parsers in status" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${replicas.map((r) => r.tail(5)).join("\n")}`));
    assert.deepEqual(all.map((r) => r.instance).sort(), ["replica-0", "replica-1", "replica-2"]);
    assert.equal(new Set(all.map((r) => r.address)).size, 3, "each replica has its own port");
    for (const r of all) assert.match(r.address, /^127\.0\.0\.1:\d+$/);
    for (const r of all) assert.equal((await checkHealth(r.address, "", 5000)).status, ServingStatus.SERVING);

    await replicas[1].stop();
    const left = await waitFor(
      () => {
        const p = parsers();
        return p.length === 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "the stopped replica to leave the registry" },
    );
    assert.deepEqual(left.map((r) => r.instance).sort(), ["replica-0", "replica-2"]);
    // No InfluxDB, probe or aggregator in this test: status lists every expected component, says
    // those are not serving and exits 1; the parsers and NATS are SERVING.
    const s = status(nats.url);
    assert.equal(s.code, 1, s.stderr);
    assert.deepEqual(
      s.rows.filter((r) => r.health !== "SERVING").map((r) => r.component),
      ["influxdb", "probe", "aggregator"],
    );
  } finally {
    for (const r of replicas) await r.stop();
    await nats.stop();
  }
});
