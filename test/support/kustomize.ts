// Renders a kustomization the way `kubectl kustomize` does, for the subset of Kustomize that
// deploy/k8s uses. Anything outside that subset is an error, never silently ignored, so a
// manifest author who reaches for another feature learns here that the tests cannot see it.
//
// Supported, in kustomize's order:
//   resources   files (multi-document YAML) and directories holding a kustomization.yaml
//   namespace   set on every namespaced object; ServiceAccount subjects of (Cluster)RoleBindings
//               named "default" (kustomize's setRoleBindingSubjects: defaultOnly)
//   labels      pairs added to metadata.labels, and to pod templates with includeTemplates;
//               includeSelectors must be false (selectors are immutable and stay as written)
//   images      name → newName / newTag / digest in every container and init container
//   replicas    name → count on Deployments, StatefulSets and ReplicaSets
//   patches     JSON 6902 operations (add, replace, remove) inline, with a kind/name target
import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments, parse } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: arbitrary Kubernetes objects, checked by schema
export type K8sObject = Record<string, any>;

const KNOWN_FIELDS = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "images", "replicas", "patches"]);
const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass", "PersistentVolume",
  "CustomResourceDefinition", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
]);
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

export class KustomizeError extends Error {}

function fail(where: string, msg: string): never {
  throw new KustomizeError(`${where}: ${msg}`);
}

function readYamlDocs(file: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) fail(file, doc.errors.map((e) => e.message).join("; "));
    const o = doc.toJS() as K8sObject | null;
    if (o == null) continue;
    if (typeof o !== "object" || typeof o.kind !== "string" || typeof o.apiVersion !== "string" || typeof o.metadata?.name !== "string") {
      fail(file, "a document without apiVersion, kind and metadata.name");
    }
    out.push(o);
  }
  return out;
}

/** The files a kustomization directory reads (itself and its resources, recursively). */
export function kustomizationFiles(dir: string): string[] {
  const k = loadKustomization(dir);
  return [path.join(dir, "kustomization.yaml"), ...(k.resources ?? []).flatMap((r: string) => {
    const p = path.resolve(dir, r);
    return fs.statSync(p).isDirectory() ? kustomizationFiles(p) : [p];
  })];
}

function loadKustomization(dir: string): K8sObject {
  const file = path.join(dir, "kustomization.yaml");
  if (!fs.existsSync(file)) fail(dir, "no kustomization.yaml");
  const k = parse(fs.readFileSync(file, "utf8")) as K8sObject;
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") fail(file, "not a kustomize.config.k8s.io/v1beta1 Kustomization");
  for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) fail(file, `"${key}" is not supported by this renderer (supported: ${[...KNOWN_FIELDS].join(", ")})`);
  return k;
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

function podSpecs(o: K8sObject): K8sObject[] {
  return WORKLOADS.has(o.kind) && o.spec?.template?.spec ? [o.spec.template.spec] : [];
}

