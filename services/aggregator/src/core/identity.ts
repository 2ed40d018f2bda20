import { isTracedProcess, serviceName as nameOf } from "@wirescope/common";
import type { EndpointView as Endpoint } from "./record-view.js";

/**
 * Service name of one end of a connection: the parser's `Endpoint.service`, or for records that
 * arrive without it the same rule (@wirescope/common identity.ts) applied to the end's fields.
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
