// Typed access to the native addon (services/probe/native/build/wirescope_probe.node).
// Loading or opening can fail for reasons the user can fix; each becomes a ProbeError with a
// stable code and a message that says what to do.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";
import { WirescopeError } from "@wirescope/runtime";
import { DROP_REASONS, TLS_STATS, SHED_REASONS, WS_SHED_MAX, WS_SAMPLE_ONE, WS_MAX_CHUNK, WS_DEFAULT_RINGBUF_BYTES, WS_DEFAULT_MAX_BYTES_PER_CALL } from "./gen/layout.js";

/** Why the eBPF probe could not start (codes: EPERM, ENOBTF, ENOTRACEFS, EKERNEL, ELOCKED, ELOAD, EATTACH, ENOADDON, EINVAL). */
export class ProbeError extends WirescopeError {}

export interface NativeOptions {
  /** Payload cap per event, 1..16384 (default 16384). */
  chunkBytes: number;
  /** Bytes copied per syscall; the rest of a bigger transfer is stated as a gap (default 4 MiB). */
  maxBytesPerCall: number;
  /** Ring buffer size, a power of two (default 16 MiB). */
  ringbufBytes: number;
  /** A batch is handed to JS when it reaches this size... */
  batchBytes: number;
  /** ...or this age (ms). */
  batchMs: number;
  /** Batches waiting for JS; beyond this a batch is dropped and counted. */
  queueBatches: number;
  /** The process never traced (default: this process). */
  selfTgid: number;
  /** High bits of every conn_key this instance hands out. */
  connKeyBase: bigint;
  /** Single-instance lock file (omit for none, as `wirescope capture` does). A node's probe
   *  (netnsIno) holds it shared and `<lockPath>.netns-<ino>` exclusively. */
  lockPath?: string;
  /** A node: the network namespace inode whose processes and sockets alone are traced (0: all). */
  netnsIno: number;
  /** Mount tracefs on /sys/kernel/tracing when it is missing. */
  mountTracefs: boolean;
  /**
   * Attach only the announcement programs (a TLS library mapped, an executable started) at
   * construction; the data and lifecycle programs wait for `attach()`, so the caller fills the
   * listening ports and filters and attaches the TLS uprobes first.
   */
  deferAttach: boolean;
  /** Hold back the ciphertext of connections first seen mid-way whose first bytes are TLS records
   *  (bpf/tls.bpf.h; the probe service; a capture writes ciphertext as it travels). */
  holdInferredCipher: boolean;
}

export const NATIVE_DEFAULTS: NativeOptions = {
  chunkBytes: WS_MAX_CHUNK,
  maxBytesPerCall: WS_DEFAULT_MAX_BYTES_PER_CALL,
  ringbufBytes: WS_DEFAULT_RINGBUF_BYTES,
  batchBytes: 1024 * 1024,
  batchMs: 50,
  queueBatches: 64,
  selfTgid: process.pid,
  connKeyBase: 0n,
  netnsIno: 0,
  mountTracefs: false,
  deferAttach: false,
  holdInferredCipher: false,
};

export interface NativeStats {
  /** Kernel drops by reason (ringbuf_full, read_user, ...). */
  kernelDrops: Record<string, number>;
  events: number;
  batches: number;
  bytes: number;
  /** Batches (and their events) dropped because JS was behind. */
  droppedBatches: number;
  droppedEvents: number;
  /** Events read from the ring buffer and not yet delivered to JS (current batch + queue). */
  pendingEvents: number;
  pollErrors: number;
  attached: boolean;
  connections: number;
}

/**
 * A TLS library file mapped executable by process `tgid`, or (exec = true) an executable file the
 * process started that user space has not inspected yet. dev is the kernel's major << 20 | minor.
 */
export interface TlsLibraryNotice {
  tgid: number;
  dev: number;
  ino: number;
  /** enum ws_tls_lib (WS_TLS_NONE for an executable) */
  lib: number;
  exec: boolean;
  /** exec: the path execve was given (may be relative or cut at WS_EXEC_PATH_LEN). */
  filename?: string;
  /** A process the events already named ran exec (WS_EV_PROC_EXEC), at `ts` (CLOCK_MONOTONIC ns). */
  procExec?: boolean;
  ts?: bigint;
}

