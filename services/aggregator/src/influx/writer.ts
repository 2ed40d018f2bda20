// Writes groups of lines (one group per closed window) through @influxdata/influxdb-client and
// reports, per group, when every line was acknowledged by InfluxDB or dropped (with a reason).
// The client's own promises are not trusted for that (close()/flush() can resolve while earlier
// batches still sit in its retry buffer); its writeSuccess/writeFailed callbacks are counted.
import { InfluxDB, HttpError, setLogger, type WriteApi, type WritePrecisionType } from "@influxdata/influxdb-client";
import { InfluxError } from "@wirescope/runtime/errors";
import { detectInflux, ensureDatabase, authHeaders, redact, type InfluxFlavor, type InfluxTarget } from "./detect.js";
import { V1WriteTransport } from "./v1-transport.js";

export interface WriterOptions {
  /** Lines per HTTP request. */
  batchSize: number;
  /** Bound on lines waiting for InfluxDB (all groups); beyond it the oldest groups are dropped. */
  maxBufferLines: number;
  maxRetries: number;
  maxRetryTimeMs: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  precision: WritePrecisionType;
  gzipThreshold: number;
  timeoutMs: number;
}

export const defaultWriterOptions: WriterOptions = {
  batchSize: 5000,
  maxBufferLines: 500_000,
  maxRetries: 100_000,
  maxRetryTimeMs: 24 * 3600_000,
  minRetryDelayMs: 250,
  maxRetryDelayMs: 5000,
  precision: "ns",
  gzipThreshold: 64 * 1024,
  timeoutMs: 10_000,
};

export type WriteDropReason = "buffer_full" | "rejected" | "retries_exhausted";

export interface WriteOutcome {
  written: number;
  dropped: number;
  reasons: Partial<Record<WriteDropReason, number>>;
  /** First error message seen for this group (credentials never included). */
  error?: string;
}

interface Group {
  total: number;
  acked: number;
  dropped: number;
  reasons: Partial<Record<WriteDropReason, number>>;
  error?: string;
  api: WriteApi;
  done: boolean;
  resolve: (o: WriteOutcome) => void;
  recreates: number;
}

export interface WriterStats {
  linesWritten: number;
  linesDropped: Record<WriteDropReason, number>;
  pendingLines: number;
  writeErrors: number;
  lastError: string;
}

let loggerInstalled = false;

export class InfluxWriter {
  readonly stats: WriterStats = { linesWritten: 0, linesDropped: { buffer_full: 0, rejected: 0, retries_exhausted: 0 }, pendingLines: 0, writeErrors: 0, lastError: "" };
  private readonly groups: Group[] = [];
  private readonly client: InfluxDB;
  onError?: (message: string) => void;
  onSuccess?: () => void;

  private constructor(
    readonly target: InfluxTarget,
    readonly flavor: InfluxFlavor,
    readonly opts: WriterOptions,
  ) {
    const timeout = opts.timeoutMs;
    if (flavor.api === "v1") {
      const base = new InfluxDB({ url: target.url, timeout });
      this.client = new InfluxDB({ url: target.url, timeout, transport: new V1WriteTransport(base.transport, authHeaders(target, flavor)) });
    } else {
      const token = target.token ?? (target.user || target.password ? `${target.user ?? ""}:${target.password ?? ""}` : undefined);
      this.client = new InfluxDB({ url: target.url, timeout, token });
    }
    if (!loggerInstalled) {
      loggerInstalled = true;
      // The client logs every failed attempt to the console; failures are counted here instead.
      setLogger({ error: () => undefined, warn: () => undefined });
    }
  }

  /** Detects the server, creates the database if missing. Throws InfluxError with a clear message. */
  static async connect(target: InfluxTarget, opts: Partial<WriterOptions> = {}): Promise<InfluxWriter> {
    const o = { ...defaultWriterOptions, ...opts };
    if (!(o.maxBufferLines > 0 && o.batchSize > 0)) throw new InfluxError("config", "InfluxDB writer: maxBufferLines and batchSize must be positive");
    const flavor = await detectInflux(target);
    await ensureDatabase(target, flavor);
    return new InfluxWriter(target, flavor, o);
  }

  get pendingLines(): number {
    return this.stats.pendingLines;
  }

