// TLS for the local stack's NATS (`wirescope up --nats-tls`): a CA and a server certificate made
// with openssl into <data-dir>/nats-tls/ on first use and kept, the servers' `tls` block, and
// the CA that every client verifies the servers with.
//
//   ca.pem / ca.key (0600)          the stack's own CA (10 years), trusted by its clients only
//   server.pem / server.key (0600)  signed by it for 127.0.0.1, ::1 and localhost (825 days)
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { ProcessError } from "./process.js";

export const NATS_TLS_DIR = "nats-tls";

export interface NatsTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** The stack's TLS files in `dataDir`, when `up --nats-tls` made them. */
export function natsTlsFiles(dataDir: string): NatsTlsFiles {
  const d = path.join(dataDir, NATS_TLS_DIR);
  return { ca: path.join(d, "ca.pem"), cert: path.join(d, "server.pem"), key: path.join(d, "server.key") };
}

/**
 * Makes the CA and the server certificate unless both exist, and returns their paths.
 * @throws ProcessError("tls") when openssl fails (or is missing).
 */
export function prepareNatsTls(dataDir: string): NatsTlsFiles {
  const f = natsTlsFiles(dataDir);
  if (fs.existsSync(f.ca) && fs.existsSync(f.cert) && fs.existsSync(f.key)) return f;
  const dir = path.dirname(f.ca);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, "ca.key");
  const csr = path.join(dir, "server.csr");
  const ext = path.join(dir, "server.ext");
  fs.writeFileSync(ext, "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const steps = [
    ["req", "-x509", ...ec, "-days", "3650", "-subj", "/CN=wirescope local CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", caKey, "-out", f.ca],
    ["req", ...ec, "-subj", "/CN=wirescope nats", "-keyout", f.key, "-out", csr],
    ["x509", "-req", "-in", csr, "-CA", f.ca, "-CAkey", caKey, "-CAcreateserial", "-days", "825", "-extfile", ext, "-out", f.cert],
  ];
  for (const args of steps) {
    const r = spawnSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) throw new ProcessError("tls", `openssl ${args[0]} failed making the NATS certificates in ${dir}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  }
  for (const k of [caKey, f.key]) fs.chmodSync(k, 0o600);
  fs.rmSync(csr, { force: true });
  return f;
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
