// The shape of one `wirescope` subcommand. Each lives in commands/<name>.ts and is listed once
// in commands/index.ts.

export interface Command {
  /** The word after `wirescope`. */
  name: string;
  /** One line for `wirescope --help`. */
  summary: string;
  /** Full help text printed by `wirescope <name> --help`. */
  usage: string;
  /** Runs the command; resolves to the process exit code. Throw for a one-line error. */
  run(argv: string[]): Promise<number>;
}

/** Thrown for wrong usage: the dispatcher prints the message and exits with code 2. */
export class UsageError extends Error {}
