import type { EndpointView as Endpoint } from "./record-view.js";

/**
 * Service name of one end of a connection. The parser resolves `Endpoint.service` already; this
 * is the same rule for records that arrive without it:
 *   Kubernetes workload > container name > process name (":" listening port for the server end)
 *   > address (":" port for the server end) when that end is not traced.
 */
export function serviceName(ep: Endpoint | undefined, isServer: boolean): string {
  if (!ep) return "unknown";
  if (ep.service) return ep.service;
  const p = ep.process;
  if (p) {
    if (p.workload) return p.namespace ? `${p.namespace}/${p.workload}` : p.workload;
    if (p.container) return p.container;
    if (p.name) return isServer && ep.port ? `${p.name}:${ep.port}` : p.name;
  }
  if (ep.address) return isServer && ep.port ? `${ep.address}:${ep.port}` : ep.address;
  return "unknown";
}

/** True when the end is a process the probe traced (it has process identity). */
export function isTraced(ep: Endpoint | undefined): boolean {
  return !!ep?.process && (ep.process.pid > 0 || !!ep.process.name);
}
