// Where the repository is, for tests that run its programs (bin/wirescope.js), read its files
// (fixtures, built plugins) or start a process in it. Computed here once: every compiled test
// sits at a different depth below test/dist/.
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root (this file compiles to test/dist/support/repo.js). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The built-in plugins (*.wasm + *.json), as scripts/build.mjs leaves them. */
export const PLUGINS_DIR = path.join(REPO_ROOT, "parsers-wasm/build");
/** The example plugins' builds (parsers-wasm/examples/<name>/build). */
export const REDIS_PLUGIN_DIR = path.join(REPO_ROOT, "parsers-wasm/examples/redis/build");
export const POSTGRESQL_PLUGIN_DIR = path.join(REPO_ROOT, "parsers-wasm/examples/postgresql/build");
