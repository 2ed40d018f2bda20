// The shape of one `wirescope` subcommand. Each lives in commands/<name>.ts and is listed once
// in commands/index.ts.
import type { FlagSpec } from "@wirescope/runtime/flags";

export interface Command {
  /** The word after `wirescope`. */
  name: string;
  /** One line for `wirescope --help`. */
  summary: string;
  /** Full help text printed by `wirescope <name> --help`. */
  usage: string;
  /**
   * Every flag the command accepts (its parser refuses others): `usage` lists each one (a test
   * checks it) and the shell completions offer them.
   */
  flags: readonly FlagSpec[];
  /** Words the command takes in place of a file name (a subcommand: `plugin add`), for the completions. */
  words?: readonly string[];
  /** Runs the command; resolves to the process exit code. Throw for a one-line error. */
  run(argv: string[]): Promise<number>;
}

/** Thrown for wrong usage: the dispatcher prints the message and exits with code 2. */
export class UsageError extends Error {}
