// Spans exported over OTLP/HTTP (protobuf) by the real `wirescope aggregator`, received by an
// OTLP/HTTP receiver written here from the same official opentelemetry-proto definitions
// (proto/opentelemetry/). The traffic is the demo shop's real request chain (records captured
// from `wirescope up`, test/fixtures/demo-records.bin.gz), replayed through JetStream.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Span_SpanKind } from "@wirescope/wire/gen/opentelemetry/proto/trace/v1/trace_pb";
import { startNats, startInflux, waitFor, freePort, readRecordsFixture, DEMO_RECORDS, shiftRecords, otlpReceiver, type TestServer, type ReceivedSpan as Received } from "./support/index.js";
import { startAggregator, publishRecords, natsConnect, rows } from "./aggregator-support.js";

const WINDOW = 10_000;

describe("OTLP/HTTP span export", { timeout: 150_000 }, () => {
  let nats: TestServer;
  let influx: TestServer;
  let nc: NatsConnection;
  let total = 0;

  before(async () => {
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    nc = await natsConnect(nats.url);
    const records = readRecordsFixture(DEMO_RECORDS);
    shiftRecords(records, Date.now() - 3 * 60_000, WINDOW);
    total = records.length;
    // In the stream before any aggregator starts: each test's aggregator (own durable) reads all
    // (the stream keeps messages by limits, as the parser and aggregator define it).
    await (await jetstreamManager(nc)).streams.add({ name: "WIRESCOPE_RECORDS", subjects: ["wirescope.records.>"] });
    await publishRecords(nc, records, 200);
  });
  after(async () => {
    await nc?.close();
    await influx?.stop();
    await nats?.stop();
  });

  it("every span written to InfluxDB arrives at the collector with its trace and parent ids, kind, status and attributes; the chain is linked from the load generator to the database", async () => {
    const rx = await otlpReceiver();
    const db = "otlp_up";
    const agg = await startAggregator(nats.url, influx.url, db, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--span-sample-rate", "1", "--span-budget", "0", "--durable", "otlp-up", "--state-bucket", "otlp-up", "--otlp-endpoint", rx.url, "--otlp-flush-ms", "200"]);
    try {
      await waitFor(async () => (await agg.status()).records_in === total && (await agg.status()).open_windows === 0, { timeoutMs: 90_000, intervalMs: 500, what: "every record ingested and every window closed" });
      const kept = (await agg.status()).spans_kept!;
      await waitFor(async () => rx.spans.length >= kept && (await agg.status()).otlp_spans_exported === kept, { timeoutMs: 30_000, intervalMs: 300, what: `${kept} spans at the collector` });
      const c = await agg.status();
      assert.equal(c.otlp_spans_exported, kept);
      assert.equal(rx.spans.length, kept, "each span once");
      assert.equal(c.drops_otlp_queue_full! + c.drops_otlp_failed! + c.drops_otlp_rejected!, 0);
      assert.ok(rx.requests >= Math.ceil(kept / 512), `batches: ${rx.requests} requests for ${kept} spans`);

      // The same spans as in InfluxDB, field by field.
      const influxSpans = await rows(influx.url, db, `SELECT "trace_id", "span_id", "parent_span_id", "name", "error", "start_ms", "duration_ms", "tags" FROM "spans" GROUP BY "service", "kind"`);
      assert.equal(influxSpans.length, kept, JSON.stringify(await agg.status()));
      const byId = new Map(rx.spans.map((s) => [s.spanId, s]));
      const dup = rx.spans.filter((s) => byId.get(s.spanId) !== s);
      assert.equal(byId.size, rx.spans.length, `span ids unique: ${JSON.stringify(dup.slice(0, 2).map((d) => [d, byId.get(d.spanId)]), (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
      for (const i of influxSpans) {
        const o = byId.get(String(i.span_id))!;
        assert.ok(o, `span ${String(i.span_id)} exported`);
        assert.equal(o.traceId, i.trace_id);
        assert.equal(o.parentSpanId, i.parent_span_id);
        assert.equal(o.service, i.service);
        assert.equal(o.kind, i.kind === "server" ? Span_SpanKind.SERVER : Span_SpanKind.CLIENT);
        assert.equal(o.name, i.name);
        assert.equal(o.error, i.error);
        assert.ok(Math.abs(Number(o.startNs / 1000n) / 1000 - Number(i.start_ms)) < 0.002, "start");
        assert.ok(Math.abs(Number(o.endNs - o.startNs) / 1e6 - Number(i.duration_ms)) < 0.002, `duration ${o.endNs - o.startNs} ns, ${String(i.duration_ms)} ms`);
        const tags = Object.fromEntries((JSON.parse(String(i.tags)) as { key: string; value: unknown }[]).map((t) => [t.key, t.value]));
        const attrs = Object.fromEntries(Object.entries(o.attributes).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]));
        assert.deepEqual(attrs, tags, `attributes of ${o.service} ${o.name}`);
      }

      // A database call's ancestry, through the exported parent ids alone.
      const fromLoadgen = new Set(rx.spans.filter((s) => s.service === "loadgen").map((s) => s.traceId));
      const dbSpan = rx.spans.find((s) => s.service === "mariadbd:27385" && s.kind === Span_SpanKind.SERVER && fromLoadgen.has(s.traceId))!;
      assert.ok(dbSpan, "a database span in a trace that starts at the load generator");
      const chain: string[] = [];
      for (let cur: Received | undefined = dbSpan; cur; cur = cur.parentSpanId ? byId.get(cur.parentSpanId) : undefined) {
        assert.equal(cur.traceId, dbSpan.traceId);
        chain.push(`${cur.service}/${cur.kind === Span_SpanKind.SERVER ? "server" : "client"}`);
      }
      assert.deepEqual(chain, ["mariadbd:27385/server", "orders:27382/client", "orders:27382/server", "api:27381/client", "api:27381/server", "web:27380/client", "web:27380/server", "loadgen/client"]);
      assert.equal(dbSpan.attributes["db.system"], "mysql");
      const grpc = byId.get(byId.get(dbSpan.parentSpanId)!.parentSpanId)!;
      assert.equal(grpc.attributes["rpc.system"], "grpc");
      assert.match(String(grpc.attributes["rpc.method"]), /^(GetItem|PlaceOrder)$/);
      const http1 = rx.spans.find((s) => s.service === "web:27380" && s.kind === Span_SpanKind.SERVER)!;
      assert.ok(["GET", "POST"].includes(String(http1.attributes["http.request.method"])));
      assert.equal(typeof http1.attributes["http.response.status_code"], "bigint");
    } finally {
      await agg.stop();
      await rx.close();
    }
  });

  it("collector down: the queue stays bounded and every span not exported is counted as dropped; InfluxDB is unaffected", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const db = "otlp_down";
    const agg = await startAggregator(nats.url, influx.url, db, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--span-sample-rate", "1", "--span-budget", "0", "--durable", "otlp-down", "--state-bucket", "otlp-down", "--otlp-endpoint", closed, "--otlp-queue-size", "300", "--otlp-batch-size", "100", "--otlp-max-tries", "2", "--otlp-flush-ms", "100"]);
    try {
      await waitFor(async () => (await agg.status()).records_in === total && (await agg.status()).open_windows === 0, { timeoutMs: 90_000, intervalMs: 500, what: "every record ingested and every window closed" });
      const settled = async () => {
        const c = await agg.status();
        return c.otlp_queued === 0 && c.drops_otlp_queue_full! + c.drops_otlp_failed! === c.spans_kept;
      };
      await waitFor(settled, { timeoutMs: 60_000, intervalMs: 500, what: "every span counted as dropped" });
      const c = await agg.status();
      assert.equal(c.otlp_spans_exported, 0);
      assert.ok(c.drops_otlp_queue_full! > 0, "more spans than the queue holds");
      assert.ok(c.drops_otlp_failed! > 0);
      // Two tries per batch of at most 100 spans, nothing more.
      assert.equal(c.otlp_requests! % 2, 0);
      assert.ok(c.otlp_requests! / 2 >= Math.ceil(c.drops_otlp_failed! / 100) && c.otlp_requests! / 2 <= c.drops_otlp_failed!, `${c.otlp_requests} requests for ${c.drops_otlp_failed} spans`);
      // The metrics and spans still reached InfluxDB.
      const [s] = await rows(influx.url, db, `SELECT count(span_id) AS n FROM spans`);
      assert.equal(s!.n, c.spans_kept);
      const [web] = await rows(influx.url, db, `SELECT sum(requests) AS n FROM red WHERE service = 'web:27380' AND role = 'server'`);
      assert.equal(web!.n, 600, JSON.stringify(c));
    } finally {
      await agg.stop();
    }
  });
});
