// `--source pcap FILE`: replays a capture through the same path as live eBPF events, for machines
// without eBPF and for load tests of the rest of the pipeline. Each TCP connection in the file
// becomes one connection seen from its client's side (dir 0 = egress, dir 1 = ingress); holes in
// the capture become stated gaps, exactly like the probe's per-call limit.
import { CaptureStreams, type StreamSink, type TcpConnection, type CloseReason } from "@wirescope/capture";
import type { ConnRecord, DataRecord, EventBatch } from "./events.js";
import type { EventSource, SourceStats } from "./source.js";

export interface PcapSourceOptions {
  file: string;
  /** 0 = as fast as possible; 1 = the capture's own pace; 2 = twice as fast. */
  speed: number;
  /** Replays of the file (each with fresh connection keys). */
  loops: number;
  /** High bits of the connection keys. */
  connKeyBase: bigint;
  /** Payload bytes per batch handed on. */
  batchBytes: number;
}

interface ConnState {
  key: bigint;
  seq: [bigint, bigint];
  open: ConnRecord;
}

export class PcapSource implements EventSource {
  readonly kind = "pcap";
  private readonly o: PcapSourceOptions;
  private nextKey = 1n;
  private events = 0;
  private bytes = 0;
  private live = 0;
  private gaps = 0;

  constructor(options: Partial<PcapSourceOptions> & { file: string }) {
    this.o = { speed: 0, loops: 1, connKeyBase: 0n, batchBytes: 256 << 10, ...options };
    // fail now (construction) when the file is not a capture
    CaptureStreams.open(this.o.file, { open() {}, data() {}, gap() {}, close() {} }).reader.close();
  }

  stats(): SourceStats {
    return { drops: { "pcap.gap_bytes": this.gaps }, events: this.events, bytes: this.bytes, connections: this.live, programs: [] };
  }

  async run(onBatch: (b: EventBatch) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    for (let loop = 0; loop < this.o.loops && !signal.aborted; loop++) await this.once(onBatch, signal);
  }

  private async once(onBatch: (b: EventBatch) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    let batch: EventBatch = { conns: [], data: [] };
    let batchBytes = 0;
    let firstTs: bigint | undefined;
    const started = process.hrtime.bigint();
    const self = this;
    const conns = new Map<TcpConnection, ConnState>();
    const base = (c: TcpConnection, ts: bigint): Omit<ConnRecord, "kind"> => ({
      connKey: 0n, tgid: 0, tid: 0, tsMono: ts, cgroupId: 0n, family: c.family,
      localAddress: c.addrA, localPort: c.portA, remoteAddress: c.addrB, remotePort: c.portB,
      role: c.clientKnown ? 1 : 0, inferred: !c.clientKnown, tls: false, tlsLibrary: "", fd: 0, comm: "", sentBytes: 0n, recvBytes: 0n,
    });
    const push = (d: DataRecord) => {
      batch.data.push(d);
      batchBytes += d.payload.length + 64;
      this.events++;
      this.bytes += d.payload.length;
    };
    const sink: StreamSink = {
      open(c) {
        const key = self.o.connKeyBase | self.nextKey++;
        const open: ConnRecord = { ...base(c, c.startNs), kind: "open", connKey: key };
        conns.set(c, { key, seq: [0n, 0n], open });
        batch.conns.push(open);
        self.live++;
        self.events++;
      },
      data(c, dir, bytes, ts) {
        const s = conns.get(c);
        if (!s) return;
        firstTs ??= ts;
        push({ connKey: s.key, tgid: 0, tid: 0, tsMono: ts, direction: dir === 0 ? 1 : 2, seq: s.seq[dir], originalLength: bytes.length, payload: Buffer.from(bytes), syscall: 0, fd: 0 });
        s.seq[dir] += BigInt(bytes.length);
      },
      gap(c, dir, len, ts) {
        const s = conns.get(c);
        if (!s) return;
        push({ connKey: s.key, tgid: 0, tid: 0, tsMono: ts, direction: dir === 0 ? 1 : 2, seq: s.seq[dir], originalLength: len, payload: new Uint8Array(0), syscall: 0, fd: 0 });
        s.seq[dir] += BigInt(len);
        self.gaps += len;
      },
      close(c, _reason: CloseReason, ts) {
        const s = conns.get(c);
        if (!s) return;
        conns.delete(c);
        self.live--;
        self.events++;
        batch.conns.push({ ...s.open, kind: "close", tsMono: ts, sentBytes: s.seq[0], recvBytes: s.seq[1] });
      },
    };
    const streams = CaptureStreams.open(this.o.file, sink);
    let more = true;
    while (more && !signal.aborted) {
      more = streams.step(256);
      if (batchBytes >= this.o.batchBytes || !more || batch.conns.length > 1000) {
        const b = batch;
        batch = { conns: [], data: [] };
        batchBytes = 0;
        if (this.o.speed > 0 && firstTs !== undefined) {
          const last = b.data.length ? b.data[b.data.length - 1].tsMono : firstTs;
          const due = Number(last - firstTs) / this.o.speed;
          const now = Number(process.hrtime.bigint() - started);
          if (due > now) await sleep((due - now) / 1e6, signal);
        }
        await onBatch(b);
      }
      // let timers, NATS and gRPC run between steps
      await new Promise((r) => setImmediate(r));
    }
    if (!more) return;
    streams.reader.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}
