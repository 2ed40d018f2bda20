// Plugins across the fleet: `wirescope plugin add` of the Redis example while two replicas run
// and real redis-cli traffic is replayed → Redis records from both replicas without a restart;
// a corrupt .wasm is refused (by the command and by the replicas) and nothing else stops;
// upgrade and removal propagate; a watched plugin directory does the same for one replica.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { tempDir, waitFor, WIRESCOPE_BIN, REDIS_PLUGIN_DIR } from "./support/index.js";
import { parserPlugins, parserStatus, redisTraffic, settleRecords, startParser, toRawBatches, useParserBed, waitForFleet, type Conversation } from "./parser-support.js";
import { Objm } from "@nats-io/obj";

const run = promisify(execFile);
const P = 64;

async function cli(natsUrl: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [WIRESCOPE_BIN, ...args, "--nats-url", natsUrl], { timeout: 20_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : 1, out: x.stdout ?? "", err: x.stderr ?? "" };
  }
}

describe("plugins across the fleet", { timeout: 180_000 }, () => {
  const bed = useParserBed({ redis: true });
  const procs = bed.procs;
  let convs: Conversation[];
  let nextKey = 10_000n;
  const seqs = new Map<number, number>();

  before(async () => {
    convs = await redisTraffic(bed.redis!.port, 24, "p");
  });

  /** Replays the captured sessions with fresh connection keys; returns those keys. */
  async function replay(): Promise<Set<bigint>> {
    const plan = toRawBatches(convs, { partitions: P, firstKey: nextKey, seqStart: seqs });
    nextKey += BigInt(convs.length);
    for (const b of plan.batches) bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
    await bed.nc.flush();
    return new Set(plan.batches.map((b) => b.connKey));
  }

  it("loads a plugin added to the store on every running replica, refuses a corrupt one, upgrades and removes", async () => {
    const empty = tempDir("wirescope-noplugins-");
    const fleet = [await startParser(bed.nats.url, ["--builtin-dir", empty], "plug-a"), await startParser(bed.nats.url, ["--builtin-dir", empty], "plug-b")];
    procs.push(...fleet);
    await waitForFleet(fleet, P);

    // Before: no plugin claims Redis.
    await replay();
    const undetected = async () =>
      (await Promise.all(fleet.map(parserStatus))).reduce((n, s) => n + (s.counters["conn_closed.unclaimed"] ?? 0) + (s.counters["conn_dropped.unclaimed"] ?? 0), 0);
    await waitFor(async () => (await undetected()) >= convs.length, { timeoutMs: 10_000, what: "undetected connections counted" });
    assert.equal((await settleRecords(bed.nc, 500, 5000)).length, 0);

    // A corrupt .wasm is refused by the command with the reason.
    const bad = path.join(tempDir(), "broken.wasm");
    fs.writeFileSync(bad, Buffer.concat([Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), Buffer.from("garbage section bytes")]));
    const badManifest = path.join(path.dirname(bad), "broken.json");
    fs.writeFileSync(badManifest, JSON.stringify({ name: "broken", version: "1.0.0", abi: 1, protocols: ["broken"], ports: [], wasm: "broken.wasm" }));
    const refused = await cli(bed.nats.url, "plugin", "add", bad, "--manifest", badManifest);
    assert.notEqual(refused.code, 0);
    assert.match(refused.err, /broken.*WebAssembly/);

    // The same corrupt object written straight into the bucket: replicas refuse it, keep running.
    const os = await new Objm(bed.nc).create("wirescope-plugins");
    await os.putBlob({ name: "broken.wasm", description: fs.readFileSync(badManifest, "utf8") }, fs.readFileSync(bad));

    // Add Redis with the command; both replicas load it without a restart.
    const added = await cli(bed.nats.url, "plugin", "add", path.join(REDIS_PLUGIN_DIR, "redis.wasm"), "--manifest", path.join(REDIS_PLUGIN_DIR, "redis.json"));
    assert.equal(added.code, 0, added.err);
    assert.match(added.out, /added redis 1\.0\.0/);
    await waitFor(async () => (await Promise.all(fleet.map(parserPlugins))).every((l) => l.includes("redis@1.0.0")), { timeoutMs: 10_000, what: "redis loaded everywhere" });
    for (const p of fleet) {
      const st = await parserStatus(p);
      assert.ok(st.warnings.some((w) => /broken.*WebAssembly/.test(w)), `warnings of ${p.instance}: ${st.warnings}`);
      assert.ok((await parserPlugins(p)).every((x) => !x.startsWith("broken")));
      assert.equal(p.proc.hasExited, false);
    }

    const keys = await replay();
    const seen = (await settleRecords(bed.nc, 1500, 30_000)).filter((s) => keys.has(s.record.connKey));
    assert.ok(seen.length >= convs.length * 6, `redis records: ${seen.length}`);
    assert.ok(seen.every((s) => s.record.protocol === "redis"));
    assert.deepEqual(new Set(seen.map((s) => s.parserId)), new Set(fleet.map((p) => p.instance)), "records from both replicas");

    const listed = await cli(bed.nats.url, "plugin", "list", "--json");
    assert.equal(listed.code, 0, listed.err);
    assert.ok((JSON.parse(listed.out) as { name: string }[]).some((r) => r.name === "redis"));

    // Upgrade: a new version of the same name replaces it (for new connections).
    const m2 = path.join(tempDir(), "redis.json");
    fs.writeFileSync(m2, JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(REDIS_PLUGIN_DIR, "redis.json"), "utf8")), version: "1.0.1" }));
    assert.equal((await cli(bed.nats.url, "plugin", "add", path.join(REDIS_PLUGIN_DIR, "redis.wasm"), "--manifest", m2)).code, 0);
    await waitFor(async () => (await Promise.all(fleet.map(parserPlugins))).every((l) => l.includes("redis@1.0.1") && !l.includes("redis@1.0.0")), {
      timeoutMs: 10_000,
      what: "redis 1.0.1 everywhere",
    });

    // Remove: every replica unloads it.
    const removed = await cli(bed.nats.url, "plugin", "remove", "redis");
    assert.equal(removed.code, 0, removed.err);
    await waitFor(async () => (await Promise.all(fleet.map(parserPlugins))).every((l) => !l.some((x) => x.startsWith("redis@"))), { timeoutMs: 10_000, what: "redis removed" });
    for (const p of fleet) await p.proc.stop();
  });

  it("loads, refuses and unloads plugins from a watched directory on one replica", async () => {
    const dir = tempDir("wirescope-plugindir-");
    const p = await startParser(bed.nats.url, ["--builtin-dir", tempDir(), "--plugin-dir", dir, "--plugin-bucket", "dir-test-plugins"], "dir-a");
    procs.push(p);
    assert.deepEqual(await parserPlugins(p), []);
    fs.copyFileSync(path.join(REDIS_PLUGIN_DIR, "redis.wasm"), path.join(dir, "redis.wasm"));
    fs.copyFileSync(path.join(REDIS_PLUGIN_DIR, "redis.json"), path.join(dir, "redis.json"));
    await waitFor(async () => (await parserPlugins(p)).includes("redis@1.0.0"), { timeoutMs: 10_000, what: "redis from dir" });
    fs.writeFileSync(path.join(dir, "junk.wasm"), "not wasm");
    fs.writeFileSync(path.join(dir, "junk.json"), JSON.stringify({ name: "junk", version: "1", abi: 1, protocols: ["junk"], ports: [], wasm: "junk.wasm" }));
    await waitFor(async () => (await parserStatus(p)).warnings.some((w) => /junk.*WebAssembly/.test(w)), { timeoutMs: 10_000, what: "junk refused" });
    assert.deepEqual(await parserPlugins(p), ["redis@1.0.0"]);
    fs.rmSync(path.join(dir, "redis.json"));
    await waitFor(async () => (await parserPlugins(p)).length === 0, { timeoutMs: 10_000, what: "redis unloaded" });
    await p.proc.stop();
  });
});
