// Where services announce their control address, so `wirescope status` finds every replica
// (including parsers on ephemeral ports): NATS KV bucket `wirescope-services`, one key per
// instance, refreshed well within the bucket's TTL so a crashed instance disappears by itself.
import os from "node:os";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Component } from "./config.js";
import { NatsError, errorMessage } from "./errors.js";

export const REGISTRY_BUCKET = "wirescope-services";
/** Entries older than this vanish (the server expires them). */
export const REGISTRY_TTL_MS = 15_000;
/** How often a live service rewrites its entry. */
export const REGISTRY_REFRESH_MS = 5_000;

export interface Announcement {
  component: Component;
  instance: string;
  /** gRPC control address, host:port. */
  address: string;
  node: string;
  pid: number;
  /** cgroup v2 id (decimal) and pid namespace inode (decimal), "" when unknown: see self-identity.ts. */
  cgroupId?: string;
  pidNs?: string;
  /** ms since the epoch */
  startedAt: number;
}

/** KV keys allow [-/_=.a-zA-Z0-9]; anything else in an instance name becomes "_". */
export function registryKey(component: string, instance: string): string {
  return `${component}.${instance}`.replace(/[^-/_=.a-zA-Z0-9]/g, "_");
}

/** Opens (creating if needed) the registry bucket. Needs JetStream on the server. */
export async function openRegistry(nc: NatsConnection, replicas = 1): Promise<KV> {
  try {
    return await new Kvm(nc).create(REGISTRY_BUCKET, { ttl: REGISTRY_TTL_MS, history: 1, replicas });
  } catch (e) {
    throw new NatsError("registry", `cannot open KV bucket ${REGISTRY_BUCKET} (is JetStream enabled on nats-server?): ${errorMessage(e)}`, { cause: e });
  }
}

/** Writes this instance's entry now and every REGISTRY_REFRESH_MS until `stop()`, which deletes it. */
export function announce(kv: KV, a: Announcement, onError: (e: unknown) => void): { stop(): Promise<void> } {
  const key = registryKey(a.component, a.instance);
  const body = new TextEncoder().encode(JSON.stringify(a));
  const put = () => kv.put(key, body).then(() => undefined, onError);
  void put();
  const timer = setInterval(put, REGISTRY_REFRESH_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      try {
        await kv.delete(key);
      } catch (e) {
        onError(e);
      }
    },
  };
}

/** The announcement in a KV value, or undefined when it is not one of ours. */
export function parseAnnouncement(value: Uint8Array): Announcement | undefined {
  if (value.length === 0) return undefined;
  try {
    const a = JSON.parse(new TextDecoder().decode(value)) as Announcement;
    return a && typeof a.address === "string" && typeof a.component === "string" ? a : undefined;
  } catch {
    return undefined; // a foreign or corrupt entry
  }
}

/** Every live announcement in the bucket, sorted by component then instance. */
export async function listAnnounced(nc: NatsConnection): Promise<Announcement[]> {
  let kv: KV;
  try {
    kv = await new Kvm(nc).open(REGISTRY_BUCKET);
  } catch {
    return []; // nobody has announced yet
  }
  // The stream's per-subject state is one consistent snapshot; kv.keys() runs a consumer that can
  // miss keys rewritten while it iterates (every live service rewrites its key every few seconds).
  const out: Announcement[] = [];
  const prefix = `$KV.${REGISTRY_BUCKET}.`;
  const jsm = await jetstreamManager(nc);
  const si = await jsm.streams.info(`KV_${REGISTRY_BUCKET}`, { subjects_filter: `${prefix}>` });
  for (const subject of Object.keys(si.state.subjects ?? {})) {
    const k = subject.slice(prefix.length);
    const e = await kv.get(k);
    const a = e?.operation === "PUT" ? parseAnnouncement(e.value) : undefined;
    if (a) out.push(a);
  }
  return out.sort(byComponentInstance);
}

/** The order announcements are listed in: by component, then instance. */
export function byComponentInstance(x: Announcement, y: Announcement): number {
  return x.component + x.instance < y.component + y.instance ? -1 : 1;
}

/** The default instance id: `<node>-<component>-<pid>`. */
export function defaultInstance(node: string, component: string): string {
  return `${node || os.hostname()}-${component}-${process.pid}`;
}
