// A parser's losses reach InfluxDB, where the Pipeline health dashboard's "Drops by reason" and
// the pipeline-drops alert read them: each membership entry of the parser carries what its loss
// counters grew by since its last written entry, and the aggregators write it as a `pipeline`
// point (component=parser) dated by the entry, the same point from every aggregator.
//
// Real processes: nats-server, influxd, `wirescope parser`, two `wirescope aggregator`s on one
// database. Real HTTP traffic (node:http, six keep-alive connections of five requests, recorded
// through a relay) is fed to the parser as the probe would send it, one RawBatch per connection on
// one partition, with the third batch missing: the parser counts one raw batch and its five
// requests missed. InfluxDB must then hold exactly the parser's counts, not twice.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { waitFor } from "./support/index.js";
import { natsConnect, rows, startAggregator, startBackends, suiteCleanup } from "./aggregator-support.js";
import { captureThroughRelay, parserStatus, startParser, toRawBatches } from "./parser-support.js";

const CONNS = 6;
const REQUESTS = 5;
const PARTITIONS = 64;

describe("parser losses in InfluxDB", { timeout: 180_000 }, () => {
  const cleanup = suiteCleanup();

  it("a missed raw batch and its requests, counted by the parser, are drops_* of component=parser in `pipeline`, once with two aggregators", async () => {
    const { nats, influx } = await startBackends(cleanup);
    const db = "parser_losses";
    const parser = await startParser(nats.url, ["--heartbeat-ms", "500"]);
    cleanup.push(() => parser.proc.stop());
    for (let i = 0; i < 2; i++) {
      const agg = await startAggregator(nats.url, influx.url, db);
      cleanup.push(() => agg.stop());
    }

    const server = http.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const convs = await captureThroughRelay(port, "shop", async (relayPort) => {
      for (let c = 0; c < CONNS; c++) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        for (let i = 0; i < REQUESTS; i++) {
          await new Promise<void>((resolve, reject) => http.get({ host: "127.0.0.1", port: relayPort, path: "/lossy", agent }, (r) => r.resume().on("end", resolve)).on("error", reject));
        }
        agent.destroy();
      }
    });
    assert.equal(convs.length, CONNS);
    // every connection on partition 0, batch_seq 1..6, the probe's served counts running on
    const seqStart = new Map<number, number>();
    const servedStart = new Map<number, number>();
    const batches = convs.flatMap((c, i) => toRawBatches([c], { partitions: PARTITIONS, firstKey: (1n << 40n) + BigInt(i * PARTITIONS), seqStart, servedStart }).batches);
    assert.deepEqual(batches.map((b) => [b.partition, b.seq]), convs.map((_, i) => [0, i + 1]));
    const missing = batches[2]!;
    assert.equal(missing.served, REQUESTS);

    const conn = await natsConnect(nats.url);
    cleanup.push(() => conn.close());
    for (const b of batches) if (b !== missing) conn.publish(`wirescope.raw.${b.partition}`, b.bytes);
    await conn.flush();

    const counted = async () => (await parserStatus(parser)).counters;
    await waitFor(async () => (await counted())["requests_missed.gap"] === REQUESTS, { timeoutMs: 30_000, intervalMs: 250, what: "the parser counts the missed batch's requests" });
    const c = await counted();
    assert.equal(c["raw_batches_missed.gap"], 1);

    const written = async () => {
      const [r] = await rows(influx.url, db, `SELECT sum("drops_requests_missed_gap") AS requests, sum("drops_raw_batches_missed_gap") AS batches, count("drops_requests_missed_gap") AS points FROM "pipeline" WHERE "component" = 'parser' AND "instance" = '${parser.instance}'`).catch(() => []);
      return r ?? {};
    };
    await waitFor(async () => (await written()).requests === REQUESTS, { timeoutMs: 30_000, intervalMs: 250, what: "the parser's losses in InfluxDB" });
    // both aggregators wrote; a few heartbeats later the sums are still the parser's own counts
    await new Promise((r) => setTimeout(r, 2000));
    const w = await written();
    assert.equal(w.requests, REQUESTS, `requests missed in InfluxDB: ${JSON.stringify(w)}`);
    assert.equal(w.batches, 1);
    assert.equal(w.points, 1, "one point: the two aggregators wrote the same one");
    // the Drops by reason panel's query (grafana/src/dashboards/pipeline.ts) sees them
    const panel = await rows(influx.url, db, `SELECT sum(/^drops_/) FROM "pipeline" WHERE "component" =~ /^parser$/ GROUP BY "component"`);
    assert.equal(panel[0]?.sum_drops_requests_missed_gap, REQUESTS);
  });
});
