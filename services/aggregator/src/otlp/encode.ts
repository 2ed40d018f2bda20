// Spans → OTLP ExportTraceServiceRequest (protobuf, messages generated from the official
// opentelemetry-proto definitions in proto/opentelemetry/). One ResourceSpans per service
// (resource attribute service.name), the span's attributes from the one rule in
// core/span-attributes.ts.
import { create, toBinary } from "@bufbuild/protobuf";
import { ExportTraceServiceRequestSchema } from "@wirescope/common/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";
import { ResourceSpansSchema, InstrumentationLibrarySpansSchema, SpanSchema, StatusSchema, Span_SpanKind, Status_StatusCode, type Span } from "@wirescope/common/gen/opentelemetry/proto/trace/v1/trace_pb";
import { KeyValueSchema, AnyValueSchema, type KeyValue } from "@wirescope/common/gen/opentelemetry/proto/common/v1/common_pb";
import { spanAttributes, type AttributeValue } from "../core/span-attributes.js";
import type { SpanRec } from "../core/spans.js";

export const INSTRUMENTATION = { name: "wirescope", version: "0.1.0" };

/** Hex id → bytes ("" → empty: no parent). Ids are written by the aggregator: even length, hex. */
export function hexId(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function keyValue(key: string, v: AttributeValue): KeyValue {
  const value =
    typeof v === "string"
      ? create(AnyValueSchema, { value: { case: "stringValue", value: v } })
      : typeof v === "boolean"
        ? create(AnyValueSchema, { value: { case: "boolValue", value: v } })
        : Number.isInteger(v)
          ? create(AnyValueSchema, { value: { case: "intValue", value: BigInt(v) } })
          : create(AnyValueSchema, { value: { case: "doubleValue", value: v } });
  return create(KeyValueSchema, { key, value });
}

/** One OTLP span. The resource (service, node) is carried by its ResourceSpans. */
export function otlpSpan(s: SpanRec): Span {
  return create(SpanSchema, {
    traceId: hexId(s.traceId),
    spanId: hexId(s.id),
    parentSpanId: hexId(s.parentId),
    name: s.operation ? `${s.operation} ${s.resource}` : s.resource,
    kind: s.kind === "server" ? Span_SpanKind.SERVER : Span_SpanKind.CLIENT,
    startTimeUnixNano: s.startNs,
    endTimeUnixNano: s.startNs + BigInt(Math.round(s.durationMs * 1e6)),
    attributes: spanAttributes(s).filter(([k]) => k !== "host.name").map(([k, v]) => keyValue(k, v)),
    status: create(StatusSchema, { code: s.error ? Status_StatusCode.ERROR : Status_StatusCode.UNSET }),
  });
}

/** The request body for a batch of spans: grouped by (service, node) in first-seen order. */
export function encodeExport(spans: readonly SpanRec[]): Uint8Array {
  const groups = new Map<string, { service: string; node: string; spans: Span[] }>();
  for (const s of spans) {
    const k = `${s.service}\u0000${s.node}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { service: s.service, node: s.node, spans: [] }));
    g.spans.push(otlpSpan(s));
  }
  const req = create(ExportTraceServiceRequestSchema, {
    resourceSpans: [...groups.values()].map((g) =>
      create(ResourceSpansSchema, {
        resource: { attributes: [keyValue("service.name", g.service), ...(g.node ? [keyValue("host.name", g.node)] : [])] },
        instrumentationLibrarySpans: [create(InstrumentationLibrarySpansSchema, { instrumentationLibrary: INSTRUMENTATION, spans: g.spans })],
      }),
    ),
  });
  return toBinary(ExportTraceServiceRequestSchema, req);
}
