// Checks a rendered Kubernetes deployment of Wirescope: each object against the Kubernetes
// OpenAPI schemas (kubernetes-models) and, for unknown fields, against the same models' types
// (TypeScript's excess-property check, as `kubectl apply --validate=strict` would reject them);
// then the references between objects and against the code. Every check returns problems as
// strings, so that a test can break a manifest on purpose and see the check catch it.
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";
import { loadConfig, OPTIONS, DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, type Component } from "@wirescope/runtime";
import { parseProbeArgs } from "@wirescope/probe";
import { parseParserArgs } from "@wirescope/parser";
import { parseAggregatorArgs } from "@wirescope/aggregator";
import { splitImage, type K8sObject } from "./kustomize.js";

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet"]);
const SERVICE_PARSERS: Record<Component, (args: string[]) => unknown> = {
  probe: parseProbeArgs,
  parser: parseParserArgs,
  aggregator: parseAggregatorArgs,
};
/** What the probe may be given (see deploy/k8s/base/probe.yaml for why each). */
export const PROBE_CAPABILITIES = new Set(["BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"]);
const REQUIRED_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"];
const REQUIRED_POD_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/instance", "app.kubernetes.io/version"];

const id = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;
export const workloads = (objs: K8sObject[]) => objs.filter((o) => WORKLOAD_KINDS.has(o.kind));
const byKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const get = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);

/** matchLabels semantics; matchExpressions are not used here and count as a problem. */
export function selects(selector: K8sObject | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  if (selector.matchExpressions) return false;
  const want: Record<string, string> = selector.matchLabels ?? selector;
  return Object.entries(want).every(([k, v]) => labels?.[k] === v);
}

function modulePath(apiVersion: string): string {
  return `kubernetes-models/${apiVersion}`;
}

