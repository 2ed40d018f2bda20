// The parser service: wires membership, raw subscriptions, the pipeline, output to JetStream,
// plugin sources and the gRPC handlers. The data path itself (pipeline.ts) has no I/O.
//
//   KV wirescope-parsers ──members──▶ rendezvous ──owned partitions──▶ subscribe wirescope.raw.<p>
//   RawBatch ──▶ Pipeline ──RecordBatch──▶ JetStream wirescope.records.<service partition>
//   object store wirescope-plugins / --plugin-dir / built-ins ──▶ PluginSet
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import {
  ListPluginsResponseSchema,
  PluginInfoSchema,
} from "@wirescope/wire";
import {
  errorMessage,
  ensureRecordsStream,
  withJetStreamRetry,
  recordsSubject,
  type CreateService,
  type Logger,
} from "@wirescope/runtime";
import {
  TopicNameDirectory,
} from "@wirescope/plugin-host";
import { ownedPartitions, ownerOf, describePartitions, NatsMembership, WakeTimer } from "@wirescope/runtime";
import { parseParserArgs, type ParserOptions } from "./options.js";
import { LossReport } from "./loss-report.js";
import { ProgressStore } from "./progress-nats.js";
import { Pipeline, type Progress } from "./pipeline.js";
import { PluginLoader, openPluginStore, watchPluginDir, watchPluginStore } from "./plugin-sources.js";
import { PublishWatermark } from "./publish-watermark.js";
import { RawInput } from "./raw-input.js";
import { shareTopicNames, type TopicNameSharing } from "./topic-names-nats.js";
import { redactionPolicy } from "./redact.js";
import { PluginSet } from "./wasm-plugins.js";
import type { EncodedBatch } from "./record-batcher.js";

/** Closed output batches waiting for JetStream before input processing pauses. */
const MAX_QUEUED_OUTPUT = 64;

