import { isTracedProcess, namedByPort, serviceName as nameOf } from "@wirescope/wire";
import type { EndpointView as Endpoint } from "./record-view.js";

/**
 * Service name of one end of a connection: the parser's `Endpoint.service`, or for records that
 * arrive without it the same rule (@wirescope/wire identity.ts) applied to the end's fields.
 */
export function serviceName(ep: Endpoint | undefined, isServer: boolean): string {
  if (!ep) return "unknown";
  if (ep.service) return ep.service;
  return nameOf(ep.process, ep.address, ep.port, isServer);
}

/** True when the end is a process the probe traced (it has process identity). */
export function isTraced(ep: Endpoint | undefined): boolean {
  return isTracedProcess(ep?.process);
}

/**
 * The names of processes that listen, by node and pid (`web:17080`), learned from every end the
 * parser named with its listening port. A process is named by its bare name (`web`) by records made
 * before the parser saw it accept (a client that connects at start, then listens: the demo's
 * `orders` asks Kafka for metadata before it serves gRPC); when a window closes those take the
 * listening name, so the process is one node of the map from its first record. Bounded: forgotten
 * all at once past `max` processes (then relearned from the next records).
 */
export class ListenNames {
  private readonly byNode = new Map<string, Map<number, string>>();
  private size = 0;
  /** Which listening names may be given (all by default; see Aggregator.acceptListenNames). */
  accept: (name: string) => boolean = () => true;
  constructor(private readonly max = 65_536) {}

  /** Learns `name` for the end's process when it is its bare name with a port. */
  learn(ep: Endpoint | undefined, node: string, name: string): void {
    const p = ep?.process;
    if (!p || !p.pid || !node || !namedByPort(p) || !isListenName(name, p.name)) return;
    let byPid = this.byNode.get(node);
    if (byPid?.get(p.pid) === name) return;
    if (this.size >= this.max) {
      this.byNode.clear();
      this.size = 0;
      byPid = undefined;
    }
    if (!byPid) this.byNode.set(node, (byPid = new Map()));
    if (!byPid.has(p.pid)) this.size++;
    byPid.set(p.pid, name);
  }

  /** The listening name of process `pid` on `node` when it is `bare` + a port, else undefined. */
  of(node: string, pid: number, bare: string): string | undefined {
    const n = this.byNode.get(node)?.get(pid);
    return n !== undefined && isListenName(n, bare) && this.accept(n) ? n : undefined;
  }
}

/** `name` is `bare:<port>`. */
function isListenName(name: string, bare: string): boolean {
  return name.length > bare.length + 1 && name.charCodeAt(bare.length) === 58 && name.startsWith(bare);
}

/** The pid of an end named by its bare process name (one that may turn out to listen), else 0. */
export function barePid(ep: Endpoint | undefined, name: string): number {
  const p = ep?.process;
  return p && p.pid && namedByPort(p) && name === p.name ? p.pid : 0;
}

/**
 * The series key (service, or service and pid while named by its bare process name) and namespace
 * of each traced end by node, process and port, learned from records: a server end by its local
 * port, a process's client ends together as port 0. Requests served or answered while shed
 * (ShedReport: node, pid, port) are counted with them. Bounded: cleared when it holds `max`
 * ends, and learned again from the next records.
 */
export class EndServices {
  private readonly byNode = new Map<string, Map<number, { key: string; namespace: string }>>();
  private size = 0;
  constructor(private readonly max = 65_536) {}

  learn(node: string, pid: number, port: number, key: string, namespace: string): void {
    if (!pid || !node) return;
    const k = pid * 65_536 + (port & 0xffff);
    let ends = this.byNode.get(node);
    const known = ends?.get(k);
    if (known !== undefined && known.key === key && known.namespace === namespace) return;
    if (known === undefined && this.size >= this.max) {
      this.byNode.clear();
      this.size = 0;
      ends = undefined;
    }
    if (!ends) this.byNode.set(node, (ends = new Map()));
    if (known === undefined) this.size++;
    ends.set(k, { key, namespace });
  }

  of(node: string, pid: number, port: number): { key: string; namespace: string } | undefined {
    return this.byNode.get(node)?.get(pid * 65_536 + (port & 0xffff));
  }
}
