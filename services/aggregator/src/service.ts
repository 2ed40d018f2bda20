// The aggregator service: JetStream (pull consumer, manual acks) → Pipeline → InfluxDB.
// Status counters and the `pipeline` measurement report the same numbers.
//
//   KV wirescope-aggregators ──members──▶ rendezvous ──owned records partitions──▶ epoch:
//     consumer from the saved positions ──▶ batches of owned partitions ──▶ Pipeline ──▶ InfluxDB
//     (others' batches acknowledged unread)        KV wirescope-aggregator <durable>.p<p> ◀── saved
import os from "node:os";
import { fromBinary } from "@bufbuild/protobuf";
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, DeliverPolicy, type JsMsg, type ConsumerMessages, type JetStreamManager, jetstreamManager, jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import {
  RecordBatchSchema,
  ShedReportSchema,
  recordsOf,
} from "@wirescope/wire";
import {
  ServiceError,
  InfluxError,
  NatsMembership,
  errorMessage,
  ensureRecordsStream,
  ownedPartitions,
  describePartitions,
  recordPartitionOf,
  withJetStreamRetry,
  SupervisedLoop,
  SHED_SUBJECT,
  type Counters,
  type CreateService,
  type Logger,
  type LoopRun,
  type ServiceContext,
} from "@wirescope/runtime";
import { parseAggregatorArgs, type AggregatorOptions } from "./options.js";
import { Aggregator } from "./core/aggregator.js";
import { parserLossesLine, pipelineLine } from "./core/lines.js";
import { Pipeline, type Ackable } from "./pipeline.js";
import { ParserWatermarks, watchParserWatermarks } from "./parser-watermarks.js";
import { decodeRecordBatch } from "./core/decode.js";
import type { RecordView } from "./core/record-view.js";
import { RecordBatchSlots } from "./core/record-slot.js";
import { InfluxWriter } from "./influx/writer.js";
import { redact } from "./influx/detect.js";
import { OtlpExporter, httpSender, tracesUrl } from "./otlp/exporter.js";

