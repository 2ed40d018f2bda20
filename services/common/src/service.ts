// The service contract (what probe, parser and aggregator implement) and the runtime that runs one.
//
// A service is built in two steps: `createService(ctx)` may fail with a clear message and starts
// nothing; `run(signal)` runs until the signal aborts. The runtime owns everything around it:
// config, logger, the shared NATS connection, the gRPC control port (Health + Status), and the
// announcement in the `wirescope-services` KV bucket that `wirescope status` reads.
import type { NatsConnection } from "nats";
import type { Config, Component } from "./config.js";
import type { Logger } from "./log.js";
import { Counters } from "./counters.js";
import { HealthGate } from "./health.js";

export type { Component };

/** Everything the runtime hands a service at construction. */
export interface ServiceContext {
  readonly component: Component;
  /** Unique per process, e.g. "host-parser-1234". */
  readonly instance: string;
  readonly config: Config;
  /** Arguments the shared config did not recognise: the service's own flags. */
  readonly args: readonly string[];
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
// eslint-disable-next-line @typescript-eslint/no-explicit-any
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
