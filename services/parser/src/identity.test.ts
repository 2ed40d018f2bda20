import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ProcessInfoSchema } from "@wirescope/common";
import { serviceName } from "./identity.js";

describe("serviceName", () => {
  it("prefers the workload, then the container, then process name and listening port", () => {
    const p = create(ProcessInfoSchema, { name: "node", container: "api", workload: "checkout", namespace: "shop" });
    assert.equal(serviceName(p, "10.0.0.1", 8080, true), "shop/checkout");
    assert.equal(serviceName({ ...p, workload: "" }, "10.0.0.1", 8080, true), "api");
    assert.equal(serviceName({ ...p, workload: "", container: "" }, "10.0.0.1", 8080, true), "node:8080");
    assert.equal(serviceName({ ...p, workload: "", container: "" }, "10.0.0.1", 40000, false), "node");
  });

  it("names an untraced end by its address, and an end nothing is known about as unknown", () => {
    assert.equal(serviceName(undefined, "10.0.0.1", 8080, true), "10.0.0.1:8080");
    assert.equal(serviceName(undefined, "10.0.0.2", 40000, false), "10.0.0.2");
    assert.equal(serviceName(undefined, "", 0, true), "unknown");
    assert.equal(serviceName(undefined, "", 0, false), "unknown");
  });
});
