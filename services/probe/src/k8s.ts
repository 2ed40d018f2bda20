// Kubernetes identity of containers: pod, namespace, container name and workload, from the API
// server (in-cluster service account), for the pods on this node (NODE_NAME from the downward
// API). Refreshed periodically and on a miss (rate-limited); everything is cached in memory.
import fs from "node:fs";
import https from "node:https";
import type { Logger } from "@wirescope/runtime";
import type { PodResolver } from "./process-info.js";

export interface PodIdentity {
  pod: string;
  namespace: string;
  container: string;
  workload: string;
}

interface PodList {
  items?: {
    metadata?: { name?: string; namespace?: string; ownerReferences?: { kind?: string; name?: string }[] };
    status?: { containerStatuses?: { name?: string; containerID?: string }[]; initContainerStatuses?: { name?: string; containerID?: string }[] };
  }[];
}

/** containerID ("containerd://<id>", "docker://<id>", "cri-o://<id>") → identity, from a PodList. */
export function indexPods(list: PodList): Map<string, PodIdentity> {
  const out = new Map<string, PodIdentity>();
  for (const p of list.items ?? []) {
    const md = p.metadata ?? {};
    let workload = "";
    const owner = md.ownerReferences?.[0];
    if (owner?.name) {
      // a ReplicaSet "web-7d9f8b6c5d" belongs to the Deployment "web"
      workload = owner.kind === "ReplicaSet" ? owner.name.replace(/-[a-z0-9]{6,10}$/, "") : owner.name;
    }
    for (const cs of [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])]) {
      const id = cs.containerID?.replace(/^[a-z-]+:\/\//, "");
      if (id) out.set(id, { pod: md.name ?? "", namespace: md.namespace ?? "", container: cs.name ?? "", workload });
    }
  }
  return out;
}

const SA = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The in-cluster resolver when running in Kubernetes (KUBERNETES_SERVICE_HOST and NODE_NAME in `env`, set by the kubelet), else undefined. */
export function podResolverFromEnv(log: Logger, env: NodeJS.ProcessEnv): PodResolver | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host || !fs.existsSync(`${SA}/token`)) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  const node = env.NODE_NAME ?? "";
  let index = new Map<string, PodIdentity>();
  let lastFetch = 0;
  let inflight = false;
  const fetchPods = () => {
    if (inflight || Date.now() - lastFetch < 5_000) return;
    inflight = true;
    lastFetch = Date.now();
    let token = "";
    let ca: Buffer | undefined;
    try {
      token = fs.readFileSync(`${SA}/token`, "utf8").trim();
      ca = fs.readFileSync(`${SA}/ca.crt`);
    } catch {
      inflight = false;
      return;
    }
    const path = `/api/v1/pods${node ? `?fieldSelector=spec.nodeName%3D${encodeURIComponent(node)}` : ""}`;
    const req = https.get({ host, port, path, ca, headers: { Authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        inflight = false;
        if (res.statusCode !== 200) {
          log.warn({ status: res.statusCode }, "kubernetes API refused the pod list (RBAC: the probe needs get/list on pods)");
          return;
        }
        try {
          index = indexPods(JSON.parse(Buffer.concat(chunks).toString("utf8")) as PodList);
        } catch (e) {
          log.warn({ err: (e as Error).message }, "kubernetes pod list unreadable");
        }
      });
    });
    req.on("error", (e) => {
      inflight = false;
      log.warn({ err: e.message }, "kubernetes API unreachable");
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
  };
  fetchPods();
  setInterval(fetchPods, 30_000).unref();
  return {
    lookup(id) {
      const hit = index.get(id);
      if (!hit) fetchPods();
      return hit;
    },
  };
}
