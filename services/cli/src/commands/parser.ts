import { PARSER_FLAGS, parseParserArgs } from "@wirescope/parser/options";
import { serviceCommand } from "./service-command.js";

export default serviceCommand("parser", () => import("@wirescope/parser"), PARSER_FLAGS, parseParserArgs);