/** Validates each object with its kubernetes-models class (types, required fields, enums, formats). */
export async function schemaProblems(objs: K8sObject[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of objs) {
    let Model: (new (d: K8sObject) => { validate(): void }) | undefined;
    try {
      Model = (await import(modulePath(o.apiVersion)))[o.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      out.push(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(structuredClone(o)).validate();
    } catch (e) {
      out.push(`${id(o)}: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * Unknown fields (a misspelt `readOnlyRootFileSystem` passes the JSON schema, which allows extra
 * properties): each object is type-checked as an object literal of its model's interface.
 */
export function unknownFieldProblems(objs: K8sObject[], baseDir: string): string[] {
  const file = path.join(baseDir, "__k8s_fields__.ts");
  const lines: string[] = [];
  const where: string[] = [];
  objs.forEach((o, i) => {
    lines.push(`import type { I${o.kind} as T${i} } from "${modulePath(o.apiVersion)}";`);
    where.push(id(o));
  });
  const firstBody = lines.length;
  objs.forEach((o, i) => lines.push(`export const o${i}: T${i} = ${JSON.stringify(o)};`));
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, noEmit: true, skipLibCheck: true, types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : readFile(f));
  host.fileExists = ((exists) => (f: string) => path.resolve(f) === file || exists(f))(host.fileExists.bind(host));
  host.getSourceFile = (f, lang, ...rest) =>
    path.resolve(f) === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, ...rest);
  const program = ts.createProgram([file], options, host);
  const out: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n").slice(-1)[0];
    if (d.file && path.resolve(d.file.fileName) === file && d.start !== undefined) {
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      out.push(`${where[line - firstBody] ?? where[line] ?? "?"}: ${msg}`);
    } else out.push(msg);
  }
  return out;
}

function podSpec(w: K8sObject): K8sObject {
  return w.spec.template.spec;
}

function containersOf(w: K8sObject): K8sObject[] {
  const s = podSpec(w);
  return [...(s.initContainers ?? []), ...(s.containers ?? [])];
}

/** The container port a Service/probe port reference (number or name) lands on, if any. */
function resolvePort(w: K8sObject, ref: number | string): number | undefined {
  for (const c of containersOf(w)) {
    for (const p of c.ports ?? []) if (p.containerPort === ref || p.name === ref) return p.containerPort;
  }
  return undefined;
}

/**
 * Secrets the user makes before applying, never in the manifests (passwords do not go into git):
 * name → keys. deploy/k8s/README.md gives the command that makes each (checked by
 * test/foundation-k8s.test.ts).
 */
export const USER_SECRETS: Readonly<Record<string, readonly string[]>> = {
  "wirescope-nats-auth": ["probe", "parser", "aggregator", "cli"],
  "wirescope-influx-auth": ["admin", "writer", "reader"],
  // certificates, made by deploy/k8s/tls.sh
  "wirescope-nats-tls": ["ca.crt", "tls.crt", "tls.key"],
  "wirescope-influx-tls": ["ca.crt", "tls.crt", "tls.key"],
};

/**
 * The Secret and key a file path of container `c` comes from: the path is `<mountPath>/<file>` of
 * one of its mounts whose volume is a Secret (with `items`, the item whose path is that file);
 * undefined when no mounted Secret provides the file.
 */
export function secretFileSource(w: K8sObject, c: K8sObject, file: string): { secret: string; key: string } | undefined {
  for (const m of c.volumeMounts ?? []) {
    if (path.dirname(file) !== m.mountPath) continue;
    const v = (podSpec(w).volumes ?? []).find((x: K8sObject) => x.name === m.name);
    if (!v?.secret) continue;
    const base = path.basename(file);
    const items: K8sObject[] | undefined = v.secret.items;
    const key = items ? items.find((it) => it.path === base)?.key : base;
    if (key !== undefined) return { secret: v.secret.secretName, key };
  }
  return undefined;
}

/** Selectors, Services, ports, probes, ConfigMaps, Secrets, volumes, accounts, RBAC, HPA, PDB. */
export function referenceProblems(objs: K8sObject[]): string[] {
  const out: string[] = [];
  const ws = workloads(objs);
  const configMaps = new Map(byKind(objs, "ConfigMap").map((c) => [c.metadata.name, c]));
  const secrets = new Set(byKind(objs, "Secret").map((s) => s.metadata.name));
  const accounts = new Set(byKind(objs, "ServiceAccount").map((s) => `${s.metadata.namespace}/${s.metadata.name}`));

  const cmRef = (where: string, name: string, optional: boolean | undefined, key?: string) => {
    const cm = configMaps.get(name);
    if (!cm) {
      if (!optional) out.push(`${where}: ConfigMap ${name} does not exist`);
    } else if (key !== undefined && !(key in (cm.data ?? {}))) out.push(`${where}: ConfigMap ${name} has no key ${key}`);
  };
  const secretRef = (where: string, name: string, optional: boolean | undefined, key?: string) => {
    const made = USER_SECRETS[name];
    if (made) {
      if (key !== undefined && !made.includes(key)) out.push(`${where}: Secret ${name} (made by the user) has no key ${key}`);
    } else if (!secrets.has(name) && !optional) out.push(`${where}: Secret ${name} does not exist`);
  };

  for (const w of ws) {
    const where = id(w);
    const tl = w.spec.template.metadata?.labels;
    if (!selects(w.spec.selector, tl)) out.push(`${where}: selector does not match its pod template's labels`);
    const others = ws.filter((x) => x !== w && selects(w.spec.selector, x.spec.template.metadata?.labels));
    if (others.length) out.push(`${where}: selector also matches ${others.map(id).join(", ")}`);
    const spec = podSpec(w);
    const sa = spec.serviceAccountName ?? "default";
    if (!accounts.has(`${w.metadata.namespace}/${sa}`)) out.push(`${where}: ServiceAccount ${sa} does not exist`);
    const volumes = new Map<string, K8sObject>((spec.volumes ?? []).map((v: K8sObject) => [v.name, v]));
    const claims = new Set((w.spec.volumeClaimTemplates ?? []).map((c: K8sObject) => c.metadata.name));
    const used = new Set<string>();
    for (const v of volumes.values()) {
      if (v.configMap) {
        cmRef(`${where} volume ${v.name}`, v.configMap.name, v.configMap.optional);
        for (const it of v.configMap.items ?? []) cmRef(`${where} volume ${v.name}`, v.configMap.name, v.configMap.optional, it.key);
      }
      if (v.secret) {
        secretRef(`${where} volume ${v.name}`, v.secret.secretName, v.secret.optional);
        for (const it of v.secret.items ?? []) secretRef(`${where} volume ${v.name}`, v.secret.secretName, v.secret.optional, it.key);
      }
    }
    for (const c of containersOf(w)) {
      const cw = `${where} container ${c.name}`;
      for (const m of c.volumeMounts ?? []) {
        used.add(m.name);
        if (!volumes.has(m.name) && !claims.has(m.name)) out.push(`${cw}: mounts ${m.name}, which is no volume`);
      }
      for (const e of c.envFrom ?? []) {
        if (e.configMapRef) cmRef(cw, e.configMapRef.name, e.configMapRef.optional);
        if (e.secretRef) secretRef(cw, e.secretRef.name, e.secretRef.optional);
      }
      for (const e of c.env ?? []) {
        const k = e.valueFrom?.configMapKeyRef;
        if (k) cmRef(`${cw} env ${e.name}`, k.name, k.optional, k.key);
        const s = e.valueFrom?.secretKeyRef;
        if (s) secretRef(`${cw} env ${e.name}`, s.name, s.optional, s.key);
      }
      for (const probeName of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const p = c[probeName];
        if (!p) continue;
        const port = p.grpc?.port ?? p.httpGet?.port ?? p.tcpSocket?.port;
        if (port !== undefined && !(c.ports ?? []).some((x: K8sObject) => x.containerPort === port || x.name === port)) {
          out.push(`${cw} ${probeName}: port ${port} is not a port of the container`);
        }
      }
    }
    for (const v of volumes.keys()) if (!used.has(v)) out.push(`${where}: volume ${v} is mounted nowhere`);
    for (const c of claims) if (!used.has(c as string)) out.push(`${where}: volumeClaimTemplate ${c} is mounted nowhere`);
  }

  for (const s of byKind(objs, "Service")) {
    const targets = ws.filter((w) => selects(s.spec.selector, w.spec.template.metadata?.labels));
    if (targets.length === 0) {
      out.push(`${id(s)}: selects no pods`);
      continue;
    }
    for (const p of s.spec.ports ?? []) {
      for (const w of targets) {
        if (resolvePort(w, p.targetPort ?? p.port) === undefined) out.push(`${id(s)} port ${p.name ?? p.port}: target ${p.targetPort ?? p.port} is no container port of ${id(w)}`);
      }
    }
  }
  for (const sts of byKind(objs, "StatefulSet")) {
    const svc = get(objs, "Service", sts.spec.serviceName);
    if (!svc) out.push(`${id(sts)}: serviceName ${sts.spec.serviceName} is no Service`);
    else if (!selects(svc.spec.selector, sts.spec.template.metadata?.labels)) out.push(`${id(sts)}: Service ${svc.metadata.name} does not select it`);
  }
  for (const b of [...byKind(objs, "ClusterRoleBinding"), ...byKind(objs, "RoleBinding")]) {
    const role = get(objs, b.roleRef.kind, b.roleRef.name);
    if (!role) out.push(`${id(b)}: ${b.roleRef.kind} ${b.roleRef.name} does not exist`);
    for (const s of b.subjects ?? []) {
      if (s.kind === "ServiceAccount" && !accounts.has(`${s.namespace ?? b.metadata.namespace}/${s.name}`)) out.push(`${id(b)}: ServiceAccount ${s.namespace}/${s.name} does not exist`);
    }
  }
  for (const h of byKind(objs, "HorizontalPodAutoscaler")) {
    const t = h.spec.scaleTargetRef;
    const w = get(objs, t.kind, t.name);
    if (!w) out.push(`${id(h)}: scale target ${t.kind}/${t.name} does not exist`);
    else {
      if (w.spec.replicas !== undefined && (w.spec.replicas < h.spec.minReplicas || w.spec.replicas > h.spec.maxReplicas)) {
        out.push(`${id(h)}: ${id(w)} starts with ${w.spec.replicas} replicas, outside ${h.spec.minReplicas}..${h.spec.maxReplicas}`);
      }
      for (const m of h.spec.metrics ?? []) {
        const r = m.resource?.name;
        if (r && !containersOf(w).every((c) => c.resources?.requests?.[r])) out.push(`${id(h)}: scales on ${r} but ${id(w)} does not request it`);
      }
    }
  }
  for (const p of byKind(objs, "PodDisruptionBudget")) {
    if (!ws.some((w) => selects(p.spec.selector, w.spec.template.metadata?.labels))) out.push(`${id(p)}: selects no pods`);
  }
  for (const np of byKind(objs, "NetworkPolicy")) {
    const sels = [np.spec.podSelector, ...[...(np.spec.ingress ?? []).flatMap((r: K8sObject) => r.from ?? []), ...(np.spec.egress ?? []).flatMap((r: K8sObject) => r.to ?? [])]
      .filter((peer: K8sObject) => peer.podSelector && !peer.namespaceSelector).map((peer: K8sObject) => peer.podSelector)];
    for (const s of sels) {
      if (s.matchExpressions) out.push(`${id(np)}: matchExpressions are not checked here; use matchLabels`);
      else if (Object.keys(s.matchLabels ?? {}).length && !ws.some((w) => selects(s, w.spec.template.metadata?.labels))) {
        out.push(`${id(np)}: selector ${JSON.stringify(s.matchLabels)} matches no pods`);
      }
    }
  }
  return out;
}

/** app.kubernetes.io labels on every object and pod template; one version, the image's. */
export function labelProblems(objs: K8sObject[], version: string): string[] {
  const out: string[] = [];
  for (const o of objs) {
    for (const l of REQUIRED_LABELS) if (!o.metadata.labels?.[l]) out.push(`${id(o)}: no label ${l}`);
    if (o.metadata.labels?.["app.kubernetes.io/version"] !== version) out.push(`${id(o)}: app.kubernetes.io/version is not ${version}`);
  }
  for (const w of workloads(objs)) {
    const tl = w.spec.template.metadata?.labels ?? {};
    for (const l of REQUIRED_POD_LABELS) if (!tl[l]) out.push(`${id(w)} pod template: no label ${l}`);
    for (const c of containersOf(w)) {
      const [name, tag] = splitImage(c.image);
      if (name.split("/").pop() === "wirescope" && tag !== version) out.push(`${id(w)}: image ${c.image} is not version ${version}`);
    }
  }
  return out;
}

/**
 * Pod security. The probe: not privileged, every capability dropped but those it needs, never
 * SYS_ADMIN, host mounts read-only except its lock directory. Every other pod: the `restricted`
 * Pod Security Standard (non-root, RuntimeDefault seccomp, no capabilities, no privilege
 * escalation, no host namespaces or paths) plus a read-only root filesystem.
 */
export function securityProblems(objs: K8sObject[], probeName = "wirescope-probe", probeWritableHostPaths = ["/run/wirescope"]): string[] {
  const out: string[] = [];
  for (const w of workloads(objs)) {
    const spec = podSpec(w);
    const isProbe = w.metadata.name === probeName;
    const podSec = spec.securityContext ?? {};
    const hostPaths = new Map<string, string>((spec.volumes ?? []).filter((v: K8sObject) => v.hostPath).map((v: K8sObject) => [v.name, v.hostPath.path]));
    if (!isProbe) {
      if (spec.hostPID || spec.hostNetwork || spec.hostIPC) out.push(`${id(w)}: uses a host namespace`);
      if (hostPaths.size) out.push(`${id(w)}: mounts host paths ${[...hostPaths.values()].join(", ")}`);
    } else if (spec.hostNetwork || spec.hostIPC) out.push(`${id(w)}: the probe needs hostPID only`);
    for (const c of containersOf(w)) {
      const cw = `${id(w)} container ${c.name}`;
      const sec = c.securityContext ?? {};
      const seccomp = sec.seccompProfile?.type ?? podSec.seccompProfile?.type;
      if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") out.push(`${cw}: seccomp profile is ${seccomp ?? "unset"}, not RuntimeDefault`);
      if (sec.privileged) out.push(`${cw}: privileged`);
      if (sec.allowPrivilegeEscalation !== false) out.push(`${cw}: allowPrivilegeEscalation is not false`);
      if (sec.readOnlyRootFilesystem !== true) out.push(`${cw}: root filesystem is writable`);
      const drop: string[] = sec.capabilities?.drop ?? [];
      const add: string[] = sec.capabilities?.add ?? [];
      if (!drop.includes("ALL")) out.push(`${cw}: does not drop ALL capabilities`);
      if (isProbe) {
        for (const cap of add) if (!PROBE_CAPABILITIES.has(cap.replace(/^CAP_/, ""))) out.push(`${cw}: capability ${cap} is not one the probe needs`);
        for (const cap of ["BPF", "PERFMON"]) if (!add.includes(cap)) out.push(`${cw}: lacks CAP_${cap}, which eBPF capture needs`);
        for (const m of c.volumeMounts ?? []) {
          const hp = hostPaths.get(m.name);
          if (hp && !m.readOnly && !probeWritableHostPaths.includes(hp)) out.push(`${cw}: host path ${hp} is mounted writable`);
        }
      } else {
        if (add.length) out.push(`${cw}: adds capabilities ${add.join(", ")}`);
        const nonRoot = sec.runAsNonRoot ?? podSec.runAsNonRoot;
        const uid = sec.runAsUser ?? podSec.runAsUser;
        if (nonRoot !== true) out.push(`${cw}: runAsNonRoot is not true`);
        if (uid === 0 || uid === undefined) out.push(`${cw}: runs as uid ${uid ?? "of the image"}, not an explicit non-root uid`);
      }
    }
  }
  return out;
}

/** Resolves a container's environment as the kubelet would (downward API given plausible values). */
/** WIRESCOPE_* variables whose value is a file the service reads. */
/** The variables whose value names a file (NATS credentials and TLS files): it must come from a mounted Secret. */
const FILE_VARIABLES = OPTIONS.flatMap((o) => (o.file && o.env ? [o.env] : []));

function containerEnv(objs: K8sObject[], c: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.envFrom ?? []) if (e.configMapRef) Object.assign(env, get(objs, "ConfigMap", e.configMapRef.name)?.data ?? {});
  const field: Record<string, string> = { "spec.nodeName": "node-1", "metadata.name": "pod-1", "status.podIP": "10.1.2.3", "metadata.namespace": "wirescope" };
  for (const e of c.env ?? []) env[e.name] = e.value ?? field[e.valueFrom?.fieldRef?.fieldPath] ?? "";
  return env;
}

/**
 * The Wirescope containers: `wirescope <component> [flags]` with flags and WIRESCOPE_* variables
 * that the component really accepts, its default control port, gRPC readiness, a reachable
 * control address, its /metrics port exposed, bound on the pod IP and annotated for Prometheus; and the URLs in the config point at the Services that exist.
 */
export function codeProblems(objs: K8sObject[]): string[] {
  const out: string[] = [];
  const known = new Set(OPTIONS.flatMap((o) => (o.env ? [o.env] : [])));
  for (const cm of byKind(objs, "ConfigMap")) {
    for (const k of Object.keys(cm.data ?? {})) if (k.startsWith("WIRESCOPE_") && !known.has(k)) out.push(`${id(cm)}: ${k} is not a Wirescope option`);
  }
  const seen = new Set<Component>();
  for (const w of workloads(objs)) {
    for (const c of containersOf(w)) {
      const cw = `${id(w)} container ${c.name}`;
      for (const e of c.env ?? []) if (e.name.startsWith("WIRESCOPE_") && !known.has(e.name)) out.push(`${cw}: ${e.name} is not a Wirescope option`);
      const [name] = splitImage(c.image);
      if (name.split("/").pop() !== "wirescope") continue;
      const component = c.args?.[0] as Component;
      if (!(component in SERVICE_PARSERS)) {
        out.push(`${cw}: args ${JSON.stringify(c.args)} do not start with probe, parser or aggregator`);
        continue;
      }
      seen.add(component);
      const env = containerEnv(objs, c);
      // files the options name (the NATS CA) come from a mounted Secret; the config reads a stand-in
      for (const v of FILE_VARIABLES) {
        if (!env[v]) continue;
        const from = secretFileSource(w, c, env[v]);
        if (!from || !USER_SECRETS[from.secret]?.includes(from.key)) out.push(`${cw}: ${v} ${env[v]} is no file of a mounted Secret`);
        env[v] = process.execPath;
      }
      try {
        const { config, rest } = loadConfig({ component, argv: c.args.slice(1), env });
        SERVICE_PARSERS[component](rest);
        if (config.grpc.host !== env.WIRESCOPE_GRPC_HOST || config.grpc.host === "127.0.0.1") out.push(`${cw}: control port not bound on the pod IP`);
        if (config.metrics.host !== env.WIRESCOPE_METRICS_HOST || config.metrics.host === "127.0.0.1") out.push(`${cw}: metrics port not bound on the pod IP`);
        const scrape = w.spec?.template?.metadata?.annotations ?? {};
        if (config.metrics.port === 0) out.push(`${cw}: /metrics is off`);
        else if (!(c.ports ?? []).some((p: K8sObject) => p.containerPort === config.metrics.port)) out.push(`${cw}: does not expose the metrics port ${config.metrics.port}`);
        if (scrape["prometheus.io/scrape"] !== "true" || scrape["prometheus.io/port"] !== String(config.metrics.port) || scrape["prometheus.io/path"] !== "/metrics") {
          out.push(`${cw}: prometheus.io annotations do not point at /metrics on ${config.metrics.port}`);
        }
        if (config.metrics.port !== DEFAULT_METRICS_PORTS[component]) out.push(`${cw}: metrics port ${config.metrics.port} is not the default ${DEFAULT_METRICS_PORTS[component]}`);
      } catch (e) {
        out.push(`${cw}: ${(e as Error).message.split("\n")[0]}`);
      }
      const port = DEFAULT_GRPC_PORTS[component];
      if (!(c.ports ?? []).some((p: K8sObject) => p.containerPort === port)) out.push(`${cw}: does not expose the control port ${port}`);
      if (c.readinessProbe?.grpc?.port !== port) out.push(`${cw}: readiness is not the gRPC health check on ${port}`);
      if (!env.WIRESCOPE_INSTANCE && component !== "probe") out.push(`${cw}: no WIRESCOPE_INSTANCE (pod name) for status`);
      for (const [v, schemes] of [["WIRESCOPE_NATS_URL", ["nats:", "tls:"]], ["WIRESCOPE_INFLUX_URL", ["http:", "https:"]]] as const) {
        for (const u of (env[v] ?? "").split(",").filter(Boolean)) {
          const url = new URL(u);
          if (!(schemes as readonly string[]).includes(url.protocol)) continue;
          const svcName = url.hostname.split(".")[0];
          const svc = get(objs, "Service", svcName);
          if (!svc) out.push(`${cw}: ${v} names ${url.hostname}, which is no Service`);
          else if (!(svc.spec.ports ?? []).some((p: K8sObject) => p.port === Number(url.port))) out.push(`${cw}: ${v} port ${url.port} is no port of Service ${svcName}`);
        }
      }
    }
  }
  for (const c of Object.keys(SERVICE_PARSERS) as Component[]) if (!seen.has(c)) out.push(`no workload runs the ${c}`);
  return out;
}

/** NATS: a StatefulSet of `replicas` servers, JetStream, one route per server, unique names. */
export function natsProblems(objs: K8sObject[], name = "nats"): string[] {
  const out: string[] = [];
  const sts = get(objs, "StatefulSet", name);
  if (!sts) return [`StatefulSet/${name} does not exist`];
  const replicas: number = sts.spec.replicas ?? 1;
  if (replicas < 3) out.push(`StatefulSet/${name}: ${replicas} servers; replicas-3 streams need 3`);
  const c = sts.spec.template.spec.containers[0];
  const cfgArg = c.args?.[c.args.indexOf("-c") + 1];
  const mount = (c.volumeMounts ?? []).find((m: K8sObject) => cfgArg?.startsWith(`${m.mountPath}/`));
  const vol = mount && sts.spec.template.spec.volumes.find((v: K8sObject) => v.name === mount.name);
  const conf: string | undefined = vol?.configMap && get(objs, "ConfigMap", vol.configMap.name)?.data?.[path.basename(cfgArg)];
  if (!conf) return [...out, `StatefulSet/${name}: its -c config file is not in a mounted ConfigMap`];
  if (!/jetstream\s*\{/.test(conf)) out.push(`${name} config: JetStream is off`);
  const clusterPort = resolvePort(sts, "cluster");
  const routes = [...conf.matchAll(/nats-route:\/\/([^\s,\]]+)/g)].map((m) => m[1]);
  const want = Array.from({ length: replicas }, (_, i) => `${name}-${i}.${sts.spec.serviceName}:${clusterPort}`);
  if (JSON.stringify(routes.sort()) !== JSON.stringify(want.sort())) out.push(`${name} config: routes ${routes.join(" ")} are not ${want.join(" ")}`);
  const m = /cluster\s*\{[^}]*\bport:\s*(\d+)/s.exec(conf);
  if (!m || Number(m[1]) !== clusterPort) out.push(`${name} config: cluster port ${m?.[1]} is not the container's cluster port ${clusterPort}`);
  // TLS for clients (top level) and routes (in cluster), its files from the mounted Secret
  const clusterBlock = /cluster\s*\{(?:[^{}]|\{[^{}]*\})*\}/s.exec(conf)?.[0] ?? "";
  const tlsBlocks = { clients: /^tls\s*\{[^}]*\}/m.exec(conf)?.[0], routes: /\btls\s*\{[^}]*\}/.exec(clusterBlock)?.[0] };
  for (const [who, block] of Object.entries(tlsBlocks)) {
    if (!block) {
      out.push(`${name} config: no TLS for ${who}`);
      continue;
    }
    for (const f of ["cert_file", "key_file", "ca_file"]) {
      const file = new RegExp(`${f}:\\s*(\\S+)`).exec(block)?.[1];
      const from = file && secretFileSource(sts, c, file);
      if (!from || from.secret !== "wirescope-nats-tls") out.push(`${name} config: ${who} TLS ${f} ${file} is no file of the mounted Secret wirescope-nats-tls`);
    }
  }
  for (const w of workloads(objs)) {
    for (const wc of containersOf(w)) {
      if (splitImage(wc.image)[0].split("/").pop() !== "wirescope") continue;
      const env = containerEnv(objs, wc);
      const urls = (env.WIRESCOPE_NATS_URL ?? "").split(",").filter(Boolean);
      if (!urls.length || !urls.every((u) => u.startsWith("tls://"))) out.push(`${id(w)} container ${wc.name}: WIRESCOPE_NATS_URL ${env.WIRESCOPE_NATS_URL} is not tls://`);
      const ca = env.WIRESCOPE_NATS_TLS_CA ? secretFileSource(w, wc, env.WIRESCOPE_NATS_TLS_CA) : undefined;
      if (ca?.secret !== "wirescope-nats-tls" || ca.key !== "ca.crt") out.push(`${id(w)} container ${wc.name}: WIRESCOPE_NATS_TLS_CA is not the mounted ca.crt of wirescope-nats-tls`);
    }
  }
  const sn = /server_name:\s*\$(\w+)/.exec(conf);
  const snEnv = sn && c.env?.find((e: K8sObject) => e.name === sn[1]);
  if (snEnv?.valueFrom?.fieldRef?.fieldPath !== "metadata.name") out.push(`${name} config: server_name is not the pod name (JetStream clustering needs unique names)`);
  // a stopping server enters lame duck mode (clients move over lame_duck_duration) before SIGTERM
  const pid = /pid_file:\s*(\S+)/.exec(conf)?.[1];
  const preStop: string[] = c.lifecycle?.preStop?.exec?.command ?? [];
  if (!pid || !preStop.some((a) => a.endsWith(`ldm=${pid}`))) out.push(`StatefulSet/${name}: no preStop lame-duck signal to the pid_file`);
  else if (!(c.volumeMounts ?? []).some((m: K8sObject) => path.dirname(pid) === m.mountPath && !m.readOnly)) out.push(`StatefulSet/${name}: pid_file ${pid} is not on a writable volume`);
  const ld = /lame_duck_duration:\s*(\d+)s/.exec(conf);
  if (ld && Number(ld[1]) >= (sts.spec.template.spec.terminationGracePeriodSeconds ?? 30)) out.push(`StatefulSet/${name}: lame_duck_duration ${ld[1]}s does not fit in the termination grace period`);
  const headless = get(objs, "Service", sts.spec.serviceName);
  if (headless && (headless.spec.clusterIP !== "None" || !headless.spec.publishNotReadyAddresses)) {
    out.push(`Service/${sts.spec.serviceName}: routes need a headless Service that publishes not-ready addresses`);
  }
  const pdb = byKind(objs, "PodDisruptionBudget").find((p) => selects(p.spec.selector, sts.spec.template.metadata.labels));
  if (!pdb) out.push(`StatefulSet/${name}: no PodDisruptionBudget`);
  else if (!(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable === replicas - 1)) out.push(`${id(pdb)}: allows more than one server down (quorum loss)`);
  return out;
}

/**
 * InfluxDB over HTTPS: influxd's certificate and key from the mounted Secret wirescope-influx-tls,
 * its probes on HTTPS, WIRESCOPE_INFLUX_URL https://, the aggregator trusting the Secret's CA
 * (NODE_EXTRA_CA_CERTS) and Grafana's datasource verifying with it.
 */
export function influxTlsProblems(objs: K8sObject[]): string[] {
  const out: string[] = [];
  const fromSecret = (w: K8sObject | undefined, file: string | undefined, key: string, what: string) => {
    const c = w && containersOf(w)[0];
    const from = c && file ? secretFileSource(w!, c, file) : undefined;
    if (from?.secret !== "wirescope-influx-tls" || from.key !== key) out.push(`${what} ${file} is not the ${key} of the mounted Secret wirescope-influx-tls`);
  };
  const sts = get(objs, "StatefulSet", "influxdb");
  const c = sts && containersOf(sts)[0];
  const env = c ? containerEnv(objs, c) : {};
  if (env.INFLUXDB_HTTP_HTTPS_ENABLED !== "true") out.push("influxdb: HTTPS is off");
  fromSecret(sts, env.INFLUXDB_HTTP_HTTPS_CERTIFICATE, "tls.crt", "influxdb: INFLUXDB_HTTP_HTTPS_CERTIFICATE");
  fromSecret(sts, env.INFLUXDB_HTTP_HTTPS_PRIVATE_KEY, "tls.key", "influxdb: INFLUXDB_HTTP_HTTPS_PRIVATE_KEY");
  for (const p of ["readinessProbe", "livenessProbe"]) if (c?.[p]?.httpGet && c[p].httpGet.scheme !== "HTTPS") out.push(`influxdb: ${p} is not on HTTPS`);
  for (const w of workloads(objs)) {
    for (const wc of containersOf(w)) {
      const u = containerEnv(objs, wc).WIRESCOPE_INFLUX_URL;
      if (u && !u.startsWith("https://")) out.push(`${id(w)} container ${wc.name}: WIRESCOPE_INFLUX_URL ${u} is not https://`);
    }
  }
  const agg = get(objs, "Deployment", "wirescope-aggregator");
  fromSecret(agg, agg && containerEnv(objs, containersOf(agg)[0]).NODE_EXTRA_CA_CERTS, "ca.crt", "wirescope-aggregator: NODE_EXTRA_CA_CERTS");
  const ds: string = get(objs, "ConfigMap", "grafana-provisioning")?.data?.["datasources.yaml"] ?? "";
  if (!/tlsAuthWithCACert: true/.test(ds)) out.push("grafana datasource: does not verify InfluxDB's certificate with a CA");
  fromSecret(get(objs, "Deployment", "grafana"), /tlsCACert: \$__file\{([^}]+)\}/.exec(ds)?.[1], "ca.crt", "grafana datasource: tlsCACert");
  return out;
}

