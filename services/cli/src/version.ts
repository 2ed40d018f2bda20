// The project version, read once from the root package.json.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (services/cli/dist/ is three levels down). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export const VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
})();
