import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MembershipView } from "./membership.js";

describe("MembershipView", () => {
  it("always contains self", () => {
    const v = new MembershipView("me", { ttlMs: 3000 });
    assert.deepEqual(v.members(), ["me"]);
  });

  it("adds members on heartbeat and reports change only once", () => {
    const v = new MembershipView("me", { ttlMs: 3000 });
    assert.equal(v.heard({ id: "b" }, 0), true);
    assert.equal(v.heard({ id: "b" }, 500), false);
    assert.deepEqual(v.members(), ["b", "me"]);
  });

  it("expires a silent member after the TTL, not before", () => {
    const v = new MembershipView("me", { ttlMs: 3000 });
    v.heard({ id: "b", grpc: "10.0.0.2:7702" }, 1000);
    assert.deepEqual(v.expire(3999), []);
    assert.deepEqual(v.expire(4001), ["b"]);
    assert.deepEqual(v.members(), ["me"]);
    assert.equal(v.info("b")?.grpc, "10.0.0.2:7702", "its last entry kept");
  });

  it("removes a member that left", () => {
    const v = new MembershipView("me", { ttlMs: 3000 });
    v.heard({ id: "b" }, 0);
    assert.equal(v.left("b"), true);
    assert.equal(v.left("b"), false);
    assert.deepEqual(v.members(), ["me"]);
  });

  it("never expires self", () => {
    const v = new MembershipView("me", { ttlMs: 10 });
    v.heard({ id: "me" }, 0);
    assert.deepEqual(v.expire(1e9), []);
  });

  it("gives every member a fresh TTL after touchAll", () => {
    const v = new MembershipView("me", { ttlMs: 1000 });
    v.heard({ id: "b" }, 0);
    v.touchAll(5000);
    assert.deepEqual(v.expire(5500), []);
    assert.deepEqual(v.expire(6001), ["b"]);
  });
});