export const createService: CreateService = async (ctx) => {
  const o: ParserOptions = parseParserArgs(ctx.args, ctx.env);
  // Not ready before the first assignment is subscribed and the server has the subscriptions
  // (required here, before NATS can connect: SERVING for a moment at the connect was enough): a
  // replica SERVING with no partitions yet let `up` start the traffic while nobody received the
  // raw data, and those first batches (the connections' opens among them) were lost with nothing
  // to count them against (docs/parser.md, "Readiness").
  const assigned = ctx.health.require("partitions");
  assigned.down("not assigned yet");
  const log = ctx.log;
  const counters = ctx.counters;
  const P = ctx.config.partitions;
  const noRedact = new Set(o.noRedact);
  const plugins = new PluginSet(o.maxDetectBytes);
  const loader = new PluginLoader(plugins, (proto) => !noRedact.has(proto), counters, log, ctx.warnings);
  loader.loadDir(o.builtinDir, "builtin");
  if (!plugins.plugins().length) ctx.warnings.add(`no built-in plugins in ${o.builtinDir} (run the build): only plugins added later decode`);
  // Kafka topic ids named across instances and replicas: pairs learned here go to the shared
  // bucket once it is open (topic-names-nats.ts)
  let shareTopicName: ((id: string, name: string) => void) | undefined;
  const topicNames = new TopicNameDirectory((id, name) => shareTopicName?.(id, name));
  const pipeline = new Pipeline(
    plugins,
    {
      ...o,
      topicNames,
      node: ctx.config.node,
      parserId: ctx.instance,
      partitions: P,
      redaction: redactionPolicy(o.redactHeaders, o.noRedact),
      maxBatchBytes: 512 * 1024,
      maxQueuedBatches: MAX_QUEUED_OUTPUT * 4,
    },
    counters,
  );
  ctx.info.set("redaction", o.noRedact.length ? `on except ${o.noRedact.join(",")}` : "on");
  ctx.info.set("partitions_total", String(P));

  const listPlugins = () =>
    create(ListPluginsResponseSchema, {
      plugins: plugins.plugins().map((p) =>
        create(PluginInfoSchema, {
          name: p.manifest.name,
          version: p.manifest.version,
          abiVersion: p.manifest.abi,
          source: p.source,
          ports: p.manifest.ports ?? [],
          sha256: p.sha256,
        }),
      ),
    });

  return {
    handlers: { listPlugins },
    async run(signal) {
      const nc = await ctx.nats();
      const js = jetstream(nc);
      await withJetStreamRetry("records stream", () => ensureRecordsStream(nc, { name: o.recordsStream, maxBytes: o.streamMaxBytes, maxAgeMs: o.streamMaxAgeMs, replicas: ctx.config.nats.replicas }, log), { log, signal });
      const output = new Output(js, pipeline, counters, log, ctx.instance, signal);
      // Output waiting on JetStream acks past the bound: stop taking input until it drains (input
      // then queues, and beyond its bound is dropped and counted) rather than holding unbounded memory.
      let waitingOutput = false;
      // Armed by the raw batch that finds it idle: records (and the raw progress they commit) go
      // out within --flush-ms of their batch, and a replica with no input has no flush wake-ups.
      const flushTimer = new WakeTimer(() => output.poke());
      const input: RawInput = new RawInput(
        nc,
        (data, arrivedMs) => {
          pipeline.onRawBytes(data, performance.now());
          output.watermark.handled(arrivedMs);
          flushTimer.arm(o.flushMs);
          if (!waitingOutput && pipeline.queuedBatches() >= MAX_QUEUED_OUTPUT) {
            waitingOutput = true;
            input.pause();
            void output.flush().finally(() => {
              waitingOutput = false;
              input.resume();
            });
          }
        },
        { maxPending: o.maxRawPending, counters, log, health: ctx.health },
      );
      // This replica's watermark (docs/parser.md, "Membership protocol"): stated in its heartbeat,
      // and behind the wall clock by its `watermark_lag_ms`.
      const watermark = (): number => output.publishedThroughMs(input.oldestQueuedMs());
      // The raw progress this replica committed goes to its own key of the progress bucket, which
      // nobody watches (progress-nats.ts): put at once (not at the next heartbeat) so a
      // successor's loss count is exact to within the flush in flight when this replica dies.
      // The membership entry, which every replica and aggregator watches, is written at once too
      // for its watermark, and stays small.
      const progressStore = new ProgressStore(nc, ctx.instance, { bucket: o.progressBucket, replicas: ctx.config.nats.replicas }, counters, log);
      await progressStore.start(signal);
      output.onCommitted = (p) => {
        if (progressStore.committed(p)) void membership.heartbeat();
      };

      // Each entry carries the losses counted since the last one written (loss-report.ts).
      const losses = new LossReport();
      const membership = new NatsMembership(
        nc,
        () => {
          progressStore.refresh();
          return { id: ctx.instance, node: ctx.config.node, grpc: ctx.info.get("grpc"), publishedThroughMs: watermark(), losses: losses.pending(counters.entries()) };
        },
        { heartbeatMs: o.heartbeatMs, ttlMs: o.ttlMs, bucket: o.membersBucket, replicas: ctx.config.nats.replicas, counters, health: ctx.health, onWritten: (info) => losses.written(info.losses) },
        log,
        (members, died) => rebalance(members, died),
      );
      let previousMembers: string[] | undefined;
      const rebalance = (members: string[], died: string[]) => {
        const next = ownedPartitions(ctx.instance, members, P);
        // at this replica's first view, the fleet before it joined (the others; none for the
        // first replica): the partitions it takes were theirs, and what their move lost (a batch
        // published between the owner's unsubscribe and ours) is counted against their progress
        const before = previousMembers ?? members.filter((m) => m !== ctx.instance);
        previousMembers = members;
        const previousOwner = (p: number) => {
          const prev = ownerOf(p, before);
          return prev && prev !== ctx.instance ? prev : undefined;
        };
        const { added, removed } = pipeline.setOwned(next, (p) => {
          const prev = previousOwner(p);
          return prev ? () => progressStore.of(prev) : undefined;
        });
        // the previous owners' progress, read now and until the takeovers settle (the pipeline
        // asks for it then)
        for (const prev of new Set(added.map(previousOwner))) if (prev) progressStore.want(prev);
        for (const p of removed) void input.remove(p);
        for (const p of added) input.add(p);
        if (!assigned.isUp) {
          const ready = () => assigned.up();
          nc.flush().then(ready, ready); // (NATS down: its own dependency says so)
        }
        if (added.length || removed.length || died.length)
          log.info({ members: members.length, owned: next.size, added: added.length, removed: removed.length, died }, "partitions rebalanced");
        ctx.info.set("members", members.join(","));
        ctx.info.set("partitions_owned", describePartitions(next, P));
      };

      await membership.start(signal);
      let stopStore: (() => Promise<void>) | undefined;
      try {
        // Retried while a cluster member is lost or a leader elected: a parser starting then
        // would otherwise run without the plugin store until restarted. The watch itself is kept.
        const os = await withJetStreamRetry("plugin store", () => openPluginStore(nc, o.pluginBucket, ctx.config.nats.replicas), { log, signal });
        stopStore = watchPluginStore(loader, os, log, counters, ctx.health);
      } catch (e) {
        ctx.warnings.add(`plugin store unavailable: ${errorMessage(e)}`);
      }
      const stopDir = o.pluginDir ? watchPluginDir(loader, o.pluginDir, 1000, log) : undefined;
      let topicSharing: TopicNameSharing | undefined;
      try {
        topicSharing = await withJetStreamRetry("kafka topic names bucket", () => shareTopicNames(nc, topicNames, { bucket: o.topicNamesBucket, replicas: ctx.config.nats.replicas, health: ctx.health }, counters, log), { log, signal });
        shareTopicName = topicSharing.put;
      } catch (e) {
        ctx.warnings.add(`kafka topic names not shared: ${errorMessage(e)}`);
      }

      const rates = new Map<string, number>();
      const tick = setInterval(() => {
        pipeline.sweep(performance.now());
        // idle eviction writes the incomplete requests of the connections it ends
        if (pipeline.hasOutput()) flushTimer.arm(o.flushMs);
        const snap = counters.snapshot();
        for (const [k, v] of Object.entries(snap)) {
          if (!k.startsWith("records.")) continue;
          const proto = k.slice(8);
          counters.set(`records_per_s.${proto}`, v - (rates.get(proto) ?? v));
          rates.set(proto, v);
        }
        counters.set("plugins_loaded_now", plugins.plugins().length);
        const tn = topicNames.counts;
        counters.setTotal("kafka_topic_ids.learned", tn.learned);
        counters.setTotal("kafka_topic_ids.named", tn.named);
        counters.setTotal("kafka_topic_ids.unnamed", tn.unnamed);
        counters.setTotal("kafka_topic_ids.malformed", tn.malformed);
        counters.set("kafka_topic_ids.known", topicNames.size);
        counters.set("raw_sub_pending", input.pending);
        // How far this replica's watermark is behind the wall clock: the aggregators' windows wait
        // for the lowest (their `parser_lag_ms`); this says which replica holds them.
        counters.set("watermark_lag_ms", Math.max(0, Date.now() - watermark()));
        // The plugin host's own counters: traps and what plugins report per connection (ABI v2:
        // plugin_errors.<plugin>, plugin_drops.<plugin>, plugin_bytes_dropped.<plugin>) under
        // their usual names, the rest prefixed.
        const host = plugins.engineCounters;
        for (const [k, v] of Object.entries(host.snapshot())) {
          const name = PLUGIN_COUNTER.test(k) ? k : `host.${k}`;
          if (host.isGauge(k)) counters.set(name, v);
          else counters.setTotal(name, v);
        }
        // ABI v2 feed_batch calls and the steps they carried (a raw batch's chunks per instance)
        counters.setTotal("host.feed_batch_calls", plugins.engine.batched.calls);
        counters.setTotal("host.feed_batch_steps", plugins.engine.batched.entries);
      }, 1000);

      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });

      clearInterval(tick);
      flushTimer.stop();
      stopDir?.();
      await stopStore?.();
      await topicSharing?.stop();
      await input.close();
      input.drainQueue();
      pipeline.closeAll();
      await output.flush();
      // the final progress lands before the goodbye, which makes the others take over at once
      await progressStore.flush();
      progressStore.stop();
      await membership.stop();
    },
  };
};

