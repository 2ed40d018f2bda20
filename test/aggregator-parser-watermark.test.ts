// Windows wait for a parser that is behind (issue #12: under a hostile flood one record batch of
// the parser took 10.4 s to publish, its first try timing out; the aggregator closed the windows
// those records belonged to, and they were dropped as late, counted but lost). Each parser states
// in its membership heartbeat the wall-clock time before which every record it made is
// acknowledged (`publishedThroughMs`), and no window closes past the lowest of them
// (services/aggregator/src/parser-watermarks.ts).
//
// Real processes: nats-server, influxd, `wirescope parser` behind a NATS proxy that holds up
// everything it sends (its record publishes and its heartbeats), `wirescope aggregator`. Real
// HTTP traffic (node:http, a keep-alive agent) recorded through a relay is fed to the parser as
// raw batches while it is held up for 8 s. Meanwhile live records of another service, published
// straight to the stream, move event time past the held records' windows: without the
// watermark those windows close and the held records come late; with it they are all written.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { NatsConnection } from "@nats-io/nats-core";
import { createLogger, ensureRecordsStream } from "@wirescope/runtime";
import { waitFor } from "./support/index.js";
import { startNatsProxy } from "./support/nats-proxy.js";
import { publishLive, rows, startAggregator, startBackends, suiteCleanup } from "./aggregator-support.js";
import { captureThroughRelay, parserStatus, startParser, toRawBatches } from "./parser-support.js";

const WINDOW = 1000;
const GRACE = 2000;
const HELD_MS = 8000;
const REQUESTS = 30;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 30 requests on one keep-alive connection to a node:http server, recorded through a relay. */
async function realTraffic(): Promise<ReturnType<typeof toRawBatches>> {
  const server = http.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const convs = await captureThroughRelay(port, "shop", async (relayPort) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < REQUESTS; i++) {
        await new Promise<void>((resolve, reject) => http.get({ host: "127.0.0.1", port: relayPort, path: "/held", agent }, (r) => r.resume().on("end", resolve)).on("error", reject));
      }
      agent.destroy();
    });
    assert.equal(convs.length, 1, "one keep-alive connection");
    return toRawBatches(convs, { partitions: 64, firstKey: 1n << 40n });
  } finally {
    server.close();
  }
}

describe("aggregator: windows wait for a parser that is behind", { timeout: 240_000 }, () => {
  const cleanup = suiteCleanup();

  /** The held parser's records written, and the aggregator's late drops, with the parsers watched or not. */
  async function heldParser(db: string, watching: boolean): Promise<{ written: number; late: number; watched: number; lag: number }> {
    const { nats, influx, nc } = await startBackends(cleanup);
    await ensureRecordsStream(nc, { name: "WIRESCOPE_RECORDS" }, createLogger("aggregator", { level: "warn" }));
    const proxy = await startNatsProxy(nats.url);
    cleanup.push(() => proxy.close());
    // A long member TTL: while held up, the parser keeps its partitions (its own heartbeats are held too).
    const parser = await startParser(proxy.url, ["--member-ttl-ms", "120000"]);
    cleanup.push(() => parser.proc.stop());
    const agg = await startAggregator(nats.url, influx.url, db, ["--window-ms", String(WINDOW), "--grace-ms", String(GRACE), ...(watching ? [] : ["--parser-hold-ms", "0"])]);
    cleanup.push(() => agg.stop());
    if (watching) await waitFor(async () => (await agg.status()).parsers_watched === 1, { timeoutMs: 30_000, intervalMs: 250, what: "the aggregator hears the parser's watermark" });
    const live = publishLive(nc as NatsConnection, "live");
    const written = async () => ((await rows(influx.url, db, `SELECT sum(requests) FROM red WHERE resource = '/held' AND role = 'server'`))[0]?.sum as number | undefined) ?? 0;
    try {
      await waitFor(async () => ((await rows(influx.url, db, `SELECT sum(requests) FROM red WHERE service = 'live'`))[0]?.sum as number | undefined ?? 0) > 0, { timeoutMs: 60_000, intervalMs: 250, what: "live records written" });
      proxy.mode = "hold";
      const plan = await realTraffic();
      for (const b of plan.batches) nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
      await nc.flush();
      // the parser decodes them and publishes their records, held up here, while the live
      // records move event time past their windows' close (end + grace)
      await sleep(HELD_MS);
      const watched = (await agg.status()).parsers_watched ?? 0;
      // the parser says itself how far behind its watermark is (its gRPC port is not behind the proxy)
      const lag = (await parserStatus(parser)).counters.watermark_lag_ms ?? 0;
      proxy.mode = "pass";
      await waitFor(async () => (await written()) + ((await agg.status()).drops_late ?? 0) >= REQUESTS, { timeoutMs: 60_000, intervalMs: 250, what: `the ${REQUESTS} held records written or dropped` });
      await sleep(2 * (WINDOW + GRACE)); // nothing more comes
      return { written: await written(), late: (await agg.status()).drops_late ?? 0, watched, lag };
    } finally {
      await live.stop();
    }
  }

  it(`with the parsers watched, the records a parser held ${HELD_MS / 1000} s are all written, none late`, async () => {
    const r = await heldParser("agg_parser_watermark", true);
    assert.equal(r.watched, 1, "the held parser still counted (heard within --parser-hold-ms)");
    assert.ok(r.lag >= HELD_MS / 2, `the parser's own watermark_lag_ms shows it held up: ${r.lag} ms`);
    assert.equal(r.late, 0, "no record dropped as late");
    assert.equal(r.written, REQUESTS);
  });

  it("with them not watched (--parser-hold-ms 0), the same records come late: what the watermark guards against", async () => {
    const r = await heldParser("agg_parser_unwatched", false);
    assert.equal(r.late, REQUESTS, "every held record dropped as late (counted)");
    assert.equal(r.written, 0);
  });
});
