// Which InfluxDB is this? GET /ping answers 204 with an X-Influxdb-Version header on 1.x and 2.x
// (3.x answers 200 with a JSON body holding `version`).
import { InfluxError } from "@wirescope/runtime/errors";

export interface InfluxTarget {
  url: string;
  database: string;
  token?: string;
  user?: string;
  password?: string;
  /** 2.x organisation (name or id); ignored by 1.x. */
  org?: string;
}

export interface InfluxFlavor {
  version: string;
  major: number;
  minor: number;
  /** "v1": POST /write (InfluxDB < 1.8); "v2": POST /api/v2/write. */
  api: "v1" | "v2";
}

/** Parses "1.6.7~rc0", "v2.7.1", "3.0.0-abc" → {major, minor}. */
export function parseVersion(v: string): { major: number; minor: number } {
  const m = /^v?(\d+)\.(\d+)/.exec(v.trim());
  if (!m) return { major: 0, minor: 0 };
  return { major: Number(m[1]), minor: Number(m[2]) };
}

/** Auth headers: token (2.x "Token x"), or Basic user:password (1.x). Never logged. */
export function authHeaders(t: InfluxTarget, flavor?: InfluxFlavor): Record<string, string> {
  if (t.user || t.password) return { authorization: "Basic " + Buffer.from(`${t.user ?? ""}:${t.password ?? ""}`).toString("base64") };
  if (t.token) {
    // 1.x before 1.8 only understands user:password; a "user:password" token is the 1.8+ v1-compat form.
    if (flavor?.api === "v1" && t.token.includes(":")) return { authorization: "Basic " + Buffer.from(t.token).toString("base64") };
    return { authorization: `Token ${t.token}` };
  }
  return {};
}

export async function detectInflux(t: InfluxTarget, signal?: AbortSignal): Promise<InfluxFlavor> {
  let res: Response;
  try {
    res = await fetch(new URL("/ping", t.url), { headers: authHeaders(t), signal: signal ?? AbortSignal.timeout(5000) });
  } catch (e) {
    throw new InfluxError("unreachable", `InfluxDB at ${redact(t.url)} is unreachable: ${(e as Error).message}`, { cause: e });
  }
  let version = res.headers.get("x-influxdb-version") ?? "";
  if (!version && res.ok) {
    try {
      const j = (await res.json()) as { version?: string };
      version = j.version ?? "";
    } catch {
      /* no body */
    }
  } else {
    await res.arrayBuffer().catch(() => undefined);
  }
  if (!version) throw new InfluxError("no_version", `InfluxDB at ${redact(t.url)} answered /ping with HTTP ${res.status} and no version`);
  const { major, minor } = parseVersion(version);
  const api = major === 1 && minor < 8 ? "v1" : "v2";
  return { version, major, minor, api };
}

/** Creates the database (1.x, 1.8+, 3.x via InfluxQL) or the bucket (2.x) when missing. */
export async function ensureDatabase(t: InfluxTarget, f: InfluxFlavor): Promise<void> {
  const headers = authHeaders(t, f);
  if (f.major === 2) {
    const org = t.org ?? "";
    const q = new URL(`/api/v2/buckets?name=${encodeURIComponent(t.database)}${org ? `&org=${encodeURIComponent(org)}` : ""}`, t.url);
    const r = await fetch(q, { headers, signal: AbortSignal.timeout(5000) });
    if (r.ok) {
      const j = (await r.json()) as { buckets?: unknown[] };
      if (j.buckets && j.buckets.length > 0) return;
    } else await r.arrayBuffer();
    const orgs = await fetch(new URL(`/api/v2/orgs${org ? `?org=${encodeURIComponent(org)}` : ""}`, t.url), { headers, signal: AbortSignal.timeout(5000) });
    const oj = (await orgs.json()) as { orgs?: { id: string }[] };
    const orgID = oj.orgs?.[0]?.id;
    if (!orgID) throw new InfluxError("no_org", `InfluxDB 2.x: organisation ${org || "(default)"} not found, cannot create bucket ${t.database}`);
    const c = await fetch(new URL("/api/v2/buckets", t.url), { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ orgID, name: t.database, retentionRules: [] }), signal: AbortSignal.timeout(5000) });
    if (!c.ok && c.status !== 422) throw new InfluxError("create_bucket", `InfluxDB: cannot create bucket ${t.database}: HTTP ${c.status} ${await c.text()}`);
    return;
  }
  const body = new URLSearchParams({ q: `CREATE DATABASE "${t.database.replace(/"/g, '\\"')}"` });
  let r: Response;
  try {
    r = await fetch(new URL("/query", t.url), { method: "POST", headers: { ...headers, "content-type": "application/x-www-form-urlencoded" }, body, signal: AbortSignal.timeout(5000) });
  } catch (e) {
    throw new InfluxError("unreachable", `InfluxDB at ${redact(t.url)} is unreachable: ${(e as Error).message}`, { cause: e });
  }
  const text = await r.text();
  if (r.ok && !text.includes('"error"')) return;
  // A user that is not an admin (what it should be: WRITE on the database) may not create one;
  // the database made beforehand is all it needs, and SHOW DATABASES lists those it may use.
  if (r.status === 403 || /requires admin privilege/.test(text)) {
    const show = await fetch(new URL("/query", t.url), { method: "POST", headers: { ...headers, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ q: "SHOW DATABASES" }), signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    const listed = show?.ok ? ((await show.json()) as { results?: { series?: { values?: unknown[][] }[] }[] }).results?.[0]?.series?.[0]?.values?.some((v) => v[0] === t.database) : false;
    if (listed) return;
    throw new InfluxError("create_database", `InfluxDB: database ${t.database} does not exist (or ${t.user ?? "this user"} has no privilege on it) and this user may not create it: create it as an admin and GRANT WRITE ON "${t.database}" to the aggregator's user`);
  }
  throw new InfluxError("create_database", `InfluxDB: cannot create database ${t.database}: HTTP ${r.status} ${text.slice(0, 200)}`);
}

/** URL without credentials, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "***";
      u.password = "";
    }
    for (const k of ["p", "password", "token"]) if (u.searchParams.has(k)) u.searchParams.set(k, "***");
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
