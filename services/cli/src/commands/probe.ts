import { serviceCommand } from "./service-command.js";

export default serviceCommand("probe", () => import("@wirescope/probe"));
