// `wirescope decode` reads captures offline: loading it must not load the clients the services
// need (NATS, gRPC, metrics, logging), whose start-up cost was a quarter of a short decode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

test("loading the decode command loads no NATS, gRPC, metrics or logging package", () => {
  const decode = new URL("./decode.js", import.meta.url).href;
  const status = new URL("./status.js", import.meta.url).href;
  // CommonJS packages imported from ES modules land in require.cache; the NATS packages are among them
  const loaded = (href: string) => {
    const script = `import { createRequire } from "node:module";
      await import(${JSON.stringify(href)});
      const files = Object.keys(createRequire(import.meta.url).cache);
      process.stdout.write(JSON.stringify(files.filter((f) => f.includes("node_modules"))));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
  };
  const heavy = /node_modules\/(@nats-io|@grpc|prom-client|pino)\//;
  assert.deepEqual(loaded(decode).filter((f) => heavy.test(f)), []);
  // the check sees them where they are loaded: `status` talks to NATS and gRPC
  assert.ok(loaded(status).some((f) => /node_modules\/@grpc\//.test(f)) && loaded(status).some((f) => /node_modules\/@nats-io\//.test(f)));
});
