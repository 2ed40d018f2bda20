// The aggregator service: JetStream (durable pull consumer, manual acks) → Pipeline → InfluxDB.
// Status counters and the `pipeline` measurement report the same numbers.
import os from "node:os";
import { fromBinary } from "@bufbuild/protobuf";
import { AckPolicy, ConsumerEvents, DeliverPolicy, Events, nanos, type JsMsg, type KV, type NatsConnection, type ConsumerMessages } from "nats";
import { RecordBatchSchema, ServiceError, InfluxError, errorMessage, ensureRecordsStream, withJetStreamRetry, type CreateService, type ServiceContext } from "@wirescope/common";
import { parseAggregatorArgs, type AggregatorOptions } from "./options.js";
import { Aggregator } from "./core/aggregator.js";
import { pipelineLine } from "./core/lines.js";
import { Pipeline, type Ackable } from "./pipeline.js";
import { decodeRecordBatch } from "./core/decode.js";
import type { RecordView } from "./core/record-view.js";
import { RecordBatchSlots } from "./core/record-slot.js";
import { InfluxWriter } from "./influx/writer.js";
import { redact } from "./influx/detect.js";
import { OtlpExporter, httpSender, tracesUrl } from "./otlp/exporter.js";

export const createService: CreateService = async (ctx) => {
  const o = parseAggregatorArgs(ctx.args);
  const influxDep = ctx.health.require("influxdb");
  const target = { ...ctx.config.influx, org: o.influxOrg || undefined };
  ctx.info.set("influx", redact(target.url));
  ctx.info.set("database", target.database);
  ctx.info.set("stream", `${o.stream} (durable ${o.durable})`);
  ctx.info.set("window_ms", String(o.core.windowMs));
  ctx.info.set("relative_accuracy", String(o.core.relativeAccuracy));
  ctx.info.set("otlp", o.otlp.endpoint ? redact(tracesUrl(o.otlp.endpoint)) : "off");
  const log = ctx.log;

  return {
    async run(signal) {
      const nc = await ctx.nats();
      // Each JetStream step is retried while a cluster member is lost or a leader elected.
      const js = <T>(what: string, fn: () => Promise<T>) => withJetStreamRetry(what, fn, { log, signal });
      await js("records stream", () => ensureRecordsStream(nc, { name: o.stream, replicas: ctx.config.nats.replicas }, log));
      const kv = await js("state bucket", () => openState(nc, o, ctx.config.nats.replicas ?? 1));
      const stateKey = `${o.durable.replace(/[^A-Za-z0-9_-]/g, "_")}.watermark`;
      const watermark = await js("watermark", () => loadWatermark(kv, stateKey));
      ctx.info.set("watermark_restored", Number.isFinite(watermark) ? new Date(watermark).toISOString() : "none");

      const writer = await connectInfluxUntil(signal, target, o, ctx, influxDep);
      if (!writer) return;
      ctx.info.set("influx_version", writer.flavor.version);
      ctx.info.set("influx_write_api", writer.flavor.api === "v1" ? "v1 /write" : "v2 /api/v2/write");
      let lastErrLog = 0;
      writer.onError = (m) => {
        influxDep.down(m);
        if (Date.now() - lastErrLog > 5000) {
          lastErrLog = Date.now();
          log.warn({ err: m, pending_lines: writer.pendingLines }, "influxdb write failed; retrying");
        }
      };
      writer.onSuccess = () => influxDep.up();

      const core = new Aggregator(o.core);
      const otlp = o.otlp.endpoint ? new OtlpExporter(httpSender(o.otlp.endpoint, o.otlp.timeoutMs), o.otlp) : undefined;
      const pipeline = new Pipeline(
        core,
        {
          write: (lines) => writer.write(lines),
          saveWatermark: async (ms) => {
            await kv.put(stateKey, JSON.stringify({ flushedBefore: ms, instance: ctx.instance }));
          },
          onError: (e) => log.warn({ err: errorMessage(e) }, "pipeline"),
          onSpans: otlp ? (spans) => otlp.offer(spans) : undefined,
        },
        watermark,
      );

      const jsm = await nc.jetstreamManager();
      const ci = await js("consumer", () => ensureConsumer(nc, o));
      // Batches delivered to a previous instance and never acked come back after the ack wait:
      // hold every window open until they are here (or the wait is over).
      let expectRedeliveries = ci.num_ack_pending;
      if (expectRedeliveries > 0) {
        pipeline.holdClosingUntil(Date.now() + o.ackWaitMs + 2000);
        log.info({ pending: expectRedeliveries }, "waiting for unacknowledged batches of a previous run");
      }
      // Delivered, not yet acknowledged, in delivery order: the ack timers of those held for more
      // than half the ack wait are refreshed (working) by the tick.
      const held = new Map<number, HeldMessage>();
      const asAckable = (m: JsMsg): Ackable => {
        // nats.js's JsMsg carries its reply subject (not in the JsMsg type); keep the message when not.
        const reply = (m as JsMsg & { reply?: unknown }).reply;
        const h = new HeldMessage(m.seq, m.redelivered, typeof reply === "string" && reply ? reply : m, nc, Date.now(), held);
        held.delete(h.seq); // a redelivery moves to the end
        held.set(h.seq, h);
        return h;
      };
      const consumer = await js("consumer", () => nc.jetstream().consumers.get(o.stream, o.durable));
      // Short pulls (heartbeat every expires/2): a pull left on a server that died, or on a consumer
      // whose leader moved to another cluster member, is noticed after two missed heartbeats.
      // Delivered batches wait in the client until ingested, and their ack timers run meanwhile:
      // bounded by bytes, not count, so that the work waiting stays short whatever the batch size
      // (512 batches of a parser flushing 1,000 records each took over the ack wait on a busy
      // machine, were redelivered and counted late). A batch larger than the bound would never
      // be delivered: twice the server's largest message.
      const messages: ConsumerMessages = await js("consume", () => consumer.consume({ max_bytes: Math.max(CONSUME_MAX_BYTES, 2 * (nc.info?.max_payload ?? 0)), expires: CONSUME_EXPIRES_MS }));
      // While deliveries stall (NATS disconnected, heartbeats missed), the batches still come, late:
      // windows stay open long enough for them instead of closing and dropping them as late.
      const stalled = (why: string) => {
        pipeline.holdClosingUntil(Date.now() + STALL_HOLD_MS);
        ctx.counters.add(`delivery_stalls.${why}`);
        log.warn({ why, hold_ms: STALL_HOLD_MS }, "deliveries stalled: windows held open");
      };
      void (async () => {
        for await (const s of await messages.status()) {
          // At max_ack_pending the server delivers nothing by design (InfluxDB slow, windows
          // unwritten): silence then is back-pressure, not a stall.
          if (s.type === ConsumerEvents.HeartbeatsMissed && held.size < o.maxAckPending) stalled("heartbeats_missed");
        }
      })().catch(() => undefined);
      void (async () => {
        for await (const s of nc.status()) if (s.type === Events.Disconnect) stalled("disconnected");
      })().catch(() => undefined);
      let decodeErrors = 0;
      const reader = (async () => {
        for await (const m of messages) {
          let records: RecordView[] | RecordBatchSlots;
          try {
            records = decodeBatch(m.data);
          } catch (e) {
            decodeErrors++;
            if (decodeErrors <= 3) log.warn({ err: errorMessage(e), seq: m.seq }, "undecodable RecordBatch: dropped");
            pipeline.discard(asAckable(m));
            continue;
          }
          if (m.redelivered && expectRedeliveries > 0 && --expectRedeliveries === 0) pipeline.releaseHold();
          pipeline.onBatch(records, asAckable(m), Date.now());
        }
      })();
      reader.catch((e) => log.error({ err: errorMessage(e) }, "consumer stopped"));

      // Ticks: close due windows, refresh held batches' ack timers, publish counters.
      let lastWorking = Date.now();
      let lastPipeline = Date.now();
      let prev = snapshot();
      function snapshot() {
        const c = core.counters;
        const w = writer!.stats;
        return {
          records_in: c.recordsIn,
          records_accepted: c.recordsAccepted,
          batches_in: pipeline.counters.batchesIn,
          batches_acked: pipeline.counters.batchesAcked,
          batches_duplicate: pipeline.counters.duplicateDeliveries,
          points_out: pipeline.counters.pointsOut,
          windows_written: pipeline.counters.windowsWritten,
          spans_kept: c.spansKept,
          spans_dropped: c.spansDropped,
          folded_values: c.folded,
          links_ambiguous: c.ambiguousTcp + c.ambiguousThread,
          edge_calls_matched: c.edgeCallsMatched,
          edge_tuples_overflow: c.edgeTuplesOverflow,
          drops_late: c.drops.late,
          drops_redelivered: c.drops.redelivered,
          drops_future: c.drops.future,
          drops_invalid: c.drops.invalid,
          drops_cardinality: c.drops.cardinality_overflow,
          drops_span_buffer: c.drops.span_buffer_full,
          drops_role_unknown: c.drops.role_unknown,
          drops_decode: decodeErrors,
          drops_influx_buffer: w.linesDropped.buffer_full,
          drops_influx_rejected: w.linesDropped.rejected,
          drops_influx_retries: w.linesDropped.retries_exhausted,
          influx_write_errors: w.writeErrors,
          otlp_spans_exported: otlp?.counters.spansExported ?? 0,
          otlp_requests: otlp?.counters.requests ?? 0,
          otlp_export_errors: otlp?.counters.exportErrors ?? 0,
          drops_otlp_queue_full: otlp?.counters.dropsQueueFull ?? 0,
          drops_otlp_failed: otlp?.counters.dropsFailed ?? 0,
          drops_otlp_rejected: otlp?.counters.dropsRejected ?? 0,
        };
      }
      const tick = () => {
        const now = Date.now();
        try {
          pipeline.tick(now);
        } catch (e) {
          log.error({ err: errorMessage(e) }, "closing windows failed");
        }
        if (now - lastWorking > o.ackWaitMs / 6) {
          // Refreshed by two thirds of the ack wait at the latest; most batches are acked before.
          lastWorking = now;
          const old = o.ackWaitMs / 2;
          for (const h of held.values()) {
            if (now - h.delivered < old) break;
            if (now - h.refreshed >= old) h.working(now);
          }
        }
        const s = snapshot();
        for (const [k, v] of Object.entries(s)) ctx.counters.set(k, v);
        const gauges = {
          lag_ms: Number.isFinite(core.oldestOpen) ? Math.max(0, now - core.oldestOpen - o.core.windowMs) : 0,
          pending_lines: writer!.pendingLines,
          held_batches: pipeline.heldCount,
          open_windows: core.openWindows,
          watermark_age_ms: Number.isFinite(pipeline.durableWatermark) ? now - pipeline.durableWatermark : 0,
          otlp_queued: otlp?.queued ?? 0,
        };
        for (const [k, v] of Object.entries(gauges)) ctx.counters.set(k, v);
        if (now - lastPipeline >= o.pipelineEveryMs) {
          lastPipeline = now;
          const delta: Record<string, number> = {};
          for (const [k, v] of Object.entries(s)) delta[k] = v - (prev as Record<string, number>)[k]!;
          prev = s;
          void writer!.write([pipelineLine("aggregator", ctx.instance, delta, gauges, now)]);
        }
      };
      const timer = setInterval(tick, 250);
      try {
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        clearInterval(timer);
        // Open windows are not flushed early: their batches stay unacknowledged and the next
        // instance rebuilds them exactly. Writes already started finish (bounded wait).
        await messages.close().catch(() => undefined);
        await Promise.race([pipeline.settled(), new Promise((r) => setTimeout(r, 5000))]);
        await otlp?.drain(2000);
        await otlp?.stop();
        writer.close();
        void jsm;
      }
    },
  };
};

