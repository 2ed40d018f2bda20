// The probe's events in TypeScript form, as decoded from the native batches (decode.ts) or
// synthesized from a pcap replay (pcap-source.ts). Timestamps are CLOCK_MONOTONIC ns (`tsMono`)
// as the kernel gives them; wall clock is derived once per probe (clock.ts).

export type ConnKindName = "open" | "close";

/** A connection opened (connect/accept, or first seen) or closed. */
export interface ConnRecord {
  kind: ConnKindName;
  connKey: bigint;
  tgid: number;
  tid: number;
  tsMono: bigint;
  cgroupId: bigint;
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** wirescope.v1.Role: 0 unknown, 1 client, 2 server */
  role: number;
  /** The connection predates the probe; its role was inferred. */
  inferred: boolean;
  fd: number;
  /** Thread-group leader's comm. */
  comm: string;
  /** The data of this connection is the plaintext of a TLS library (a second open of the key
   *  announces it: seq starts again at 0). */
  tls: boolean;
  /** That library ("openssl"), or "". */
  tlsLibrary: string;
  /** Open: the first of its process the kernel sent (WS_CONN_F_NEW_PROC): it alone woke the
   *  consumer at once, so that the process's /proc entry is read while it exists. */
  firstOfProcess?: boolean;
  /** Open: the fraction of new connections observed when this one was decided (1 when every
   *  one is; undefined means 1). */
  observedFraction?: number;
  /** Close: the probe stopped observing this connection, which may stay open (a fairness
   *  budget): the reason (bpf/wirescope.h WS_SHED_REASONS). */
  shed?: string;
  /** Totals at close (0 on open). */
  sentBytes: bigint;
  recvBytes: bigint;
}

/** Bytes one process moved through one connection in one direction. */
export interface DataRecord {
  connKey: bigint;
  tgid: number;
  tid: number;
  tsMono: bigint;
  /** wirescope.v1.Direction: 1 egress, 2 ingress */
  direction: number;
  /** Bytes of this direction before this event. */
  seq: bigint;
  /** Bytes this event stands for; payload.length may be smaller (the rest is a gap). */
  originalLength: number;
  /** A view into the batch buffer: copy it if it must outlive the batch handler. */
  payload: Uint8Array;
  syscall: number;
  fd: number;
}

/** What a source (eBPF or pcap replay) hands the rest of the probe, one batch at a time. */
export interface EventBatch {
  conns: ConnRecord[];
  data: DataRecord[];
}
