// `wirescope tail` follows the records a real parser publishes for real redis-cli traffic:
// NDJSON (one Record per line, filtered by protocol and service) and a table.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { create, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema } from "@wirescope/wire";
import { redisTraffic, startParser, toRawBatches, useParserBed, type Conversation, type ParserProc } from "./parser-support.js";
import { waitSubscribed, type TestServer, WIRESCOPE_BIN, REDIS_PLUGIN_DIR } from "./support/index.js";

const P = 64;

/** Runs `wirescope tail ...` until it exits (it stops by itself after --limit records); `onReady`
 *  once nats-server lists its subscription. */
function tail(nats: TestServer, args: string[], onReady: () => void): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [WIRESCOPE_BIN, "tail", "--nats-url", nats.url, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`tail did not finish: ${err}`));
    }, 30_000);
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    waitSubscribed(nats.monitorPort!, "wirescope-tail", "wirescope.records.>", () => {
      if (c.exitCode !== null) throw new Error(`tail exited: ${err}`);
    }).then(onReady, reject);
  });
}

describe("wirescope tail", { timeout: 120_000 }, () => {
  const bed = useParserBed({ redis: true });
  let parser: ParserProc;
  let convs: Conversation[];
  let key = 70_000n;

  before(async () => {
    convs = await redisTraffic(bed.redis!.port, 4, "t");
    parser = await startParser(bed.nats.url, ["--builtin-dir", REDIS_PLUGIN_DIR], "tail-parser");
    bed.procs.push(parser);
  });

  const publish = async () => {
    for (const b of toRawBatches(convs, { partitions: P, firstKey: key }).batches) bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
    key += 100n;
    await bed.nc.flush();
  };

  it("prints NDJSON records filtered by protocol and service", async () => {
    const r = await tail(bed.nats, ["--protocol", "redis", "--service", "redis-server:" + bed.redis!.port, "--limit", "10"], () => void publish());
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split("\n");
    assert.equal(lines.length, 10);
    for (const l of lines) {
      const j = JSON.parse(l);
      assert.equal(j.protocol, "redis");
      assert.equal(j.serverService, `redis-server:${bed.redis!.port}`);
      assert.match(j.server, /^127\.0\.0\.1:\d+$/);
      assert.ok(j.operation, "operation present");
    }
    assert.ok(lines.some((l) => JSON.parse(l).operation === "SET"));
  });

  it("skips a batch that is not one, or whose record names a connection entry it lacks, and goes on", async () => {
    const lacking = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [create(RecordSchema, { protocol: "redis", operation: "GHOST", connection: 2 })], connections: [create(RecordSchema)] }));
    const r = await tail(bed.nats, ["--limit", "3"], () => {
      bed.nc.publish("wirescope.records.0", new Uint8Array([0xff, 0xff, 0xff]));
      bed.nc.publish("wirescope.records.0", lacking);
      void publish();
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "tail: skipping messages that are not RecordBatch\n", "said once for both");
    const lines = r.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.ok(lines.every((j) => j.operation !== "GHOST" && /^127\.0\.0\.1:\d+$/.test(j.server)), r.out);
  });

  it("prints a table on request", async () => {
    const t = await tail(bed.nats, ["--format", "table", "--limit", "3"], () => void publish());
    assert.equal(t.code, 0, t.err);
    const rows = t.out.trim().split("\n");
    assert.equal(rows.length, 3);
    for (const row of rows) assert.match(row, /redis .*->.*redis-server:\d+/);
  });

  it("stops quietly with code 0 when its reader goes away (tail | head)", async () => {
    const c = spawn("bash", ["-c", `set -o pipefail; "${process.execPath}" "${WIRESCOPE_BIN}" tail --nats-url=${bed.nats.url} --format=table | head -n 1`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    // head exits after its first line; tail notices on its next write, so keep records coming
    const feeding = setInterval(() => void publish(), 500);
    const code = await new Promise<number | null>((resolve) => c.on("exit", resolve)).finally(() => clearInterval(feeding));
    assert.equal(code, 0, err);
    assert.equal(err, "");
    assert.equal(out.trim().split("\n").length, 1);
    assert.match(out, /redis .*->/);
  });

  it("refuses a bad format with a usage error", async () => {
    const r = await tail(bed.nats, ["--format", "xml"], () => {});
    assert.equal(r.code, 2);
    assert.match(r.err, /ndjson or table/);
  });
});
