// The aggregator's consume loop against a real nats-server (issue #12): it must not stop reading
// while batches wait, and when it ends anyway it is started again, counted.
//   - a backlog of one-record batches, then a large batch: with nats.js 2.29's consume({ max_bytes })
//     the client asked, forever, for less than the large batch (409 Message Size Exceeds MaxBytes),
//     and nothing after it was read; nothing was counted either;
//   - its consumer deleted underneath: nats.js keeps pulling from a consumer that is gone; the
//     epoch ends, is started again (consumer_restarts.<reason>) and reads on from the saved positions;
//   - a batch whose ingestion throws (a failpoint stands for a bug in the core): counted as a drop,
//     acknowledged, and the loop goes on.
// Waits are on conditions, bounded and generous (a busy 2-core machine); nothing asserts a time.
import { sumOf } from "./support/fault-stack.js";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { headers } from "@nats-io/nats-core";
import { jetstreamManager, jetstream } from "@nats-io/jetstream";
import { RecordBatchSchema } from "@wirescope/wire";
import { createLogger, ensureRecordsStream } from "@wirescope/runtime";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { waitFor } from "./support/index.js";
import { startAggregator, startBackends, publishRecords, rows, pastWindow, suiteCleanup } from "./aggregator-support.js";

const WINDOW = 1000;
const STREAM = "WIRESCOPE_RECORDS";
// A generous grace: a starved machine may pause between two batches of one window.
const ARGS = ["--window-ms", String(WINDOW), "--grace-ms", "3000", "--pipeline-every-ms", "1000"];

function records(service: string, n: number, startMs: number, first = 0) {
  const server = { service, address: "10.3.0.2", port: 80, pid: 21 };
  const client = { service: "load", address: "10.3.0.1", port: 40000, pid: 22 };
  return Array.from({ length: n }, (_, i) => makeRecord({ startMs: startMs + (i % 200), durationMs: 1 + (i % 7), resource: `/r${i % 5}`, status: 200, server, client, connKey: BigInt(first + i) }));
}

describe("aggregator consume loop", { timeout: 150_000 }, () => {
  const cleanup = suiteCleanup();

  it("reads on past a large batch after a backlog of one-record batches", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "agg_backlog";
    await ensureRecordsStream(nc, { name: STREAM }, createLogger("aggregator", { level: "warn" }));
    const base = pastWindow(WINDOW, 30);
    // Published before the aggregator starts, so that its first pulls meet them in this order.
    let sent = 0;
    let batches = 0;
    for (const [service, n, perBatch] of [
      ["small", 400, 1],
      ["large", 3000, 3000],
      ["after", 100, 1],
    ] as const) {
      batches += await publishRecords(nc, records(service, n, base, sent), perBatch);
      sent += n;
    }
    const a = await startAggregator(nats.url, influx.url, db, ARGS);
    cleanup.push(() => a.stop());
    const total = async () => ((await rows(influx.url, db, `SELECT sum(requests) FROM red WHERE role = 'server'`))[0]?.sum as number | undefined) ?? 0;
    let c: Record<string, number> = {};
    await waitFor(
      async () => {
        c = await a.status();
        return (await total()) === sent;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `${sent} requests in InfluxDB` },
    ).catch(async (e: unknown) => assert.fail(`${String(e)}: ${await total()} written; batches_in ${c.batches_in} of ${batches}`));
    c = await a.status();
    assert.equal(c.batches_in, batches, "every batch read once");
    assert.equal(sumOf(c, /^drops_/), 0, `nothing dropped: ${JSON.stringify(c)}`);
  });

  it("its consumer deleted underneath, then a batch that throws: started again and counted, the throw a counted drop, every other record written once", async () => {
    const { nats, influx, nc } = await startBackends(cleanup);
    const db = "agg_restart";
    const a = await startAggregator(nats.url, influx.url, db, ARGS, { WIRESCOPE_FAILPOINTS: "batch_throw" });
    cleanup.push(() => a.stop());
    const jsm = await jetstreamManager(nc);
    // Each phase in a window of its own, in order: a window closed before the next phase's
    // records arrive never makes them late.
    const base = pastWindow(WINDOW, 30);
    const requests = async (service: string) => ((await rows(influx.url, db, `SELECT sum(requests) FROM red WHERE service = '${service}' AND role = 'server'`))[0]?.sum as number | undefined) ?? 0;

    await publishRecords(nc, records("before", 100, base), 100);
    await waitFor(async () => (await requests("before")) === 100, { timeoutMs: 30_000, intervalMs: 250, what: "the first batch written" });

    const consumers: string[] = [];
    for await (const ci of jsm.consumers.list(STREAM)) consumers.push(ci.name);
    assert.equal(consumers.length, 1, `one consumer: ${consumers.join(",")}`);
    await jsm.consumers.delete(STREAM, consumers[0]!);
    let c: Record<string, number> = {};
    await waitFor(
      async () => {
        c = await a.status();
        return sumOf(c, /^consumer_restarts\./) >= 1;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: "the consumer's end noticed and counted" },
    );
    const reasons = Object.keys(c).filter((k) => k.startsWith("consumer_restarts.") && c[k]! > 0);
    assert.ok(
      reasons.every((k) => /^consumer_restarts\.(consumer_deleted|consumer_not_found|start_failed)$/.test(k)),
      `restarted because the consumer was gone: ${reasons.join(",")}`,
    );

    await publishRecords(nc, records("after_delete", 100, base + WINDOW, 100), 100);
    const h = headers();
    h.set("Wirescope-Failpoint", "throw");
    const poison = create(RecordBatchSchema, { node: "test", parserId: "test", partition: 0, batchSeq: 99n, records: records("poison", 10, base + 2 * WINDOW, 200) });
    await jetstream(nc).publish("wirescope.records.0", toBinary(RecordBatchSchema, poison), { headers: h });
    await publishRecords(nc, records("after_throw", 100, base + 3 * WINDOW, 300), 100);

    await waitFor(async () => (await requests("after_delete")) === 100 && (await requests("after_throw")) === 100, {
      timeoutMs: 60_000,
      intervalMs: 250,
      what: "the records after the restart and after the throw written",
    });
    c = await a.status();
    assert.equal(c.drops_batch_error, 1, "the batch that threw counted as a drop");
    assert.equal(await requests("poison"), 0, "nothing of it written");
    assert.equal(await requests("before"), 100, "the first batch not counted twice after the restart");
    assert.ok(c.consumer_restarts! >= 1, "the total is in the pipeline counters too");
    // While it was not consuming, the service said so, with the reason.
    const log = fs.readFileSync(a.logFile, "utf8");
    assert.match(log, /"serving":false,"reasons":\["consumer: (consumer_deleted|consumer_not_found|start_failed)[^"]*"\]/);
    let r = { ready: false, warnings: [] as string[] };
    await waitFor(async () => (r = await a.ready()).ready, { timeoutMs: 30_000, intervalMs: 250, what: "serving again" }).catch(() => assert.fail(`not serving: ${r.warnings.join("; ")}`));
  });
});
