// `wirescope <command> [args]`: looks the command up in commands/index.ts, prints help, and turns
// any failure into one line on stderr and a non-zero exit code.
import { WirescopeError, ConfigError, errorMessage } from "@wirescope/runtime/errors";
import { COMMAND_NAMES, loadCommand, loadCommands } from "./commands/index.js";
import { UsageError, type Command } from "./command.js";
import { VERSION } from "./version.js";

async function topHelp(): Promise<string> {
  const COMMANDS = await loadCommands();
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `wirescope ${VERSION}: zero-instrumentation observability (eBPF → WASM decoders → InfluxDB)

usage: wirescope <command> [options]     (wirescope <command> --help for details)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}
`;
}

/** Runs the command line and returns the exit code (never throws). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    const sub = name === "help" && rest[0] ? await loadCommand(rest[0]) : undefined;
    process.stdout.write(sub ? `${sub.usage}\n` : await topHelp());
    return name ? 0 : 2;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const cmd: Command | undefined = await loadCommand(name);
  if (!cmd) {
    process.stderr.write(`wirescope: unknown command "${name}" (try: ${COMMAND_NAMES.join(", ")})\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    process.stderr.write(`wirescope ${name}: ${errorMessage(e)}\n`);
    return e instanceof UsageError || e instanceof ConfigError ? 2 : e instanceof WirescopeError ? 1 : 1;
  }
}
