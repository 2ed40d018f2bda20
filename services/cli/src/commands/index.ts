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
