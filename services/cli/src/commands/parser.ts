import { serviceCommand } from "./service-command.js";

export default serviceCommand("parser", () => import("@wirescope/parser"));
