// PostgreSQL vectors (test/vectors/*.json, built by gen-vectors.mjs) through the shared harness:
// whole (also through detection), split at every byte, byte by byte, truncated and gapped.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as w from "./wire.js";
import { vectorSuite, pluginVectors, registryOf, runChunks, findPlugin, builtPlugins, type Vector } from "../../../test-support/index.js";

vectorSuite("postgresql", "examples/postgresql/test/vectors", undefined, { counters: true });

/** A vector's steps as chunks, stamped as the harness does. */
const chunksOf = (v: Vector) => v.steps.map((st, i) => ("gap" in st ? { dir: st.dir, gap: st.gap, ts: BigInt(1000 * (i + 1)) } : { dir: st.dir, bytes: st.bytes, ts: BigInt(1000 * (i + 1)) }));

test("passwords, SASL proofs and cancel keys never reach a record", () => {
  const reg = registryOf(["postgresql"]);
  const secrets = ["hunter2", "secret", "proof", String(0x7e57ab1e)];
  let n = 0;
  for (const v of pluginVectors(findPlugin("postgresql").sourceDir)) {
    for (const r of runChunks(reg, "postgresql", chunksOf(v)).records) {
      const text = JSON.stringify(r);
      for (const s of secrets) assert.ok(!text.includes(s), `${v.name}: ${s} in ${text}`);
      n++;
    }
  }
  assert.ok(n >= 30, `records checked: ${n}`);
});

test("detection: with every built plugin loaded, PostgreSQL claims its own vectors and none of the others'", () => {
  const all = builtPlugins();
  const reg = registryOf(all.map((b) => b.name));
  let others = 0;
  for (const b of all) {
    for (const v of pluginVectors(b.sourceDir)) {
      const chosen = runChunks(reg, b.name, chunksOf(v), { detect: true }).plugin;
      if (b.name === "postgresql") {
        if (v.options.detect !== false) assert.equal(chosen, "postgresql", `${v.name}: chose ${chosen}`);
      } else {
        assert.notEqual(chosen, "postgresql", `${b.name}: ${v.name} was claimed by postgresql`);
        others++;
      }
    }
  }
  assert.ok(others >= 50, `other plugins' vectors: ${others}`);
});

test("prepared statements held per connection are bounded in bytes (1 MiB of text), not only in number", () => {
  const reg = registryOf(["postgresql"]);
  const text = (i: number) => `SELECT ${i} AS n, '${"x".repeat(15 << 10)}' AS pad`;
  const chunks: { dir: 0 | 1; bytes: Uint8Array; ts: bigint }[] = [];
  let ts = 1000n;
  const n = 100; // 100 × 15 KiB: past the bound
  for (let i = 0; i < n; i++) {
    chunks.push({ dir: 0, bytes: w.B(w.parse(`s${i}`, text(i)), w.sync()), ts: (ts += 1000n) });
    chunks.push({ dir: 1, bytes: w.B(w.parseComplete(), w.ready()), ts: (ts += 1000n) });
  }
  for (const i of [0, n - 1]) {
    chunks.push({ dir: 0, bytes: w.B(w.bind("", `s${i}`), w.execute(""), w.sync()), ts: (ts += 1000n) });
    chunks.push({ dir: 1, bytes: w.B(w.bindComplete(), w.dataRow([String(i), "x"]), w.commandComplete("SELECT 1"), w.ready()), ts: (ts += 1000n) });
  }
  const recs = runChunks(reg, "postgresql", chunks).records;
  assert.equal(recs.length, n + 2, "a Parse record per prepare, an Execute record per execute");
  const [first, last] = recs.slice(n);
  assert.equal(first!.attributes["db.query.prepared_statement"], "s0");
  assert.equal(first!.attributes["postgresql.statement_unknown"], undefined, "the first statement is remembered");
  assert.equal(first!.resource, "SELECT ? AS n, ? AS pad");
  assert.equal(last!.attributes["postgresql.statement_unknown"], true, "statements past 1 MiB of text are not");
  assert.equal(last!.operation, "SELECT", "named from the command tag");
});
