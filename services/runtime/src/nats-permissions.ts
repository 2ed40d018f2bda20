// NATS users of the local stack, one per component, each allowed only the subjects it uses.
// The table below is the one place that says who may publish or subscribe what; `wirescope up`
// turns it into the nats-server config (natsServerAuthConfig) and hands each child its user.
//
//   probe       publishes wirescope.raw.> and wirescope.shed  (+ runtime: registry KV, inboxes)
//   parser      subscribes wirescope.raw.>, publishes wirescope.records.> (JetStream), its
//               membership, progress and Kafka topic-name KVs, reads the plugin object store
//               (+ runtime)
//   aggregator  consumes the records stream (consumer API of that stream only), its state KV,
//               its membership KV; subscribes wirescope.shed (requests served while shed)
//   cli         reads the registry (`status`), subscribes records (`tail`), writes the plugin
//               object store (`plugin add|rm`)
//   runtime     every service: $JS.API.INFO, the registry KV (announce)
//   every user  replies on its own inboxes only, _INBOX.<user>.> (inboxPrefixFor): a user cannot
//               read the replies of another (JetStream pulls deliver records to an inbox)
//
// Names of streams and buckets are the components' defaults (parser/aggregator options.ts,
// registry.ts); test/nats-auth.test.ts checks they agree.
//
// Credentials: random passwords generated once into <data-dir>/nats-auth.json (mode 0600) and the
// server config <data-dir>/nats-server.conf (0600). Passwords go to children by environment, never
// by argv (world-readable in /proc/<pid>/cmdline).
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { ConfigError } from "./errors.js";

export type NatsRole = "probe" | "parser" | "aggregator" | "cli";
export const NATS_ROLES: readonly NatsRole[] = ["probe", "parser", "aggregator", "cli"];

/** Streams and buckets the permissions name (the components' defaults). */
export const NATS_NAMES = {
  rawSubjects: "wirescope.raw.>",
  shedSubject: "wirescope.shed",
  recordsSubjects: "wirescope.records.>",
  recordsStream: "WIRESCOPE_RECORDS",
  registryBucket: "wirescope-services",
  membersBucket: "wirescope-parsers",
  progressBucket: "wirescope-parser-progress",
  kafkaTopicsBucket: "wirescope-kafka-topics",
  pluginBucket: "wirescope-plugins",
  aggregatorStateBucket: "wirescope-aggregator",
  aggregatorMembersBucket: "wirescope-aggregators",
} as const;

export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
}

const api = "$JS.API";

/** JetStream API subjects to look up and create `stream` (creation is idempotent for the same config). */
function streamManage(stream: string): string[] {
  return [`${api}.STREAM.INFO.${stream}`, `${api}.STREAM.CREATE.${stream}`];
}

/** Reading single messages of `stream` (KV get, object store metadata). */
function streamGet(stream: string): string[] {
  return [`${api}.STREAM.MSG.GET.${stream}`, `${api}.DIRECT.GET.${stream}`, `${api}.DIRECT.GET.${stream}.>`];
}

