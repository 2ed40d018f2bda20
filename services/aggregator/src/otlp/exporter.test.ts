import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fromBinary, equals } from "@bufbuild/protobuf";
import { waitFor } from "@wirescope/runtime";
import { ExportTraceServiceRequestSchema } from "@wirescope/wire/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";
import { Span_SpanKind, Status_StatusCode } from "@wirescope/wire/gen/opentelemetry/proto/trace/v1/trace_pb";
import type { SpanRec } from "../core/spans.js";
import { OtlpExporter, tracesUrl, defaultOtlpOptions, type SendResult } from "./exporter.js";
import { encodeExport, encodeExportReference, hexId } from "./encode.js";

function span(i: number, p: Partial<SpanRec> = {}): SpanRec {
  return {
    id: (0x1000 + i).toString(16).padStart(16, "0"),
    baseId: "",
    kind: "server",
    service: "api:8080",
    peer: "web:80",
    protocol: "http1",
    operation: "GET",
    resource: "/items/{id}",
    startNs: 1_700_000_000_000_000_000n + BigInt(i) * 1000n,
    startMs: 1_700_000_000_000,
    endMs: 1_700_000_000_002.5,
    durationMs: 2.5,
    status: 200,
    error: false,
    node: "n1",
    namespace: "",
    pid: 1,
    tid: 1,
    tuple: "",
    hTrace: "",
    hParent: "",
    series: {},
    window: 0,
    clientAddress: "10.0.0.1",
    clientPort: 40000,
    serverAddress: "10.0.0.2",
    serverPort: 8080,
    requestBytes: 10,
    responseBytes: 20,
    incomplete: false,
    tls: false,
    parent: null,
    parentId: "",
    traceId: "0af7651916cd43dd8448eb211c80319c",
    linkedBy: "",
    state: 2,
    ...p,
  } as SpanRec;
}

const spans = (n: number) => Array.from({ length: n }, (_, i) => span(i));
const decode = (b: Uint8Array) => fromBinary(ExportTraceServiceRequestSchema, b);
const countSpans = (b: Uint8Array) => decode(b).resourceSpans.reduce((a, r) => a + r.instrumentationLibrarySpans.reduce((x, l) => x + l.spans.length, 0), 0);
const noSleep = () => Promise.resolve();
const balanced = (e: OtlpExporter) => e.counters.spansExported + e.counters.dropsQueueFull + e.counters.dropsFailed + e.counters.dropsRejected + e.queued;

describe("encodeExport", () => {
  it("writes ids as bytes, the parent, kind, status, times and OpenTelemetry attributes, one resource per service", () => {
    const child = span(1, { kind: "client", service: "web:80", parentId: "00000000000000aa", protocol: "grpc", operation: "GetItem", resource: "/shop.Items/GetItem", status: 2, error: true });
    const req = decode(encodeExport([span(0), child]));
    assert.equal(req.resourceSpans.length, 2);
    const web = req.resourceSpans.find((r) => r.resource!.attributes.some((a) => a.key === "service.name" && a.value!.value.value === "web:80"))!;
    const s = web.instrumentationLibrarySpans[0]!.spans[0]!;
    assert.deepEqual(s.traceId, hexId("0af7651916cd43dd8448eb211c80319c"));
    assert.equal(s.traceId.length, 16);
    assert.deepEqual(s.spanId, hexId(child.id));
    assert.deepEqual(s.parentSpanId, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0xaa));
    assert.equal(s.kind, Span_SpanKind.CLIENT);
    assert.equal(s.status!.code, Status_StatusCode.ERROR);
    assert.equal(s.endTimeUnixNano - s.startTimeUnixNano, 2_500_000n);
    assert.equal(s.name, "GetItem /shop.Items/GetItem");
    const attrs = Object.fromEntries(s.attributes.map((a) => [a.key, a.value!.value.value]));
    assert.equal(attrs["rpc.system"], "grpc");
    assert.equal(attrs["rpc.service"], "shop.Items");
    assert.equal(attrs["rpc.grpc.status_code"], 2n);
    assert.equal(attrs["server.port"], 8080n);
    const root = req.resourceSpans.find((r) => r !== web)!.instrumentationLibrarySpans[0]!.spans[0]!;
    assert.equal(root.parentSpanId.length, 0, "a root has no parent");
    assert.equal(root.status!.code, Status_StatusCode.UNSET);
  });
});

