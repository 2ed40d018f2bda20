// The service runtime against a real nats-server: health follows the NATS connection (Check and
// Watch), Status carries the service's counters, the instance is announced in the registry, and
// stopping undoes all of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  runService,
  checkHealth,
  createClient,
  connectNats,
  listAnnounced,
  silentLogger,
  tcpReachable,
  ServingStatus,
  ServiceError,
  GrpcError,
  type CreateService,
  type Component,
} from "@wirescope/runtime";
import {
  Health,
  ParserService,
} from "@wirescope/wire";
import { startNats, freePort, waitFor, tempDir } from "./support/index.js";

const log = silentLogger();

test("runService: NOT_SERVING until NATS is up, Watch follows, Status and registry, clean stop", { timeout: 60_000 }, async () => {
  const natsPort = await freePort();
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const ac = new AbortController();
  let address = "";
  let runEnded = false;
  const create: CreateService = async (ctx) => {
    ctx.counters.add("things_seen", 3);
    ctx.info.set("mode", "test");
    return {
      handlers: { listPlugins: () => ({ plugins: [{ name: "redis", version: "1.0.0", abiVersion: 1 }] }) },
      async run(signal) {
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        runEnded = true;
      },
    };
  };
  const done = runService({
    component: "parser",
    create,
    argv: ["--nats-url", natsUrl, "--grpc-port", "0", "--instance", "t-parser-1"],
    env: {},
    signal: ac.signal,
    log,
    onListening: (a) => (address = a),
  });
  let nats: Awaited<ReturnType<typeof startNats>> | undefined;
  try {
    await waitFor(() => address, { timeoutMs: 10_000, what: "gRPC port" });
    assert.equal((await checkHealth(address)).status, ServingStatus.NOT_SERVING);

    const health = createClient(Health, address);
    const watchAbort = new AbortController();
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const m of health.watch({ service: "" }, { signal: watchAbort.signal })) seen.push(m.status);
    })();
    await waitFor(() => seen.length >= 1, { timeoutMs: 5000, what: "first Watch message" });
    assert.equal(seen[0], ServingStatus.NOT_SERVING);

    nats = await startNats({ jetstream: true, port: natsPort, dir: tempDir() });
    await waitFor(() => seen.includes(ServingStatus.SERVING), { timeoutMs: 20_000, what: "Watch to report SERVING" });
    assert.equal((await checkHealth(address)).status, ServingStatus.SERVING);
    assert.equal((await checkHealth(address, "wirescope.v1.ParserService")).status, ServingStatus.SERVING);
    await assert.rejects(health.check({ service: "no.such.Service" }), (e: unknown) => e instanceof GrpcError && e.code === "NOT_FOUND");

    const parser = createClient(ParserService, address);
    const st = await parser.status({});
    assert.equal(st.component, "parser");
    assert.equal(st.instance, "t-parser-1");
    assert.equal(st.ready, true);
    assert.equal(st.counters.things_seen, 3);
    assert.equal(st.info.mode, "test");
    assert.equal(st.info.grpc, address);
    const plugins = await parser.listPlugins({});
    assert.equal(plugins.plugins[0].name, "redis");
    parser.close();

    const nc = await connectNats({ url: natsUrl }, log, { retry: false });
    try {
      const mine = await waitFor(async () => (await listAnnounced(nc)).find((a) => a.instance === "t-parser-1"), { timeoutMs: 10_000, what: "registry entry" });
      assert.equal(mine.address, address);
      assert.equal(mine.component, "parser");

      ac.abort();
      assert.equal(await done, 0);
      assert.ok(runEnded, "run() was allowed to finish");
      await watching.catch(() => {});
      assert.notEqual(seen.at(-1), ServingStatus.SERVING, `watch saw ${seen.join(",")}`);
      assert.equal((await listAnnounced(nc)).some((a) => a.instance === "t-parser-1"), false, "registry entry removed");
    } finally {
      await nc.close();
      watchAbort.abort();
      health.close();
    }
    const [host, port] = address.split(":");
    assert.equal(await tcpReachable(host, Number(port), 500), false, "gRPC port closed");
  } finally {
    ac.abort();
    await done.catch(() => {});
    await nats?.stop();
  }
});

/** Runs a service against a NATS URL nobody listens on; returns what runService threw. */
async function startFailure(component: Component, create: CreateService, grpcPort: number): Promise<unknown> {
  const argv = ["--nats-url", `nats://127.0.0.1:${await freePort()}`, "--grpc-port", String(grpcPort)];
  return runService({ component, create, argv, env: {}, log }).then(
    () => undefined,
    (e: unknown) => e,
  );
}

test("runService: a failing createService is a one-line ServiceError and binds nothing", { timeout: 30_000 }, async () => {
  const port = await freePort();
  const err = await startFailure(
    "aggregator",
    async () => {
      throw new Error("influx schema mismatch\nstack details");
    },
    port,
  );
  assert.ok(err instanceof ServiceError, String(err));
  assert.equal(err.message, "aggregator could not start: influx schema mismatch");
  assert.equal(await tcpReachable("127.0.0.1", port, 500), false);
});

test("runService: a taken control port is a GrpcError naming the address", { timeout: 30_000 }, async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    let ran = false;
    const err = await startFailure(
      "probe",
      async () => ({
        async run() {
          ran = true;
        },
      }),
      port,
    );
    assert.ok(err instanceof GrpcError && err.code === "bind", String(err));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.equal(ran, false);
  } finally {
    blocker.close();
  }
});
