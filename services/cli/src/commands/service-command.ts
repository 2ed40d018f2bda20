// `wirescope probe|parser|aggregator`: one instance of a service in the foreground.
import type { CreateService } from "@wirescope/runtime/service";
import { flagsHelp, type FlagSpec } from "@wirescope/runtime/flags";
import { optionsHelp, OPTIONS, DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, type Component } from "@wirescope/runtime/config";
import type { Command } from "../command.js";
import { VERSION } from "../version.js";

const SUMMARIES: Record<Component, string> = {
  probe: "capture socket data with eBPF and publish RawBatch per partition",
  parser: "decode raw batches with the WASM protocol plugins (run it N times for N replicas)",
  aggregator: "RED metrics, spans and the service map into InfluxDB",
};

/**
 * Builds the command that runs `component` from its package's `createService`; `ownFlags` is the
 * table of its own flags and `parse` their parser, run before the service starts.
 */
export function serviceCommand(component: Component, load: () => Promise<{ createService: CreateService }>, ownFlags: readonly FlagSpec[], parse: (args: readonly string[], env: NodeJS.ProcessEnv) => unknown): Command {
  return {
    name: component,
    flags: [...OPTIONS, ...ownFlags],
    summary: SUMMARIES[component],
    usage: `usage: wirescope ${component} [options]

Runs one ${component} in the foreground until Ctrl-C / SIGTERM. Serves gRPC (grpc.health.v1.Health
and wirescope.v1.${component[0].toUpperCase()}${component.slice(1)}Service) on --grpc-host:--grpc-port (default 127.0.0.1:${DEFAULT_GRPC_PORTS[component]})
and announces itself in the NATS KV bucket wirescope-services so \`wirescope status\` finds it.
Serves Prometheus GET /metrics (the status counters, drops and process metrics) on
--metrics-host:--metrics-port (default 127.0.0.1:${DEFAULT_METRICS_PORTS[component]}; 0 = off).

options:
${optionsHelp()}

${component} options:
${flagsHelp(ownFlags)}`,
    async run(argv) {
      // Loaded only when asked for: a service that cannot load must not break the other commands.
      const [mod, { runService }] = await Promise.all([load(), import("@wirescope/runtime/service")]);
      return runService({ component, create: mod.createService, argv, version: VERSION, checkArgs: parse });
    },
  };
}
