// The service contract (what probe, parser and aggregator implement) and the runtime that runs one.
//
// A service is built in two steps: `createService(ctx)` may fail with a clear message and starts
// nothing; `run(signal)` runs until the signal aborts. The runtime owns everything around it:
// config, logger, the shared NATS connection, the gRPC control port (Health + Status), the
// Prometheus /metrics port (metrics.ts), and the announcement in the `wirescope-services` KV bucket that `wirescope status` reads.
import type { NatsConnection } from "@nats-io/nats-core";
import { loadConfig, type Config, type Component } from "./config.js";
import { redactUrl } from "./redact.js";
import { createLogger, type Logger } from "./log.js";
import { Counters } from "./counters.js";
import { HealthGate } from "./health.js";
import { connectNats } from "./nats.js";
import { withJetStreamRetry } from "./records-stream.js";
import { GrpcServer } from "./grpc.js";
import { metricsRegistry, serveMetrics, type MetricsServer } from "./metrics.js";
import { announce, openRegistry, defaultInstance } from "./registry.js";
import { selfIdentity } from "./self-identity.js";
import { ServiceError, WirescopeError, errorMessage } from "./errors.js";
import { ProbeService, ParserService, AggregatorService } from "@wirescope/wire/gen/wirescope/v1/control_pb";

export type { Component };

/** Everything the runtime hands a service at construction. */
export interface ServiceContext {
  readonly component: Component;
  /** Unique per process, e.g. "host-parser-1234". */
  readonly instance: string;
  readonly config: Config;
  /** Arguments the shared config did not recognise: the service's own flags. */
  readonly args: readonly string[];
  /** The environment its own flags' variables are read from (the config layer's, process.env by default). */
  readonly env: NodeJS.ProcessEnv;
  /** pino logger with `component` and `instance`. */
  readonly log: Logger;
  /** Reported by the Status RPC and `wirescope status`. */
  readonly counters: Counters;
  /** `health.require("influxdb")` returns a handle to mark up/down; "nats" is already required. */
  readonly health: HealthGate;
  /** The process's shared, reconnecting NATS connection (resolves once first connected). */
  nats(): Promise<NatsConnection>;
  /** Extra key/values shown by `wirescope status`. */
  readonly info: Map<string, string>;
  /** Human-readable problems shown by `wirescope status` (e.g. "eBPF unavailable: not root"). */
  readonly warnings: Set<string>;
}

/** A gRPC unary handler for one method of the component's service (protobuf-es messages). */
// biome-ignore lint/suspicious/noExplicitAny: each method has its own protobuf-es message types
export type UnaryHandler = (request: any) => Promise<any> | any;

/** What `createService` returns. */
export interface RunningService {
  /** Runs until `signal` aborts, then stops cleanly (flush, close) and resolves. Rejecting = crash. */
  run(signal: AbortSignal): Promise<void>;
  /**
   * Implementations of the component's gRPC methods other than Status, keyed by protobuf-es
   * local name (ProbeService: "setFilter"; ParserService: "listPlugins"). Unimplemented methods
   * answer UNIMPLEMENTED.
   */
  handlers?: Record<string, UnaryHandler>;
}

/** Step one: construction. Each service package exports one of these as `createService`. */
export type CreateService = (ctx: ServiceContext) => Promise<RunningService>;

export { Counters, HealthGate };

/** The gRPC service each component serves next to Health. */
export const COMPONENT_SERVICES = { probe: ProbeService, parser: ParserService, aggregator: AggregatorService } as const;

export interface RunServiceOptions {
  component: Component;
  create: CreateService;
  /** Command-line arguments after the subcommand. */
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /**
   * Checks the service's own flags (ServiceContext.args, env) before anything starts, so a bad one
   * is one line and exit code 2 with no connection tried. Throws ConfigError.
   */
  checkArgs?(args: readonly string[], env: NodeJS.ProcessEnv): void;
  /** Stops the service; default: SIGINT or SIGTERM. */
  signal?: AbortSignal;
  version?: string;
  /** Overrides merged after flags and env (tests). */
  overrides?: Partial<Config>;
  /** Replaces the logger built from config (tests). */
  log?: Logger;
  /** Called once the gRPC port is bound. */
  onListening?(address: string): void;
  /** How long run() may take to stop after the signal before we give up on it (default 10 s). */
  stopTimeoutMs?: number;
}

/**
 * Runs one service instance in the foreground until the signal (default SIGINT/SIGTERM):
 * config → logger → NATS (background, reconnecting) → createService → gRPC (Health + Status)
 * → announce in the registry → service.run(signal). Stopping reverses it: NOT_SERVING, run() ends,
 * announcement removed, gRPC closed, NATS drained.
 *
 * Returns the exit code (0 after a clean stop). Throws ConfigError for bad options, ServiceError
 * when the service cannot be built, GrpcError when the control port cannot be bound: each with
 * a one-line message for the command line.
 */
