import { PROBE_FLAGS, parseProbeArgs } from "@wirescope/probe/options";
import { serviceCommand } from "./service-command.js";

// the probe's own flags (options.ts) are light to load: the addon is loaded only to run
export default serviceCommand("probe", () => import("@wirescope/probe"), PROBE_FLAGS, parseProbeArgs);