/** One plain uprobe: a program of the BPF object at a file offset, with its attach cookie. */
export interface UprobeSpec {
  program: string;
  offset: number;
  cookie: number;
}

export interface TlsStats {
  /** Kernel counters by name (cipher_bytes_saved, calls, call_empty, no_fd, not_tcp, call_abandoned, lib_mapped). */
  counters: Record<string, number>;
  /** Uprobe links held. */
  links: number;
  /** Library announcements JS could not take (queue full). */
  noticesDropped: number;
}

/** The overload policy (bpf/wirescope.h ws_shed_cfg), in user units. */
export interface ShedConfig {
  /** Fraction of new connections observed, 0..1. */
  sampleFraction: number;
  /** New connections are shed while the ring buffer is fuller than this % (0 = never). */
  ringbufPct: number;
  /** Fairness accounting interval, ms. */
  intervalMs: number;
  /** Per interval: bytes copied per connection, data calls per connection, bytes per process (0 = no limit). */
  connBytes: number;
  connCalls: number;
  procBytes: number;
  /**
   * The sampling epoch: a clean-turn (HTTP/1.1) connection decided in another epoch is decided
   * again at its next request, at an unchanged fraction too. The steering advances it every tick,
   * so each decision stands for one tick (bpf/wirescope.bpf.c redecide_at_boundary). Default 0.
   */
  epoch?: number;
}

/** Shed connections and the bytes not copied for them, by reason (bpf/wirescope.h WS_SHED_REASONS). */
export interface ShedStats {
  /** Connection ends shed, by reason. */
  connections: Record<string, number>;
  /** Bytes moved on shed connections and not copied, by reason. */
  bytes: Record<string, number>;
  /** Requests answered while their connection was shed (a turn of a request/response protocol),
   *  counted at server ends and at client ends, by reason (bpf/wirescope.h WS_SHED_STATS). */
  serverRequests: Record<string, number>;
  clientRequests: Record<string, number>;
}

interface AddonProbe {
  setShedConfig(cfg: { sampleLevel: number; ringbufPct: number; intervalNs: number; connBytes: number; connCalls: number; procBytes: number; epoch: number }): void;
  shedStats(): number[];
  shedServed(): number[];
  ringFill(): number;
  attachTls(path: string, dev: number, ino: number, lib: number): number;
  markTlsKnown(dev: number, ino: number): void;
  attachUprobes(path: string, probes: UprobeSpec[]): number;
  setMapEntry(map: string, key: Buffer, value: Buffer): void;
  tlsStats(): { counters: number[]; links: number; noticesDropped: number };
  stats(connections?: boolean): Omit<NativeStats, "kernelDrops" | "connections"> & { kernelDrops: number[]; connections?: number };
  setFilterEntry(kind: "pid" | "comm" | "cgroup" | "port", key: number | bigint | string, action: 0 | 1 | 2): void;
  setFilterConfig(cfg: { allowPids: boolean; allowComms: boolean; allowCgroups: boolean; allowPorts: boolean }): void;
  setListenPorts(ports: number[]): void;
  setCopyPolicy(connKey: bigint, policy?: Uint8Array): void;
  setCopyPolicies(keys: Uint8Array, policies: Uint8Array): void;
  programs(): string[];
  attach(): void;
  /** With `onDrained`: true when it will be called after the last batch queued to JS. */
  close(onDrained?: () => void): boolean;
}