/** The nats.conf text of the rendered NATS ConfigMap (for `nats-server -t`). */
export function natsConfig(objs: K8sObject[]): string {
  return get(objs, "ConfigMap", "nats-config")?.data?.["nats.conf"] ?? "";
}

// ---- NetworkPolicy evaluation (the subset the manifests use: matchLabels, ports by number or name)

export interface Peer {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** container port name → number */
  ports: Map<string, number>;
}

export function podsOf(objs: K8sObject[]): Peer[] {
  return workloads(objs).map((w) => ({
    name: w.metadata.labels?.["app.kubernetes.io/name"] ?? w.metadata.name,
    namespace: w.metadata.namespace,
    labels: w.spec.template.metadata?.labels ?? {},
    ports: new Map(containersOf(w).flatMap((c) => (c.ports ?? []).map((p: K8sObject) => [p.name ?? String(p.containerPort), p.containerPort] as [string, number]))),
  }));
}

function peerMatches(peers: K8sObject[] | undefined, q: Peer | "outside", policyNs: string, nsLabels: Map<string, Record<string, string>>): boolean {
  if (!peers || peers.length === 0) return true;
  return peers.some((p) => {
    if (q === "outside") return !!p.ipBlock;
    if (p.ipBlock) return false;
    if (p.namespaceSelector) {
      if (!selects(p.namespaceSelector, nsLabels.get(q.namespace) ?? { "kubernetes.io/metadata.name": q.namespace })) return false;
    } else if (q.namespace !== policyNs) return false;
    return !p.podSelector || selects(p.podSelector, q.labels);
  });
}

