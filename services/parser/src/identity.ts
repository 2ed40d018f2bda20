// Endpoint identity: which process is at each end of a connection, and its service name.
// Service name = Kubernetes workload > container > process name:listening port (servers) or
// process name (clients); an untraced end is named by its address.
import { Role, type ConnEvent, type ProcessInfo } from "@wirescope/common";

/** The fields of wirescope.v1.Endpoint, as a plain object (encoded by record-bytes.ts). */
export interface EndpointInfo {
  address: string;
  port: number;
  process?: ProcessInfo;
  node: string;
  service: string;
}

export function processOf(ev: ConnEvent): ProcessInfo | undefined {
  if (ev.process && (ev.process.pid || ev.process.name)) return ev.process;
  if (!ev.pid && !ev.processName) return undefined;
  return {
    $typeName: "wirescope.v1.ProcessInfo",
    pid: ev.pid,
    name: ev.processName,
    exe: "",
    cmdline: "",
    containerId: ev.containerId,
    pod: ev.pod,
    namespace: ev.namespace,
    container: "",
    workload: "",
  };
}

export function serviceName(proc: ProcessInfo | undefined, address: string, port: number, isServer: boolean): string {
  if (proc) {
    if (proc.workload) return proc.namespace ? `${proc.namespace}/${proc.workload}` : proc.workload;
    if (proc.container) return proc.container;
    if (proc.name) return isServer ? `${proc.name}:${port}` : proc.name;
  }
  // no connection event reached this replica (e.g. the connection predates it): say so plainly
  if (!address && !port) return "unknown";
  return isServer ? `${address}:${port}` : address;
}

/** Remembers the processes seen at local address:port, so the other end of a connection traced
 *  on both sides gets its identity too (bounded, oldest forgotten first). */
export class PeerDirectory {
  private readonly byAddr = new Map<string, ProcessInfo>();
  constructor(private readonly max = 65536) {}

  learn(ev: ConnEvent): void {
    const p = processOf(ev);
    if (!p) return;
    const k = `${ev.localAddress}:${ev.localPort}`;
    this.byAddr.delete(k);
    this.byAddr.set(k, p);
    // A listening port is shared by every accepted socket: remember it without the address too.
    if (ev.role === Role.SERVER) this.byAddr.set(`*:${ev.localPort}`, p);
    if (this.byAddr.size > this.max) this.byAddr.delete(this.byAddr.keys().next().value as string);
  }

  lookup(address: string, port: number, asServer: boolean): ProcessInfo | undefined {
    return this.byAddr.get(`${address}:${port}`) ?? (asServer ? this.byAddr.get(`*:${port}`) : undefined);
  }
}

export interface Endpoints {
  client: EndpointInfo;
  server: EndpointInfo;
  /** The traced socket's role, with UNKNOWN resolved by ports (see resolveRole). */
  role: Role;
}

/** Unknown role: the end with the lower port is taken as the server (ephemeral ports are high). */
export function resolveRole(ev: ConnEvent): Role {
  if (ev.role === Role.CLIENT || ev.role === Role.SERVER) return ev.role;
  return ev.localPort !== 0 && ev.localPort < ev.remotePort ? Role.SERVER : Role.CLIENT;
}

export function endpointsOf(ev: ConnEvent, node: string, peers: PeerDirectory): Endpoints {
  const role = resolveRole(ev);
  const self = processOf(ev);
  const local = { address: ev.localAddress, port: ev.localPort };
  const remote = { address: ev.remoteAddress, port: ev.remotePort };
  const isServer = role === Role.SERVER;
  const peer = peers.lookup(remote.address, remote.port, !isServer);
  const mk = (a: { address: string; port: number }, p: ProcessInfo | undefined, server: boolean, onNode: boolean): EndpointInfo => ({
    address: a.address,
    port: a.port,
    process: p,
    node: onNode ? node : "",
    service: serviceName(p, a.address, a.port, server),
  });
  const localEp = mk(local, self, isServer, true);
  const remoteEp = mk(remote, peer, !isServer, peer !== undefined);
  return isServer ? { server: localEp, client: remoteEp, role } : { client: localEp, server: remoteEp, role };
}
