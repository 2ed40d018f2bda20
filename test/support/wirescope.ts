// Running the `wirescope` command itself (bin/wirescope.js) from tests.
import path from "node:path";
import { spawnSync } from "node:child_process";
import type { RecordJson } from "@wirescope/wire";
import { REPO_ROOT } from "./repo.js";

/** The command line's entry point. */
export const WIRESCOPE_BIN = path.join(REPO_ROOT, "bin/wirescope.js");

/**
 * `wirescope decode <file> [args]`: the records it prints (NDJSON, one RecordJson a line).
 * Throws with its stderr when it exits non-zero or runs past 60 s.
 */
export function wirescopeDecode(file: string, args: string[] = []): RecordJson[] {
  const r = spawnSync(process.execPath, [WIRESCOPE_BIN, "decode", file, ...args], { timeout: 60_000, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`wirescope decode ${[file, ...args].join(" ")}: exit ${r.status ?? r.signal ?? r.error?.message}\n${r.stderr?.toString() ?? ""}`);
  return r.stdout
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordJson);
}
