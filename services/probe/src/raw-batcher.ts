// Turns decoded events into RawBatch messages, one per partition (pure: no NATS here).
// The connection key decides the partition, so all of a connection's events go to one parser in
// order. Kernel/user drops are reported in the `drops` map of the next batch published after
// they happened (the sum over all partitions' batches is the probe's total).
import { create } from "@bufbuild/protobuf";
import {
  RawBatchSchema, ConnEventSchema, DataEventSchema, ProcessInfoSchema, ConnKind,
  type RawBatch, type ConnEvent, type DataEvent,
} from "@wirescope/common";
import type { EventBatch, ConnRecord } from "./events.js";
import type { ProcessCache } from "./process-info.js";

export interface RawBatcherOptions {
  node: string;
  probeId: string;
  /** conn_key -> partition (the shared hash of @wirescope/common's partition.ts). */
  partition: (connKey: bigint) => number;
  /** Monotonic ns -> wall clock ns since the epoch. */
  toWall: (mono: bigint) => bigint;
  processes: ProcessCache;
  /** Payload bytes per RawBatch before starting another one (NATS max_payload is 1 MiB by default). */
  maxBatchBytes: number;
}

/** CLOCK_MONOTONIC (what the kernel stamps) to wall clock, measured once. */
export function monoToWallClock(): (mono: bigint) => bigint {
  const offset = monoToWallOffset();
  return (mono) => mono + offset;
}

/** Wall clock minus CLOCK_MONOTONIC, ns (process.hrtime is CLOCK_MONOTONIC on Linux). */
export function monoToWallOffset(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}

export class RawBatcher {
  private readonly o: RawBatcherOptions;
  private readonly batchSeq = new Map<number, bigint>();
  private pendingDrops: Record<string, number> = {};

  constructor(options: RawBatcherOptions) {
    this.o = options;
  }

  /** Adds drops (by reason) to report in the next batch. */
  addDrops(drops: Record<string, number>): void {
    for (const [k, v] of Object.entries(drops)) if (v > 0) this.pendingDrops[k] = (this.pendingDrops[k] ?? 0) + v;
  }

  connEvent(c: ConnRecord): ConnEvent {
    const p = this.o.processes.get(c.tgid, c.comm);
    const proc = create(ProcessInfoSchema, {
      pid: c.tgid, name: p.name || c.comm, exe: p.exe, cmdline: p.cmdline, containerId: p.containerId,
      pod: p.pod, namespace: p.namespace, container: p.container, workload: p.workload,
    });
    return create(ConnEventSchema, {
      connKey: c.connKey,
      kind: c.kind === "open" ? ConnKind.OPEN : ConnKind.CLOSE,
      role: c.role,
      localAddress: c.localAddress,
      localPort: c.localPort,
      remoteAddress: c.remoteAddress,
      remotePort: c.remotePort,
      pid: c.tgid,
      tid: c.tid,
      processName: proc.name,
      containerId: p.containerId,
      pod: p.pod,
      namespace: p.namespace,
      timestampNs: this.o.toWall(c.tsMono),
      process: proc,
      inferred: c.inferred,
      tls: c.tls,
      tlsLibrary: c.tlsLibrary,
      // 1 is the proto default (0): only a sampled connection carries its fraction
      observedFraction: c.observedFraction !== undefined && c.observedFraction < 1 ? c.observedFraction : 0,
      shed: c.shed ?? "",
    });
  }

  /** Groups one batch of events into RawBatch messages keyed by partition. */
  build(batch: EventBatch): { partition: number; batch: RawBatch }[] {
    const open = new Map<number, { b: RawBatch; bytes: number }>();
    const out: { partition: number; batch: RawBatch }[] = [];
    const get = (part: number, bytes: number) => {
      let cur = open.get(part);
      if (cur && cur.bytes + bytes > this.o.maxBatchBytes && (cur.b.data.length || cur.b.conns.length)) {
        out.push({ partition: part, batch: cur.b });
        cur = undefined;
      }
      if (!cur) {
        cur = { b: this.newBatch(part), bytes: 0 };
        open.set(part, cur);
      }
      cur.bytes += bytes;
      return cur.b;
    };
    // Opens first, then data, then closes: within a partition the parser sees a connection
    // before its bytes and its end after them.
    for (const c of batch.conns) if (c.kind === "open") get(this.o.partition(c.connKey), 128).conns.push(this.connEvent(c));
    for (const d of batch.data) {
      const ev: DataEvent = create(DataEventSchema, {
        connKey: d.connKey,
        direction: d.direction,
        seq: d.seq,
        timestampNs: this.o.toWall(d.tsMono),
        tid: d.tid,
        payload: d.payload,
        originalLength: d.originalLength,
      });
      get(this.o.partition(d.connKey), d.payload.length + 40).data.push(ev);
    }
    for (const c of batch.conns) if (c.kind === "close") get(this.o.partition(c.connKey), 128).conns.push(this.connEvent(c));
    for (const [part, cur] of open) out.push({ partition: part, batch: cur.b });
    for (const o of out) {
      o.batch.batchSeq = this.nextSeq(o.partition);
      this.takeDrops(o.batch);
    }
    return out;
  }

  /**
   * A RawBatch with everything but the data events (raw-encoder.ts appends those as bytes):
   * identity, the next batch_seq of the partition, pending drops.
   */
  header(partition: number, conns: ConnEvent[]): RawBatch {
    const b = this.newBatch(partition);
    b.conns = conns;
    b.batchSeq = this.nextSeq(partition);
    this.takeDrops(b);
    return b;
  }

  /**
   * The next batch_seq of a partition for a header that holds identity and batch_seq only, or
   * undefined when drops are pending: `header` then reports them.
   */
  plainSeq(partition: number): bigint | undefined {
    for (const _ in this.pendingDrops) return undefined;
    return this.nextSeq(partition);
  }

  private takeDrops(b: RawBatch): void {
    if (!Object.keys(this.pendingDrops).length) return;
    for (const [k, v] of Object.entries(this.pendingDrops)) b.drops[k] = BigInt(v);
    this.pendingDrops = {};
  }

  /** A RawBatch with only the identity fields (node, probe_id). */
  identity(): RawBatch {
    return create(RawBatchSchema, { node: this.o.node, probeId: this.o.probeId });
  }

  private newBatch(partition: number): RawBatch {
    return create(RawBatchSchema, { node: this.o.node, probeId: this.o.probeId, partition });
  }

  private nextSeq(partition: number): bigint {
    const s = (this.batchSeq.get(partition) ?? 0n) + 1n;
    this.batchSeq.set(partition, s);
    return s;
  }
}