  /**
   * Writes one group of lines; resolves once every line is acknowledged or dropped. Never
   * rejects. When the buffer bound is exceeded, the oldest unfinished groups lose their
   * remaining lines first (counted as buffer_full).
   */
  write(lines: string[]): Promise<WriteOutcome> {
    if (lines.length === 0) return Promise.resolve({ written: 0, dropped: 0, reasons: {} });
    return new Promise<WriteOutcome>((resolve) => {
      const bucket = this.flavor.major === 1 && this.flavor.api === "v2" ? `${this.target.database}/autogen` : this.target.database;
      const g: Group = { total: lines.length, acked: 0, dropped: 0, reasons: {}, done: false, resolve, recreates: 0, api: undefined as unknown as WriteApi };
      const self = this;
      const o = this.opts;
      g.api = this.client.getWriteApi(this.target.org ?? "", bucket, o.precision, {
        batchSize: o.batchSize,
        flushInterval: 0,
        maxRetries: o.maxRetries,
        maxRetryTime: o.maxRetryTimeMs,
        maxBufferLines: Number.MAX_SAFE_INTEGER,
        minRetryDelay: o.minRetryDelayMs,
        maxRetryDelay: o.maxRetryDelayMs,
        retryJitter: 100,
        exponentialBase: 2,
        gzipThreshold: o.gzipThreshold,
        writeSuccess(ok: string[]) {
          self.settle(g, ok.length, 0);
          self.onSuccess?.();
        },
        writeFailed(this: WriteApi, error: Error, failed: string[], attempt: number) {
          self.stats.writeErrors++;
          const msg = redact(self.target.url) + ": " + error.message.split("\n")[0];
          self.stats.lastError = msg;
          g.error ??= msg;
          self.onError?.(msg);
          if (error instanceof HttpError && error.statusCode === 404 && /database not found|bucket .* not found/i.test(error.body ?? error.message) && g.recreates < 5) {
            // influxd restarted on an empty data directory: create the database again, resend.
            g.recreates++;
            return ensureDatabase(self.target, self.flavor).then(
              () => {
                this.writeRecords(failed);
                return this.flush();
              },
              () => {
                self.settle(g, 0, failed.length, "rejected");
              },
            );
          }
          const retriable = !(error instanceof HttpError) || error.statusCode >= 429;
          if (error.message === "Max retry time exceeded.") self.settle(g, 0, failed.length, "retries_exhausted");
          else if (!retriable) self.settle(g, 0, failed.length, "rejected");
          else if (attempt >= o.maxRetries + 1) self.settle(g, 0, failed.length, "retries_exhausted");
          return undefined;
        },
        writeRetrySkipped(entry: { lines: string[] }) {
          self.settle(g, 0, entry.lines.length, "buffer_full");
        },
      });
      this.groups.push(g);
      this.stats.pendingLines += lines.length;
      this.enforceBound();
      if (g.done) return;
      g.api.writeRecords(lines);
      g.api.flush().catch(() => undefined);
    });
  }

  private settle(g: Group, acked: number, dropped: number, reason?: WriteDropReason): void {
    if (g.done) return;
    acked = Math.min(acked, g.total - g.acked - g.dropped);
    g.acked += acked;
    this.stats.linesWritten += acked;
    dropped = Math.min(dropped, g.total - g.acked - g.dropped);
    if (dropped > 0 && reason) {
      g.dropped += dropped;
      g.reasons[reason] = (g.reasons[reason] ?? 0) + dropped;
      this.stats.linesDropped[reason] += dropped;
    }
    this.stats.pendingLines -= acked + dropped;
    if (g.acked + g.dropped >= g.total) this.finish(g);
  }

  private finish(g: Group): void {
    if (g.done) return;
    g.done = true;
    const i = this.groups.indexOf(g);
    if (i >= 0) this.groups.splice(i, 1);
    g.api.dispose();
    g.resolve({ written: g.acked, dropped: g.dropped, reasons: g.reasons, error: g.error });
  }

  /** Drops the oldest groups' remaining lines until the pending lines fit the bound. */
  private enforceBound(): void {
    while (this.stats.pendingLines > this.opts.maxBufferLines && this.groups.length > 0) {
      const g = this.groups[0]!;
      const remaining = g.total - g.acked - g.dropped;
      this.settle(g, 0, remaining, "buffer_full");
    }
  }

  /** Gives up on everything still pending (counted as dropped: buffer_full). */
  close(): void {
    for (const g of [...this.groups]) this.settle(g, 0, g.total - g.acked - g.dropped, "buffer_full");
  }
}
