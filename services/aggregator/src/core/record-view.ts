// The part of a wirescope.v1.Record the aggregator reads. The generated protobuf-es `Record`
// satisfies it, and so do the lighter objects of decode.ts.

export interface ProcessView {
  pid: number;
  name: string;
  container: string;
  workload: string;
  namespace: string;
}

export interface EndpointView {
  address: string;
  port: number;
  service: string;
  node: string;
  process?: ProcessView | undefined;
}

export interface AttributeView {
  value: { case: string | undefined; value?: unknown };
}

export interface TraceView {
  traceId: Uint8Array;
  parentSpanId: Uint8Array;
}

export interface RecordView {
  protocol: string;
  startNs: bigint;
  durationNs: bigint;
  operation: string;
  resource: string;
  status?: bigint | undefined;
  error: boolean;
  requestBytes: bigint;
  responseBytes: bigint;
  incomplete: boolean;
  trace?: TraceView | undefined;
  attributes: { [key: string]: AttributeView };
  client?: EndpointView | undefined;
  server?: EndpointView | undefined;
  connKey: bigint;
  role: number;
  tid: number;
  node: string;
  /** The probe observed this fraction of new connections when it chose this record's one
   *  (0 or absent: all of them): the record stands for 1 / observedFraction requests. */
  observedFraction?: number;
}
