import { AGGREGATOR_FLAGS } from "@wirescope/aggregator/options";
import { serviceCommand } from "./service-command.js";

export default serviceCommand("aggregator", () => import("@wirescope/aggregator"), AGGREGATOR_FLAGS);