export const createService: CreateService = async (ctx) => {
  const o = parseAggregatorArgs(ctx.args, ctx.env);
  const influxDep = ctx.health.require("influxdb");
  const target = { ...ctx.config.influx, org: o.influxOrg || undefined };
  const P = ctx.config.partitions;
  ctx.info.set("influx", redact(target.url));
  ctx.info.set("database", target.database);
  ctx.info.set("stream", `${o.stream} (state ${o.durable})`);
  ctx.info.set("window_ms", String(o.core.windowMs));
  ctx.info.set("relative_accuracy", String(o.core.relativeAccuracy));
  ctx.info.set("otlp", o.otlp.endpoint ? redact(tracesUrl(o.otlp.endpoint)) : "off");
  ctx.info.set("partitions_total", String(P));
  const log = ctx.log;

  return {
    async run(signal) {
      const nc = await ctx.nats();
      // Each JetStream step is retried while a cluster member is lost or a leader elected.
      const js = <T>(what: string, fn: () => Promise<T>) => withJetStreamRetry(what, fn, { log, signal });
      await js("records stream", () => ensureRecordsStream(nc, { name: o.stream, replicas: ctx.config.nats.replicas }, log));
      const kv = await js("state bucket", () => openState(nc, o, ctx.config.nats.replicas ?? 1));

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
      const otlp = o.otlp.endpoint ? new OtlpExporter(httpSender(o.otlp.endpoint, o.otlp.timeoutMs), o.otlp) : undefined;
      const jsm = await jetstreamManager(nc);
      const consumerName = `${o.durable}-${ctx.instance}`.replace(/[^A-Za-z0-9_-]/g, "_");

      // One epoch per set of owned partitions: a change of the set ends the epoch (its open
      // windows are left unwritten) and starts the next from the saved positions, as a restart
      // after a crash would. An epoch whose consumer ended or stalled is started again the same
      // way, after a backoff, counted (`consumer_restarts.<reason>`), the service NOT_SERVING
      // meanwhile. Counters of ended epochs are kept in `totals`.
      const totals: Record<string, number> = {};
      let epoch: Epoch | undefined;
      let owned: Set<number> | undefined;
      let ownedKey = "";
      let memberCount = 0;
      let consuming: SupervisedLoop | undefined;
      // Quiet windows wait for the parsers that are behind (parser-watermarks.ts).
      const parsers = o.parserHoldMs > 0 ? new ParserWatermarks(o.parserHoldMs) : undefined;
      // The parsers' entries also carry their losses: written as `pipeline` points of theirs,
      // the same point by every aggregator (lines.ts parserLossesLine).
      const parserLosses = (id: string, losses: Record<string, number>, tsNs: bigint) => {
        const line = parserLossesLine(id, losses, tsNs);
        if (!line) return;
        ctx.counters.add("parser_loss_points");
        void writer.write([line]);
      };
      // watched with --parser-hold-ms 0 too: windows then wait for no parser, losses are still written
      const parsersWatch = watchParserWatermarks(nc, o.parsersBucket, parsers, ctx.counters, log, signal, parserLosses);
      const startConsuming = async (): Promise<LoopRun> => {
        const current = owned ?? new Set<number>();
        ctx.info.set("partitions_owned", describePartitions(current, P));
        const e = await startEpoch({ nc, partitions: P, jsm, kv, writer, otlp, o, owned: current, consumerName, log, counters: ctx.counters, signal, instance: ctx.instance, parsers });
        epoch = e;
        return {
          ended: e.ended,
          stop: async () => {
            if (epoch === e) epoch = undefined;
            // On shutdown, writes already started may finish (bounded); on a switch, they go on.
            await e.stop(signal.aborted ? 5000 : undefined);
            for (const [k, v] of Object.entries(e.snapshot())) totals[k] = (totals[k] ?? 0) + v;
          },
        };
      };
      const switchTo = (next: Set<number>) => {
        const key = [...next].join(",");
        if (key === ownedKey || signal.aborted) return;
        ownedKey = key;
        owned = next;
        if (consuming) consuming.restart("partitions moved");
        else consuming = new SupervisedLoop(startConsuming, { name: "consumer", counters: ctx.counters, log, health: ctx.health });
      };
      const membership = new NatsMembership(
        nc,
        () => ({ id: ctx.instance, node: ctx.config.node, grpc: ctx.info.get("grpc") }),
        // Instances with the same --durable form one fleet (they share its saved positions).
        { heartbeatMs: o.heartbeatMs, ttlMs: o.ttlMs, bucket: o.membersBucket, replicas: ctx.config.nats.replicas, counters: ctx.counters, health: ctx.health, fleet: "aggregator", keyPrefix: o.durable.replace(/[^A-Za-z0-9_-]/g, "_") },
        log,
        (members, died) => {
          const owned = ownedPartitions(ctx.instance, members, P);
          ctx.info.set("members", members.join(","));
          memberCount = members.length;
          if (died.length || [...owned].join(",") !== ownedKey) log.info({ members: members.length, owned: owned.size, died }, "records partitions assigned");
          switchTo(owned);
        },
      );
      await membership.start(signal);

      // Requests the probes counted as served while their connections were shed (ShedReport),
      // counted with what was observed of the same server ends when their windows close. Every
      // instance hears every report and counts those of the server ends its records named
      // (the rest: shed_requests_unmapped).
      const shedSub = nc.subscribe(SHED_SUBJECT, {
        callback: (err, m) => {
          if (err) return;
          try {
            const r = fromBinary(ShedReportSchema, m.data);
            ctx.counters.add("shed_reports_in");
            const core = epoch?.core;
            if (!core) return;
            for (const x of r.served) core.addShedServed(r.node, x.pid, x.port, Number(x.requests), Number(r.sinceUnixMs), Number(r.timeUnixMs));
          } catch {
            ctx.counters.add("shed_reports_invalid");
          }
        },
      });
      signal.addEventListener("abort", () => shedSub.unsubscribe(), { once: true });

      // Ticks: close due windows, refresh held batches' ack timers, publish counters.
      let lastPipeline = Date.now();
      let lastServices = 0;
      const servicesSeen = new Set<string>();
      let prev: Record<string, number> = {};
      const tick = () => {
        const now = Date.now();
        const e = epoch;
        e?.tick(now);
        const s: Record<string, number> = { ...totals };
        if (e) for (const [k, v] of Object.entries(e.snapshot())) s[k] = (s[k] ?? 0) + v;
        const w = writer.stats;
        Object.assign(s, {
          consumer_restarts: consuming?.restarts ?? 0,
          // Totals of the `delivery_stalls.<why>` counters, for the pipeline measurement.
          delivery_stalls: ctx.counters.get("delivery_stalls.heartbeats_missed") + ctx.counters.get("delivery_stalls.disconnected"),
          pulls_lost: ctx.counters.get("delivery_stalls.pull_lost"),
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
        });
        for (const [k, v] of Object.entries(s)) ctx.counters.set(k, v);
        const oldest = e ? e.core.oldestOpen : Infinity;
        const durable = e ? e.pipeline.durableWatermark : -Infinity;
        const gauges = {
          lag_ms: Number.isFinite(oldest) ? Math.max(0, now - oldest - o.core.windowMs) : 0,
          pending_lines: writer.pendingLines,
          held_batches: e?.pipeline.heldCount ?? 0,
          windows_held_ms: e ? Math.max(0, e.pipeline.heldUntil - now) : 0,
          open_windows: e?.core.openWindows ?? 0,
          watermark_age_ms: Number.isFinite(durable) ? now - durable : 0,
          otlp_queued: otlp?.queued ?? 0,
          span_fraction: e ? e.core.spanFraction : o.core.spanSampleRate,
          partitions_owned: e?.owned.size ?? 0,
          members: memberCount,
          // The parsers stating a watermark, and how far the lowest is behind the wall clock
          // (every window's close waits for it).
          parsers_watched: parsers?.watched(now) ?? 0,
          parser_lag_ms: parsers ? lagOf(parsers.lowest(now), now) : 0,
        };
        for (const [k, v] of Object.entries(gauges)) ctx.counters.set(k, v);
        if (now - lastServices >= 1000) {
          lastServices = now;
          // Services counted by this process (any epoch) whose partition it owns now: a service's
          // records partition follows from its name (recordPartitionOf).
          for (const name of e?.core.servicesSeen() ?? []) if (servicesSeen.size < MAX_LISTED_SERVICES) servicesSeen.add(name);
          const mine = e ? [...servicesSeen].filter((name) => e.owned.has(recordPartitionOf(false, "", name, P))).sort() : [];
          ctx.info.set("services", describeServices(mine));
        }
        if (now - lastPipeline >= o.pipelineEveryMs) {
          lastPipeline = now;
          const delta: Record<string, number> = {};
          for (const [k, v] of Object.entries(s)) delta[k] = v - (prev[k] ?? 0);
          prev = s;
          void writer.write([pipelineLine("aggregator", ctx.instance, delta, gauges, now)]);
        }
      };
      const timer = setInterval(() => {
        try {
          tick();
        } catch (err) {
          log.error({ err: errorMessage(err) }, "closing windows failed");
        }
      }, 250);
      try {
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        clearInterval(timer);
        // Goodbye first, so that the others take the partitions over at once. Open windows are
        // not flushed early: the next owner reads their batches again and rebuilds them exactly.
        await membership.stop().catch(() => undefined);
        await parsersWatch.stop();
        await consuming?.stop();
        await jsm.consumers.delete(o.stream, consumerName).catch(() => undefined);
        await otlp?.drain(2000);
        await otlp?.stop();
        writer.close();
      }
    },
  };
};