/** A pull request's lifetime; the server sends idle heartbeats every half of it. */
const CONSUME_EXPIRES_MS = 5_000;
/** How long windows stay open after deliveries stalled (detection takes two heartbeats, ~5 s). */
const STALL_HOLD_MS = 30_000;
/** Bytes of delivered batches waiting in the client for ingestion (see `consume` above). */
const CONSUME_MAX_BYTES = 8 << 20;

const ACK = Uint8Array.of(0x2b, 0x41, 0x43, 0x4b); // "+ACK"
const WPI = Uint8Array.of(0x2b, 0x57, 0x50, 0x49); // "+WPI": in progress, restart the ack timer

/**
 * What a held batch keeps of its JetStream message: the subject its acknowledgement goes to
 * (JetStream's ack protocol, what JsMsg.ack() publishes). The message itself, and the socket
 * buffer its data is a view of, are released once the batch is ingested, not after the window's
 * write some 15 s later: at a few records per batch that is most of what the service holds.
 */
class HeldMessage implements Ackable {
  refreshed: number;
  constructor(
    readonly seq: number,
    readonly redelivered: boolean,
    private readonly to: string | JsMsg,
    private readonly nc: NatsConnection,
    readonly delivered: number,
    private readonly held: Map<number, HeldMessage>,
  ) {
    this.refreshed = delivered;
  }
  ack(): void {
    if (this.held.get(this.seq) === this) this.held.delete(this.seq);
    if (typeof this.to === "string") this.nc.publish(this.to, ACK);
    else this.to.ack();
  }
  working(now: number): void {
    this.refreshed = now;
    if (typeof this.to === "string") this.nc.publish(this.to, WPI);
    else this.to.working();
  }
}

