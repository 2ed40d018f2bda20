// Certificates for the local stack's own TLS (`up --nats-tls`, the demo shop's HTTPS hop): a CA
// and a server certificate made with openssl into one folder on first use and kept.
//
//   ca.pem / ca.key (0600)          a CA of its own (10 years), trusted by the stack's clients only
//   server.pem / server.key (0600)  signed by it for 127.0.0.1, ::1 and localhost (825 days)
//   client-<name>.pem / .key (0600) client certificates signed by it (mutual TLS), on demand
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { ProcessError } from "@wirescope/runtime/process";

export interface LocalTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** openssl arguments for a new EC P-256 key, unencrypted. */
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Runs each openssl command of `steps` in turn; `what` names the result in the error. */
function openssl(steps: string[][], what: string): void {
  for (const args of steps) {
    const r = spawnSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) throw new ProcessError("tls", `openssl ${args[0]} failed making ${what}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  }
}

/** The files of a folder made by `prepareLocalTls`. */
export function localTlsFiles(dir: string): LocalTlsFiles {
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "server.pem"), key: path.join(dir, "server.key") };
}

/**
 * Makes the CA and the server certificate (CN `commonName`) in `dir` unless both exist, and
 * returns their paths.
 * @throws ProcessError("tls") when openssl fails (or is missing).
 */
export function prepareLocalTls(dir: string, commonName: string): LocalTlsFiles {
  const f = localTlsFiles(dir);
  if (fs.existsSync(f.ca) && fs.existsSync(f.cert) && fs.existsSync(f.key)) return f;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, "ca.key");
  const csr = path.join(dir, "server.csr");
  const ext = path.join(dir, "server.ext");
  fs.writeFileSync(ext, "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n");
  const steps = [
    ["req", "-x509", ...EC_KEY, "-days", "3650", "-subj", "/CN=wirescope local CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", caKey, "-out", f.ca],
    ["req", ...EC_KEY, "-subj", `/CN=${commonName}`, "-keyout", f.key, "-out", csr],
    ["x509", "-req", "-in", csr, "-CA", f.ca, "-CAkey", caKey, "-CAcreateserial", "-days", "825", "-extfile", ext, "-out", f.cert],
  ];
  openssl(steps, `the certificates of ${commonName} in ${dir}`);
  for (const k of [caKey, f.key]) fs.chmodSync(k, 0o600);
  fs.rmSync(csr, { force: true });
  return f;
}

/** The files of a client certificate `prepareClientCert` makes in `dir`. */
export function clientCertFiles(dir: string, name: string): { cert: string; key: string } {
  return { cert: path.join(dir, `client-${name}.pem`), key: path.join(dir, `client-${name}.key`) };
}

/**
 * Makes a client certificate (CN `commonName`, for client authentication only, 825 days) signed by
 * the CA of `dir` (made by `prepareLocalTls` first) unless it exists, and returns its paths. With
 * `alsoServer`, for server authentication too, on 127.0.0.1, ::1 and localhost (a peer that both
 * dials and accepts, as a NATS route does).
 * @throws ProcessError("tls") when openssl fails (or is missing), or the CA's key is not there.
 */
export function prepareClientCert(dir: string, name: string, commonName: string, alsoServer = false): { cert: string; key: string } {
  const f = clientCertFiles(dir, name);
  if (fs.existsSync(f.cert) && fs.existsSync(f.key)) return f;
  const ca = localTlsFiles(dir).ca;
  const caKey = path.join(dir, "ca.key");
  if (!fs.existsSync(caKey)) throw new ProcessError("tls", `cannot make a client certificate for ${commonName}: no CA key in ${dir} (remove the folder to make a new CA)`);
  const csr = path.join(dir, `client-${name}.csr`);
  const ext = path.join(dir, alsoServer ? "peer.ext" : "client.ext");
  fs.writeFileSync(ext, `${alsoServer ? "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth" : "extendedKeyUsage=clientAuth"}\nbasicConstraints=critical,CA:FALSE\n`);
  const steps = [
    ["req", ...EC_KEY, "-subj", `/CN=${commonName}`, "-keyout", f.key, "-out", csr],
    ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "825", "-extfile", ext, "-out", f.cert],
  ];
  openssl(steps, `the client certificate of ${commonName} in ${dir}`);
  fs.chmodSync(f.key, 0o600);
  fs.rmSync(csr, { force: true });
  return f;
}
