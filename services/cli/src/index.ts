// Public surface of @wirescope/cli.
export { main } from "./main.js";
export type { Command } from "./command.js";
export { UsageError } from "./command.js";
export { COMMAND_NAMES, loadCommand, loadCommands } from "./commands/index.js";
