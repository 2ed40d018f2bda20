// The attributes of a span under OpenTelemetry semantic-convention names: the one rule for both
// outlets that show them, the `tags` field of the `spans` measurement (what Grafana's trace view
// lists) and the OTLP exporter.
//
// The resource is the normalized one (`/items/{id}`, `SELECT * FROM t WHERE id = ?`): it is what
// the span is named by, so HTTP gets `http.route` and databases get the fingerprint as
// `db.query.text` (no literal ever leaves the aggregator).
import type { SpanRec } from "./spans.js";

export type AttributeValue = string | number | boolean;

/** Key/value pairs in a fixed order (per protocol, then the connection's ends). */
export function spanAttributes(s: SpanRec): [string, AttributeValue][] {
  const a: [string, AttributeValue][] = [];
  switch (s.protocol) {
    case "http":
    case "http1":
    case "http2":
    case "https":
      if (s.operation) a.push(["http.request.method", s.operation]);
      if (s.resource) a.push(["http.route", s.resource]);
      if (s.status !== undefined) a.push(["http.response.status_code", s.status]);
      break;
    case "grpc": {
      a.push(["rpc.system", "grpc"]);
      // "/pkg.Service/Method"
      const m = /^\/([^/]+)\/([^/]+)$/.exec(s.resource);
      if (m) a.push(["rpc.service", m[1]!], ["rpc.method", m[2]!]);
      if (s.status !== undefined) a.push(["rpc.grpc.status_code", s.status]);
      break;
    }
    case "mysql":
    case "postgres":
    case "postgresql":
    case "redis":
      a.push(["db.system", s.protocol === "postgres" ? "postgresql" : s.protocol]);
      if (s.operation) a.push(["db.operation.name", s.operation]);
      if (s.resource && s.protocol !== "redis") a.push(["db.query.text", s.resource]);
      if (s.status !== undefined) a.push(["db.response.status_code", String(s.status)]);
      break;
    case "kafka":
      a.push(["messaging.system", "kafka"]);
      if (s.operation) a.push(["messaging.operation.name", s.operation]);
      if (s.resource) a.push(["messaging.destination.name", s.resource]);
      if (s.status !== undefined) a.push(["messaging.kafka.error_code", s.status]);
      break;
    default:
      if (s.operation) a.push(["wirescope.operation", s.operation]);
      if (s.resource) a.push(["wirescope.resource", s.resource]);
      if (s.status !== undefined) a.push(["wirescope.status", s.status]);
  }
  a.push(["network.protocol.name", s.protocol]);
  if (s.serverAddress) a.push(["server.address", s.serverAddress]);
  if (s.serverPort) a.push(["server.port", s.serverPort]);
  if (s.clientAddress) a.push(["client.address", s.clientAddress]);
  if (s.clientPort) a.push(["client.port", s.clientPort]);
  if (s.peer) a.push(["peer.service", s.peer]);
  if (s.error) a.push(["error.type", s.status !== undefined ? String(s.status) : "error"]);
  if (s.incomplete) a.push(["wirescope.incomplete", true]);
  if (s.tls) a.push(["tls.established", true]);
  if (s.linkedBy) a.push(["wirescope.linked_by", s.linkedBy]);
  return a;
}

/** What the span's process is: OpenTelemetry resource attributes (OTLP's Resource, Grafana's serviceTags). */
export function resourceAttributes(service: string, node: string): [string, AttributeValue][] {
  return node ? [["service.name", service], ["host.name", node]] : [["service.name", service]];
}

const asJson = (a: [string, AttributeValue][]) => JSON.stringify(a.map(([key, value]) => ({ key, value })));

/** The attributes as Grafana's trace view reads a span's `tags`: a JSON array of {key, value}. */
export function spanTagsJson(s: SpanRec): string {
  return asJson(spanAttributes(s));
}

/** The resource attributes as Grafana's trace view reads a span's `serviceTags`. */
export function serviceTagsJson(s: SpanRec): string {
  return asJson(resourceAttributes(s.service, s.node));
}
