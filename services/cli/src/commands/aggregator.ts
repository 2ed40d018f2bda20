import { AGGREGATOR_FLAGS, parseAggregatorArgs } from "@wirescope/aggregator/options";
import { serviceCommand } from "./service-command.js";

export default serviceCommand("aggregator", () => import("@wirescope/aggregator"), AGGREGATOR_FLAGS, parseAggregatorArgs);
