// The gRPC layer on a real loopback server: protobuf-es services registered from descriptors,
// errors mapped to gRPC status codes, unimplemented methods, and Watch ending on shutdown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GrpcServer, createClient, HealthGate, ServingStatus, GrpcError, ConfigError, silentLogger } from "@wirescope/runtime";
import { Health, ProbeService } from "@wirescope/wire";
import { waitFor } from "./support/index.js";

test("GrpcServer: handlers, error codes, UNIMPLEMENTED, and Watch ends when the server stops", { timeout: 30_000 }, async () => {
  const health = new HealthGate();
  const ready = health.require("thing");
  const server = new GrpcServer({ log: silentLogger(), health });
  server.addService(ProbeService, {
    status: () => ({ component: "probe", instance: "i-1", uptimeMs: 5n, counters: { x: 1.5 } }),
    setFilter: (req) => {
      if (req.filter?.allowPorts.includes(0)) throw new ConfigError("bad_filter", "port 0 is not a port");
      throw new Error("kernel map update failed");
    },
  });
  const { address } = await server.listen("127.0.0.1", 0);
  const probe = createClient(ProbeService, address);
  const hc = createClient(Health, address);
  try {
    const st = await probe.status({});
    assert.equal(st.instance, "i-1");
    assert.equal(st.uptimeMs, 5n);
    assert.equal(st.counters.x, 1.5);

    await assert.rejects(probe.setFilter({ filter: { allowPorts: [0] } }), (e: unknown) => e instanceof GrpcError && e.code === "INVALID_ARGUMENT" && /port 0 is not a port/.test(e.message));
    await assert.rejects(probe.setFilter({ filter: { allowPorts: [80] } }), (e: unknown) => e instanceof GrpcError && e.code === "INTERNAL" && /kernel map update failed/.test(e.message));

    // A service registered without an implementation of a method answers UNIMPLEMENTED.
    const bare = new GrpcServer({ log: silentLogger(), health: new HealthGate() });
    bare.addService(ProbeService, {});
    const b = await bare.listen("127.0.0.1", 0);
    const bareClient = createClient(ProbeService, b.address);
    await assert.rejects(bareClient.status({}), (e: unknown) => e instanceof GrpcError && e.code === "UNIMPLEMENTED");
    bareClient.close();
    await bare.stop();

    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const m of hc.watch({ service: "wirescope.v1.ProbeService" })) {
        seen.push(m.status);
        if (seen.length === 1) ready.up();
      }
    })();
    const unknown: ServingStatus[] = [];
    for await (const m of hc.watch({ service: "nope" })) {
      unknown.push(m.status);
      break;
    }
    assert.deepEqual(unknown, [ServingStatus.SERVICE_UNKNOWN]);
    await waitFor(() => seen.length >= 2, { timeoutMs: 5000, what: "Watch to report the change" });
    assert.deepEqual(seen, [ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
    await server.stop();
    await watching; // the stream ends instead of hanging
  } finally {
    probe.close();
    hc.close();
    await server.stop();
  }
});