/** What a records partition's owner saved: windows before `flushedBefore` are in InfluxDB, and
 *  every batch of the partition with a record in a later window is at or after `fromSeq`. */
interface PartitionState {
  flushedBefore: number;
  fromSeq: number;
}

/** How far a watermark is behind `now` (0 when there is none, or it is ahead). */
const lagOf = (mark: number, now: number) => (Number.isFinite(mark) ? Math.max(0, now - mark) : 0);

interface EpochDeps {
  nc: NatsConnection;
  partitions: number;
  jsm: JetStreamManager;
  kv: KV;
  writer: InfluxWriter;
  otlp: OtlpExporter | undefined;
  o: AggregatorOptions;
  owned: Set<number>;
  consumerName: string;
  log: Logger;
  counters: Counters;
  signal: AbortSignal;
  instance: string;
  /** The parsers' watermarks (undefined: not watched). */
  parsers: ParserWatermarks | undefined;
}

interface Epoch {
  readonly owned: Set<number>;
  /** Resolves with why when its consumer ended or stalled by itself (not after `stop`). */
  readonly ended: Promise<string>;
  readonly core: Aggregator;
  readonly pipeline: Pipeline;
  tick(now: number): void;
  snapshot(): Record<string, number>;
  /** Stops reading; writes already started may finish (bounded wait when given). */
  stop(waitMs?: number): Promise<void>;
}