function portMatches(ports: K8sObject[] | undefined, port: number, protocol: string, dst: Peer | "outside"): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => (p.protocol ?? "TCP") === protocol && (p.port === undefined || p.port === port || (dst !== "outside" && dst.ports.get(p.port) === port)));
}

function allowed(objs: K8sObject[], dir: "Ingress" | "Egress", subject: Peer, other: Peer | "outside", port: number, protocol: string, dst: Peer | "outside"): boolean {
  const nsLabels = new Map(byKind(objs, "Namespace").map((n) => [n.metadata.name, { "kubernetes.io/metadata.name": n.metadata.name, ...n.metadata.labels }]));
  const pols = byKind(objs, "NetworkPolicy").filter((p) => p.metadata.namespace === subject.namespace && (p.spec.policyTypes ?? ["Ingress"]).includes(dir) && selects(p.spec.podSelector, subject.labels));
  if (pols.length === 0) return true;
  return pols.some((p) =>
    (dir === "Ingress" ? p.spec.ingress : p.spec.egress)?.some((r: K8sObject) =>
      peerMatches(dir === "Ingress" ? r.from : r.to, other, p.metadata.namespace, nsLabels) && portMatches(r.ports, port, protocol, dst)),
  );
}

/** Whether a TCP/UDP connection from `src` to `dst`'s `port` passes both sides' policies. */
export function flowAllowed(objs: K8sObject[], src: Peer | "outside", dst: Peer | "outside", port: number, protocol = "TCP"): boolean {
  const out = src === "outside" || allowed(objs, "Egress", src, dst, port, protocol, dst);
  const inn = dst === "outside" || allowed(objs, "Ingress", dst, src, port, protocol, dst);
  return out && inn;
}

/** Every allowed flow between the deployment's pods, as "src -> dst:port". */
export function allowedFlows(objs: K8sObject[]): string[] {
  const pods = podsOf(objs);
  const out = new Set<string>();
  for (const s of pods) for (const d of pods) for (const port of new Set(d.ports.values())) {
    if (flowAllowed(objs, s, d, port)) out.add(`${s.name} -> ${d.name}:${port}`);
  }
  return [...out].sort();
}

/** The repository's version (package.json), which the image tag and version labels carry. */
export function repoVersion(root: string): string {
  return (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;
}
