// Loading a command loads its tables (flags, usage), not the clients it talks through: NATS, gRPC,
// metrics, logging and the demo's database and Kafka clients are imported when a command runs.
// `wirescope --help` and the completion scripts load every command; with the clients they took
// 0.85 s, and their start-up was a quarter of a short `wirescope decode`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

/** The node_modules files that `script` (an ES module body) leaves loaded. */
function loadedBy(script: string): string[] {
  // CommonJS packages imported from ES modules land in require.cache; the clients are among them
  const body = `import { createRequire } from "node:module";
    ${script}
    const files = Object.keys(createRequire(import.meta.url).cache);
    process.stdout.write(JSON.stringify(files.filter((f) => f.includes("node_modules"))));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", body], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

const CLIENTS = /node_modules\/(@nats-io|@grpc|prom-client|pino|mysql2|kafkajs)\//;
const packages = (files: string[]) => [...new Set(files.filter((f) => CLIENTS.test(f)).map((f) => CLIENTS.exec(f)![1]))].sort();

test("loading every command (help, completion) loads no NATS, gRPC, metrics, logging or demo client", () => {
  const index = JSON.stringify(new URL("./index.js", import.meta.url).href);
  assert.deepEqual(packages(loadedBy(`const { loadCommands } = await import(${index}); await loadCommands();`)), []);
  // the check sees them where they are loaded: the clients' module the commands import to run
  const clients = JSON.stringify(new URL("../clients.js", import.meta.url).href);
  assert.deepEqual(packages(loadedBy(`await import(${clients});`)), ["@grpc", "@nats-io", "pino", "prom-client"]);
});

test("the demo loads its database and Kafka clients only to run a part", () => {
  const parts = JSON.stringify(new URL("../demo/parts.js", import.meta.url).href);
  assert.deepEqual(packages(loadedBy(`await import(${parts});`)), ["@grpc", "kafkajs", "mysql2"]);
});
