// The live source: the BPF programs through the native addon, decoded batch by batch.
import { NativeProbe, type NativeOptions } from "./native.js";
import { decodeBatch, type DecodeStats } from "./decode.js";
import { KernelFilter, type FilterSpec, EMPTY_FILTER } from "./filter.js";
import { readListenPorts } from "./listen-ports.js";
import type { EventBatch } from "./events.js";
import type { EventSource, SourceStats } from "./source.js";

export interface EbpfSourceOptions extends Partial<NativeOptions> {
  /** Pipeline processes never traced. */
  excludePids?: number[];
  filter?: FilterSpec;
  /** How often the listening-port set (role inference) is refreshed, ms. */
  listenRefreshMs?: number;
}

/**
 * Opens, loads and attaches at construction (throws ProbeError when eBPF is unusable);
 * delivers batches while `run` is active; detaches when `run`'s signal aborts or on `close()`.
 */
export class EbpfSource implements EventSource {
  readonly kind = "ebpf";
  private readonly probe: NativeProbe;
  readonly filter: KernelFilter;
  private handler: ((b: EventBatch) => void) | undefined;
  private readonly decodeStats: DecodeStats = { records: 0, errors: 0 };
  private handlerErrors = 0;
  private undelivered = 0;
  private readonly refreshMs: number;

  constructor(options: EbpfSourceOptions = {}) {
    this.probe = new NativeProbe(options, (buf) => this.onBatch(buf));
    this.filter = new KernelFilter(this.probe);
    try {
      this.probe.setListenPorts(readListenPorts());
      this.filter.excludePids(options.excludePids ?? []);
      this.filter.apply(options.filter ?? EMPTY_FILTER);
    } catch (e) {
      this.probe.close();
      throw e;
    }
    this.refreshMs = options.listenRefreshMs ?? 5_000;
  }

  private rawHandler: ((buf: Buffer) => void) | undefined;

  private onBatch(buf: Buffer): void {
    if (this.rawHandler) {
      try {
        this.rawHandler(buf);
      } catch {
        this.handlerErrors++;
      }
      return;
    }
    const batch = decodeBatch(buf, this.decodeStats);
    if (!this.handler) {
      this.undelivered += batch.conns.length + batch.data.length;
      return;
    }
    try {
      this.handler(batch);
    } catch {
      this.handlerErrors++;
    }
  }

  /** See NativeProbe.setCopyPolicy. */
  setCopyPolicy(connKey: bigint, head: number, tail: number): void {
    this.probe.setCopyPolicy(connKey, head, tail);
  }

  setFilter(f: FilterSpec): void {
    this.filter.apply(f);
  }

  /**
   * Like `run`, but hands over the native batches undecoded (raw-encoder.ts turns them into
   * RawBatch bytes without an object per event). `decodeErrors` reports the consumer's errors.
   */
  async runRaw(onRaw: (buf: Buffer) => void, signal: AbortSignal, decodeStats?: DecodeStats): Promise<void> {
    this.rawHandler = onRaw;
    if (decodeStats) this.externalDecodeStats = decodeStats;
    await this.run(() => {}, signal);
  }

  private externalDecodeStats: DecodeStats | undefined;

  async run(onBatch: (b: EventBatch) => void, signal: AbortSignal): Promise<void> {
    this.handler = onBatch;
    const timer = setInterval(() => this.probe.setListenPorts(readListenPorts()), this.refreshMs);
    timer.unref();
    try {
      if (!signal.aborted) await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    } finally {
      clearInterval(timer);
      this.close();
    }
  }

  stats(): SourceStats {
    const s = this.probe.stats();
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.kernelDrops)) drops[`kernel.${k}`] = v;
    drops["user.js_behind"] = s.droppedEvents;
    drops["user.decode_error"] = this.decodeStats.errors + (this.externalDecodeStats?.errors ?? 0);
    drops["user.handler_error"] = this.handlerErrors;
    drops["user.no_handler"] = this.undelivered;
    return { drops, events: s.events, pending: s.pendingEvents, bytes: s.bytes, connections: s.connections, programs: this.probe.programs };
  }

  /** Detaches the programs. Idempotent. */
  close(): void {
    this.handler = undefined;
    this.rawHandler = undefined;
    this.probe.close();
  }
}
