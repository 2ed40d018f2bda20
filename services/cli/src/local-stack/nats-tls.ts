// TLS for the local stack's NATS (`wirescope up --nats-tls`): the CA and server certificate of
// tls.ts in <data-dir>/nats-tls/, a client certificate per NATS role (mutual TLS: the servers
// take no client without one of the CA's), one for a cluster's routes (mutual TLS between the
// servers), the servers' `tls` block, and what each client is given (the CA to verify the
// servers with, its role's certificate).
import path from "node:path";
import { NATS_ROLES, type NatsRole } from "@wirescope/runtime/nats-permissions";
import { clientCertFiles, localTlsFiles, prepareClientCert, prepareLocalTls, type LocalTlsFiles } from "./tls.js";

export const NATS_TLS_DIR = "nats-tls";

export type NatsTlsFiles = LocalTlsFiles;

/** The stack's TLS files in `dataDir`, when `up --nats-tls` made them. */
export function natsTlsFiles(dataDir: string): NatsTlsFiles {
  return localTlsFiles(path.join(dataDir, NATS_TLS_DIR));
}

/** The client certificate of NATS role `role` in `dataDir` (`client-<role>.pem`, `.key`). */
export function natsClientCert(dataDir: string, role: NatsRole): { cert: string; key: string } {
  return clientCertFiles(path.join(dataDir, NATS_TLS_DIR), role);
}

/** The certificate the servers of a cluster show each other on their routes (`client-route.pem`, `.key`). */
export function natsRouteCert(dataDir: string): { cert: string; key: string } {
  return clientCertFiles(path.join(dataDir, NATS_TLS_DIR), "route");
}

/**
 * Makes the CA, the server certificate, a client certificate per NATS role (CN
 * `wirescope-<role>`) and the routes' certificate (for server and client authentication) unless
 * they exist, and returns the CA's and server's paths.
 * @throws ProcessError("tls") when openssl fails (or is missing).
 */
export function prepareNatsTls(dataDir: string): NatsTlsFiles {
  const dir = path.join(dataDir, NATS_TLS_DIR);
  const f = prepareLocalTls(dir, "wirescope nats");
  for (const role of NATS_ROLES) prepareClientCert(dir, role, `wirescope-${role}`);
  prepareClientCert(dir, "route", "wirescope nats route", true);
  return f;
}

/** nats-server `tls` block: clients must speak TLS, are shown this certificate, and must show one of the CA's. */
export function natsTlsConfig(f: NatsTlsFiles): string {
  const q = (s: string) => JSON.stringify(s);
  return `tls {
  cert_file: ${q(f.cert)}
  key_file: ${q(f.key)}
  ca_file: ${q(f.ca)}
  verify: true
  timeout: 5
}
`;
}

/** Environment that gives a child `role`'s client certificate (paths only: the files are 0600). */
export function natsTlsClientEnv(dataDir: string, role: NatsRole): Record<string, string> {
  const c = natsClientCert(dataDir, role);
  return { WIRESCOPE_NATS_TLS_CERT: c.cert, WIRESCOPE_NATS_TLS_KEY: c.key };
}
