#!/usr/bin/env node
// The `wirescope` command. The CLI is TypeScript compiled to services/cli/dist by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../services/cli/dist/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("wirescope: not built yet; run `npm run build` (or `npm start`) first\n");
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
// Exit explicitly: a stray timer or socket left by a library must not keep the command alive.
process.exitCode = code;
setImmediate(() => process.exit(code)).unref?.();
