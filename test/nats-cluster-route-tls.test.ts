// A NATS cluster as `up --nats-cluster 3 --nats-tls` routes it (natsClusterConfig routeTls): the
// routes between the servers speak mutual TLS with the route certificate of the stack's CA.
// JetStream forms across them and an R3 stream written through one server is read through
// another; every route port asks for TLS and a client certificate, and a route dialer that shows
// no certificate of the CA is refused before it can speak.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { natsRouteCert, prepareNatsTls } from "@wirescope/cli/local-stack/index";
import { startNatsCluster, tempDir } from "./support/index.js";

/**
 * What a route port answers a dialer: "info" when it sent its INFO (routes send it after the TLS
 * handshake), else how the connection ended. `secure`: TLS options (undefined: plaintext).
 */
function dialRoute(port: number, secure?: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = secure ? tls.connect({ host: "127.0.0.1", port, checkServerIdentity: () => undefined, ...secure }) : net.connect(port, "127.0.0.1");
    const done = (how: string) => {
      s.destroy();
      resolve(how);
    };
    // a plaintext dialer speaks first, as a route would
    if (!secure) s.on("connect", () => s.write(`CONNECT {"user":"x","pass":"y"}\r\nPING\r\n`));
    s.on("data", (d) => {
      got += d.toString("latin1");
      if (got.startsWith("INFO ")) done("info");
    });
    s.on("error", (e) => done(`error: ${e.message}`));
    s.on("close", () => done(got ? `closed after ${JSON.stringify(got.slice(0, 40))}` : "closed"));
    setTimeout(() => done("no answer"), 5000).unref();
  });
}

test("up --nats-cluster --nats-tls: routes over mutual TLS; JetStream replicates across them; a route without the CA's certificate is refused", { timeout: 120_000 }, async (t) => {
  const dataDir = tempDir("wirescope-route-tls-");
  const files = prepareNatsTls(dataDir);
  const route = natsRouteCert(dataDir);
  assert.equal(fs.statSync(route.key).mode & 0o777, 0o600);
  const cluster = await startNatsCluster(3, { routeTls: { ...route, ca: files.ca } });
  t.after(() => cluster.stop());

  // JetStream's meta group formed over the TLS routes (startNatsCluster waits for it); an R3
  // stream written through the first server is read through the third.
  const a = await connect({ servers: cluster.urls[0] });
  const c = await connect({ servers: cluster.urls[2] });
  t.after(() => Promise.all([a.close(), c.close()]));
  const jsm = await jetstreamManager(a);
  await jsm.streams.add({ name: "ROUTE_TLS", subjects: ["route-tls.>"], num_replicas: 3 });
  await jetstream(a).publish("route-tls.x", new TextEncoder().encode("over tls routes"));
  const got = await (await jetstreamManager(c)).streams.getMessage("ROUTE_TLS", { seq: 1 });
  assert.equal(new TextDecoder().decode(got?.data), "over tls routes");
  assert.equal((await jsm.streams.info("ROUTE_TLS")).cluster?.replicas?.length, 2, "two replicas beside the leader");

  // Every route port: a plaintext dialer and one without a certificate of the CA get nothing
  // (not even the INFO); one with the routes' certificate gets the INFO (so the refusals are the
  // certificate's doing).
  const ca = fs.readFileSync(files.ca);
  for (const port of cluster.routePorts) {
    assert.match(await dialRoute(port), /^(closed|error)/, `route port ${port}, plaintext`);
    assert.match(await dialRoute(port, { ca }), /^(closed|error)/, `route port ${port}, no client certificate`);
    assert.equal(await dialRoute(port, { ca, cert: fs.readFileSync(route.cert), key: fs.readFileSync(route.key) }), "info", `route port ${port}, the routes' certificate`);
  }
});
