// The users of the influxd that `wirescope up` runs (InfluxDB 1.x, auth-enabled), generated once
// into <data-dir>/influx-auth.json (mode 0600): an admin, kept by `up` itself to create the
// database and the other two; a writer (WRITE on the database), the aggregator's; a reader (READ),
// for CLI commands (`top`) and dashboards. The aggregator gets its user by environment, CLI
// commands read theirs from the data dir (config.ts). See docs/security.md.
//
// File: { "user", "password" (the admin, as before these roles), "writer": {…}, "reader": {…} }.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { ConfigError } from "./errors.js";
import { writePrivate, type NatsUser } from "./nats-permissions.js";

export const INFLUX_CREDENTIALS_FILE = "influx-auth.json";
export type InfluxUser = NatsUser;
export type InfluxRole = "admin" | "writer" | "reader";
export interface InfluxUsers {
  admin: InfluxUser;
  writer: InfluxUser;
  reader: InfluxUser;
}

const isUser = (u: Partial<InfluxUser> | undefined): u is InfluxUser => typeof u?.user === "string" && typeof u.password === "string" && !!u.user && !!u.password;

type InfluxFile = Partial<InfluxUser> & { writer?: Partial<InfluxUser>; reader?: Partial<InfluxUser> };

function readFile(dataDir: string): InfluxFile | undefined {
  const file = path.join(dataDir, INFLUX_CREDENTIALS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  let u: InfluxFile | undefined;
  try {
    u = JSON.parse(text) as InfluxFile;
  } catch {
    u = undefined;
  }
  if (!isUser(u)) throw new ConfigError("bad_value", `${file}: no user and password; delete it (and <data-dir>/influxdb) and restart \`wirescope up\``);
  return u;
}

/**
 * The stack's InfluxDB user of `role` in `dataDir` (default the admin), or undefined when there is
 * none (no file, not ours to read, or a file from before the writer and reader: the next `up`
 * adds them).
 */
export function readInfluxCredentials(dataDir: string, role: InfluxRole = "admin"): InfluxUser | undefined {
  const f = readFile(dataDir);
  if (!f) return undefined;
  const u = role === "admin" ? f : f[role];
  return isUser(u) ? { user: u.user, password: u.password } : undefined;
}

/** The three users, those missing generated (random 32-byte passwords) and written back. */
export function prepareInfluxAuth(dataDir: string): InfluxUsers {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, INFLUX_CREDENTIALS_FILE);
  const f = readFile(dataDir);
  const make = (user: string): InfluxUser => ({ user, password: crypto.randomBytes(32).toString("base64url") });
  const users: InfluxUsers = {
    admin: f ? { user: f.user!, password: f.password! } : make("wirescope-admin"),
    writer: isUser(f?.writer) ? { user: f.writer.user, password: f.writer.password } : make("wirescope-writer"),
    reader: isUser(f?.reader) ? { user: f.reader.user, password: f.reader.password } : make("wirescope-reader"),
  };
  if (!f || !isUser(f.writer) || !isUser(f.reader)) writePrivate(file, `${JSON.stringify({ ...users.admin, writer: users.writer, reader: users.reader }, null, 2)}\n`);
  else fs.chmodSync(file, 0o600);
  return users;
}

/** Environment that gives a child an InfluxDB user (never argv). */
export function influxUserEnv(u: InfluxUser): Record<string, string> {
  return { WIRESCOPE_INFLUX_USER: u.user, WIRESCOPE_INFLUX_PASSWORD: u.password };
}