/** Plugin host counters shown under their own names (the rest get `host.`). */
const PLUGIN_COUNTER = /^plugin_(traps|errors|drops|bytes_dropped)\./;

/** How long one batch is retried (server lost, stream leader moving) before it counts as dropped. */
const PUBLISH_RETRY_BUDGET_MS = 60_000;

/**
 * Publishes the pipeline's batches to JetStream, one flush at a time: every batch of a flush is
 * acknowledged before the raw progress it covers is committed (and written into this replica's
 * membership entry, where a successor reads it after a crash to count what was lost).
 *
 * A batch whose publish fails (its server died, the stream is electing a leader) is sent again
 * with the same Nats-Msg-Id until acknowledged, for up to PUBLISH_RETRY_BUDGET_MS: the stream's
 * duplicate window (RECORDS_DUPLICATE_WINDOW_MS, longer) stores it once even when the first try
 * was stored and only its acknowledgement was lost. Only past the budget is it dropped, counted.
 */
class Output {
  private flushing: Promise<void> | undefined;
  private again = false;
  /** What bounds `publishedThroughMs` (publish-watermark.ts). */
  readonly watermark = new PublishWatermark(Date.now());
  /** Tells this process's batches from an earlier one with the same instance name (a pod restarted). */
  private readonly nonce = randomBytes(6).toString("hex");
  onCommitted: (p: Progress) => void = () => {};

