// The admin user of the influxd that `wirescope up` runs (InfluxDB 1.x, auth-enabled): generated
// once into <data-dir>/influx-auth.json (mode 0600); the aggregator gets it by environment, CLI
// commands (`top`) read it from the data dir (config.ts). See docs/security.md.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { ConfigError } from "./errors.js";
import { writePrivate, type NatsUser } from "./nats-permissions.js";

export const INFLUX_CREDENTIALS_FILE = "influx-auth.json";
export type InfluxUser = NatsUser;

/** The stack's InfluxDB admin in `dataDir`, or undefined when there is none (or it is not ours to read). */
export function readInfluxCredentials(dataDir: string): InfluxUser | undefined {
  const file = path.join(dataDir, INFLUX_CREDENTIALS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  let u: Partial<InfluxUser> | undefined;
  try {
    u = JSON.parse(text) as Partial<InfluxUser>;
  } catch {
    u = undefined;
  }
  if (typeof u?.user !== "string" || typeof u.password !== "string" || !u.user || !u.password) {
    throw new ConfigError("bad_value", `${file}: no user and password; delete it (and <data-dir>/influxdb) and restart \`wirescope up\``);
  }
  return u as InfluxUser;
}

/** The admin user, generated on first use (random 32-byte password). */
export function prepareInfluxAuth(dataDir: string): InfluxUser {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, INFLUX_CREDENTIALS_FILE);
  const have = readInfluxCredentials(dataDir);
  if (have) {
    fs.chmodSync(file, 0o600);
    return have;
  }
  const u: InfluxUser = { user: "wirescope-admin", password: crypto.randomBytes(32).toString("base64url") };
  writePrivate(file, `${JSON.stringify(u, null, 2)}\n`);
  return u;
}

/** Environment that gives a child the admin user (never argv). */
export function influxUserEnv(u: InfluxUser): Record<string, string> {
  return { WIRESCOPE_INFLUX_USER: u.user, WIRESCOPE_INFLUX_PASSWORD: u.password };
}
