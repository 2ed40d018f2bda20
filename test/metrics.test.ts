// Prometheus /metrics of a real `wirescope parser`: traffic replayed by the real probe from a
// capture, a malformed raw batch for a counted drop, then /metrics scraped over HTTP and parsed
// with a Prometheus text-format parser. Every Status counter appears under its Prometheus name
// with the same value; the port is on loopback unless told otherwise.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { RawBatchSchema } from "@wirescope/wire";
import { rawSubject, seriesFor } from "@wirescope/runtime";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";
import { useParserBed, startParser, parserStatus, replayWithProbe, type ParserProc } from "./parser-support.js";
import { freePort, waitFor } from "./support/index.js";

interface PromFamily {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => PromFamily[];

const CAPTURE = path.join(SHARED_CAPTURES, "http1/zeek__pipelined-requests.pcap");

async function scrape(address: string): Promise<{ families: PromFamily[]; contentType: string }> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  return { families: parsePrometheus(await res.text()), contentType: res.headers.get("content-type") ?? "" };
}

/** The value of the series `family{labels}` (exact label set apart from component/instance). */
function seriesValue(families: PromFamily[], family: string, labels: Record<string, string>): number | undefined {
  const f = families.find((x) => x.name === family);
  const want = JSON.stringify(Object.entries(labels).sort());
  const m = f?.metrics.find((s) => {
    const { component: _c, instance: _i, ...rest } = s.labels ?? {};
    return JSON.stringify(Object.entries(rest).sort()) === want;
  });
  return m ? Number(m.value) : undefined;
}

describe("Prometheus /metrics of a running parser", () => {
  const bed = useParserBed();

  test("every Status counter is exported with its value, drops by reason, info and process metrics, on loopback", async () => {
    const port = await freePort();
    const p: ParserProc = await startParser(bed.nats.url, ["--metrics-port", String(port)], "parser-metrics");
    bed.procs.push(p);
    const address = `127.0.0.1:${port}`;
    assert.equal((await parserStatus(p)).info["metrics"], `http://${address}/metrics`);

    await replayWithProbe(bed.nats.url, CAPTURE, "metrics-node");
    bed.nc.publish(rawSubject(0), new Uint8Array([0xff, 0xff, 0xff, 0x01])); // not a RawBatch: a counted decode error
    // A partition no parser owns: a counted drop (raw_batches_dropped.not_owner).
    bed.nc.publish(rawSubject(0), toBinary(RawBatchSchema, create(RawBatchSchema, { node: "metrics-node", probeId: "stray", partition: 999, batchSeq: 1n })));
    await bed.nc.flush();

    // Scrape between two identical Status snapshots, so both read the same numbers.
    let status: Record<string, number> = {};
    let families: PromFamily[] = [];
    let contentType = "";
    await waitFor(
      async () => {
        const before = (await parserStatus(p)).counters;
        ({ families, contentType } = await scrape(address));
        status = (await parserStatus(p)).counters;
        return (status["records_published"] ?? 0) > 0 && (status["raw_decode_errors"] ?? 0) > 0 && (status["raw_batches_dropped.not_owner"] ?? 0) > 0 && JSON.stringify(before) === JSON.stringify(status);
      },
      { timeoutMs: 30_000, what: "records published, the malformed batch counted and the counters settled" },
    );
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);

    const names = Object.keys(status);
    assert.ok(names.length > 10, `status has only ${names.length} counters`);
    for (const name of names) {
      // Status does not say which are gauges: exactly one of the two spellings is exported.
      const found = [seriesFor(name, false), seriesFor(name, true)].filter((s) => families.find((x) => x.name === s.family)?.type === s.type.toUpperCase() && seriesValue(families, s.family, s.labels) !== undefined);
      assert.equal(found.length, 1, `${name}: exported as ${JSON.stringify(found)}`);
      assert.equal(seriesValue(families, found[0].family, found[0].labels), status[name], `${name} -> ${found[0].family}${JSON.stringify(found[0].labels)}`);
    }
    // The names users query, spelled out once.
    assert.equal(seriesValue(families, "wirescope_records_published_total", {}), status["records_published"]);
    assert.equal(seriesValue(families, "wirescope_partitions_owned", {}), 64);
    assert.equal(families.find((f) => f.name === "wirescope_partitions_owned")?.type, "GAUGE");
    const decodeErrors = Object.entries(status).filter(([k]) => k.startsWith("raw_decode_errors."));
    assert.ok(decodeErrors.length > 0, "the malformed batch has a reason");
    for (const [k, v] of decodeErrors) assert.equal(seriesValue(families, "wirescope_raw_decode_errors_total", { key: k.slice("raw_decode_errors.".length) }), v);

    assert.equal(seriesValue(families, "wirescope_drops_total", { what: "raw_batches", reason: "not_owner" }), 1);
    const drops = families.find((f) => f.name === "wirescope_drops_total");
    assert.equal(drops?.type, "COUNTER");
    for (const s of drops!.metrics) {
      assert.equal(s.labels?.component, "parser");
      assert.equal(s.labels?.instance, p.instance);
      assert.ok(s.labels?.what && s.labels.reason !== undefined, JSON.stringify(s.labels));
    }

    const info = families.find((f) => f.name === "wirescope_service_info")!.metrics[0].labels!;
    assert.equal(info.component, "parser");
    assert.equal(info.instance, p.instance);
    assert.equal(info.node, "test-node");
    assert.equal(info.grpc, p.grpc);
    assert.equal(seriesValue(families, "wirescope_ready", {}), 1);
    // prom-client's default process metrics, labelled like ours.
    const cpu = families.find((f) => f.name === "process_cpu_user_seconds_total");
    assert.ok(cpu && Number(cpu.metrics[0].value) > 0, "process metrics present");
    assert.equal(cpu.metrics[0].labels?.instance, p.instance);
    assert.ok(families.some((f) => f.name === "nodejs_eventloop_lag_seconds"));

    // Loopback only: the same port on another address of this machine refuses.
    const other = (await import("node:os")).networkInterfaces();
    const external = Object.values(other).flat().find((a) => a && a.family === "IPv4" && !a.internal)?.address;
    if (external) await assert.rejects(fetch(`http://${external}:${port}/metrics`), "bound to 127.0.0.1 only");
    else assert.fail("no non-loopback IPv4 address to check the binding against");
    const missing = await fetch(`http://${address}/other`);
    assert.equal(missing.status, 404);
  });

  test("--metrics-port 0 serves nothing; a taken port costs a warning, not the service", async () => {
    const port = await freePort();
    const off = await startParser(bed.nats.url, ["--metrics-port", "0"], "parser-metrics-off");
    bed.procs.push(off);
    assert.equal((await parserStatus(off)).info["metrics"], undefined);

    const first = await startParser(bed.nats.url, ["--metrics-port", String(port)], "parser-metrics-a");
    bed.procs.push(first);
    const second = await startParser(bed.nats.url, ["--metrics-port", String(port)], "parser-metrics-b");
    bed.procs.push(second);
    const st = await parserStatus(second);
    assert.equal(st.info["metrics"], undefined);
    assert.ok(st.warnings.some((w) => w.startsWith(`metrics port 127.0.0.1:${port} unavailable`)), JSON.stringify(st.warnings));
    const { families } = await scrape(`127.0.0.1:${port}`);
    assert.equal(families.find((f) => f.name === "wirescope_service_info")!.metrics[0].labels!.instance, first.instance);
  });
});