/** The KV key of a partition's state. */
function stateKey(o: AggregatorOptions, p: number): string {
  return `${o.durable.replace(/[^A-Za-z0-9_-]/g, "_")}.p${p}`;
}

/**
 * Reads the owned partitions from their saved positions with a fresh consumer and a fresh core.
 * Windows stay open until the batches written before the start are read again (or the hold ends).
 */
async function startEpoch(d: EpochDeps): Promise<Epoch> {
  const { o, owned, log, nc, jsm } = d;
  const state = new Map<number, PartitionState>();
  let startSeq = Infinity;
  let floor = Infinity;
  let legacy: PartitionState | null | undefined; // read once, when a partition has no state
  for (const p of owned) {
    let st = await loadState(d.kv, stateKey(o, p));
    if (!st) st = (legacy ??= (await loadLegacyState(d.kv, jsm, o)) ?? null) ?? undefined;
    if (st) state.set(p, st);
    startSeq = Math.min(startSeq, st ? st.fromSeq : 1);
    floor = Math.min(floor, st ? st.flushedBefore : -Infinity);
  }
  const core = new Aggregator(o.core);
  // A listening name is given only when its partition is ours (docs/aggregator.md, "Several instances").
  core.acceptListenNames((name) => owned.has(recordPartitionOf(false, "", name, d.partitions)));
  const pipeline = new Pipeline(
    core,
    {
      write: (lines) => d.writer.write(lines),
      saveWatermark: async (ms, pos) => {
        await Promise.all(
          [...owned].map((p) =>
            d.kv.put(stateKey(o, p), JSON.stringify({ flushedBefore: Math.max(ms, state.get(p)?.flushedBefore ?? -Infinity), fromSeq: pos.fromSeq.get(p) ?? pos.nextSeq, instance: d.instance })),
          ),
        );
      },
      onError: (e) => log.warn({ err: errorMessage(e) }, "pipeline"),
      onSpans: d.otlp ? (spans) => d.otlp!.offer(spans) : undefined,
      upstream: d.parsers ? (now) => ({ throughMs: d.parsers!.lowest(now), holdMs: o.parserHoldMs }) : undefined,
    },
    Number.isFinite(floor) ? floor : -Infinity,
  );
  const noop: Epoch = { owned, core, pipeline, ended: new Promise<string>(() => undefined), tick: () => undefined, snapshot: () => ({}), stop: async () => pipeline.stop() };
  if (owned.size === 0) return noop;

  const info = await jsm.streams.info(o.stream);
  const lastSeq = info.state.last_seq;
  const firstSeq = info.state.first_seq;
  if (!Number.isFinite(startSeq) || startSeq < 1) startSeq = 1;
  let replayGap = 0;
  if (state.size > 0 && startSeq < firstSeq) {
    // Aged out of the stream (max age or size) before anyone read them again: counted.
    replayGap = firstSeq - startSeq;
    log.warn({ from: startSeq, first: firstSeq }, "saved position older than the stream: batches lost to its limits");
  }
  await jsm.consumers.delete(o.stream, d.consumerName).catch(() => undefined);
  await jsm.consumers.add(o.stream, {
    name: d.consumerName,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: startSeq <= 1 ? DeliverPolicy.All : DeliverPolicy.StartSequence,
    ...(startSeq > 1 ? { opt_start_seq: startSeq } : {}),
    ack_wait: nanos(o.ackWaitMs),
    max_ack_pending: o.maxAckPending,
    max_deliver: -1,
    filter_subject: o.filter,
    // A consumer of an instance that died goes away by itself.
    inactive_threshold: nanos(CONSUMER_INACTIVE_MS),
  });
  // Batches published before this start (read again from the saved positions, or never read):
  // no window closes until they are in (or the hold ends), so that a pause in their delivery
  // does not close a window as idle and turn the rest of its records into late ones.
  let replaying = lastSeq >= startSeq;
  if (replaying) {
    pipeline.holdClosingUntil(Date.now() + Math.max(o.ackWaitMs + 2000, BACKLOG_HOLD_MS));
    log.info({ from: startSeq, to: lastSeq, partitions: owned.size }, "reading the batches published before this start");
  }
  // Delivered, not yet acknowledged, in delivery order: the ack timers of those held for more
  // than half the ack wait are refreshed (working) by the tick.
  const held = new Map<number, HeldMessage>();
  const asAckable = (m: JsMsg, partition: number): Ackable => {
    // nats.js's JsMsg carries its reply subject (not in the JsMsg type); keep the message when not.
    const reply = (m as JsMsg & { reply?: unknown }).reply;
    const h = new HeldMessage(m.seq, m.redelivered, partition, typeof reply === "string" && reply ? reply : m, nc, Date.now(), held);
    held.delete(h.seq); // a redelivery moves to the end
    held.set(h.seq, h);
    return h;
  };
  const consumer = await jetstream(nc).consumers.get(o.stream, d.consumerName);
  // The stream's and the consumer's leaders when this epoch began: a missed heartbeat that comes
  // with another leader is a failover (batches may still be retried by their publishers).
  const leadersOf = (si: { cluster?: { leader?: string } }, ci: { cluster?: { leader?: string } }) => `${si.cluster?.leader ?? ""}/${ci.cluster?.leader ?? ""}`;
  let leaders = leadersOf(info, await consumer.info(true));
  // Short pulls (heartbeat every expires/2): a pull left on a server that died, or on a consumer
  // whose leader moved to another cluster member, is noticed after two missed heartbeats.
  // Delivered batches wait in the client until ingested, and their ack timers run meanwhile, so
  // the batches pulled ahead are few: 512 batches of a parser flushing 1,000 records each took
  // over the ack wait on a busy machine, were redelivered and counted late. Bounded by count, not
  // bytes: nats.js's consume({ max_bytes }) (2.29 and @nats-io/jetstream 3.3.1) keeps 100 messages per pull as well, counts the
  // unused bytes of a pull that ended at 100 as still pending, and asks each refill for only
  // what it believes is left; once that is smaller than the next batch the server answers
  // "409 Message Size Exceeds MaxBytes" and the client asks again at once, for good: no batch
  // arrives, no heartbeat is missed, nothing is counted (issue #12: the trap fault's many
  // one-record batches, then a large one). 64 batches of at most 512 KiB (the parser's bound)
  // are ≤ 32 MiB, a few MB in practice.
  const messages: ConsumerMessages = await consumer.consume({ max_messages: CONSUME_MAX_BATCHES, expires: CONSUME_EXPIRES_MS });
  // The epoch ends (and is started again by the service's supervisor) when nats.js would only
  // keep retrying: its consumer deleted or gone, or its stream; when the iterator ends; or when
  // the server holds batches for it while none arrive (the watchdog below).
  let stopped = false;
  let end!: (why: string) => void;
  const ended = new Promise<string>((resolve) => (end = (why) => stopped || resolve(why)));
  // While deliveries stall (NATS disconnected, heartbeats missed), the batches still come, late:
  // windows stay open long enough for them instead of closing and dropping them as late.
  // Until when the last stall holds windows (misses before then are the same stall).
  let stallUntil = 0;
  const holdForStall = () => {
    stallUntil = Date.now() + STALL_HOLD_MS;
    pipeline.holdClosingUntil(stallUntil);
  };
  const stalled = (why: string) => {
    if (stopped) return;
    holdForStall();
    d.counters.add(`delivery_stalls.${why}`);
    log.warn({ why, hold_ms: STALL_HOLD_MS, last_batch_ms_ago: Date.now() - lastDelivery, held: held.size }, "deliveries stalled: windows held open");
  };
  // Windows close by the wall clock only after the server said it had nothing more for this
  // consumer (an idle heartbeat, a pull that expired unfilled, a batch with nothing pending after
  // it, the watchdog's answer) since their end + grace and their last record, so a silence of any
  // cause (a lost pull, a stalled server, a cut network) closes no window whose records may still
  // come (Aggregator.closeDue).
  pipeline.awaitIdleReports();
  // Two missed heartbeats (nothing delivered, not even a heartbeat, for ~5 s; nats.js then pulls
  // again) are either a stall (a server down, paused or failing over, the network cut: batches
  // come late, perhaps retried by their publishers after the server is back, by when the
  // consumer may look caught up; so windows are held open 30 s more) or a pull lost between this
  // client and a healthy server, which nats.js counts as outstanding while the server holds none
  // (seen under load: 7 s without a delivery or a heartbeat, the aggregator idle meanwhile). A
  // healthy server holding a pull sends heartbeats when it has nothing to deliver, so silence from
  // one that answers, and that stored batches meanwhile, is a lost pull. The server is asked, with
  // a deadline, for the stream's and the consumer's state: answered by the same leaders as last
  // time, with no stall begun meanwhile (a disconnection), and the stream grown past what the last
  // batch delivered said it held, it was a lost pull (`delivery_stalls.pull_lost`, no hold: the
  // server was storing batches all along). Otherwise a stall (`delivery_stalls.heartbeats_missed`).
  // Misses while a stall's hold lasts (a disconnection's too) are the same stall: they extend the
  // hold, uncounted, and ask nothing.
  let checking = false;
  const heartbeatsMissed = () => {
    if (stopped || checking) return;
    if (Date.now() < stallUntil) return holdForStall();
    checking = true;
    const known = streamKnown;
    const deadline = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer")), STALL_ASK_MS).unref())]);
    Promise.all([deadline(jsm.streams.info(o.stream)), deadline(consumer.info())])
      .then(
        ([si, ci]) => {
          const now = leadersOf(si, ci);
          const same = now === leaders;
          leaders = now;
          return same && Date.now() >= stallUntil && si.state.last_seq > known;
        },
        () => false,
      )
      .then((lost) => {
        if (stopped) return;
        if (!lost) return stalled("heartbeats_missed");
        d.counters.add("delivery_stalls.pull_lost");
        log.info({ leaders, last_batch_ms_ago: Date.now() - lastDelivery }, "a pull was lost: the server answered, with the same leaders, and stored batches meanwhile; nats.js pulled again");
      })
      .catch(() => undefined)
      .finally(() => (checking = false));
  };
  void (async () => {
    for await (const s of messages.status()) {
      if (s.type === "heartbeat" || s.type === "discard") pipeline.noteIdle(Date.now());
      // At max_ack_pending the server delivers nothing by design (InfluxDB slow, windows
      // unwritten): silence then is back-pressure, not a stall.
      else if (s.type === "heartbeats_missed" && held.size < o.maxAckPending) heartbeatsMissed();
      else if (s.type === "consumer_deleted") end("consumer_deleted");
      else if (s.type === "consumer_not_found") end("consumer_not_found");
      else if (s.type === "stream_not_found") end("stream_not_found");
    }
  })().catch(() => undefined);
  const natsStatus = nc.status();
  void (async () => {
    for await (const s of natsStatus) if (s.type === "disconnect") stalled("disconnected");
  })().catch(() => undefined);
  let decodeErrors = 0;
  let batchErrors = 0;
  let lastDelivery = Date.now();
  /** The stream's last sequence as the last batch delivered told it (its sequence plus those pending after it). */
  let streamKnown = 0;
  const failBatches = o.failpoints.includes("batch_throw");
  const ingestOne = (m: JsMsg) => {
    if (failBatches && m.headers?.get(FAILPOINT_HEADER) === "throw") throw new Error("failpoint: batch_throw");
    if (replaying && m.seq >= lastSeq) {
      replaying = false;
      pipeline.releaseHold();
    }
    const p = partitionOfSubject(m.subject);
    if (!owned.has(p)) {
      pipeline.pass(asAckable(m, p));
      return;
    }
    let records: RecordView[] | RecordBatchSlots;
    try {
      records = decodeBatch(m.data);
    } catch (e) {
      decodeErrors++;
      if (decodeErrors <= 3) log.warn({ err: errorMessage(e), seq: m.seq }, "undecodable RecordBatch: dropped");
      pipeline.discard(asAckable(m, p));
      return;
    }
    pipeline.onBatch(records, asAckable(m, p), Date.now(), state.get(p)?.flushedBefore ?? -Infinity, state.size > 0 && m.seq <= lastSeq);
  };
  const reader = (async () => {
    for await (const m of messages) {
      lastDelivery = Date.now();
      // One batch that throws (a bug, not bad input: that is drops_decode) is counted and
      // acknowledged; it must not end the loop, which would leave every later batch unread.
      try {
        ingestOne(m);
        // Nothing more pending for this consumer when this batch was sent: an idle report (any
        // partition's batch, so that an instance whose own partitions went quiet while others'
        // are busy still closes its windows; those keep the server from ever sending heartbeats).
        // Dated when the batch was stored, not read: a reader behind must not date it later.
        const info = m.info;
        streamKnown = m.seq + info.pending;
        if (info.pending === 0) pipeline.noteIdle(Math.min(Date.now(), info.timestampNanos / 1e6));
      } catch (e) {
        batchErrors++;
        if (batchErrors <= 3) log.error({ err: errorMessage(e), seq: m.seq, subject: m.subject }, "record batch failed: dropped");
        pipeline.discard(asAckable(m, partitionOfSubject(m.subject)));
      }
    }
  })();
  reader.then(
    () => end("ended"),
    (e) => {
      if (!stopped) log.warn({ err: errorMessage(e) }, "consumer iterator failed");
      end(`error_${e instanceof Error && "code" in e ? String((e as { code: unknown }).code) : "unknown"}`);
    },
  );
  // The server holds batches for this consumer, acknowledgements are not at their limit, yet
  // none arrived for STALL_CHECKS checks in a row: the pulls are lost (nats.js re-pulls on two
  // missed heartbeats, but not once its heartbeat monitor is off after a reconnect it could not
  // check). Asked only while nothing arrives; a failed ask (NATS down) decides nothing.
  let idleChecks = 0;
  const watchdog = setInterval(() => {
    if (stopped || Date.now() - lastDelivery < STALL_CHECK_MS) {
      idleChecks = 0;
      return;
    }
    const asked = Date.now();
    consumer.info().then(
      (ci) => {
        // Nothing waits for this consumer: an idle report, should no heartbeat come (nats.js may
        // stop pulling after a reconnect, and then the server sends none).
        if (ci.num_pending === 0) pipeline.noteIdle(asked);
        if (ci.num_pending > 0 && ci.num_ack_pending < (ci.config.max_ack_pending ?? Infinity)) {
          if (++idleChecks >= STALL_CHECKS) end("stalled");
        } else idleChecks = 0;
      },
      (e: unknown) => {
        const msg = errorMessage(e);
        if (/consumer not found/i.test(msg)) end("consumer_not_found");
        else if (/stream not found/i.test(msg)) end("stream_not_found");
      },
    );
  }, STALL_CHECK_MS);
  watchdog.unref();

  let lastWorking = Date.now();
  return {
    owned,
    core,
    pipeline,
    ended,
    tick(now) {
      pipeline.tick(now);
      if (now - lastWorking > o.ackWaitMs / 6) {
        // Refreshed by two thirds of the ack wait at the latest; most batches are acked before.
        lastWorking = now;
        const old = o.ackWaitMs / 2;
        for (const h of held.values()) {
          if (now - h.delivered < old) break;
          if (now - h.refreshed >= old) h.working(now);
        }
      }
    },
    snapshot() {
      const c = core.counters;
      return {
        records_in: c.recordsIn,
        records_accepted: c.recordsAccepted,
        batches_in: pipeline.counters.batchesIn,
        batches_acked: pipeline.counters.batchesAcked,
        batches_duplicate: pipeline.counters.duplicateDeliveries,
        batches_foreign: pipeline.counters.batchesForeign,
        batches_replayed_after_ack: pipeline.counters.replaysAfterAck,
        batches_replay_gap: replayGap,
        points_out: pipeline.counters.pointsOut,
        windows_written: pipeline.counters.windowsWritten,
        spans_kept: c.spansKept,
        spans_dropped: c.spansDropped,
        spans_over_budget: c.spansOverBudget,
        folded_values: c.folded,
        links_ambiguous: c.ambiguousTcp + c.ambiguousThread,
        edge_calls_matched: c.edgeCallsMatched,
        edge_tuples_overflow: c.edgeTuplesOverflow,
        // requests served while shed (probes' ShedReports): counted with the servers' series, or why not
        shed_requests_counted: Math.round(c.shedRequests.counted),
        shed_requests_unmapped: Math.round(c.shedRequests.unmapped),
        shed_requests_unobserved: Math.round(c.shedRequests.unobserved),
        shed_requests_late: Math.round(c.shedRequests.late),
        shed_requests_protocol: Math.round(c.shedRequests.protocol),
        drops_late: c.drops.late,
        // not a loss: records of windows already written, read again after a restart or a handover
        skipped_written: c.drops.redelivered,
        drops_future: c.drops.future,
        drops_invalid: c.drops.invalid,
        drops_cardinality: c.drops.cardinality_overflow,
        drops_span_buffer: c.drops.span_buffer_full,
        drops_role_unknown: c.drops.role_unknown,
        drops_decode: decodeErrors,
        drops_batch_error: batchErrors,
      };
    },
    async stop(waitMs) {
      stopped = true;
      clearInterval(watchdog);
      (natsStatus as { stop?: () => void }).stop?.();
      pipeline.stop();
      await messages.close().catch(() => undefined);
      if (waitMs) await Promise.race([pipeline.settled(), new Promise((r) => setTimeout(r, waitMs))]);
    },
  };
}