/** Consumers on `stream` only: create/update/info/delete, pull requests, acks, flow control. */
function streamConsume(stream: string): string[] {
  return [
    `${api}.CONSUMER.CREATE.${stream}`,
    `${api}.CONSUMER.CREATE.${stream}.>`,
    `${api}.CONSUMER.DURABLE.CREATE.${stream}.>`,
    `${api}.CONSUMER.INFO.${stream}.>`,
    `${api}.CONSUMER.DELETE.${stream}.>`,
    `${api}.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.ACK.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** A KV bucket this role reads and writes (put, delete, get, watch). */
function kvReadWrite(bucket: string): string[] {
  const s = `KV_${bucket}`;
  return [...streamManage(s), ...streamGet(s), ...streamConsume(s), `$KV.${bucket}.>`];
}

/** A KV bucket this role only reads (info, get, watch): another role's, which it never creates. */
function kvRead(bucket: string): string[] {
  const s = `KV_${bucket}`;
  return [`${api}.STREAM.INFO.${s}`, ...streamGet(s), ...streamConsume(s)];
}

/** Reading an object store (info, list/watch, get). */
function objectRead(bucket: string): string[] {
  const s = `OBJ_${bucket}`;
  return [...streamManage(s), ...streamGet(s), ...streamConsume(s)];
}

/** Writing an object store (put, delete: chunks and metadata, purge of replaced chunks). */
function objectWrite(bucket: string): string[] {
  const s = `OBJ_${bucket}`;
  return [...objectRead(bucket), `$O.${bucket}.>`, `${api}.STREAM.PURGE.${s}`];
}

/**
 * The inbox prefix of a client connected as `user`: `_INBOX.<user>` (characters that cannot be
 * in a subject token as `_`), `_INBOX` without a user. `natsConnectionOptions` uses it, and the
 * server config below allows each user to subscribe to its own inboxes only, so that no user
 * reads replies meant for another (a probe's credentials could otherwise read the records
 * delivered to the aggregator's pulls).
 */
export function inboxPrefixFor(user?: string): string {
  return user ? `_INBOX.${user.replace(/[.*>\s]/g, "_")}` : "_INBOX";
}

/** What every service needs to run: account info, its registry entry, request/reply. */
function runtime(): string[] {
  return [`${api}.INFO`, `${api}.STREAM.NAMES`, ...kvReadWrite(NATS_NAMES.registryBucket)];
}

/** The permission table: what each role, connected as `user`, may publish and subscribe. */
export function natsPermissions(role: NatsRole, user = `wirescope-${role}`): NatsPermissions {
  const n = NATS_NAMES;
  const INBOX = `${inboxPrefixFor(user)}.>`;
  switch (role) {
    case "probe":
      return { publish: [n.rawSubjects, n.shedSubject, ...runtime()], subscribe: [INBOX] };
    case "parser":
      return {
        publish: [n.recordsSubjects, ...streamManage(n.recordsStream), ...kvReadWrite(n.membersBucket), ...kvReadWrite(n.progressBucket), ...kvReadWrite(n.kafkaTopicsBucket), ...objectRead(n.pluginBucket), ...runtime()],
        subscribe: [n.rawSubjects, INBOX],
      };
    case "aggregator":
      return {
        // the parsers' membership is read for their watermarks (aggregator parser-watermarks.ts)
        publish: [...streamManage(n.recordsStream), ...streamConsume(n.recordsStream), ...kvReadWrite(n.aggregatorStateBucket), ...kvReadWrite(n.aggregatorMembersBucket), ...kvRead(n.membersBucket), ...runtime()],
        subscribe: [n.shedSubject, INBOX],
      };
    case "cli":
      return {
        publish: [`${api}.INFO`, `${api}.STREAM.NAMES`, `${api}.STREAM.INFO.KV_${n.registryBucket}`, ...streamGet(`KV_${n.registryBucket}`), ...objectWrite(n.pluginBucket)],
        subscribe: [n.recordsSubjects, INBOX],
      };
  }
}

export interface NatsUser {
  user: string;
  password: string;
}
export type NatsCredentials = Record<NatsRole, NatsUser>;

/**
 * nats-server `authorization` block with one user per role (`users[role]`, its password as
 * nats-server config text: a quoted string, or a `$VARIABLE` read from the environment):
 * anonymous clients are refused.
 */
function authorizationBlock(users: Record<NatsRole, { user: string; password: string }>): string {
  const q = (s: string) => JSON.stringify(s);
  const list = (xs: string[]) => `[${xs.map(q).join(", ")}]`;
  const lines = NATS_ROLES.map((role) => {
    const p = natsPermissions(role, users[role].user);
    return `    { user: ${q(users[role].user)}, password: ${users[role].password}, permissions: { publish: { allow: ${list(p.publish)} }, subscribe: { allow: ${list(p.subscribe)} } } }`;
  });
  return `authorization {\n  users: [\n${lines.join(",\n")}\n  ]\n}\n`;
}

/** nats-server `authorization` block of the local stack's generated users. */
export function natsServerAuthConfig(creds: NatsCredentials): string {
  const users = Object.fromEntries(NATS_ROLES.map((r) => [r, { user: creds[r].user, password: JSON.stringify(creds[r].password) }])) as Record<NatsRole, { user: string; password: string }>;
  return `# Generated by wirescope up from services/runtime/src/nats-permissions.ts; edits are overwritten.\n${authorizationBlock(users)}`;
}

/** The environment variable that holds `role`'s NATS password for the servers of a Kubernetes deployment. */
export const natsPasswordVariable = (role: NatsRole): string => `NATS_PASSWORD_${role.toUpperCase()}`;

/**
 * The `authorization` block of deploy/k8s's nats.conf: the same users `wirescope-<role>` and
 * permissions, each password read by nats-server from its environment (`natsPasswordVariable`,
 * filled from the Secret wirescope-nats-auth). test/foundation-k8s.test.ts checks the ConfigMap
 * holds exactly this; `node scripts/k8s-nats-auth.mjs` writes it there.
 */
export function natsK8sAuthorization(): string {
  const users = Object.fromEntries(NATS_ROLES.map((r) => [r, { user: `wirescope-${r}`, password: `$${natsPasswordVariable(r)}` }])) as Record<NatsRole, { user: string; password: string }>;
  return authorizationBlock(users);
}

export const NATS_CREDENTIALS_FILE = "nats-auth.json";
export const NATS_SERVER_CONFIG_FILE = "nats-server.conf";

/** The stack's credentials in `dataDir`, or undefined when there are none (or they are not ours to read). */
export function readNatsCredentials(dataDir: string): NatsCredentials | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dataDir, NATS_CREDENTIALS_FILE), "utf8");
  } catch {
    return undefined;
  }
  let parsed: Partial<Record<NatsRole, Partial<NatsUser>>>;
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch (e) {
    throw new ConfigError("bad_value", `${path.join(dataDir, NATS_CREDENTIALS_FILE)}: not JSON (${(e as Error).message}); delete it and restart \`wirescope up\``);
  }
  for (const r of NATS_ROLES) {
    const u = parsed?.[r];
    if (typeof u?.user !== "string" || typeof u.password !== "string" || !u.user || !u.password) {
      throw new ConfigError("bad_value", `${path.join(dataDir, NATS_CREDENTIALS_FILE)}: no user for ${r}; delete it and restart \`wirescope up\``);
    }
  }
  return parsed as NatsCredentials;
}