export async function runService(opts: RunServiceOptions): Promise<number> {
  const started = Date.now();
  const { config, rest } = loadConfig({ component: opts.component, argv: opts.argv, env: opts.env, overrides: opts.overrides });
  opts.checkArgs?.(rest, opts.env ?? process.env);
  const instance = config.instance ?? defaultInstance(config.node, opts.component);
  const log = (opts.log ?? createLogger(opts.component, { level: config.logLevel, format: config.logFormat })).child({ instance });

  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, "stopping");
    stop.abort();
  };
  if (opts.signal) {
    if (opts.signal.aborted) stop.abort();
    opts.signal.addEventListener("abort", () => stop.abort(), { once: true });
  } else {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }

  const counters = new Counters();
  const health = new HealthGate();
  const natsDep = health.require("nats");
  const info = new Map<string, string>([
    ["node", config.node],
    ["pid", String(process.pid)],
    ["nats", redactUrl(config.nats.url)],
  ]);
  const natsPromise = connectNats(config.nats, log, {
    name: `wirescope-${opts.component} ${instance}`,
    signal: stop.signal,
    dependency: natsDep,
    counters,
    onServer: (name) => info.set("nats_server", name),
  });
  natsPromise.catch(() => {}); // observed below and through ctx.nats()

  const warnings = new Set<string>();
  const ctx: ServiceContext = {
    component: opts.component,
    instance,
    config,
    args: rest,
    env: opts.env ?? process.env,
    log,
    counters,
    health,
    nats: () => natsPromise,
    info,
    warnings,
  };

  let grpcServer: GrpcServer | undefined;
  let metricsServer: MetricsServer | undefined;
  let nc: NatsConnection | undefined;
  let announcement: { stop(): Promise<void> } | undefined;
  let code = 0;
  try {
    let svc: RunningService;
    try {
      svc = await opts.create(ctx);
    } catch (e) {
      if (e instanceof WirescopeError) throw e;
      throw new ServiceError("create_failed", `${opts.component} could not start: ${errorMessage(e)}`, { cause: e });
    }

    grpcServer = new GrpcServer({ log, health });
    const handlers = svc.handlers ?? {};
    grpcServer.addService(COMPONENT_SERVICES[opts.component] as typeof ProbeService, {
      ...handlers,
      status: () => ({
        component: opts.component,
        instance,
        version: opts.version ?? "",
        uptimeMs: BigInt(Date.now() - started),
        ready: health.serving,
        counters: counters.snapshot(),
        info: Object.fromEntries(info),
        warnings: [...warnings, ...health.reasons()],
      }),
    });
    const { address } = await grpcServer.listen(config.grpc.host, config.grpc.port);
    info.set("grpc", address);
    log.info({ grpc: address }, "control port listening");
    opts.onListening?.(address);

    // Prometheus /metrics: read at scrape time from the same counters as Status. A port that
    // cannot be bound costs the metrics only (a warning in status), never the pipeline.
    if (config.metrics.port > 0) {
      const registry = metricsRegistry({
        component: opts.component,
        instance,
        version: opts.version ?? "",
        counters,
        info,
        ready: () => health.serving,
        warnings: () => warnings.size + health.reasons().length,
        uptimeSeconds: () => (Date.now() - started) / 1000,
      });
      try {
        metricsServer = await serveMetrics(registry, config.metrics.host, config.metrics.port);
        info.set("metrics", `http://${metricsServer.address}/metrics`);
        log.info({ metrics: metricsServer.address }, "metrics port listening");
      } catch (e) {
        const what = `metrics port ${config.metrics.host}:${config.metrics.port} unavailable: ${errorMessage(e)}`;
        warnings.add(what);
        log.warn(what);
      }
    }

    // Announce once NATS is up; a server without JetStream only costs `status` discovery.
    void natsPromise.then(async (conn) => {
      nc = conn;
      try {
        const kv = await withJetStreamRetry("service registry", () => openRegistry(conn, config.nats.replicas), { log, signal: stop.signal });
        if (stop.signal.aborted) return;
        announcement = announce(kv, { component: opts.component, instance, address, node: config.node, pid: process.pid, ...selfIdentity(), startedAt: started }, (e) => {
          counters.add("registry_errors");
          log.debug({ reason: errorMessage(e) }, "registry update failed");
        });
      } catch (e) {
        warnings.add(errorMessage(e));
        log.warn({ reason: errorMessage(e) }, "not announced in the service registry");
      }
    }, () => {});

    health.onChange((serving) => log.info({ serving, reasons: health.reasons() }, serving ? "serving" : "not serving"));
    stop.signal.addEventListener("abort", () => health.stop(), { once: true });
    const running = svc.run(stop.signal).then(
      () => {
        if (!stop.signal.aborted) log.warn(`${opts.component} stopped by itself`);
      },
      (e: unknown) => {
        log.error({ reason: errorMessage(e) }, `${opts.component} failed`);
        code = 1;
      },
    );
    await Promise.race([running, new Promise((r) => stop.signal.addEventListener("abort", r, { once: true }))]);
    stop.abort();
    const limit = opts.stopTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      running,
      new Promise<void>((r) => {
        timer = setTimeout(() => {
          log.error(`${opts.component} did not stop within ${limit} ms; leaving anyway`);
          code = 1;
          r();
        }, limit);
      }),
    ]);
    clearTimeout(timer);
  } finally {
    health.stop();
    stop.abort();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await announcement?.stop();
    await grpcServer?.stop();
    await metricsServer?.close();
    if (!nc) nc = await natsPromise.catch(() => undefined);
    if (nc && !nc.isClosed()) {
      await Promise.race([nc.drain().catch(() => nc?.close()), new Promise((r) => setTimeout(r, 3000).unref())]);
      if (!nc.isClosed()) await nc.close();
    }
    log.info("stopped");
  }
  return code;
}
