// The probe service: a source (eBPF or pcap replay) → enrichment → RawBatch per partition → NATS.
//
//   EbpfSource ──native batch──▶ RawEncoder (process info, partition) ──RawBatch bytes──▶ BatchPublisher
//   PcapSource ──EventBatch─────▶                                          wirescope.raw.<partition>
//
// Construction loads and attaches the BPF programs (or opens the capture), so a host without
// eBPF fails at once with a message saying why and what to do. `run` publishes until aborted.
import crypto from "node:crypto";
import fs from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  BatchPublisher,
  rawSubject,
  inboxPrefixOf,
  SHED_SUBJECT,
  ServiceError,
  watchAnnounced,
  errorMessage,
  selfIdentity,
  WakeTimer,
  type CreateService,
  type ServiceContext,
} from "@wirescope/runtime";
import {
  RawBatchSchema,
  ShedReportSchema,
  FilterSchema,
  type Filter,
} from "@wirescope/wire";
import { EbpfSource } from "./ebpf-source.js";
import { PcapSource } from "./pcap-source.js";
import { ProbeError } from "./native.js";
import { RawEncoder, monoToWallOffset, type EncodedBatch } from "./raw-encoder.js";
import { CarriedDrops, UnheardReplies } from "./unheard.js";
import { Http1Trimmer } from "./http1-trim.js";
import { ConnTracker } from "./conn-tracker.js";
import { CopyPolicyBatch } from "./copy-policy.js";
import { ProcessCache } from "./process-info.js";
import { parseProbeArgs } from "./options.js";
import { netnsInodeOf } from "./netns.js";
import { pipelineExclusions, type FilterSpec } from "./filter.js";
import type { EventSource } from "./source.js";
import { podResolverFromEnv } from "./k8s.js";
import { SamplingController, ownCpuMicros } from "./sampling.js";
import { PipelineCpu, readPidFile } from "./pipeline-cpu.js";
import { ShedServedDeltas } from "./shed-served.js";

/** Random high bits so keys from two probe instances on one node never collide. */
export function randomConnKeyBase(): bigint {
  return BigInt(crypto.randomBytes(3).readUIntBE(0, 3)) << 40n;
}

/** TLS library files named in `status` warnings (the rest are logged and counted). */
const MAX_TLS_WARNINGS = 16;

export function filterToSpec(f: Filter | undefined): FilterSpec {
  return {
    allowPids: [...(f?.allowPids ?? [])], denyPids: [...(f?.denyPids ?? [])],
    allowPorts: [...(f?.allowPorts ?? [])], denyPorts: [...(f?.denyPorts ?? [])],
    allowComms: [...(f?.allowComms ?? [])], denyComms: [...(f?.denyComms ?? [])],
    allowCgroups: [...(f?.allowCgroups ?? [])], denyCgroups: [...(f?.denyCgroups ?? [])],
  };
}

export function specToFilter(s: FilterSpec): Filter {
  return create(FilterSchema, { ...s });
}

