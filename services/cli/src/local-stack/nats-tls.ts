// TLS for the local stack's NATS (`wirescope up --nats-tls`): the CA and server certificate of
// local-tls.ts in <data-dir>/nats-tls/, the servers' `tls` block, and the CA that every client
// verifies the servers with.
import path from "node:path";
import { localTlsFiles, prepareLocalTls, type LocalTlsFiles } from "./tls.js";

export const NATS_TLS_DIR = "nats-tls";

export type NatsTlsFiles = LocalTlsFiles;

/** The stack's TLS files in `dataDir`, when `up --nats-tls` made them. */
export function natsTlsFiles(dataDir: string): NatsTlsFiles {
  return localTlsFiles(path.join(dataDir, NATS_TLS_DIR));
}

/**
 * Makes the CA and the server certificate unless both exist, and returns their paths.
 * @throws ProcessError("tls") when openssl fails (or is missing).
 */
export function prepareNatsTls(dataDir: string): NatsTlsFiles {
  return prepareLocalTls(path.join(dataDir, NATS_TLS_DIR), "wirescope nats");
}

/** nats-server `tls` block: clients must speak TLS and are shown this certificate. */
export function natsTlsConfig(f: NatsTlsFiles): string {
  const q = (s: string) => JSON.stringify(s);
  return `tls {
  cert_file: ${q(f.cert)}
  key_file: ${q(f.key)}
  timeout: 5
}
`;
}
