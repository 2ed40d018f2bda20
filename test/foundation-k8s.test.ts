// The Kubernetes deployment (deploy/k8s): the base and each overlay rendered like `kubectl
// kustomize`, every object validated against the Kubernetes OpenAPI schemas (kubernetes-models)
// with unknown fields rejected, then checked against each other and against the code. Each
// check is also shown to fail on a manifest broken on purpose.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderKustomization, kustomizationFiles, KustomizeError, type K8sObject } from "./support/kustomize.js";
import {
  schemaProblems, unknownFieldProblems, referenceProblems, labelProblems, securityProblems, codeProblems,
  natsProblems, influxTlsProblems, natsConfig, allowedFlows, flowAllowed, podsOf, repoVersion, USER_SECRETS,
} from "./support/k8s-checks.js";
import { natsK8sAuthorization, natsPasswordVariable, NATS_ROLES } from "@wirescope/runtime";
import { REPO_ROOT } from "./support/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const k8s = path.join(REPO_ROOT, "deploy/k8s");
const VARIANTS = ["base", "overlays/single-node", "overlays/cluster"];
const version = repoVersion(REPO_ROOT);
const render = (v: string) => renderKustomization(path.join(k8s, v));
const byKindCount = (objs: K8sObject[], kind: string, name: string) => objs.filter((x) => x.kind === kind && x.metadata.name === name).length;
const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} exists`);
  return o;
};

/** The flows of the design, and nothing else (see deploy/k8s/base/network-policies.yaml). */
const DESIGN_FLOWS = [
  "wirescope-probe -> nats:4222",
  "wirescope-parser -> nats:4222",
  "wirescope-aggregator -> nats:4222",
  "nats -> nats:6222",
  "wirescope-aggregator -> influxdb:8086",
  "grafana -> influxdb:8086",
  "wirescope-aggregator -> wirescope-probe:7701",
  "wirescope-aggregator -> wirescope-parser:7702",
].sort();

async function allProblems(objs: K8sObject[]): Promise<string[]> {
  return [
    ...(await schemaProblems(objs)),
    ...referenceProblems(objs),
    ...labelProblems(objs, version),
    ...securityProblems(objs),
    ...codeProblems(objs),
    ...natsProblems(objs),
    ...influxTlsProblems(objs),
  ];
}

describe("kustomize rendering", () => {
  test("every manifest file is reached from the base, and every variant renders", () => {
    const reached = new Set(kustomizationFiles(path.join(k8s, "base")));
    for (const f of fs.readdirSync(path.join(k8s, "base"))) assert.ok(reached.has(path.join(k8s, "base", f)), `${f} is listed in base/kustomization.yaml`);
    for (const v of VARIANTS) {
      const objs = render(v);
      assert.ok(objs.length > 20, `${v}: ${objs.length} objects`);
      for (const o of objs) if (o.kind !== "Namespace" && !o.kind.startsWith("Cluster")) assert.equal(o.metadata.namespace, "wirescope", `${o.kind}/${o.metadata.name}`);
    }
  });

  test("unsupported kustomize features and broken patches are errors, not silently ignored", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-kustomize-"));
    try {
      const write = (body: string) => fs.writeFileSync(path.join(dir, "kustomization.yaml"), `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${JSON.stringify(path.join(k8s, "base"))}]\n${body}`);
      write("commonLabels: { a: b }\n");
      assert.throws(() => renderKustomization(dir), (e) => e instanceof KustomizeError && /commonLabels.*not supported/.test(e.message));
      write("patches:\n  - target: { kind: Deployment, name: wirescope-parser }\n    patch: |-\n      - { op: replace, path: /spec/nothere/x, value: 1 }\n");
      assert.throws(() => renderKustomization(dir), /does not exist/);
      write("patches:\n  - target: { kind: Deployment, name: nosuch }\n    patch: |-\n      - { op: add, path: /spec/x, value: 1 }\n");
      assert.throws(() => renderKustomization(dir), /matches 0 objects/);
      write("images:\n  - { name: nosuch, newTag: x }\n");
      assert.throws(() => renderKustomization(dir), /used by no container/);
      // another namespace: the probe's binding still names wirescope/wirescope-probe, as with kustomize
      write("namespace: observability\n");
      assert.ok(referenceProblems(renderKustomization(dir)).some((p) => /ServiceAccount wirescope\/wirescope-probe does not exist/.test(p)));
      write("replicas:\n  - { name: wirescope-parser, count: 5 }\nimages:\n  - { name: wirescope, newName: registry.example:5000/ws/wirescope, newTag: \"9.9\" }\n");
      const objs = renderKustomization(dir);
      assert.equal(find(objs, "Deployment", "wirescope-parser").spec.replicas, 5);
      assert.equal(find(objs, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].image, "registry.example:5000/ws/wirescope:9.9");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const v of VARIANTS) {
  describe(`deploy/k8s/${v}`, () => {
    test("every object passes the Kubernetes OpenAPI schema, with no unknown field", async () => {
      const objs = render(v);
      assert.deepEqual(await schemaProblems(objs), []);
      assert.deepEqual(unknownFieldProblems(objs, here), []);
    });

    test("references hold: selectors, Service ports, probes, ConfigMaps, volumes, accounts, RBAC, HPA, PDBs", () => {
      assert.deepEqual(referenceProblems(render(v)), []);
    });

    test("app.kubernetes.io labels everywhere, one version", () => {
      assert.deepEqual(labelProblems(render(v), version), []);
    });

    test("the probe has only the capabilities it needs; every other pod meets the restricted profile", () => {
      const objs = render(v);
      assert.deepEqual(securityProblems(objs), []);
      const probe = find(objs, "DaemonSet", "wirescope-probe").spec.template.spec;
      const caps = probe.containers[0].securityContext.capabilities.add;
      assert.ok(!caps.includes("SYS_ADMIN") && !caps.includes("CAP_SYS_ADMIN"), "no CAP_SYS_ADMIN");
      assert.equal(probe.hostPID, true, "hostPID: kernel pids are host pids");
    });

    test("containers run the services with flags and variables they accept, on their control ports", () => {
      assert.deepEqual(codeProblems(render(v)), []);
    });

    test("NATS: 3 servers with routes, JetStream, a quorum-keeping PDB; nats-server accepts the config", (t) => {
      const objs = render(v);
      assert.deepEqual(natsProblems(objs), []);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-nats-conf-"));
      try {
        const conf = path.join(dir, "nats.conf");
        // the TLS files of the Secret wirescope-nats-tls, made as the README says
        const made = spawnSync("bash", [path.join(k8s, "tls.sh"), "wirescope", path.join(dir, "tls")], { encoding: "utf8" });
        assert.equal(made.status, 0, made.stderr);
        const text = natsConfig(objs).replaceAll("/etc/nats-tls/", `${path.join(dir, "tls", "nats")}/`);
        fs.writeFileSync(conf, text.replace("/data/jetstream", path.join(dir, "js")).replace(/pid_file: \S+/, `pid_file: ${path.join(dir, "nats.pid")}`));
        // the users' passwords come from the environment (the Secret): without them the config is refused
        const passwords = Object.fromEntries(NATS_ROLES.map((r) => [natsPasswordVariable(r), `pw-${r}`]));
        const without = spawnSync("nats-server", ["-t", "-c", conf], { env: { ...process.env, POD_NAME: "nats-0" }, encoding: "utf8", timeout: 20_000 });
        if (!without.error) assert.notEqual(without.status, 0, "nats.conf without the passwords in the environment is refused");
        const r = spawnSync("nats-server", ["-t", "-c", conf], { env: { ...process.env, POD_NAME: "nats-0", ...passwords }, encoding: "utf8", timeout: 20_000 });
        if (r.error) return t.skip(`nats-server not installed: ${r.error.message}`);
        assert.equal(r.status, 0, `nats-server -t: ${r.stdout}${r.stderr}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test("NATS users: nats.conf holds the permission table's users, each component logs in as its own with its password from the Secret the README makes", () => {
      const objs = render(v);
      const block = natsK8sAuthorization().trimEnd();
      assert.ok(natsConfig(objs).includes(block), "nats.conf's authorization block is natsK8sAuthorization() (node scripts/k8s-nats-auth.mjs writes it)");
      const ref = (e: K8sObject | undefined) => e?.valueFrom?.secretKeyRef && `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`;
      const nats = find(objs, "StatefulSet", "nats").spec.template.spec.containers[0].env as K8sObject[];
      for (const role of NATS_ROLES) assert.equal(ref(nats.find((e) => e.name === natsPasswordVariable(role))), `wirescope-nats-auth/${role}`, `the servers read ${role}'s password from the Secret`);
      for (const [kind, role] of [["DaemonSet", "probe"], ["Deployment", "parser"], ["Deployment", "aggregator"]] as const) {
        const env = find(objs, kind, `wirescope-${role}`).spec.template.spec.containers[0].env as K8sObject[];
        assert.equal(env.find((e) => e.name === "WIRESCOPE_NATS_USER")?.value, `wirescope-${role}`, role);
        assert.equal(ref(env.find((e) => e.name === "WIRESCOPE_NATS_PASSWORD")), `wirescope-nats-auth/${role}`, role);
      }
      assert.equal(byKindCount(objs, "Secret", "wirescope-nats-auth"), 0, "no password in the manifests");
      // the README's command makes the Secret with every key the manifests read
      const readme = fs.readFileSync(path.join(k8s, "README.md"), "utf8");
      for (const [name, keys] of Object.entries(USER_SECRETS)) {
        const cmd = readme.split("\n").filter((l) => l.includes(`kubectl -n wirescope create secret generic ${name}`));
        assert.equal(cmd.length, 1, `README: one command that makes ${name}`);
        for (const k of keys) assert.match(cmd[0]!, new RegExp(`--from-(literal=${k.replace(".", "\\.")}=|file=\\S*/${k.replace(".", "\\.")}(\\s|$))`), `README: ${name} gets ${k}`);
      }
    });

    test("InfluxDB users by privilege: authentication on, the aggregator writes as the writer, Grafana reads as the reader, passwords from the Secret", () => {
      const objs = render(v);
      const env = (kind: string, name: string) => find(objs, kind, name).spec.template.spec.containers[0].env as K8sObject[];
      const val = (e: K8sObject[], n: string) => {
        const x = e.find((y) => y.name === n);
        return x?.valueFrom?.secretKeyRef ? `secret ${x.valueFrom.secretKeyRef.name}/${x.valueFrom.secretKeyRef.key}` : x?.value;
      };
      const influx = env("StatefulSet", "influxdb");
      assert.equal(val(influx, "INFLUXDB_HTTP_AUTH_ENABLED"), "true");
      for (const [role, pre] of [["admin", "INFLUXDB_ADMIN_USER"], ["writer", "INFLUXDB_WRITE_USER"], ["reader", "INFLUXDB_READ_USER"]] as const) {
        assert.equal(val(influx, pre), `wirescope-${role}`);
        assert.equal(val(influx, pre === "INFLUXDB_ADMIN_USER" ? "INFLUXDB_ADMIN_PASSWORD" : `${pre}_PASSWORD`), `secret wirescope-influx-auth/${role}`);
      }
      for (const [kind, name, role] of [["Deployment", "wirescope-aggregator", "writer"], ["Deployment", "grafana", "reader"]] as const) {
        assert.equal(val(env(kind, name), "WIRESCOPE_INFLUX_USER"), `wirescope-${role}`, name);
        assert.equal(val(env(kind, name), "WIRESCOPE_INFLUX_PASSWORD"), `secret wirescope-influx-auth/${role}`, name);
      }
      const ds = find(objs, "ConfigMap", "grafana-provisioning").data["datasources.yaml"] as string;
      assert.match(ds, /user: \$\{WIRESCOPE_INFLUX_USER\}/);
      assert.match(ds, /password: \$\{WIRESCOPE_INFLUX_PASSWORD\}/);
      assert.equal(byKindCount(objs, "Secret", "wirescope-influx-auth"), 0, "no password in the manifests");
    });

    test("InfluxDB over HTTPS: its certificate from the Secret, probes on HTTPS, every client on https:// trusting the Secret's CA", () => {
      assert.deepEqual(influxTlsProblems(render(v)), []);
    });

    test("NetworkPolicies allow exactly the design's flows, DNS, the API server for the probe, and the Grafana UI", () => {
      const objs = render(v);
      assert.deepEqual(allowedFlows(objs), DESIGN_FLOWS);
      const dns = { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, ports: new Map([["dns", 53]]) };
      for (const p of podsOf(objs)) {
        assert.ok(flowAllowed(objs, p, dns, 53, "UDP"), `${p.name} resolves names`);
        assert.equal(flowAllowed(objs, p, "outside", 443), p.name === "wirescope-probe", `${p.name} -> outside:443`);
        for (const port of p.ports.values()) assert.equal(flowAllowed(objs, "outside", p, port), p.name === "grafana", `outside -> ${p.name}:${port}`);
      }
    });
  });
}