describe("encodeExport against the protobuf-es reference", () => {
  it("writes the same message for every kind of span (roots, errors, each protocol, several resources)", () => {
    const protocols = ["http1", "http2", "grpc", "mysql", "postgresql", "redis", "kafka", "amqp"];
    const batch = Array.from({ length: 64 }, (_, i) =>
      span(i, {
        protocol: protocols[i % protocols.length]!,
        service: `svc${i % 3}`,
        node: i % 5 === 0 ? "" : `n${i % 2}`,
        kind: i % 2 ? "client" : "server",
        parentId: i % 4 === 0 ? "" : (0x2000 + i).toString(16).padStart(16, "0"),
        error: i % 7 === 0,
        status: i % 6 === 0 ? undefined : 200 + i,
        incomplete: i % 9 === 0,
        linkedBy: i % 3 === 0 ? "" : "tcp",
        operation: i % 8 === 0 ? "" : "OP",
        durationMs: 0.001 * i + 1.2345,
        resource: `/r/${i}/ü`,
      }),
    );
    const fast = decode(encodeExport(batch));
    const ref = decode(encodeExportReference(batch));
    assert.ok(equals(ExportTraceServiceRequestSchema, fast, ref));
    assert.equal(countSpans(encodeExport(batch)), 64);
    assert.ok(!equals(ExportTraceServiceRequestSchema, decode(encodeExport(batch.slice(1))), ref), "a different batch differs");
  });
});

describe("OtlpExporter", () => {
  it("sends batches of at most batchSize, every span once", async () => {
    const bodies: Uint8Array[] = [];
    const e = new OtlpExporter(async (b) => (bodies.push(b), "ok"), { ...defaultOtlpOptions, batchSize: 512, flushMs: 10 }, noSleep);
    e.offer(spans(700));
    e.offer(spans(600));
    await e.drain(5000);
    assert.deepEqual(bodies.map(countSpans), [512, 512, 276]);
    assert.equal(e.counters.spansExported, 1300);
    assert.equal(balanced(e), e.counters.spansIn);
  });

  it("a partial batch goes out after flushMs", async () => {
    let sent = 0;
    const e = new OtlpExporter(async (b) => ((sent += countSpans(b)), "ok"), { ...defaultOtlpOptions, flushMs: 20 }, noSleep);
    e.offer(spans(3));
    assert.equal(sent, 0);
    await waitFor(() => sent === 3, { timeoutMs: 10_000, intervalMs: 5, what: "the partial batch sent" });
  });

  it("collector down: the queue stays bounded, what does not fit and what failed every try is counted", async () => {
    let requests = 0;
    const down = async (): Promise<SendResult> => (requests++, "retry");
    const e = new OtlpExporter(down, { ...defaultOtlpOptions, batchSize: 50, queueSize: 100, maxTries: 3, flushMs: 10 }, noSleep);
    for (let i = 0; i < 10; i++) e.offer(spans(100));
    assert.ok(e.queued <= 100);
    await e.drain(5000);
    assert.equal(e.counters.spansExported, 0);
    assert.ok(e.counters.dropsQueueFull >= 800, `queue full: ${e.counters.dropsQueueFull}`);
    assert.ok(e.counters.dropsFailed > 0);
    assert.equal(balanced(e), 1000, "every span exported, dropped or queued");
    // Bounded work: maxTries requests per batch that left the queue.
    assert.equal(requests, 3 * (e.counters.dropsFailed / 50));
  });

  it("a refused batch (4xx) is dropped at once and counted", async () => {
    let requests = 0;
    const e = new OtlpExporter(async () => (requests++, "rejected"), { ...defaultOtlpOptions, batchSize: 10, flushMs: 10 }, noSleep);
    e.offer(spans(25));
    await e.drain(5000);
    assert.equal(e.counters.dropsRejected, 25);
    assert.equal(requests, 3);
  });

  it("stop counts what is still queued", async () => {
    const e = new OtlpExporter(async () => "ok", { ...defaultOtlpOptions, flushMs: 60_000 }, noSleep);
    e.offer(spans(7));
    await e.stop();
    assert.equal(e.counters.dropsFailed, 7);
    assert.equal(balanced(e), 7);
  });

  it("tracesUrl adds /v1/traces to a base URL only", () => {
    assert.equal(tracesUrl("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
    assert.equal(tracesUrl("http://c:4318/custom/traces"), "http://c:4318/custom/traces");
  });
});
