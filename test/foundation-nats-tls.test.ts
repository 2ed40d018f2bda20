// NATS over mutual TLS: the CA / cert / key options reach the client, and a client without a
// certificate is refused with a clear error. Certificates are made with openssl for each run.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { connectNats, silentLogger, NatsError, loadConfig } from "@wirescope/runtime";
import { startNats, tempDir } from "./support/index.js";

function makeCerts(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=wirescope-test-ca", "-keyout", f("ca.key"), "-out", f("ca.pem"));
  for (const who of ["server", "client"]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${who}`, "-keyout", f(`${who}.key`), "-out", f(`${who}.csr`));
    const ext = f(`${who}.ext`);
    execFileSync("sh", ["-c", `printf '%s\\n' '${who === "server" ? "subjectAltName=IP:127.0.0.1,DNS:localhost" : "extendedKeyUsage=clientAuth"}' > '${ext}'`]);
    ssl("x509", "-req", "-in", f(`${who}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", f(`${who}.pem`));
  }
  return { ca: f("ca.pem"), serverCert: f("server.pem"), serverKey: f("server.key"), clientCert: f("client.pem"), clientKey: f("client.key") };
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
