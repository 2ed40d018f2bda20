// Every `wirescope` subcommand, one line each, in the order `wirescope --help` lists them. A
// command's module is loaded only when it runs (or for help of all of them): `wirescope decode`
// does not load the NATS, gRPC and metrics clients that the services need.
// To add one: write commands/<name>.ts with a default export implementing Command, add it here.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { parseFlags } from "@wirescope/runtime/flags";

const LOADERS: readonly (readonly [string, () => Promise<{ default: Command }>])[] = [
  ["up", () => import("./up.js")],
  ["status", () => import("./status.js")],
  ["probe", () => import("./probe.js")],
  ["parser", () => import("./parser.js")],
  ["aggregator", () => import("./aggregator.js")],
  ["tail", () => import("./tail.js")],
  ["top", () => import("./top.js")],
  ["decode", () => import("./decode.js")],
  ["plugin", () => import("./plugin.js")],
  ["capture", () => import("./capture.js")],
  ["demo", () => import("./demo.js")],
  ["completion", async () => ({ default: completion })],
];

/** Every command's name, in `--help` order, without loading any. */
export const COMMAND_NAMES: readonly string[] = LOADERS.map(([name]) => name);

/** The command named `name` (its module loaded), or undefined. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  const load = LOADERS.find(([n]) => n === name)?.[1];
  return load ? (await load()).default : undefined;
}

/** Every command, loaded, in `--help` order. */
export async function loadCommands(): Promise<Command[]> {
  return Promise.all(LOADERS.map(async ([, load]) => (await load()).default));
}

const completion: Command = {
  name: "completion",
  summary: "print a bash or zsh completion script (source <(wirescope completion bash))",
  flags: [],
  words: ["bash", "zsh"],
  usage: `usage: wirescope completion bash|zsh

Prints a completion script for the commands and their flags, generated from the same tables as
--help. bash: source <(wirescope completion bash)   zsh (after compinit): source <(wirescope completion zsh)`,
  async run(argv) {
    const words = parseFlags(argv, [], { command: "completion", positionals: true }).positionals;
    const shell = words[0];
    if (words.length !== 1 || (shell !== "bash" && shell !== "zsh")) throw new UsageError("expected bash or zsh");
    const { bashCompletion, zshCompletion } = await import("./completion.js");
    const all = await loadCommands();
    process.stdout.write(shell === "bash" ? bashCompletion(all) : zshCompletion(all));
    return 0;
  },
};
