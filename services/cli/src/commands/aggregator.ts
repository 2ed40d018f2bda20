import { serviceCommand } from "./service-command.js";

export default serviceCommand("aggregator", () => import("@wirescope/aggregator"));