interface Addon {
  listenPorts(): number[];
  Probe: new (opts: Record<string, unknown>, onBatch: (b: Buffer) => unknown, onTlsLibrary?: (n: TlsLibraryNotice) => void) => AddonProbe;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where the build puts the addon (services/probe/native/build). */
export const ADDON_PATH = path.resolve(here, "../native/build/wirescope_probe.node");

let addon: Addon | undefined;

/**
 * Local ports of this network namespace's TCP sockets in LISTEN state, from the kernel's
 * sock_diag (a LISTEN-only dump: the kernel walks its listening hash only, never the established
 * sockets). undefined when the addon is not built or the kernel refuses (read /proc instead).
 */
export function nativeListenPorts(): number[] | undefined {
  try {
    return loadAddon().listenPorts();
  } catch {
    return undefined;
  }
}
function loadAddon(): Addon {
  if (addon) return addon;
  if (!fs.existsSync(ADDON_PATH)) {
    throw new ProbeError("ENOADDON", `the probe's native addon is not built (${ADDON_PATH}): run \`npm run build\``);
  }
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (e) {
    throw new ProbeError("ENOADDON", `cannot load the probe's native addon ${ADDON_PATH}: ${(e as Error).message}`, { cause: e });
  }
  return addon;
}

/** One loaded and attached instance of the BPF programs. Close it to detach. */
export class NativeProbe {
  private readonly p: AddonProbe;
  private closed = false;

  /**
   * `onBatch` returns `true` when it keeps no view into the batch: the addon then detaches the
   * Buffer (it reads as empty from there on) and reuses its memory at once.
   * @throws ProbeError with a code saying what is missing (not root, no BTF, no tracefs, ...).
   */
  constructor(options: Partial<NativeOptions>, onBatch: (batch: Buffer) => unknown, onTlsLibrary?: (n: TlsLibraryNotice) => void) {
    const o = { ...NATIVE_DEFAULTS, ...options };
    const { Probe } = loadAddon();
    try {
      this.p = new Probe({ ...o }, onBatch, onTlsLibrary);
    } catch (e) {
      const code = (e as { code?: string }).code ?? "ELOAD";
      throw new ProbeError(code, (e as Error).message, { cause: e });
    }
  }

  /** Attaches what a `deferAttach` construction left out. Idempotent. @throws ProbeError EATTACH */
  attach(): void {
    try {
      this.p.attach();
    } catch (e) {
      throw new ProbeError((e as { code?: string }).code ?? "EATTACH", (e as Error).message, { cause: e });
    }
  }

  get programs(): string[] {
    return this.closed ? [] : this.p.programs();
  }

  /** Last count of tracked connections (counting walks the kernel's table: a bpf() call per entry). */
  private connections = 0;

  /**
   * Counters; `connections` false leaves the tracked connections at their last count instead of
   * walking the kernel's table (for frequent callers that need only the drops).
   */
  stats(connections = true): NativeStats {
    const s = this.p.stats(connections);
    const kernelDrops: Record<string, number> = {};
    DROP_REASONS.forEach((r, i) => (kernelDrops[r] = s.kernelDrops[i] ?? 0));
    if (s.connections !== undefined) this.connections = s.connections;
    return { ...s, connections: this.connections, kernelDrops, attached: s.attached && !this.closed };
  }

  /**
   * Sets a connection's copy policy (bpf/wirescope.h `ws_copy_policy`, as copy-policy.ts
   * `copyPolicyBytes` writes it): the bytes of a call before a declared body end are stated as a
   * gap instead of copied. Without a policy: removes the connection's.
   */
  setCopyPolicy(connKey: bigint, policy?: Uint8Array): void {
    if (!this.closed) this.p.setCopyPolicy(connKey, policy);
  }

  /** Many connections' policies in one bpf() call: `keys` holds little-endian u64 conn_keys, `policies` as many ws_copy_policy. */
  setCopyPolicies(keys: Uint8Array, policies: Uint8Array): void {
    if (!this.closed && keys.length) this.p.setCopyPolicies(keys, policies);
  }

  /** Sets the overload policy; a fraction applies to connections that start after it. */
  setShedConfig(c: ShedConfig): void {
    if (this.closed) return;
    this.p.setShedConfig({
      sampleLevel: Math.round(Math.min(1, Math.max(0, c.sampleFraction)) * WS_SAMPLE_ONE),
      ringbufPct: c.ringbufPct, intervalNs: c.intervalMs * 1e6, connBytes: c.connBytes, connCalls: c.connCalls, procBytes: c.procBytes,
      epoch: (c.epoch ?? 0) >>> 0,
    });
  }

