import { describe, it, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ProcessInfoSchema } from "./gen/wirescope/v1/raw_pb.js";
import { formatAddress, hostPort, isAddressName, isTracedProcess, serviceName } from "./identity.js";

test("formatAddress: IPv4, IPv6 compression, v4-mapped, at an offset", () => {
  assert.equal(formatAddress(new Uint8Array([192, 168, 0, 1, ...new Array(12).fill(0)]), 0, 4), "192.168.0.1");
  assert.equal(formatAddress(new Uint8Array(16), 0, 6), "::");
  assert.equal(formatAddress(Buffer.from("fe800000000000000000000000000001", "hex"), 0, 6), "fe80::1");
  assert.equal(formatAddress(Buffer.from("00000000000000000000ffff7f000001", "hex"), 0, 6), "::ffff:127.0.0.1");
  assert.equal(formatAddress(Buffer.from("20010db8000100000001000000000001", "hex"), 0, 6), "2001:db8:1:0:1::1");
  assert.equal(formatAddress(Buffer.from("ffff20010db8000000000001000000000001", "hex"), 2, 6), "2001:db8::1:0:0:1", "the first of equal zero runs");
});

test("hostPort brackets IPv6; isTracedProcess needs a pid or a name", () => {
  assert.equal(hostPort("10.0.0.1", 80), "10.0.0.1:80");
  assert.equal(hostPort("fe80::1", 80), "[fe80::1]:80");
  assert.equal(isTracedProcess(undefined), false);
  assert.equal(isTracedProcess({ pid: 0, name: "", container: "", workload: "", namespace: "" }), false);
  assert.equal(isTracedProcess({ pid: 3, name: "", container: "", workload: "", namespace: "" }), true);
});

test("isAddressName: what serviceName gives an untraced end, and nothing it gives a process", () => {
  for (const [address, port, isServer] of [["10.0.0.9", 3306, true], ["10.0.0.5", 40000, false], ["fd00::9", 3306, true], ["fd00::5", 1, false], ["", 0, true]] as const) {
    assert.equal(isAddressName(serviceName(undefined, address, port, isServer)), true, `${address} ${port}`);
  }
  const proc = { pid: 7, name: "orders", container: "", workload: "", namespace: "" };
  for (const p of [proc, { ...proc, container: "c0ffee" }, { ...proc, workload: "orders", namespace: "shop" }]) {
    assert.equal(isAddressName(serviceName(p, "10.0.0.9", 50051, true)), false);
    assert.equal(isAddressName(serviceName(p, "10.0.0.9", 50051, false)), false);
  }
  for (const n of ["orders:50051", "web", "10.0.0.9:x", "[orders]:80", "1.2.3:80"]) assert.equal(isAddressName(n), false, n);
});

describe("serviceName", () => {
  it("prefers the workload, then the container, then process name and listening port", () => {
    const p = create(ProcessInfoSchema, { name: "node", container: "api", workload: "checkout", namespace: "shop" });
    assert.equal(serviceName(p, "10.0.0.1", 8080, true), "shop/checkout");
    assert.equal(serviceName({ ...p, workload: "" }, "10.0.0.1", 8080, true), "api");
    assert.equal(serviceName({ ...p, workload: "" }, "10.0.0.1", 40000, false, 8080), "api", "a container is named alike in both roles");
    assert.equal(serviceName({ ...p, workload: "", container: "" }, "10.0.0.1", 8080, true), "node:8080");
    assert.equal(serviceName({ ...p, workload: "", container: "" }, "10.0.0.1", 40000, false), "node");
    assert.equal(serviceName({ ...p, workload: "", container: "" }, "10.0.0.1", 40000, false, 8080), "node:8080", "a client that listens");
  });

  it("names an untraced end by its address, and an end nothing is known about as unknown", () => {
    assert.equal(serviceName(undefined, "10.0.0.1", 8080, true), "10.0.0.1:8080");
    assert.equal(serviceName(undefined, "10.0.0.2", 40000, false), "10.0.0.2");
    assert.equal(serviceName(undefined, "::1", 8080, true), "[::1]:8080");
    assert.equal(serviceName(undefined, "", 0, true), "unknown");
    assert.equal(serviceName(undefined, "", 0, false), "unknown");
  });
});