  constructor(
    private readonly js: JetStreamClient,
    private readonly pipeline: Pipeline,
    private readonly counters: import("@wirescope/runtime").Counters,
    private readonly log: Logger,
    private readonly parserId: string,
    private readonly signal: AbortSignal,
  ) {}

  /**
   * This replica's watermark, stated in its membership heartbeat (docs/parser.md): every record
   * that ended before this wall-clock time is acknowledged by JetStream (PublishWatermark).
   * `oldestQueuedMs`: when the oldest raw message still queued arrived. Aggregators close no
   * window past it, so records held up here (a publish timing out, input queued behind it, a
   * busy event loop) are not late.
   */
  publishedThroughMs(oldestQueuedMs: number): number {
    return this.watermark.through(Date.now(), this.flushing !== undefined || this.pipeline.hasOutput(), oldestQueuedMs);
  }

  /** Called by the flush timer: starts a flush unless one runs. */
  poke(): void {
    if (this.flushing) {
      this.again = true;
      return;
    }
    void this.flush();
  }

  async flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      do {
        this.again = false;
        const began = Date.now();
        const progress = this.pipeline.progress();
        const batches = this.pipeline.takeOutput();
        this.watermark.took();
        if (batches.length) await Promise.all(batches.map((b) => this.publish(b)));
        this.watermark.completed(began);
        this.onCommitted(progress);
      } while (this.again && this.pipeline.hasOutput());
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async publish(b: EncodedBatch): Promise<void> {
    const msgID = `${this.parserId}.${this.nonce}.${b.seq}`;
    const started = Date.now();
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.js.publish(recordsSubject(b.partition), b.bytes, { msgID });
        if (ack.duplicate) this.counters.add("record_batches_deduplicated");
        this.counters.add("records_published", b.records);
        this.counters.add("records_published_bytes", b.bytes.length);
        this.counters.add("record_batches_published");
        if (attempt > 1) this.log.info({ attempts: attempt, records: b.records, ms: Date.now() - started }, "record batch published after retrying");
        return;
      } catch (e) {
        // Shutting down: one try more would outlive the grace period; the loss is counted.
        if (Date.now() - started + delay > PUBLISH_RETRY_BUDGET_MS || this.signal.aborted) {
          this.counters.add("records_dropped.publish_failed", b.records);
          this.log.warn({ err: errorMessage(e), records: b.records, attempts: attempt }, "record batch publish failed");
          return;
        }
        this.counters.add("record_publish_retries");
        if (attempt === 1) this.log.warn({ err: errorMessage(e), records: b.records }, "record batch publish failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }
}