/** The slots each batch is decoded into: ingested before the next batch is decoded. */
const slots = new RecordBatchSlots();

/** The lean decoder; protobuf-es as the reference when it refuses (then that one's verdict holds). */
function decodeBatch(data: Uint8Array): RecordView[] | RecordBatchSlots {
  try {
    return decodeRecordBatch(data, slots);
  } catch {
    return fromBinary(RecordBatchSchema, data).records;
  }
}

async function ensureConsumer(nc: NatsConnection, o: AggregatorOptions) {
  const jsm = await nc.jetstreamManager();
  const cfg = {
    durable_name: o.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    max_ack_pending: o.maxAckPending,
    max_deliver: -1,
    filter_subject: o.filter,
  };
  try {
    const info = await jsm.consumers.info(o.stream, o.durable);
    if (info.config.ack_wait !== cfg.ack_wait || info.config.max_ack_pending !== cfg.max_ack_pending) {
      return await jsm.consumers.update(o.stream, o.durable, { ack_wait: cfg.ack_wait, max_ack_pending: cfg.max_ack_pending });
    }
    return info;
  } catch (e) {
    if (!/not found/i.test(errorMessage(e))) throw new ServiceError("consumer", `cannot read consumer ${o.durable} of ${o.stream}: ${errorMessage(e)}`, { cause: e });
  }
  try {
    return await jsm.consumers.add(o.stream, cfg);
  } catch (e) {
    throw new ServiceError("consumer", `cannot create consumer ${o.durable} on ${o.stream}: ${errorMessage(e)}`, { cause: e });
  }
}

