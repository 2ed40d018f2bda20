// PostgreSQL vectors (test/vectors/*.json, built by gen-vectors.mjs) through the shared harness:
// whole (also through detection), split at every byte, byte by byte, truncated and gapped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { vectorSuite, pluginVectors, registryOf, runChunks, findPlugin } from "../../../test-support/index.js";

vectorSuite("postgresql", "examples/postgresql/test/vectors");

test("passwords, SASL proofs and cancel keys never reach a record", () => {
  const reg = registryOf(["postgresql"]);
  const secrets = ["hunter2", "secret", "proof", String(0x7e57ab1e)];
  let n = 0;
  for (const v of pluginVectors(findPlugin("postgresql").sourceDir)) {
    const chunks = v.steps.map((st, i) => ("gap" in st ? { dir: st.dir, gap: st.gap, ts: BigInt(1000 * (i + 1)) } : { dir: st.dir, bytes: st.bytes, ts: BigInt(1000 * (i + 1)) }));
    for (const r of runChunks(reg, "postgresql", chunks).records) {
      const text = JSON.stringify(r);
      for (const s of secrets) assert.ok(!text.includes(s), `${v.name}: ${s} in ${text}`);
      n++;
    }
  }
  assert.ok(n >= 30, `records checked: ${n}`);
});
