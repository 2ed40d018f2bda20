// The live source: the BPF programs through the native addon, decoded batch by batch.
import { NativeProbe, type NativeOptions, type ShedConfig, type ShedStats } from "./native.js";
import { decodeBatch, type DecodeStats } from "./decode.js";
import { KernelFilter, type FilterSpec, EMPTY_FILTER } from "./filter.js";
import { listenPorts, readListenPorts } from "./listen-ports.js";
import { NetnsProcRoot } from "./netns.js";
import { TlsLibraries } from "./tls-libraries.js";
import { TlsExecutables } from "./tls-executables.js";
import { GoTlsHandler } from "./go-tls.js";
import { OpenSslExecutableHandler } from "./openssl-exe.js";
import type { EventBatch } from "./events.js";
import type { EventSource, SourceStats } from "./source.js";

export interface EbpfSourceOptions extends Partial<NativeOptions> {
  /** Pipeline processes never traced. */
  excludePids?: number[];
  filter?: FilterSpec;
  /** How often the listening-port set (role inference) is refreshed, ms. */
  listenRefreshMs?: number;
  /** Plaintext of TLS libraries through uprobes (default true). */
  tls?: boolean;
  /** A TLS library file that could not be attached, or that the probe cannot read (once per file). */
  onTlsError?: (path: string, error: string) => void;
  /**
   * A process the events already named ran exec (WS_EV_PROC_EXEC) at `tsMono` (the events' clock):
   * its identity from then on is the new program's (ProcessCache.exec).
   */
  onProcessExec?: (tgid: number, tsMono: bigint) => void;
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
  /** TLS library or executable notices whose handling threw. */
  private noticeErrors = 0;
  private undelivered = 0;
  private closed = false;
  private readonly refreshMs: number;
  /** A node's probe: where its namespace's /proc/net is read (a process living there). */
  private readonly nodeProc: NetnsProcRoot | undefined;

  /** TLS library files with uprobes (undefined when TLS is off). */
  readonly tls: TlsLibraries | undefined;
  /** Executables with TLS linked in (Go crypto/tls, OpenSSL in node) with uprobes (undefined when TLS is off). */
  readonly tlsExecutables: TlsExecutables | undefined;

  constructor(options: EbpfSourceOptions = {}) {
    const tlsOn = options.tls ?? true;
    // Loaded with only the announcement programs attached: the data and lifecycle programs are
    // attached last (below), once the listening ports, the filters and the TLS uprobes of every
    // library and executable running now are in place. Attached first, they saw connections of
    // that window with no role (no listening ports yet), traffic the filters exclude, and TLS
    // connections as ciphertext whose library was not probed yet (docs/probe.md, "Start").
    const onProcessExec = options.onProcessExec;
    this.probe = new NativeProbe({ ...options, deferAttach: true }, (buf) => this.onBatch(buf), tlsOn || onProcessExec
      ? (n) => {
          // notices still queued when the probe closes find no probe to attach to: dropped; an
          // error while handling one is counted, never thrown into the addon's callback
          if (this.closed) return;
          try {
            if (n.procExec) onProcessExec?.(n.tgid, n.ts ?? 0n);
            else if (n.exec) this.tlsExecutables?.onExec(n.tgid, n.dev, n.ino, n.filename ?? "");
            else this.tls?.onMapped(n.tgid, n.dev, n.ino);
          } catch {
            this.noticeErrors++;
          }
        }
      : undefined);
    this.filter = new KernelFilter(this.probe);
    this.nodeProc = options.netnsIno ? new NetnsProcRoot(options.netnsIno) : undefined;
    try {
      this.refreshListenPorts();
      this.filter.excludePids(options.excludePids ?? []);
      this.filter.apply(options.filter ?? EMPTY_FILTER);
      // the mmap and exec announcements are on from load: a process starting during a scan is not missed
      if (tlsOn) {
        this.tls = new TlsLibraries({ attach: (p, dev, ino, lib) => this.probe.attachTls(p, dev, ino, lib), markKnown: (dev, ino) => this.probe.markTlsKnown(dev, ino) }, options.onTlsError);
        this.tls.scanAll();
        // the attach table of TLS linked into executables: one row per implementation
        // (ino 0: an executable is remembered in exec_known, not in tls_libs_known)
        const openssl = new OpenSslExecutableHandler((path, lib) => this.probe.attachTls(path, 0, 0, lib));
        this.tlsExecutables = new TlsExecutables(this.probe, [new GoTlsHandler(), openssl], options.onTlsError);
        this.tlsExecutables.scanAll();
      }
      this.probe.attach();
    } catch (e) {
      this.probe.close();
      throw e;
    }
    this.refreshMs = options.listenRefreshMs ?? 5_000;
  }

  /** Listening ports of the traced namespace: the probe's own, or its node's (none known while
   *  no process lives there). */
  private refreshListenPorts(): void {
    // sock_diag answers for the probe's own namespace only: a node's ports come from its /proc
    if (!this.nodeProc) {
      this.probe.setListenPorts(listenPorts());
      return;
    }
    const root = this.nodeProc.current();
    this.probe.setListenPorts(root ? readListenPorts(root) : []);
  }

  private rawHandler: ((buf: Buffer) => void) | undefined;

