// NATS in deploy/k8s over TLS, run for real: the three servers of the rendered base, each from
// its nats.conf (only paths and listen addresses changed) with the certificates that
// deploy/k8s/nats-tls.sh makes, in a mount namespace whose /etc/hosts gives nats-N.nats-headless
// an address of its own on loopback. The routes dial and verify each other by those names,
// JetStream forms across them, and a client that checks the name `nats` against the CA the pods
// mount (WIRESCOPE_NATS_TLS_CA) writes an R3 object as the CLI's user. A client without the CA is
// refused, and so is one that expects another name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { natsPasswordVariable, NATS_ROLES, type ManagedProcess } from "@wirescope/runtime";
import { renderKustomization } from "./support/kustomize.js";
import { natsConfig } from "./support/k8s-checks.js";
import { REPO_ROOT, spawnTracked, tempDir, waitFor } from "./support/index.js";

/** Each server's own loopback address (and `nats`, the Service, the first one's). */
const ADDRESSES = ["127.77.0.10", "127.77.0.11", "127.77.0.12"];

function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `nats.conf has ${from}`);
  return out;
}

test("deploy/k8s NATS over TLS: the routes verify each other by name, JetStream forms, a client that verifies `nats` writes R3; without the CA, refused", { timeout: 120_000 }, async (t) => {
  const dir = tempDir("wirescope-k8s-nats-tls-");
  const tlsDir = path.join(dir, "tls");
  const made = spawnSync("bash", [path.join(REPO_ROOT, "deploy/k8s/nats-tls.sh"), "wirescope", tlsDir], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /kubectl -n wirescope create secret generic wirescope-nats-tls --from-file=\S+\/ca\.crt --from-file=\S+\/tls\.crt --from-file=\S+\/tls\.key/);
  const again = spawnSync("bash", [path.join(REPO_ROOT, "deploy/k8s/nats-tls.sh"), "wirescope", tlsDir], { encoding: "utf8" });
  assert.equal(again.status, 1, "an existing folder is not overwritten");

  const conf = natsConfig(renderKustomization(path.join(REPO_ROOT, "deploy/k8s/base")));
  assert.match(conf, /nats-route:\/\/nats-0\.nats-headless:6222/);
  const hosts = path.join(dir, "hosts");
  fs.writeFileSync(hosts, `127.0.0.1 localhost\n${ADDRESSES.map((a, i) => `${a} nats-${i}.nats-headless${i === 0 ? " nats" : ""}`).join("\n")}\n`);
  const passwords = Object.fromEntries(NATS_ROLES.map((r) => [natsPasswordVariable(r), `pw-${r}-${process.pid}`]));
  const servers: ManagedProcess[] = [];
  for (const [i, addr] of ADDRESSES.entries()) {
    const d = path.join(dir, `nats-${i}`);
    fs.mkdirSync(d);
    let c = conf.replaceAll("/etc/nats-tls/", `${tlsDir}/`);
    c = replaceOnce(c, "/data/jetstream", path.join(d, "js"));
    c = replaceOnce(c, /pid_file: \S+/, `pid_file: ${path.join(d, "nats.pid")}`);
    c = replaceOnce(c, /^ {0}port: 4222$/m, `listen: ${addr}:4222`);
    c = replaceOnce(c, /^http_port: 8222$/m, `http: ${addr}:8222`);
    c = replaceOnce(c, /^( +)port: 6222$/m, `$1listen: ${addr}:6222`);
    const file = path.join(d, "nats.conf");
    fs.writeFileSync(file, c);
    const script = 'mount --bind "$0" /etc/hosts && exec nats-server -c "$1"';
    servers.push(
      await spawnTracked(`nats-${i}`, "unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", script, hosts, file], {
        env: { ...process.env, POD_NAME: `nats-${i}`, ...passwords },
        logFile: path.join(d, "nats.log"),
      }),
    );
  }
  t.after(() => Promise.all(servers.map((s) => s.stop())));

  const ca = path.join(tlsDir, "ca.crt");
  const cli = { user: "wirescope-cli", pass: passwords[natsPasswordVariable("cli")]!, inboxPrefix: "_INBOX.wirescope-cli" };
  const open = (server: string, tls: Record<string, unknown> | undefined) => connect({ servers: `tls://${server}:4222`, ...cli, tls, timeout: 3000, maxReconnectAttempts: 0 });
  // the client dials an address; the name it verifies is the Service's, as in a pod
  let nc: Awaited<ReturnType<typeof connect>> | undefined;
  await waitFor(
    async () => {
      nc = await open(ADDRESSES[1]!, { caFile: ca, servername: "nats" }).catch(() => undefined);
      if (!nc) return false;
      try {
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return true;
      } catch {
        await nc.close();
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `JetStream on the three servers (logs: ${dir})` },
  );
  t.after(() => nc?.close());
  const store = await new Objm(nc!).create("wirescope-plugins", { replicas: 3 });
  await store.putBlob({ name: "k8s-tls-check" }, new TextEncoder().encode("over tls"));
  const status = await store.status();
  assert.equal(status.replicas, 3);
  assert.equal(new TextDecoder().decode((await store.getBlob("k8s-tls-check"))!), "over tls");

  // each server routes to the other two, on a route port that requires and verifies TLS
  for (const addr of ADDRESSES) {
    const routez = (await (await fetch(`http://${addr}:8222/routez`)).json()) as { num_routes: number };
    const varz = (await (await fetch(`http://${addr}:8222/varz`)).json()) as { tls_required?: boolean; cluster?: { tls_required?: boolean; tls_verify?: boolean } };
    assert.ok(routez.num_routes >= 2, `${addr}: ${routez.num_routes} routes`);
    assert.deepEqual([varz.tls_required, varz.cluster?.tls_required, varz.cluster?.tls_verify], [true, true, true], `${addr}: TLS for clients, TLS with verification for routes`);
  }
  // without the CA, or expecting another name, the handshake fails
  await assert.rejects(open(ADDRESSES[0]!, {}), "a client without the CA is refused");
  await assert.rejects(open(ADDRESSES[0]!, { caFile: ca, servername: "influxdb" }), "a client that expects another name is refused");
});
