// Which process is at each end of a connection, and its service name. The naming rule itself is
// @wirescope/wire's identity.ts (shared with the aggregator); here the parser learns who is
// where from connection events, and resolves the ends of a connection lazily: an end not known
// when the connection was created is looked up again as its records are published.
import { Role, isTracedProcess, namedByPort, processOf, serviceName, type ConnEvent, type ProcessInfo } from "@wirescope/wire";
import { Generations } from "@wirescope/runtime/generations";

/** The fields of wirescope.v1.Endpoint, as a plain object (encoded by record-bytes.ts). */
export interface EndpointInfo {
  address: string;
  port: number;
  process?: ProcessInfo;
  node: string;
  service: string;
}

/** A process and the node it was seen on. */
interface Peer {
  process: ProcessInfo;
  node: string;
}

/** Loopback addresses name a socket only within one node (each node has its own 127.0.0.1). */
const isLoopback = (a: string) => a.startsWith("127.") || a === "::1" || a.startsWith("::ffff:127.");

/**
 * Processes seen at local address:port, and the ports processes listen on, learned from
 * connection events of every node this parser hears from (bounded, oldest forgotten first).
 * An address that is the same on every node (loopback, a wildcard listening port) and a pid are
 * only meaningful within their node, so those keys carry the node; a routable address names one
 * socket across nodes, which is how a client on one node finds the server on another.
 */
export class PeerDirectory {
  /**
   * address:port → Peer, at most `max` in two generations (Generations): what was learned within
   * the last max/2 entries is always found, and a socket named again (a server's listening
   * address, at every accept) stays young. The LRU this replaced deleted and re-added one hot key
   * on every connection and evicted oldest-first: 26 % of the parser's CPU at 1,000 new
   * connections a second, ~20-50 µs per connection once 20,000 had been seen.
   */
  private readonly peers: Generations<string, Peer>;
  /** node/pid → the process name and the lowest port it accepted on (a reused pid with another
   *  name starts over); the same two generations, the last max/2 processes seen listening kept.
   *  Evicting the oldest one by one cost ~10-34 µs per new listening process once 65,536 were
   *  known, for the same reason. */
  private readonly listening: Generations<string, { name: string; port: number }>;
  constructor(max = 65536) {
    this.peers = new Generations(max / 2);
    this.listening = new Generations(max / 2);
  }

  private static key(node: string, address: string, port: number): string {
    return isLoopback(address) ? `${node}/${address}:${port}` : `${address}:${port}`;
  }

  learn(ev: ConnEvent, node: string): void {
    const p = processOf(ev);
    if (!p) return;
    const peer: Peer = { process: p, node };
    this.peers.set(PeerDirectory.key(node, ev.localAddress, ev.localPort), peer);
    if (ev.role === Role.SERVER && ev.localPort) {
      // A listening port is shared by every accepted socket: remember it without the address too.
      this.peers.set(`${node}/*:${ev.localPort}`, peer);
      const lk = `${node}/${p.pid}`;
      const had = this.listening.get(lk);
      if (!had || had.name !== p.name) this.listening.set(lk, { name: p.name, port: ev.localPort });
      else {
        if (ev.localPort < had.port) had.port = ev.localPort; // the lowest: the same name whichever accept comes first
        this.listening.set(lk, had); // still listening: kept young
      }
    }
  }

  /** Entries held (both generations; a key in both counts twice): at most `max`. */
  get size(): number {
    return this.peers.size;
  }

  /** The process at address:port as seen from `node` (a server also by its listening port there). */
  lookup(address: string, port: number, asServer: boolean, node: string): Peer | undefined {
    return this.peers.get(PeerDirectory.key(node, address, port)) ?? (asServer ? this.peers.get(`${node}/*:${port}`) : undefined);
  }

  /** A port the process of `node` listens on (the lowest seen), or 0. */
  listenPort(p: ProcessInfo, node: string): number {
    const l = this.listening.get(`${node}/${p.pid}`);
    return l !== undefined && l.name === p.name ? l.port : 0;
  }
}

export interface Endpoints {
  client: EndpointInfo;
  server: EndpointInfo;
  /** The traced socket's role, with UNKNOWN resolved by ports (see resolveRole). */
  role: Role;
  /** The client end's listening port used in its name (0: none known yet). */
  clientListen: number;
  /** Something may still be learned: the peer's process, or the client's listening port. */
  pending: boolean;
}

/** Unknown role: the end with the lower port is taken as the server (ephemeral ports are high). */
export function resolveRole(ev: ConnEvent): Role {
  if (ev.role === Role.CLIENT || ev.role === Role.SERVER) return ev.role;
  return ev.localPort !== 0 && ev.localPort < ev.remotePort ? Role.SERVER : Role.CLIENT;
}

/** The ends of a connection observed on `node` (the probe's node that saw the socket). */
export function endpointsOf(ev: ConnEvent, node: string, peers: PeerDirectory): Endpoints {
  const role = resolveRole(ev);
  const isServer = role === Role.SERVER;
  const local: EndpointInfo = { address: ev.localAddress, port: ev.localPort, process: processOf(ev), node, service: "" };
  const remote: EndpointInfo = { address: ev.remoteAddress, port: ev.remotePort, process: undefined, node: "", service: "" };
  const eps: Endpoints = isServer
    ? { server: local, client: remote, role, clientListen: 0, pending: true }
    : { client: local, server: remote, role, clientListen: 0, pending: true };
  refreshEndpoints(eps, node, peers);
  name(eps);
  return eps;
}

/**
 * Looks up again what is not known yet of a connection's ends (constant work: at most two map
 * lookups). Returns true when a name changed (the caller re-encodes what it froze).
 */
export function refreshEndpoints(eps: Endpoints, node: string, peers: PeerDirectory): boolean {
  let changed = false;
  const remote = eps.role === Role.SERVER ? eps.client : eps.server;
  if (!remote.process && remote.address) {
    const p = peers.lookup(remote.address, remote.port, eps.role !== Role.SERVER, node);
    if (p) {
      remote.process = p.process;
      remote.node = p.node;
      changed = true;
    }
  }
  const client = eps.client.process;
  if (eps.clientListen === 0 && namedByPort(client)) {
    // the client is the local end, or a peer seen on its own node
    const lp = peers.listenPort(client!, eps.role === Role.SERVER ? eps.client.node : node);
    if (lp) {
      eps.clientListen = lp;
      changed = true;
    }
  }
  // Nothing more can be learned once the peer is known and the client's name cannot change.
  eps.pending = (!remote.process && !!remote.address) || (eps.clientListen === 0 && namedByPort(eps.client.process));
  if (changed) name(eps);
  return changed;
}

/** True when the peer (the end that is not the traced socket) has no process identity. */
export function peerUnresolved(eps: Endpoints): boolean {
  return !isTracedProcess((eps.role === Role.SERVER ? eps.client : eps.server).process);
}

function name(eps: Endpoints): void {
  const { client, server } = eps;
  server.service = serviceName(server.process, server.address, server.port, true);
  client.service = serviceName(client.process, client.address, client.port, false, eps.clientListen);
}
