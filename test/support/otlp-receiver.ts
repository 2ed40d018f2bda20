// An OTLP/HTTP trace receiver (POST /v1/traces, application/x-protobuf), written from the same
// official opentelemetry-proto definitions the aggregator's exporter uses (proto/opentelemetry/).
import http from "node:http";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema } from "@wirescope/wire/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";
import { Status_StatusCode, type Span_SpanKind } from "@wirescope/wire/gen/opentelemetry/proto/trace/v1/trace_pb";
import type { AnyValue } from "@wirescope/wire/gen/opentelemetry/proto/common/v1/common_pb";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** One received span, ids as hex. */
export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: Span_SpanKind;
  error: boolean;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
}

/** Listens on a free loopback port; `url` is the base URL to give as --otlp-endpoint. */
export async function otlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; requests: number; close(): Promise<void> }> {
  const state = { spans: [] as ReceivedSpan[], requests: 0 };
  const value = (v: AnyValue | undefined) => v?.value.value;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || req.headers["content-type"] !== "application/x-protobuf") {
        res.writeHead(404).end();
        return;
      }
      state.requests++;
      const body = fromBinary(ExportTraceServiceRequestSchema, Buffer.concat(chunks));
      for (const rs of body.resourceSpans) {
        const service = String(value(rs.resource?.attributes.find((a) => a.key === "service.name")?.value));
        for (const ls of rs.instrumentationLibrarySpans) {
          assert.equal(ls.instrumentationLibrary?.name, "wirescope");
          for (const s of ls.spans)
            state.spans.push({
              service,
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              parentSpanId: hex(s.parentSpanId),
              name: s.name,
              kind: s.kind,
              error: s.status?.code === Status_StatusCode.ERROR,
              startNs: s.startTimeUnixNano,
              endNs: s.endTimeUnixNano,
              attributes: Object.fromEntries(s.attributes.map((a) => [a.key, value(a.value)])),
            });
        }
      }
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end(Buffer.from(toBinary(ExportTraceServiceResponseSchema, create(ExportTraceServiceResponseSchema, {}))));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get spans() {
      return state.spans;
    },
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

