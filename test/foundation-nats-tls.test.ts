// NATS over mutual TLS: the CA / cert / key options reach the client, and a client without a
// certificate is refused with a clear error. Certificates are made for each run by the functions
// `up --nats-tls` uses (local-stack/tls.ts).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connectNats, silentLogger, NatsError, loadConfig } from "@wirescope/runtime";
import { prepareClientCert, prepareLocalTls } from "@wirescope/cli/local-stack/index";
import { startNats, tempDir } from "./support/index.js";

/** A CA, a server certificate on 127.0.0.1 and a client certificate, made as `up --nats-tls` makes them. */
function makeCerts(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const server = prepareLocalTls(dir, "wirescope-test-server");
  const client = prepareClientCert(dir, "test", "wirescope-test-client");
  return { ca: server.ca, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
}

test("connectNats: mutual TLS with --nats-tls-ca/cert/key; no client certificate is refused", { timeout: 60_000 }, async () => {
  const c = makeCerts(tempDir("wirescope-tls-"));
  const nats = await startNats({ extraArgs: ["--tlsverify", "--tlscert", c.serverCert, "--tlskey", c.serverKey, "--tlscacert", c.ca] });
  after(() => nats.stop());
  const log = silentLogger();

  // The same path a user takes: flags through loadConfig.
  const { config } = loadConfig({ env: {}, argv: ["--nats-url", `tls://127.0.0.1:${nats.port}`, "--nats-tls-ca", c.ca, "--nats-tls-cert", c.clientCert, "--nats-tls-key", c.clientKey] });
  const nc = await connectNats(config.nats, log, { retry: false });
  try {
    const sub = nc.subscribe("tls.check", { max: 1 });
    nc.publish("tls.check", new TextEncoder().encode("over tls"));
    for await (const m of sub) assert.equal(new TextDecoder().decode(m.data), "over tls");
  } finally {
    await nc.close();
  }

  await assert.rejects(
    connectNats({ url: `tls://127.0.0.1:${nats.port}`, tls: { ca: c.ca } }, log, { retry: false }),
    // The server drops the handshake; the client sees its connect time out.
    (e: unknown) => e instanceof NatsError && e.code === "connect" && e.message.startsWith(`cannot connect to NATS at tls://127.0.0.1:${nats.port}`),
  );
});
