// deploy/k8s's TLS run for real with the certificates deploy/k8s/tls.sh makes, names resolved by
// a hosts file bound over /etc/hosts in a mount namespace (loopback addresses of their own):
// - NATS: the three servers of the rendered base, each from its nats.conf (only paths and listen
//   addresses changed). The routes dial and verify each other as nats-N.nats-headless, JetStream
//   forms across them, and a client that checks the name `nats` against the CA the pods mount
//   (WIRESCOPE_NATS_TLS_CA) writes an R3 object as the CLI's user. A client without the CA is
//   refused, and so is one that expects another name.
// - InfluxDB: influxd with the StatefulSet's HTTPS variables answers https://influxdb:8086 to a
//   Node process with the aggregator pod's NODE_EXTRA_CA_CERTS (fetch and the https module alike),
//   and not to one without it.
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
import { influxdConfig } from "@wirescope/cli/local-stack/index";
import type { K8sObject } from "./support/kustomize.js";
import { REPO_ROOT, spawnTracked, tempDir, waitFor } from "./support/index.js";

/** Each NATS server's own loopback address (and `nats`, the Service, the first one's), and InfluxDB's. */
const ADDRESSES = ["127.77.0.10", "127.77.0.11", "127.77.0.12"];
const INFLUX_ADDRESS = "127.77.0.20";

/** argv that runs `argv` with `hosts` bound over /etc/hosts, in a mount namespace of its own. */
function withHosts(hosts: string, argv: string[]): [string, string[]] {
  return ["unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, ...argv]];
}

/** Makes the certificates as the README says, once per test file. */
let made: string | undefined;
function certificates(): string {
  if (made) return made;
  const dir = path.join(tempDir("wirescope-k8s-tls-"), "tls");
  const r = spawnSync("bash", [path.join(REPO_ROOT, "deploy/k8s/tls.sh"), "wirescope", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  for (const [secret, sub] of [["wirescope-nats-tls", "nats"], ["wirescope-influx-tls", "influxdb"]]) {
    assert.match(r.stdout, new RegExp(`kubectl -n wirescope create secret generic ${secret} --from-file=\\S+/${sub}/ca\\.crt --from-file=\\S+/${sub}/tls\\.crt --from-file=\\S+/${sub}/tls\\.key`));
  }
  const again = spawnSync("bash", [path.join(REPO_ROOT, "deploy/k8s/tls.sh"), "wirescope", dir], { encoding: "utf8" });
  assert.equal(again.status, 1, "an existing folder is not overwritten");
  made = dir;
  return dir;
}

function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `nats.conf has ${from}`);
  return out;
}

test("deploy/k8s NATS over TLS: the routes verify each other by name, JetStream forms, a client that verifies `nats` writes R3; without the CA, refused", { timeout: 120_000 }, async (t) => {
  const dir = tempDir("wirescope-k8s-nats-tls-");
  const tlsDir = path.join(certificates(), "nats");

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
    servers.push(
      await spawnTracked(`nats-${i}`, ...withHosts(hosts, ["nats-server", "-c", file]), {
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

test("deploy/k8s InfluxDB over HTTPS: influxd with the StatefulSet's variables answers https://influxdb:8086 to a Node client with the aggregator pod's NODE_EXTRA_CA_CERTS; without it, refused", { timeout: 60_000 }, async (t) => {
  const tlsDir = path.join(certificates(), "influxdb");
  const objs = renderKustomization(path.join(REPO_ROOT, "deploy/k8s/base"));
  const containerOf = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)?.spec.template.spec.containers[0] as K8sObject;
  const plain = (c: K8sObject) => Object.fromEntries((c.env as K8sObject[]).filter((e) => e.value !== undefined).map((e) => [e.name, String(e.value)]));
  // influxd's own variables of the StatefulSet (the image's first-start ones mean nothing to influxd)
  const influxEnv = Object.fromEntries(Object.entries(plain(containerOf("StatefulSet", "influxdb"))).filter(([k]) => k.startsWith("INFLUXDB_HTTP_")).map(([k, v]) => [k, String(v).replace("/etc/influxdb-tls/", `${tlsDir}/`)]));
  assert.deepEqual(Object.keys(influxEnv).filter((k) => k.includes("HTTPS")).sort(), ["INFLUXDB_HTTP_HTTPS_CERTIFICATE", "INFLUXDB_HTTP_HTTPS_ENABLED", "INFLUXDB_HTTP_HTTPS_PRIVATE_KEY"]);
  const dir = tempDir("wirescope-k8s-influx-tls-");
  const conf = path.join(dir, "influxdb.conf");
  fs.writeFileSync(conf, influxdConfig(INFLUX_ADDRESS, 8086, 8088, dir, true));
  const influxd = await spawnTracked("influxd", "influxd", ["-config", conf], { env: { ...process.env, ...influxEnv }, logFile: path.join(dir, "influxd.log") });
  t.after(() => influxd.stop());

  // the aggregator's variables: the URL from the ConfigMap, the CA from its own env
  const config = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "wirescope-config")!.data as Record<string, string>;
  assert.equal(config.WIRESCOPE_INFLUX_URL, "https://influxdb:8086");
  const caPath = plain(containerOf("Deployment", "wirescope-aggregator")).NODE_EXTRA_CA_CERTS;
  assert.equal(caPath, "/etc/wirescope/influx-tls/ca.crt");
  const hosts = path.join(dir, "hosts");
  fs.writeFileSync(hosts, `127.0.0.1 localhost\n${INFLUX_ADDRESS} influxdb\n`);
  // what the aggregator's two kinds of HTTPS client answer: fetch (detection, queries) and the https module (the InfluxDB client's writes)
  const probe = `const u = process.env.WIRESCOPE_INFLUX_URL + "/ping";
    const viaFetch = await fetch(u).then((r) => String(r.status), (e) => "error " + (e.cause?.code ?? e.message));
    const https = await import("node:https");
    const viaHttps = await new Promise((res) => https.get(u, (r) => (r.resume(), res(String(r.statusCode)))).on("error", (e) => res("error " + (e.code ?? e.message))));
    console.log(JSON.stringify([viaFetch, viaHttps]));`;
  const ask = (extra: Record<string, string>) => {
    const [cmd, args] = withHosts(hosts, [process.execPath, "--input-type=module", "-e", probe]);
    const r = spawnSync(cmd, args, { env: { ...process.env, NODE_EXTRA_CA_CERTS: "", WIRESCOPE_INFLUX_URL: config.WIRESCOPE_INFLUX_URL!, ...extra }, encoding: "utf8", timeout: 20_000 });
    return JSON.parse(r.stdout.trim().split("\n").pop() || "null") as string[] | null;
  };
  await waitFor(() => ask({ NODE_EXTRA_CA_CERTS: path.join(tlsDir, "ca.crt") })?.[0] === "204", { timeoutMs: 30_000, intervalMs: 500, what: `influxd over HTTPS (log: ${dir})` });
  assert.deepEqual(ask({ NODE_EXTRA_CA_CERTS: path.join(tlsDir, "ca.crt") }), ["204", "204"]);
  const refused = ask({});
  assert.ok(refused?.every((x) => /^error .*(UNABLE_TO_VERIFY|SELF_SIGNED|unable to verify)/i.test(x)), `without the CA: ${JSON.stringify(refused)}`);
});
