// Every `wirescope` subcommand, one line each, in the order `wirescope --help` lists them.
// To add one: write commands/<name>.ts with a default export implementing Command, add it here.
import type { Command } from "../command.js";
import up from "./up.js";
import status from "./status.js";
import probe from "./probe.js";
import parser from "./parser.js";
import aggregator from "./aggregator.js";
import tail from "./tail.js";
import top from "./top.js";
import decode from "./decode.js";
import plugin from "./plugin.js";
import capture from "./capture.js";
import demo from "./demo.js";
import { bashCompletion, zshCompletion } from "./completion.js";
import { UsageError } from "../command.js";
import { parseFlags } from "@wirescope/runtime/flags";

export const COMMANDS: Command[] = [
  up,
  status,
  probe,
  parser,
  aggregator,
  tail,
  top,
  decode,
  plugin,
  capture,
  demo,
];

COMMANDS.push({
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
    process.stdout.write(shell === "bash" ? bashCompletion(COMMANDS) : zshCompletion(COMMANDS));
    return 0;
  },
});
