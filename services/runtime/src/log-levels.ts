// What the log and terminal options accept, apart from the logger itself: loading the flag tables
// (a command's --help, a completion script) must not load pino.
import type { LevelWithSilent } from "pino";

export const LOG_LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * Whether output may carry ANSI colours: not when NO_COLOR is set to anything non-empty
 * (https://no-color.org) nor on a dumb terminal. Every coloured output asks here.
 */
export function colorAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.NO_COLOR && env.TERM !== "dumb";
}