/** The partition number at the end of `wirescope.records.<p>` (-1 when there is none). */
function partitionOfSubject(subject: string): number {
  const i = subject.lastIndexOf(".");
  const n = Number(subject.slice(i + 1));
  return Number.isInteger(n) ? n : -1;
}

/** The services an instance counts: "3: api,db,web" (at most 50 named). */
function describeServices(services: string[]): string {
  const named = services.length <= 50 ? services.join(",") : `${services.slice(0, 50).join(",")},… +${services.length - 50}`;
  return `${services.length}${named ? ": " + named : ""}`;
}

/** Service names remembered for status at most. */
const MAX_LISTED_SERVICES = 10_000;
/** How long windows stay open at most while the batches published before a start are read. */
const BACKLOG_HOLD_MS = 60_000;
/** A consumer with no pull for this long is removed by the server (its instance died). */
const CONSUMER_INACTIVE_MS = 60_000;
/** A pull request's lifetime; the server sends idle heartbeats every half of it. */
const CONSUME_EXPIRES_MS = 5_000;
/** How long windows stay open after deliveries stalled (detection takes two heartbeats, ~5 s). */
const STALL_HOLD_MS = 30_000;
/** How long the server has to answer after missed heartbeats before they count as a stall. */
const STALL_ASK_MS = 2_000;
/** With nothing delivered for this long, the watchdog asks the server whether batches wait. */
const STALL_CHECK_MS = 10_000;
/** Checks in a row that found batches waiting and none delivered before the epoch restarts. */
const STALL_CHECKS = 3;
/**
 * Failpoint for the integration tests (test/aggregator-consume.test.ts), off unless the process
 * runs with --failpoints batch_throw (WIRESCOPE_FAILPOINTS=batch_throw): a batch carrying the
 * header `Wirescope-Failpoint: throw` makes its ingestion throw, as a bug in the core would.
 */