/** Splits a JSON pointer ("/spec/template/...") into keys, unescaping ~1 and ~0. */
function pointer(p: string, where: string): string[] {
  if (!p.startsWith("/")) fail(where, `patch path "${p}" is not a JSON pointer`);
  return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function applyOp(target: K8sObject, op: K8sObject, where: string): void {
  const keys = pointer(op.path, where);
  const last = keys.pop()!;
  let parent: K8sObject = target;
  for (const k of keys) {
    const next = Array.isArray(parent) ? parent[Number(k)] : parent[k];
    if (next == null || typeof next !== "object") fail(where, `${op.op} ${op.path}: "${k}" does not exist`);
    parent = next;
  }
  const isArray = Array.isArray(parent);
  const idx = last === "-" ? parent.length : Number(last);
  if (isArray && !(Number.isInteger(idx) && idx >= 0 && idx <= parent.length)) fail(where, `${op.op} ${op.path}: bad array index`);
  switch (op.op) {
    case "add":
      if (!("value" in op)) fail(where, `add ${op.path} has no value`);
      if (isArray) parent.splice(idx, 0, structuredClone(op.value));
      else parent[last] = structuredClone(op.value);
      break;
    case "replace":
      if (!("value" in op)) fail(where, `replace ${op.path} has no value`);
      if (isArray ? idx >= parent.length : !(last in parent)) fail(where, `replace ${op.path}: nothing there to replace`);
      if (isArray) parent[idx] = structuredClone(op.value);
      else parent[last] = structuredClone(op.value);
      break;
    case "remove":
      if (isArray ? idx >= parent.length : !(last in parent)) fail(where, `remove ${op.path}: nothing there to remove`);
      if (isArray) parent.splice(idx, 1);
      else delete parent[last];
      break;
    default:
      fail(where, `patch op "${op.op}" is not supported (add, replace, remove)`);
  }
}

/** Renders the kustomization in `dir` into the list of objects `kubectl apply -k` would send. */
export function renderKustomization(dir: string): K8sObject[] {
  const file = path.join(dir, "kustomization.yaml");
  const k = loadKustomization(dir);
  let objs: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) fail(file, `resource ${r} does not exist`);
    objs.push(...(fs.statSync(p).isDirectory() ? renderKustomization(p) : readYamlDocs(p)));
  }
  const seen = new Set<string>();
  for (const o of objs) {
    if (seen.has(id(o))) fail(file, `${id(o)} is defined twice`);
    seen.add(id(o));
  }

  for (const patch of k.patches ?? []) {
    const where = `${file} patch ${JSON.stringify(patch.target)}`;
    if (typeof patch.patch !== "string" || !patch.target?.kind || !patch.target?.name) fail(where, "only inline JSON 6902 patches with a kind and name target are supported");
    const ops = parse(patch.patch) as K8sObject[];
    if (!Array.isArray(ops)) fail(where, "a strategic-merge patch is not supported; write JSON 6902 operations");
    const targets = objs.filter((o) => o.kind === patch.target.kind && o.metadata.name === patch.target.name);
    if (targets.length !== 1) fail(where, `matches ${targets.length} objects, expected 1`);
    for (const op of ops) applyOp(targets[0], op, where);
  }

  for (const r of k.replicas ?? []) {
    const targets = objs.filter((o) => ["Deployment", "StatefulSet", "ReplicaSet"].includes(o.kind) && o.metadata.name === r.name);
    if (targets.length !== 1 || !Number.isInteger(r.count)) fail(file, `replicas ${r.name}: matches ${targets.length} workloads (count ${r.count})`);
    targets[0].spec.replicas = r.count;
  }

  for (const img of k.images ?? []) {
    let used = false;
    for (const spec of objs.flatMap(podSpecs)) {
      for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
        const [name, tag] = splitImage(c.image);
        if (name !== img.name) continue;
        used = true;
        const newName = img.newName ?? name;
        c.image = img.digest ? `${newName}@${img.digest}` : `${newName}:${img.newTag ?? tag ?? "latest"}`;
      }
    }
    if (!used) fail(file, `image ${img.name} is used by no container`);
  }

  if (k.namespace) {
    objs = objs.map((o) => {
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
      if (o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding") {
        // kustomize's default (setRoleBindingSubjects: defaultOnly): only subjects named
        // "default" follow; others stay as written (and the reference checks see a mismatch)
        for (const s of o.subjects ?? []) if (s.kind === "ServiceAccount" && s.name === "default") s.namespace = k.namespace;
      }
      return o;
    });
  }

  for (const l of k.labels ?? []) {
    if (l.includeSelectors) fail(file, "labels with includeSelectors are not supported (selectors are immutable; write them out)");
    for (const o of objs) {
      o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
      if (l.includeTemplates && WORKLOADS.has(o.kind) && o.spec?.template) {
        o.spec.template.metadata ??= {};
        o.spec.template.metadata.labels = { ...(o.spec.template.metadata.labels ?? {}), ...l.pairs };
      }
    }
  }
  return objs;
}

/** "repo/name:tag" → ["repo/name", "tag"]; a registry port is not a tag. */
export function splitImage(image: string): [string, string | undefined] {
  const at = image.indexOf("@");
  const ref = at >= 0 ? image.slice(0, at) : image;
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, undefined];
}