/** Writes `text` to `file` readable by its owner only (also when the file existed with wider rights). */
export function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/**
 * The stack's credentials, generated on first use (random 32-byte passwords), and the nats-server
 * config written from the current permission table. Returns the config file's path.
 */
export function prepareNatsAuth(dataDir: string): { creds: NatsCredentials; configFile: string } {
  fs.mkdirSync(dataDir, { recursive: true });
  let creds = readNatsCredentials(dataDir);
  if (!creds) {
    creds = Object.fromEntries(NATS_ROLES.map((r) => [r, { user: `wirescope-${r}`, password: crypto.randomBytes(32).toString("base64url") }])) as NatsCredentials;
    writePrivate(path.join(dataDir, NATS_CREDENTIALS_FILE), `${JSON.stringify(creds, null, 2)}\n`);
  } else {
    fs.chmodSync(path.join(dataDir, NATS_CREDENTIALS_FILE), 0o600);
  }
  const configFile = path.join(dataDir, NATS_SERVER_CONFIG_FILE);
  writePrivate(configFile, natsServerAuthConfig(creds));
  return { creds, configFile };
}

/** Environment that gives a child process `role`'s NATS user (never argv: /proc/<pid>/cmdline is world-readable). */
export function natsUserEnv(creds: NatsCredentials, role: NatsRole): Record<string, string> {
  return { WIRESCOPE_NATS_USER: creds[role].user, WIRESCOPE_NATS_PASSWORD: creds[role].password };
}