  /**
   * Batches that arrive between attach and `run` (the service is still connecting to NATS and
   * opening its control port): kept, up to a bound, and handed over when `run` starts, so the
   * first requests after start-up are not lost. Past the bound they count as `user.no_handler`.
   */
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private static readonly EARLY_MAX_BYTES = 32 << 20;

  /** True when nothing keeps a view into `buf` (the addon then reuses its memory at once). */
  private onBatch(buf: Buffer): boolean {
    if (!this.rawHandler && !this.handler && !this.closed) {
      if (this.earlyBytes + buf.length <= EbpfSource.EARLY_MAX_BYTES) {
        this.early.push(buf);
        this.earlyBytes += buf.length;
        return false;
      }
    }
    return this.deliver(buf);
  }

  private deliver(buf: Buffer): boolean {
    if (this.rawHandler) {
      // the raw consumer copies what it keeps (raw-encoder.ts): the batch is free after it
      try {
        this.rawHandler(buf);
      } catch {
        this.handlerErrors++;
      }
      return true;
    }
    // decoded events' payloads are views into the batch, which the handler may keep
    const batch = decodeBatch(buf, this.decodeStats);
    if (!this.handler) {
      this.undelivered += batch.conns.length + batch.data.length;
      return true;
    }
    try {
      this.handler(batch);
    } catch {
      this.handlerErrors++;
    }
    return false;
  }

  /** See NativeProbe.setCopyPolicy. */
  setCopyPolicy(connKey: bigint, policy?: Uint8Array): void {
    this.probe.setCopyPolicy(connKey, policy);
  }

  /** See NativeProbe.setCopyPolicies. */
  setCopyPolicies(keys: Uint8Array, policies: Uint8Array): void {
    this.probe.setCopyPolicies(keys, policies);
  }

  /** See NativeProbe.setShedConfig. */
  setShedConfig(c: ShedConfig): void {
    this.probe.setShedConfig(c);
  }

  shedStats(): ShedStats {
    return this.probe.shedStats();
  }

  /** See NativeProbe.shedServed. */
  shedServed(): number[] {
    return this.probe.shedServed();
  }

  ringFill(): number {
    return this.probe.ringFill();
  }

  setFilter(f: FilterSpec): void {
    this.filter.apply(f);
  }

  /**
   * Like `run`, but hands over the native batches undecoded (raw-encoder.ts turns them into
   * RawBatch bytes without an object per event). `onRaw` must not keep the Buffer or a view into
   * it past its return: the batch's memory is reused. `decodeErrors` reports the consumer's errors.
   */
  async runRaw(onRaw: (buf: Buffer) => void, signal: AbortSignal, decodeStats?: DecodeStats): Promise<void> {
    this.rawHandler = onRaw;
    if (decodeStats) this.externalDecodeStats = decodeStats;
    await this.run(() => {}, signal);
  }

  private externalDecodeStats: DecodeStats | undefined;

  async run(onBatch: (b: EventBatch) => void, signal: AbortSignal): Promise<void> {
    this.handler = onBatch;
    const early = this.early;
    this.early = [];
    this.earlyBytes = 0;
    for (const b of early) this.deliver(b);
    const timer = setInterval(() => this.refreshListenPorts(), this.refreshMs);
    timer.unref();
    try {
      if (!signal.aborted) await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    } finally {
      clearInterval(timer);
      // the batches the poller queued before it stopped (its last flush included) still reach
      // the handler: `wirescope capture` and the probe service lose nothing at a stop
      await this.probe.closeDrained();
      this.close();
    }
  }

  stats(connections = true): SourceStats {
    const s = this.probe.stats(connections);
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.kernelDrops)) drops[`kernel.${k}`] = v;
    drops["user.js_behind"] = s.droppedEvents;
    drops["user.decode_error"] = this.decodeStats.errors + (this.externalDecodeStats?.errors ?? 0);
    drops["user.handler_error"] = this.handlerErrors;
    drops["user.no_handler"] = this.undelivered;
    let tls: Record<string, number> | undefined;
    if (this.tls) {
      const t = this.probe.tlsStats();
      tls = { ...t.counters, uprobe_links: t.links, notices_dropped: t.noticesDropped, libraries_attached: this.tls.stats.attached,
        libraries_failed: this.tls.stats.failed, libraries_unsupported: this.tls.stats.unsupported, notices_repeated: this.tls.stats.repeats, notices_gone: this.tls.stats.gone, notice_errors: this.noticeErrors };
      const x = this.tlsExecutables?.stats;
      if (x) {
        Object.assign(tls, { execs_inspected: x.inspected, execs_gone: x.gone, execs_unreadable: x.unreadable, execs_repeated: x.repeats });
        for (const [h, c] of Object.entries(x.byHandler)) {
          Object.assign(tls, { [`${h}.binaries_attached`]: c.attached, [`${h}.binaries_unsupported`]: c.unsupported, [`${h}.attach_failed`]: c.attach_failed });
        }
      }
    }
    return { drops, events: s.events, pending: s.pendingEvents, bytes: s.bytes, connections: s.connections, programs: this.probe.programs, tls };
  }

  /** Detaches the programs. Idempotent. */
  close(): void {
    this.closed = true;
    for (const b of this.early) this.deliver(b); // no handler left: counted as no_handler
    this.early = [];
    this.handler = undefined;
    this.rawHandler = undefined;
    this.probe.close();
  }
}