  shedStats(): ShedStats {
    const a = this.closed ? [] : this.p.shedStats();
    const out: ShedStats = { connections: {}, bytes: {}, serverRequests: {}, clientRequests: {} };
    SHED_REASONS.forEach((r, i) => {
      if (!r) return;
      out.connections[r] = a[i] ?? 0;
      out.bytes[r] = a[WS_SHED_MAX + i] ?? 0;
      out.serverRequests[r] = a[2 * WS_SHED_MAX + i] ?? 0;
      out.clientRequests[r] = a[3 * WS_SHED_MAX + i] ?? 0;
    });
    return out;
  }

  /** Requests served while shed, by server process and local port: running totals since the
   *  probe loaded (an end evicted from the kernel's LRU starts again from 0), flat
   *  [tgid, port, requests, ...]. */
  shedServed(): number[] {
    return this.closed ? [] : this.p.shedServed();
  }

  /** Bytes waiting in the ring buffer, as a fraction of its size. */
  ringFill(): number {
    return this.closed ? 0 : this.p.ringFill();
  }

  setFilterEntry(kind: "pid" | "comm" | "cgroup" | "port", key: number | bigint | string, action: "allow" | "deny" | "remove"): void {
    this.p.setFilterEntry(kind, key, action === "allow" ? 1 : action === "deny" ? 2 : 0);
  }

  setFilterConfig(cfg: { allowPids: boolean; allowComms: boolean; allowCgroups: boolean; allowPorts: boolean }): void {
    this.p.setFilterConfig(cfg);
  }

  setListenPorts(ports: number[]): void {
    this.p.setListenPorts(ports);
  }

  /**
   * Uprobes of TLS library `lib` (enum ws_tls_lib) on the file at `path` (every process mapping
   * or running it is covered); (dev, ino) is then no longer announced. Returns the links made.
   * @throws ProbeError EATTACH
   */
  attachTls(path: string, dev: number, ino: number, lib: number): number {
    try {
      return this.p.attachTls(path, dev, ino, lib);
    } catch (e) {
      throw new ProbeError((e as { code?: string }).code ?? "EATTACH", (e as Error).message, { cause: e });
    }
  }

  /** A library file looked at and not attached: (dev, ino) is no longer announced. */
  markTlsKnown(dev: number, ino: number): void {
    this.p.markTlsKnown(dev, ino);
  }

  /** Plain uprobes at file offsets of `path` (all or none). Returns the links made. @throws ProbeError EATTACH */
  attachUprobes(path: string, probes: UprobeSpec[]): number {
    try {
      return this.p.attachUprobes(path, probes);
    } catch (e) {
      throw new ProbeError((e as { code?: string }).code ?? "EATTACH", (e as Error).message, { cause: e });
    }
  }

  /** One update of a BPF map by name (buffers laid out by gen/layout.ts). @throws ProbeError EMAP */
  setMapEntry(map: string, key: Buffer, value: Buffer): void {
    try {
      this.p.setMapEntry(map, key, value);
    } catch (e) {
      throw new ProbeError((e as { code?: string }).code ?? "EMAP", (e as Error).message, { cause: e });
    }
  }

  tlsStats(): TlsStats {
    const s = this.p.tlsStats();
    const counters: Record<string, number> = {};
    TLS_STATS.forEach((r, i) => (counters[r] = s.counters[i] ?? 0));
    return { counters, links: s.links, noticesDropped: s.noticesDropped };
  }

  /** Stops the poller and detaches every program. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.p.close();
  }

  /**
   * Like close(), and resolves once every batch the poller had queued to JS has been handed to the
   * batch callback (the last one flushed at the stop included): nothing is left undelivered.
   */
  closeDrained(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      if (!this.p.close(resolve)) resolve();
    });
  }
}