const FAILPOINT_HEADER = "Wirescope-Failpoint";
/** Batches delivered ahead of ingestion at most (see `consume` above). */
const CONSUME_MAX_BATCHES = 64;

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
    readonly partition: number,
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
    return recordsOf(fromBinary(RecordBatchSchema, data));
  }
}

async function openState(nc: NatsConnection, o: AggregatorOptions, replicas: number): Promise<KV> {
  try {
    return await new Kvm(nc).create(o.stateBucket, { history: 1, replicas });
  } catch (e) {
    throw new ServiceError("state", `cannot open KV bucket ${o.stateBucket}: ${errorMessage(e)}`, { cause: e });
  }
}

async function loadState(kv: KV, key: string): Promise<PartitionState | undefined> {
  const e = await kv.get(key);
  if (!e || e.value.length === 0) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(e.value)) as Partial<PartitionState>;
    if (typeof v.flushedBefore !== "number" || typeof v.fromSeq !== "number") return undefined;
    return { flushedBefore: v.flushedBefore, fromSeq: v.fromSeq };
  } catch {
    return undefined;
  }
}

/**
 * The state of an earlier version (one durable consumer `<durable>`, one key
 * `<durable>.watermark`), for partitions that have none yet: windows before its watermark are
 * written, and every batch it had not acknowledged is above the consumer's ack floor.
 */
async function loadLegacyState(kv: KV, jsm: JetStreamManager, o: AggregatorOptions): Promise<PartitionState | undefined> {
  const e = await kv.get(`${o.durable.replace(/[^A-Za-z0-9_-]/g, "_")}.watermark`).catch(() => null);
  if (!e || e.value.length === 0) return undefined;
  let flushedBefore: unknown;
  try {
    flushedBefore = (JSON.parse(new TextDecoder().decode(e.value)) as { flushedBefore?: unknown }).flushedBefore;
  } catch {
    return undefined;
  }
  if (typeof flushedBefore !== "number") return undefined;
  const ci = await jsm.consumers.info(o.stream, o.durable).catch(() => undefined);
  return { flushedBefore, fromSeq: ci ? ci.ack_floor.stream_seq + 1 : 1 };
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