describe("overlays", () => {
  test("single-node starts one parser; cluster three, spread, NATS servers on different nodes", () => {
    const single = render("overlays/single-node");
    assert.equal(find(single, "Deployment", "wirescope-parser").spec.replicas, 1);
    assert.equal(find(single, "HorizontalPodAutoscaler", "wirescope-parser").spec.minReplicas, 1);
    const cluster = render("overlays/cluster");
    assert.equal(find(cluster, "Deployment", "wirescope-parser").spec.replicas, 3);
    assert.equal(find(cluster, "HorizontalPodAutoscaler", "wirescope-parser").spec.minReplicas, 3);
    assert.ok(find(cluster, "Deployment", "wirescope-parser").spec.template.spec.topologySpreadConstraints?.length);
    const anti = find(cluster, "StatefulSet", "nats").spec.template.spec.affinity.podAntiAffinity;
    assert.equal(anti.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey, "kubernetes.io/hostname");
    assert.equal(anti.preferredDuringSchedulingIgnoredDuringExecution, undefined);
    for (const objs of [single, cluster]) assert.equal(find(objs, "StatefulSet", "nats").spec.replicas, 3);
  });
});

describe("the checks catch broken manifests", () => {
  // One breakage each, applied to a fresh rendering of the base; each must be reported.
  const breakages: [string, (o: K8sObject[]) => void, RegExp][] = [
    ["schema: a port that is not a number", (o) => (find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0].ports[0].containerPort = "7702"), /must be integer/],
    ["schema: a bad quantity", (o) => (find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0].resources.requests.cpu = "lots"), /quantity|pattern|format/],
    ["selector off its template", (o) => (find(o, "Deployment", "wirescope-aggregator").spec.selector.matchLabels["app.kubernetes.io/name"] = "x"), /selector does not match/],
    ["Service to a missing port name", (o) => (find(o, "Service", "influxdb").spec.ports[0].targetPort = "htp"), /no container port/],
    ["Service selecting nothing", (o) => (find(o, "Service", "grafana").spec.selector = { "app.kubernetes.io/name": "grafna" }), /selects no pods/],
    ["missing ConfigMap", (o) => (find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0].envFrom[0].configMapRef.name = "nope"), /ConfigMap nope does not exist/],
    ["missing ConfigMap key", (o) => (find(o, "Deployment", "grafana").spec.template.spec.volumes.find((x: K8sObject) => x.name === "datasources").configMap.items[0].key = "x.yaml"), /has no key x.yaml/],
    ["mount of no volume", (o) => find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0].volumeMounts.push({ name: "cache", mountPath: "/cache" }), /mounts cache, which is no volume/],
    ["missing ServiceAccount", (o) => (find(o, "Deployment", "wirescope-aggregator").spec.template.spec.serviceAccountName = "agg"), /ServiceAccount agg does not exist/],
    ["binding to a missing role", (o) => (find(o, "ClusterRoleBinding", "wirescope-probe").roleRef.name = "nope"), /ClusterRole nope does not exist/],
    ["readiness on a port not exposed", (o) => (find(o, "StatefulSet", "influxdb").spec.template.spec.containers[0].readinessProbe.httpGet.port = 9999), /not a port of the container/],
    ["missing version label", (o) => delete find(o, "Service", "nats").metadata.labels["app.kubernetes.io/version"], /no label app.kubernetes.io\/version/],
    ["parser metrics port not exposed", (o) => find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0].ports.splice(1, 1), /does not expose the metrics port 9702/],
    ["aggregator scraped on the wrong port", (o) => (find(o, "Deployment", "wirescope-aggregator").spec.template.metadata.annotations["prometheus.io/port"] = "9702"), /prometheus.io annotations do not point at \/metrics on 9703/],
    ["probe metrics on loopback", (o) => (find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].env = find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].env.filter((e: K8sObject) => e.name !== "WIRESCOPE_METRICS_HOST")), /metrics port not bound on the pod IP/],
    ["privileged probe", (o) => (find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].securityContext.privileged = true), /privileged/],
    ["probe with SYS_ADMIN", (o) => find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].securityContext.capabilities.add.push("SYS_ADMIN"), /SYS_ADMIN is not one the probe needs/],
    ["probe host path writable", (o) => (find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].volumeMounts.find((m: K8sObject) => m.name === "tracefs").readOnly = false), /\/sys\/kernel\/tracing is mounted writable/],
    ["parser as root", (o) => (find(o, "Deployment", "wirescope-parser").spec.template.spec.securityContext.runAsUser = 0), /runs as uid 0/],
    ["grafana with a writable root", (o) => (find(o, "Deployment", "grafana").spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false), /root filesystem is writable/],
    ["nats without seccomp", (o) => delete find(o, "StatefulSet", "nats").spec.template.spec.securityContext.seccompProfile, /seccomp profile is unset/],
    ["unknown WIRESCOPE variable", (o) => (find(o, "ConfigMap", "wirescope-config").data.WIRESCOPE_NATS_URLS = "nats://nats:4222"), /WIRESCOPE_NATS_URLS is not a Wirescope option/],
    ["bad WIRESCOPE value", (o) => (find(o, "ConfigMap", "wirescope-config").data.WIRESCOPE_PARTITIONS = "many"), /PARTITIONS/],
    ["unknown probe flag", (o) => find(o, "DaemonSet", "wirescope-probe").spec.template.spec.containers[0].args.push("--deny-namespace", "x"), /unknown flag --deny-namespace/],
    ["URL to no Service", (o) => (find(o, "ConfigMap", "wirescope-config").data.WIRESCOPE_INFLUX_URL = "http://influx:8086"), /names influx, which is no Service/],
    ["wrong control port", (o) => (find(o, "Deployment", "wirescope-aggregator").spec.template.spec.containers[0].ports[0].containerPort = 7704), /control port 7703/],
    ["one NATS server", (o) => (find(o, "StatefulSet", "nats").spec.replicas = 1), /1 servers|routes/],
    ["NATS routes missing a server", (o) => { const c = find(o, "ConfigMap", "nats-config"); c.data["nats.conf"] = c.data["nats.conf"].replace(/\s*nats-route:\/\/nats-2[^\n]*/, ""); }, /routes/],
    ["NATS without lame duck on stop", (o) => delete find(o, "StatefulSet", "nats").spec.template.spec.containers[0].lifecycle, /lame-duck/],
    ["NATS pid file on the read-only root", (o) => { const c = find(o, "ConfigMap", "nats-config"); c.data["nats.conf"] = c.data["nats.conf"].replace("/var/run/nats/nats.pid", "/run/nats.pid"); }, /lame-duck|writable/],
    ["NATS PDB allowing quorum loss", (o) => (find(o, "PodDisruptionBudget", "nats").spec.maxUnavailable = 2), /quorum/],
    ["NATS clients in plaintext", (o) => (find(o, "ConfigMap", "wirescope-config").data.WIRESCOPE_NATS_URL = "nats://nats:4222"), /is not tls:\/\//],
    ["NATS routes without TLS", (o) => { const c = find(o, "ConfigMap", "nats-config"); c.data["nats.conf"] = c.data["nats.conf"].replace(/(connect_retries: 120)\s*tls \{[^}]*\}/, "$1"); }, /no TLS for routes/],
    ["NATS certificate not mounted", (o) => { const c = find(o, "StatefulSet", "nats").spec.template.spec.containers[0]; c.volumeMounts = c.volumeMounts.filter((m: K8sObject) => m.name !== "tls"); }, /no file of the mounted Secret wirescope-nats-tls|mounted nowhere/],
    ["NATS CA of no mounted Secret", (o) => { const c = find(o, "Deployment", "wirescope-parser").spec.template.spec.containers[0]; c.volumeMounts = c.volumeMounts.filter((m: K8sObject) => m.name !== "nats-tls"); }, /WIRESCOPE_NATS_TLS_CA/],
    ["NATS CA item of a key the Secret lacks", (o) => (find(o, "DaemonSet", "wirescope-probe").spec.template.spec.volumes.find((x: K8sObject) => x.name === "nats-tls").secret.items[0].key = "ca.pem"), /has no key ca.pem/],
    ["InfluxDB over HTTP", (o) => (find(o, "ConfigMap", "wirescope-config").data.WIRESCOPE_INFLUX_URL = "http://influxdb:8086"), /is not https:\/\//],
    ["InfluxDB's key of no mounted Secret", (o) => { const c = find(o, "StatefulSet", "influxdb").spec.template.spec.containers[0]; c.volumeMounts = c.volumeMounts.filter((m: K8sObject) => m.name !== "tls"); }, /INFLUXDB_HTTP_HTTPS_PRIVATE_KEY|mounted nowhere/],
    ["InfluxDB probed over HTTP", (o) => delete find(o, "StatefulSet", "influxdb").spec.template.spec.containers[0].readinessProbe.httpGet.scheme, /readinessProbe is not on HTTPS/],
    ["aggregator without InfluxDB's CA", (o) => { const c = find(o, "Deployment", "wirescope-aggregator").spec.template.spec.containers[0]; c.env = c.env.filter((e: K8sObject) => e.name !== "NODE_EXTRA_CA_CERTS"); }, /NODE_EXTRA_CA_CERTS/],
    ["Grafana trusting no CA", (o) => { const c = find(o, "ConfigMap", "grafana-provisioning"); c.data["datasources.yaml"] = c.data["datasources.yaml"].replace("tlsAuthWithCACert: true", "tlsSkipVerify: true"); }, /does not verify InfluxDB's certificate/],
    ["HPA on a missing target", (o) => (find(o, "HorizontalPodAutoscaler", "wirescope-parser").spec.scaleTargetRef.name = "parser"), /scale target/],
  ];
  for (const [name, breakIt, expect] of breakages) {
    test(name, async () => {
      const objs = render("base");
      breakIt(objs);
      const problems = await allProblems(objs);
      assert.ok(problems.some((p) => expect.test(p)), `expected ${expect} among: ${problems.join(" | ") || "(none)"}`);
    });
  }

  test("unknown fields: a misspelt field passes the JSON schema but not the strict check", async () => {
    const objs = render("base");
    const c = find(objs, "Deployment", "grafana").spec.template.spec.containers[0];
    c.securityContext.readOnlyRootFileSystem = c.securityContext.readOnlyRootFilesystem;
    delete c.securityContext.readOnlyRootFilesystem;
    assert.deepEqual(await schemaProblems(objs), [], "the OpenAPI schema alone allows it");
    const problems = unknownFieldProblems(objs, here);
    assert.ok(problems.some((p) => p.startsWith("Deployment/grafana:") && /readOnlyRootFileSystem/.test(p)), problems.join(" | "));
  });

  test("a flow outside the design is caught", () => {
    const objs = render("base");
    find(objs, "NetworkPolicy", "influxdb").spec.ingress[0].from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "wirescope-parser" } } });
    find(objs, "NetworkPolicy", "wirescope-parser").spec.egress.push({ to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "influxdb" } } }] });
    assert.ok(allowedFlows(objs).includes("wirescope-parser -> influxdb:8086"));
    find(objs, "NetworkPolicy", "nats").spec.ingress[0].from.pop();
    assert.ok(!allowedFlows(objs).includes("wirescope-aggregator -> nats:4222"));
  });
});