async function openState(nc: NatsConnection, o: AggregatorOptions, replicas: number): Promise<KV> {
  try {
    return await nc.jetstream().views.kv(o.stateBucket, { history: 1, replicas });
  } catch (e) {
    throw new ServiceError("state", `cannot open KV bucket ${o.stateBucket}: ${errorMessage(e)}`, { cause: e });
  }
}

async function loadWatermark(kv: KV, key: string): Promise<number> {
  const e = await kv.get(key);
  if (!e || e.value.length === 0) return -Infinity;
  try {
    const v = JSON.parse(new TextDecoder().decode(e.value)) as { flushedBefore?: number };
    return typeof v.flushedBefore === "number" ? v.flushedBefore : -Infinity;
  } catch {
    return -Infinity;
  }
}

/** Connects to InfluxDB, retrying with backoff until it answers or the signal aborts. */
async function connectInfluxUntil(signal: AbortSignal, target: Parameters<typeof InfluxWriter.connect>[0], o: AggregatorOptions, ctx: ServiceContext, dep: { up(): void; down(r: string): void }): Promise<InfluxWriter | undefined> {
  let delay = 250;
  let logged = false;
  while (!signal.aborted) {
    try {
      const w = await InfluxWriter.connect(target, o.writer);
      dep.up();
      ctx.log.info({ influx: redact(target.url), version: w.flavor.version, api: w.flavor.api, host: os.hostname() }, "influxdb connected");
      return w;
    } catch (e) {
      const msg = e instanceof InfluxError ? e.message : errorMessage(e);
      dep.down(msg);
      if (!logged) {
        logged = true;
        ctx.log.warn({ err: msg }, "influxdb not reachable yet; retrying");
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
  return undefined;
}
