import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordSchema } from "@wirescope/wire";
import { maskSqlLiterals, redactRecord, redactionPolicy, MASK } from "./redact.js";

const str = (value: string) => ({ value: { case: "stringValue" as const, value } });

describe("maskSqlLiterals", () => {
  it("replaces strings and numbers", () => {
    assert.equal(
      maskSqlLiterals("SELECT * FROM users WHERE name = 'bob' AND password = 'hunter2' AND id = 42"),
      "SELECT * FROM users WHERE name = ? AND password = ? AND id = ?",
    );
  });
  it("handles escapes, double quotes, hex and floats", () => {
    assert.equal(maskSqlLiterals(`INSERT INTO t VALUES ('it''s', "a\\"b", 0x1F, 3.5e+2, -7)`), "INSERT INTO t VALUES (?, ?, ?, ?, -?)");
  });
  it("keeps identifiers that contain digits and backquoted names", () => {
    assert.equal(maskSqlLiterals("SELECT c1, `2x` FROM t2 WHERE v = 'x'"), "SELECT c1, `2x` FROM t2 WHERE v = ?");
  });
  it("is idempotent", () => {
    const once = maskSqlLiterals("UPDATE a SET p='secret' WHERE id=1");
    assert.equal(maskSqlLiterals(once), once);
  });
});

describe("redactRecord", () => {
  const policy = redactionPolicy(["x-api-key"]);

  it("masks credential headers, configured headers, SQL literals and drops bodies", () => {
    const bytes = toBinary(
      RecordSchema,
      create(RecordSchema, {
        protocol: "http",
        attributes: {
          "http.request.header.authorization": { value: { case: "stringList", value: { values: ["Bearer abc.def"] } } },
          "http.request.header.x-api-key": str("k-123"),
          "http.request.header.accept": str("*/*"),
          "db.query.text": str("SELECT 1 FROM u WHERE pw='topsecret'"),
          "http.request.body": str("{\"password\":\"p\"}"),
          "http.request.body.size": { value: { case: "intValue", value: 17n } },
        },
      }),
    );
    const out = redactRecord(bytes, policy)!;
    const r = fromBinary(RecordSchema, out);
    const a = r.attributes;
    assert.deepEqual(a["http.request.header.authorization"]?.value, { case: "stringList", value: { $typeName: "wirescope.v1.StringList", values: [MASK] } });
    assert.equal(a["http.request.header.x-api-key"]?.value.value, MASK);
    assert.equal(a["http.request.header.accept"]?.value.value, "*/*");
    assert.equal(a["db.query.text"]?.value.value, "SELECT ? FROM u WHERE pw=?");
    assert.equal(a["http.request.body"], undefined);
    assert.equal(a["http.request.body.size"]?.value.value, 17n);
    assert.equal(Buffer.from(out).indexOf("topsecret"), -1);
    assert.equal(Buffer.from(out).indexOf("abc.def"), -1);
  });

  it("returns the same bytes when nothing needs masking", () => {
    const bytes = toBinary(RecordSchema, create(RecordSchema, { protocol: "http", attributes: { "db.query.text": str("SELECT ?") } }));
    assert.equal(redactRecord(bytes, policy), bytes);
  });

  it("reports undecodable bytes", () => {
    const bytes = new Uint8Array([0x0a, 0x20, ...Buffer.from("db.query.text")]);
    assert.equal(redactRecord(bytes, policy), undefined);
  });
});
