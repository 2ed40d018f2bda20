// Structured logs: pino JSON on stderr with a `component` field; human-readable when stderr is a TTY.
import { pino, type Logger, type LevelWithSilent } from "pino";
import { colorAllowed } from "./log-levels.js";

export type { Logger };

export { LOG_LEVELS, colorAllowed } from "./log-levels.js";

export interface LogOptions {
  level: LevelWithSilent;
  /** "json" | "pretty"; default: pretty when stderr is a TTY. */
  format: "json" | "pretty";
  /** Extra fields on every line (e.g. instance). */
  base: Record<string, unknown>;
}

/** Creates the root logger for one component. Logs go to stderr so stdout stays for command output. */
export function createLogger(component: string, options: Partial<LogOptions> = {}): Logger {
  const format = options.format ?? (process.stderr.isTTY ? "pretty" : "json");
  const base = { component, ...options.base };
  const level = options.level ?? "info";
  if (format === "pretty") {
    // pino-pretty as a synchronous stream (no worker thread): logs survive a crash and exit.
    return pino({ level, base }, prettyStream());
  }
  return pino({ level, base }, pino.destination({ fd: 2, sync: true }));
}

function prettyStream(): NodeJS.WritableStream {
  // Loaded lazily: only terminals pay for it.
  const mod = requireCjs("pino-pretty") as { default?: PrettyFactory } & PrettyFactory;
  const factory = mod.default ?? mod;
  return factory({
    destination: 2,
    sync: true,
    colorize: colorAllowed(),
    singleLine: true,
    ignore: "pid,hostname,component,instance",
    messageFormat: "{component}: {msg}",
    translateTime: "HH:MM:ss.l",
  });
}

type PrettyFactory = (opts: Record<string, unknown>) => NodeJS.WritableStream;

import { createRequire } from "node:module";
const requireCjs = createRequire(import.meta.url);

/** A logger that discards everything (tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
