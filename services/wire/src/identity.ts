// Endpoint identity: the one rule for naming the two ends of a connection, used by the parser
// (which names the ends of every record) and the aggregator (records that arrive without a name).
//
//   service = Kubernetes workload ("namespace/workload") > container > process name
//             + ":<listening port>" when the process listens (in every role, so one process is one
//               node of the service map) > the address when the end is not traced
//             (":<port>" for a server end) > "unknown" when nothing is known.
import { isIP } from "node:net";
import type { ConnEvent, ProcessInfo } from "./gen/wirescope/v1/raw_pb.js";

/** The process fields the rule reads (a ProcessInfo fits, and so do lighter decoded views). */
export interface ProcessIdentity {
  pid: number;
  name: string;
  container: string;
  workload: string;
  namespace: string;
}

/** True when the process identity names a traced process. */
export function isTracedProcess(p: ProcessIdentity | undefined): p is ProcessIdentity {
  return !!p && (p.pid > 0 || !!p.name);
}

/**
 * Service name of one end.
 * @param listenPort for a client end: a port its process listens on (0 = none known). A server
 *   end is named by the port it accepted on, `port`.
 */
export function serviceName(proc: ProcessIdentity | undefined, address: string, port: number, isServer: boolean, listenPort = 0): string {
  if (proc) {
    if (proc.workload) return proc.namespace ? `${proc.namespace}/${proc.workload}` : proc.workload;
    if (proc.container) return proc.container;
    if (proc.name) {
      const p = isServer ? port : listenPort;
      return p ? `${proc.name}:${p}` : proc.name;
    }
  }
  // no connection event reached this replica (e.g. the connection predates it): say so plainly
  if (!address) return "unknown";
  return isServer && port ? hostPort(address, port) : address;
}

/** True when the name depends on a listening port (a plain process name). */
export function namedByPort(proc: ProcessIdentity | undefined): boolean {
  return !!proc && !proc.workload && !proc.container && !!proc.name;
}

/**
 * True when `name` is what the rule above gives an end that is not traced: its address
 * (`10.0.0.5`, `10.0.0.9:3306`, `[fd00::9]:3306`) or `unknown`. The service map calls such an
 * end external.
 */
export function isAddressName(name: string): boolean {
  if (name === "unknown") return true;
  if (isIP(name)) return true;
  const v6 = /^\[(.+)\]:\d+$/.exec(name);
  if (v6) return isIP(v6[1]!) === 6;
  const v4 = /^(.+):\d+$/.exec(name);
  return v4 !== null && isIP(v4[1]!) === 4;
}

/** "address:port", with an IPv6 address in brackets (RFC 3986). */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The traced process of a connection event; undefined when the event names no process. */
export function processOf(ev: ConnEvent): ProcessInfo | undefined {
  return ev.process && (ev.process.pid || ev.process.name) ? ev.process : undefined;
}

/** IPv4 dotted quad or RFC 5952 IPv6 text of the 4 or 16 address bytes at `off`. */
export function formatAddress(buf: Uint8Array, off: number, family: 4 | 6): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  // IPv4-mapped ::ffff:a.b.c.d
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  // the longest run of ≥ 2 zero words becomes "::" (the first of equal runs)
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
