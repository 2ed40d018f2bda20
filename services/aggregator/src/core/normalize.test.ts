import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { templatePath, sqlFingerprint, statusClass, normalize, isIdSegment } from "./normalize.js";

describe("templatePath", () => {
  it("templates numbers, UUIDs, hex ids and long tokens", () => {
    assert.equal(templatePath("/users/123/orders/9f86d081884c7d65?x=1"), "/users/{id}/orders/{id}");
    assert.equal(templatePath("/a/550e8400-e29b-41d4-a716-446655440000"), "/a/{id}");
    assert.equal(templatePath("/t/eyJhbGciOiJIUzI1NiJ9abcdef12/x"), "/t/{id}/x");
    assert.equal(templatePath("/api/v1/health"), "/api/v1/health");
    assert.equal(templatePath("//a//b/"), "/a/b/");
    assert.equal(templatePath(""), "/");
    assert.equal(templatePath("http://h:80/x/5"), "/x/{id}");
  });
  it("keeps route words", () => {
    for (const w of ["users", "v2", "checkout", "deadbeef-not", "abc"]) assert.equal(isIdSegment(w), false, w);
    for (const w of ["42", "-7", "deadbeef01", "0x1f2e3d4c"]) assert.equal(isIdSegment(w), true, w);
  });
});

describe("sqlFingerprint", () => {
  it("replaces literals and collapses lists", () => {
    assert.equal(sqlFingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'o''x'"), "SELECT * FROM t WHERE id IN (?) AND name = ?");
    assert.equal(sqlFingerprint("insert into t2 (a,b) values (1,'a'),(2,'b')  -- c\n"), "insert into t2 (a,b) values (?)");
    assert.equal(sqlFingerprint("select /* hint */ x from t where y = -5 and z=0x1F"), "select x from t where y = ? and z=?");
    assert.equal(sqlFingerprint("SELECT col1 FROM `t3`"), "SELECT col1 FROM `t3`");
  });
  it("never throws on garbage", () => {
    assert.equal(typeof sqlFingerprint("'unterminated"), "string");
    assert.equal(typeof sqlFingerprint("/* open"), "string");
  });
});

describe("normalize", () => {
  it("by protocol", () => {
    const n = (protocol: string, operation: string, resource: string, attrs: Record<string, string> = {}) => normalize({ protocol, operation, resource, attr: (k) => attrs[k] });
    assert.deepEqual(n("http", "get", "/u/1"), { operation: "GET", resource: "/u/{id}" });
    assert.deepEqual(n("grpc", "Get", "", { "rpc.service": "pkg.Svc", "rpc.method": "Get" }), { operation: "Get", resource: "/pkg.Svc/Get" });
    assert.deepEqual(n("mysql", "", "select a from b where c = 3"), { operation: "SELECT", resource: "select a from b where c = ?" });
    assert.deepEqual(n("kafka", "Produce", "orders"), { operation: "Produce", resource: "orders" });
  });
});

describe("statusClass", () => {
  it("classes", () => {
    assert.equal(statusClass("http", 204n, false, false), "2xx");
    assert.equal(statusClass("http", 503n, true, false), "5xx");
    assert.equal(statusClass("grpc", 14n, true, false), "error");
    assert.equal(statusClass("mysql", undefined, false, false), "ok");
    assert.equal(statusClass("http", undefined, false, true), "incomplete");
  });
});