export const createService: CreateService = async (ctx: ServiceContext) => {
  const opts = parseProbeArgs(ctx.args, ctx.env);
  // a node: one network namespace's processes and sockets, named by inode in the kernel
  const netnsIno = opts.netns !== undefined ? netnsInodeOf(opts.netns) : opts.netnsInode ?? 0;
  const skewNs = BigInt(opts.clockSkewMs) * 1_000_000n;
  const connKeyBase = randomConnKeyBase();
  let tlsWarnings = 0;
  let source: EventSource;
  let ebpf: EbpfSource | undefined;
  // budgets per second, accounted in windows of 100 ms (a tenth of each): a flood is shed after a
  // tenth of its second's budget, a burst into the ring stays small, a steady busy connection fits
  const interval = 100;
  const perWindow = (perSecond: number) => Math.ceil((perSecond * interval) / 1000);
  const fairness = { ringbufPct: opts.shedRingbufPct, intervalMs: interval, connBytes: perWindow(opts.connBudgetBytes), connCalls: perWindow(opts.connBudgetCalls), procBytes: perWindow(opts.procBudgetBytes) };
  // the observed fraction of new connections: fixed, or steered by the CPU budgets (the probe's
  // own, and the whole local pipeline's while the node has no spare CPU)
  const steered = opts.sampleFraction === undefined && (opts.cpuBudgetMillicores > 0 || opts.pipelineCpuBudgetMillicores > 0);
  const sampling = steered ? new SamplingController({ budgetMillicores: opts.cpuBudgetMillicores, pipelineBudgetMillicores: opts.pipelineCpuBudgetMillicores }) : undefined;
  const pods = podResolverFromEnv(ctx.log, ctx.env);
  const processes = new ProcessCache({ pods });
  if (opts.source === "pcap") {
    source = new PcapSource({ file: opts.pcapFile!, speed: opts.replaySpeed, loops: opts.replayLoops, connKeyBase, batchBytes: opts.batchBytes });
  } else {
    try {
      ebpf = new EbpfSource({
        chunkBytes: opts.chunkBytes,
        maxBytesPerCall: opts.maxBytesPerCall,
        ringbufBytes: opts.ringbufBytes,
        batchMs: opts.batchMs,
        batchBytes: opts.batchBytes,
        mountTracefs: opts.mountTracefs,
        lockPath: opts.lockFile || undefined,
        netnsIno,
        connKeyBase,
        // a decoder must never be given the middle of a TLS stream as if it were cleartext
        holdInferredCipher: true,
        excludePids: opts.excludePids,
        filter: opts.filter,
        // a process that ran exec is another program from then on (`npm start` → node, a launcher → its server)
        onProcessExec: (pid, ts) => processes.exec(pid, ts),
        onTlsError: (file, error) => {
          // once per file: `status` says which TLS traffic the probe cannot see (a bounded list)
          ctx.log.warn({ file, error }, "TLS library present but not traced");
          if (++tlsWarnings <= MAX_TLS_WARNINGS) ctx.warnings.add(`TLS library present but not traced: ${file} (${error})`);
        },
      });
    } catch (e) {
      const code = e instanceof ProbeError ? e.code : "ebpf_unavailable";
      throw new ServiceError(code, `eBPF unavailable: ${errorMessage(e)}`, { cause: e });
    }
    source = ebpf;
    // the overload policy is in force before the first connection is seen
    ebpf.setShedConfig({ sampleFraction: opts.sampleFraction ?? 1, ...fairness });
  }
  ctx.info.set("source", opts.source === "pcap" ? `pcap ${opts.pcapFile}` : "ebpf");
  if (netnsIno) ctx.info.set("netns", `${opts.netns ?? "inode"} (${netnsIno})`);
  const c = ctx.counters;
  // The kernel states as a gap, instead of copying, the bytes of a call that lie in a body of
  // known length whose head the trimmer has parsed (copy-policy.ts); the trimmer's policies reach
  // the kernel once per native batch.
  const policies = ebpf ? new CopyPolicyBatch(ebpf, connKeyBase) : undefined;
  const trimmer = opts.http1Bodies === "trim"
    ? new Http1Trimmer(65536, policies ? (key, policy, closedAt) => policies.note(key, policy, closedAt) : undefined)
    : undefined;

  return {
    handlers: {
      setFilter: (req: { filter?: Filter }) => {
        if (!ebpf) throw new ServiceError("unsupported", "filters apply to the eBPF source only");
        ebpf.setFilter(filterToSpec(req.filter));
        c.add("filter_changes");
        return { filter: specToFilter(ebpf.filter.filter) };
      },
    },
    async run(signal) {
      const nc = await ctx.nats();
      // processes that exited: forget them, and close their connections for the parsers
      const tracker = new ConnTracker();
      // every source's events go through this one encoder (a replay's timestamps are wall clock)
      const encoder = new RawEncoder({
        node: ctx.config.node, probeId: ctx.instance, partitions: ctx.config.partitions, processes,
        monoToWallOffsetNs: ebpf ? monoToWallOffset(skewNs) : 0n, maxBatchBytes: 512 * 1024, trimmer, holdMs: ebpf ? opts.batchMs : 0,
      }, (cr) => tracker.note(cr));
      const publisher = new BatchPublisher(nc, RawBatchSchema, { counters: c, prefix: "nats_", maxQueueBytes: 128 << 20 });
      let lastDrops: Record<string, number> = {};
      let last = { t: Date.now(), events: 0, bytes: 0 };
      // overload, every 250 ms (a second of loss before the first cut is too much): the probe's
      // own CPU (every thread: getrusage, what /proc/self/stat shows), the ring's fill and what
      // was lost steer the sampling level
      let level = opts.sampleFraction ?? 1;
      let epoch = 0;
      const started = Date.now();
      let ctl = { t: started, cpu: ownCpuMicros(), lost: -1 };
      // the local pipeline besides the probe: the --pipeline-pid processes, and the parsers and
      // aggregators announced from this node (kept by the registry watch, with the exclusions)
      const pipelineCpu = sampling && opts.pipelineCpuBudgetMillicores > 0 ? new PipelineCpu() : undefined;
      let announcedPids: number[] = [];
      // the --pipeline-pid processes and those the --pipeline-pid-file lists now: read again every
      // second, so that a nats-server or influxd that `up` started again is counted by its new pid
      let namedPids = opts.pipelinePids;
      const readNamed = () => {
        const next = [...new Set([...opts.pipelinePids, ...(opts.pipelinePidFile ? readPidFile(opts.pipelinePidFile) : [])])];
        if (next.join(",") !== namedPids.join(",") || !ctx.info.get("pipeline_pids")) ctx.info.set("pipeline_pids", next.join(",") || "none");
        namedPids = next;
      };
      readNamed();
      const pidFileReader = opts.pipelinePidFile ? setInterval(readNamed, 1000) : undefined;
      const steer = () => {
        const now = Date.now();
        const dt = Math.max(1, now - ctl.t) / 1000;
        const cpu = ownCpuMicros();
        const cpuMillicores = (cpu - ctl.cpu) / 1000 / dt;
        // the drops only: counting the tracked connections walks the kernel's table (tick does it once a second)
        const s = source.stats(false);
        const lost = (s.drops["kernel.ringbuf_full"] ?? 0) + (s.drops["user.js_behind"] ?? 0) + c.get("nats_drops_queue_full");
        const ringFill = ebpf?.ringFill() ?? 0;
        const pipeline = pipelineCpu?.sample([...namedPids, ...announcedPids]);
        const pipelineMillicores = pipeline ? cpuMillicores + pipeline.millicores : undefined;
        // not in the first 2 s: start-up (connecting, the batches kept since attach) is no load
        if (ebpf && sampling && now - started >= 2000 && ctl.lost >= 0) {
          const next = sampling.update({ cpuMillicores, ringFill, lost: lost - ctl.lost, pipelineMillicores, nodeIdle: pipeline?.nodeIdle });
          // levels are applied in steps the kernel can tell apart (1/32768); while sampling, every
          // tick is a new epoch: keep-alive connections are decided again each tick, at an unchanged
          // level too, so that each decision stands for one tick whatever the steering does next
          // (deciding again only at a change of level biased the scaled counts low: native.ts epoch)
          const changed = Math.abs(next - level) * 32768 >= 1;
          if (changed) level = next;
          if (changed || level < 1) ebpf.setShedConfig({ sampleFraction: level, epoch: ++epoch, ...fairness });
        }
        c.set("sample_fraction", level);
        c.set("cpu_millicores", Math.round(cpuMillicores));
        c.set("ringbuf_fill", Math.round(ringFill * 1000) / 1000);
        if (pipeline) {
          c.set("pipeline_cpu_millicores", Math.round(pipelineMillicores!));
          c.set("pipeline_processes", pipeline.processes + 1);
          c.set("node_idle_pct", Math.round(pipeline.nodeIdle * 1000) / 10);
        }
        ctl = { t: now, cpu, lost };
      };
      // requests served while shed, by server process and port: what each grew by since the last
      // tick goes to the aggregators, which count them with what they observed of that server
      const shedServed = new ShedServedDeltas();
      let shedSince = Date.now();
      const reportShed = () => {
        if (!ebpf) return;
        const now = Date.now();
        const served = shedServed.update(ebpf.shedServed());
        if (served.length > 0) {
          const report = create(ShedReportSchema, { node: ctx.config.node, probeId: ctx.instance, sinceUnixMs: BigInt(shedSince), timeUnixMs: BigInt(now), served: served.map((d) => ({ pid: d.pid, port: d.port, requests: BigInt(d.requests) })) });
          try {
            nc.publish(SHED_SUBJECT, toBinary(ShedReportSchema, report));
            c.add("shed_reports_published");
          } catch (e) {
            c.add("shed_reports_failed");
            ctx.log.debug({ reason: errorMessage(e) }, "shed report not published");
          }
        }
        shedSince = now;
      };
      const steerer = setInterval(() => (steer(), reportShed()), 250);
      let eventsIn = 0;
      let bytesIn = 0;

      const tick = () => {
        const s = source.stats();
        const delta: Record<string, number> = {};
        for (const [k, v] of Object.entries(s.drops)) {
          c.set(`drops.${k}`, v);
          const d = v - (lastDrops[k] ?? 0);
          if (d > 0) delta[k] = d;
        }
        lastDrops = s.drops;
        encoder.addDrops(delta);
        const now = Date.now();
        const dt = Math.max(1, now - last.t) / 1000;
        c.set("events_per_s", Math.round((eventsIn - last.events) / dt));
        c.set("bytes_per_s", Math.round((bytesIn - last.bytes) / dt));
        if (ebpf) {
          const shed = ebpf.shedStats();
          for (const [k, v] of Object.entries(shed.connections)) c.setTotal(`shed_connections.${k}`, v);
          for (const [k, v] of Object.entries(shed.bytes)) c.setTotal(`shed_bytes.${k}`, v);
          for (const [k, v] of Object.entries(shed.serverRequests)) c.setTotal(`shed_requests_server.${k}`, v);
          for (const [k, v] of Object.entries(shed.clientRequests)) c.setTotal(`shed_requests_client.${k}`, v);
        }
        last = { t: now, events: eventsIn, bytes: bytesIn };
        c.set("connections_tracked", s.connections);
        c.set("processes", processes.size);
        c.setTotal("processes_exec_refreshed", processes.execRefreshed);
        c.set("programs_attached", s.programs.length);
        if (trimmer) {
          for (const [k, v] of Object.entries(trimmer.stats)) c.set(`http1_trim.${k}`, v);
          c.set("http1_trim.table", trimmer.size);
        }
        if (policies) for (const [k, v] of Object.entries(policies.stats)) c.set(`copy_policy.${k}`, v);
        for (const [k, v] of Object.entries(s.tls ?? {})) c.set(`tls.${k}`, v);
        ctx.info.set("programs", s.programs.join(","));
      };
      tick();
      const ticker = setInterval(tick, 1000);
      let reapExited = () => {};
      const sweeper = setInterval(() => {
        reapExited();
        c.add("processes_exited", processes.sweep());
        c.set("connections_open", tracker.size);
      }, opts.sweepMs);
      // The pipeline's own processes (parser, aggregator) announce their pid and cgroup in the
      // registry: never trace them. Until a parser is excluded, the probe traces that parser's
      // input, which is the probe's own output (at 20,000 req/s the 5 s this once took sent
      // megabytes round the loop before the fairness budget shed it as a flood). A watch on the
      // registry applies each member as it joins or leaves, and costs no request while nothing
      // changes: reading the registry every second cost 2 JetStream API requests a second plus one
      // per announced service, forever (docs/probe.md, "Filters").
      const self = selfIdentity();
      let announcedCgroups: bigint[] = [];
      // a cgroup no longer announced is forgotten after the filter's grace: one timeout, then
      const cgroupForget = new WakeTimer(() => applyCgroups());
      const applyCgroups = () => {
        ebpf!.filter.excludeCgroups(announcedCgroups);
        const due = ebpf!.filter.nextCgroupForgetMs(announcedCgroups);
        if (due >= 0) cgroupForget.arm(due - Date.now());
      };
      const membersStop = new AbortController();
      if (ebpf)
        watchAnnounced(nc, {
          signal: membersStop.signal,
          onChange: (list) => {
            const { pids, cgroups } = pipelineExclusions(list, { node: ctx.config.node, pid: process.pid, pidNs: self.pidNs });
            announcedPids = pids;
            announcedCgroups = cgroups;
            ebpf!.filter.setAnnouncedPids(pids);
            applyCgroups();
            c.set("pipeline_excluded.pids", pids.length);
            c.set("pipeline_excluded.cgroups", cgroups.length);
          },
          onError: (e) => {
            c.add("registry_watch_errors");
            ctx.log.debug({ reason: errorMessage(e) }, "registry watch failed; watching again");
          },
          onRestart: () => c.add("registry_watch_restarts"),
        });
      // raw batches published while nothing subscribed to their subject: counted (unheard.ts)
      const unheard = new UnheardReplies(inboxPrefixOf(ctx.config.nats));
      // reported in a later batch: an unheard batch with its requests, and the drops it carried
      const carried = new CarriedDrops();
      let unheardSaid = 0;
      const unheardSub = nc.subscribe(unheard.subject, {
        callback: (_e, m) => {
          const u = unheard.parse(m.subject, m.headers?.code);
          if (!u) return;
          c.add("raw_batches_unheard");
          if (u.served) c.add("requests_unheard", u.served);
          encoder.addDrops(carried.unheard(u));
          // said at the first, then at most once a minute, with the running count
          const now = Date.now();
          if (now - unheardSaid >= 60_000) {
            unheardSaid = now;
            ctx.log.warn({ batches: c.get("raw_batches_unheard"), requests: c.get("requests_unheard"), partition: u.partition }, "raw batches published with no parser subscribed to their partition: lost, counted (raw_batches_unheard)");
          }
        },
      });
      const publish = (ms: EncodedBatch[]) => {
        for (const m of ms) {
          publisher.publishBytes(rawSubject(m.partition), m.data, unheard.replyOf(m));
          carried.sent(m);
        }
      };
      try {
        if (ebpf) {
          // the hot path: native batches straight to RawBatch bytes
          // partitions whose data waited for later native batches go out once it is batch-ms old;
          // the ager wakes only while something waits, at most every batch-ms / 5
          const agePeriodMs = Math.max(5, Math.floor(opts.batchMs / 5));
          const ager: WakeTimer = new WakeTimer(() => {
            publish(encoder.flushDue());
            armAger();
          });
          const armAger = () => {
            if (ager.armed) return;
            const due = encoder.nextDueMs();
            if (due >= 0) ager.arm(Math.max(agePeriodMs, Math.ceil(due)));
          };
          reapExited = () => {
            const closes = tracker.reap((pid) => !fs.existsSync(`/proc/${pid}`), process.hrtime.bigint());
            if (!closes.length) return;
            c.add("conns_closed_by_exit", closes.length);
            publish(encoder.encodeConns(closes));
            policies?.flush();
          };
          try {
            await ebpf.runRaw((buf) => {
              const r = encoder.encode(buf);
              eventsIn += r.events;
              bytesIn += r.bytes;
              c.add("events_in", r.events);
              policies?.flush();
              publish(r.messages);
              armAger();
            }, signal, encoder.decodeStats);
          } finally {
            ager.stop();
            publish(encoder.flushDue(true));
          }
        } else await source.run(async (b) => {
          eventsIn += b.conns.length + b.data.length;
          for (const d of b.data) bytesIn += d.payload.length;
          c.add("events_in", b.conns.length + b.data.length);
          publish(encoder.encodeEvents(b));
          if (source.kind === "pcap") {
            // replay: wait for NATS instead of dropping (live capture never waits)
            while (publisher.depth > 1000 && !signal.aborted) await new Promise((r) => setTimeout(r, 5));
          }
        }, signal);
        if (source.kind === "pcap") {
          tick();
          publish(encoder.flushDue(true));
          ctx.log.info({ events: eventsIn, bytes: bytesIn }, "pcap replay finished");
          if (!signal.aborted) await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        }
      } finally {
        clearInterval(ticker);
        clearInterval(steerer);
        reportShed(); // what was served while shed since the last tick
        clearInterval(sweeper);
        // the watch stops at once; nothing it still receives reaches the filter
        membersStop.abort();
        cgroupForget.stop();
        if (pidFileReader) clearInterval(pidFileReader);
        ebpf?.close();
        await publisher.close().catch((e) => ctx.log.warn({ err: errorMessage(e) }, "flush on stop failed"));
        // the statuses of the last batches come within a round trip of the flush
        await nc.flush().catch(() => undefined);
        unheardSub.unsubscribe();
      }
    },
  };
};
