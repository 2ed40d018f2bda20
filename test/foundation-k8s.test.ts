// The Kubernetes manifests agree with the code: ports, environment names, privileges, probes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { OPTIONS, DEFAULT_GRPC_PORTS, type Component } from "@wirescope/common";

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../deploy/k8s");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

function load(): Obj[] {
  const out: Obj[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8"))) {
      assert.deepEqual(doc.errors, [], `${f}: ${doc.errors.join("; ")}`);
      const o = doc.toJS();
      if (o) out.push({ ...o, __file: f });
    }
  }
  return out;
}

const find = (objs: Obj[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} exists`);
  return o;
};

test("kustomization lists exactly the manifest files", () => {
  const k = parseAllDocuments(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"))[0].toJS();
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
  assert.deepEqual([...k.resources].sort(), files);
});

test("services use the code's control ports, gRPC readiness and the wirescope image", () => {
  const objs = load();
  const workloads: [Component, string, string][] = [
    ["probe", "DaemonSet", "wirescope-probe"],
    ["parser", "Deployment", "wirescope-parser"],
    ["aggregator", "Deployment", "wirescope-aggregator"],
  ];
  for (const [component, kind, name] of workloads) {
    const w = find(objs, kind, name);
    const c = w.spec.template.spec.containers[0];
    assert.deepEqual(c.args, [component]);
    assert.match(c.image, /^wirescope:/);
    assert.equal(c.ports[0].containerPort, DEFAULT_GRPC_PORTS[component], `${name} port`);
    assert.equal(c.readinessProbe.grpc.port, DEFAULT_GRPC_PORTS[component], `${name} readiness`);
    assert.ok(c.envFrom.some((e: Obj) => e.configMapRef?.name === "wirescope-config"), `${name} reads wirescope-config`);
    const host = c.env.find((e: Obj) => e.name === "WIRESCOPE_GRPC_HOST");
    assert.equal(host?.valueFrom?.fieldRef?.fieldPath, "status.podIP", `${name} announces a reachable address`);
  }
});

test("the probe is a privileged hostPID DaemonSet whose service account may list pods", () => {
  const objs = load();
  const ds = find(objs, "DaemonSet", "wirescope-probe");
  const spec = ds.spec.template.spec;
  assert.equal(spec.hostPID, true);
  assert.equal(spec.containers[0].securityContext.privileged, true);
  assert.ok(spec.containers[0].env.some((e: Obj) => e.name === "NODE_NAME" && e.valueFrom.fieldRef.fieldPath === "spec.nodeName"));
  const binding = objs.find((o) => o.kind === "ClusterRoleBinding" && o.subjects.some((s: Obj) => s.name === spec.serviceAccountName));
  assert.ok(binding, "a ClusterRoleBinding for the probe's service account");
  const role = find(objs, "ClusterRole", binding.roleRef.name);
  assert.ok(role.rules.some((r: Obj) => r.resources.includes("pods") && r.verbs.includes("list")));
});

test("the parser can be autoscaled and NATS has JetStream", () => {
  const objs = load();
  const parser = find(objs, "Deployment", "wirescope-parser");
  assert.ok(parser.spec.template.spec.containers[0].resources.requests.cpu, "CPU request for the HPA");
  const hpa = find(objs, "HorizontalPodAutoscaler", "wirescope-parser");
  assert.equal(hpa.spec.scaleTargetRef.name, "wirescope-parser");
  assert.match(find(objs, "ConfigMap", "nats-config").data["nats.conf"], /jetstream\s*\{/);
});

test("every WIRESCOPE_* variable in the manifests is one the services understand", () => {
  const known = new Set(OPTIONS.flatMap((o) => (o.env ? [o.env] : [])));
  const text = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n");
  const used = new Set([...text.matchAll(/\bWIRESCOPE_[A-Z_]+/g)].map((m) => m[0]));
  assert.ok(used.size > 5);
  for (const v of used) assert.ok(known.has(v), `${v} is not a Wirescope option`);
  const cfg = find(load(), "ConfigMap", "wirescope-config").data;
  const nats = find(load(), "Service", "nats");
  const influx = find(load(), "Service", "influxdb");
  assert.equal(cfg.WIRESCOPE_NATS_URL, `nats://${nats.metadata.name}.wirescope.svc:${nats.spec.ports[0].port}`);
  assert.equal(cfg.WIRESCOPE_INFLUX_URL, `http://${influx.metadata.name}.wirescope.svc:${influx.spec.ports[0].port}`);
});
