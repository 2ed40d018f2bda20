// Record builders shared by the aggregator's unit tests, benchmark and integration tests.
import { create } from "@bufbuild/protobuf";
import { RecordSchema, EndpointSchema, ProcessInfoSchema, TraceContextSchema, Role, type Record as WRecord } from "@wirescope/wire";

/** One end: `node` where it runs, `namespace` its process's Kubernetes namespace. */
export interface EndpointSpec {
  service?: string;
  address?: string;
  port?: number;
  pid?: number;
  name?: string;
  node?: string;
  namespace?: string;
}

export interface RecordSpec {
  protocol?: string;
  startMs: number;
  durationMs: number;
  operation?: string;
  resource?: string;
  status?: number;
  error?: boolean;
  role?: "server" | "client";
  client?: EndpointSpec;
  server?: EndpointSpec;
  tid?: number;
  connKey?: bigint;
  node?: string;
  traceId?: string; // 32 hex
  parentSpanId?: string; // 16 hex
}

const hexBytes = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));

function endpoint(e: EndpointSpec | undefined) {
  if (!e) return undefined;
  return create(EndpointSchema, {
    service: e.service ?? "",
    address: e.address ?? "",
    port: e.port ?? 0,
    node: e.node ?? "",
    process: e.pid || e.name ? create(ProcessInfoSchema, { pid: e.pid ?? 0, name: e.name ?? "", namespace: e.namespace ?? "" }) : undefined,
  });
}

/** The ends of one request through curl → front → back → db, every end traced (span tests). */
export const CHAIN_ENDS = {
  user: { service: "curl", address: "127.0.0.1", port: 50000, pid: 1 },
  front: { service: "front", address: "127.0.0.1", port: 8080, pid: 2 },
  frontOut: { service: "front", address: "127.0.0.1", port: 50001, pid: 2 },
  back: { service: "back", address: "127.0.0.1", port: 9090, pid: 3 },
  backOut: { service: "back", address: "127.0.0.1", port: 50002, pid: 3 },
  db: { service: "db", address: "127.0.0.1", port: 3306, pid: 4 },
} as const satisfies Record<string, EndpointSpec>;

/** A wirescope.v1.Record from a compact spec (times in ms, µs resolution). */
export function makeRecord(s: RecordSpec): WRecord {
  return create(RecordSchema, {
    protocol: s.protocol ?? "http",
    startNs: BigInt(Math.round(s.startMs * 1000)) * 1000n,
    durationNs: BigInt(Math.round(s.durationMs * 1000)) * 1000n,
    operation: s.operation ?? "GET",
    resource: s.resource ?? "/",
    status: s.status === undefined ? undefined : BigInt(s.status),
    error: s.error ?? false,
    role: s.role === "client" ? Role.CLIENT : Role.SERVER,
    client: endpoint(s.client),
    server: endpoint(s.server),
    tid: s.tid ?? 0,
    connKey: s.connKey ?? 0n,
    node: s.node ?? "n1",
    trace: s.traceId ? create(TraceContextSchema, { traceId: hexBytes(s.traceId), parentSpanId: s.parentSpanId ? hexBytes(s.parentSpanId) : new Uint8Array(), format: "w3c" }) : undefined,
  });
}

/** Exact quantile with DDSketch's rank convention: the value at index floor(q·(n−1)) of the sorted values. */
export function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}
