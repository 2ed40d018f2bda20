// Resource normalization: keeps the `resource` tag low-cardinality before any series is created.
// Stateless per record; the per-segment collapse that needs a whole window lives in collapse.ts.

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const NUMBER = /^[+-]?\d+([.,]\d+)?$/;
const HEX = /^(0x)?[0-9a-f]{8,}$/i;
const HAS_DIGIT = /\d/;
const TOKEN_CHARS = /^[A-Za-z0-9_\-.~=+]+$/;

/** True when a path segment looks like an identifier rather than a route word. */
export function isIdSegment(seg: string): boolean {
  if (seg.length === 0) return false;
  if (NUMBER.test(seg)) return true;
  if (seg.length >= 32 && UUID.test(seg)) return true;
  if (HEX.test(seg) && HAS_DIGIT.test(seg)) return true;
  // Long tokens: base64/base62 ids, session ids, hashes. Route words rarely reach 20 characters
  // with digits in them; 32+ characters of token alphabet is an id whatever it contains.
  if (seg.length >= 20 && TOKEN_CHARS.test(seg) && HAS_DIGIT.test(seg)) return true;
  if (seg.length >= 32 && TOKEN_CHARS.test(seg)) return true;
  return false;
}

/**
 * Templates an HTTP path: drops the query and fragment, replaces identifier-like segments
 * (numbers, UUIDs, hex ids, long tokens) with `{id}`, and squeezes repeated slashes.
 *   /users/123/orders/9f86d081884c7d65?x=1  ->  /users/{id}/orders/{id}
 */
export function templatePath(path: string): string {
  let end = path.length;
  const q = path.indexOf("?");
  if (q >= 0) end = q;
  const h = path.indexOf("#");
  if (h >= 0 && h < end) end = h;
  let p = path.slice(0, end);
  // Absolute-form request targets (proxies): keep only the path.
  const scheme = p.indexOf("://");
  if (scheme > 0 && scheme < 10) {
    const slash = p.indexOf("/", scheme + 3);
    p = slash >= 0 ? p.slice(slash) : "/";
  }
  if (p.length === 0) return "/";
  const segs = p.split("/");
  let out = "";
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s.length === 0) continue;
    out += "/" + (isIdSegment(s) ? "{id}" : s);
  }
  if (out.length === 0) return "/";
  if (p.endsWith("/") && out !== "/") out += "/";
  return out.length > 256 ? out.slice(0, 256) + "…" : out;
}

/**
 * SQL fingerprint: comments removed, string/number/hex literals replaced with `?`, lists of `?`
 * in IN (...) and VALUES (...), (...) collapsed, whitespace squeezed. Lenient: never throws.
 *   SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'  ->  SELECT * FROM t WHERE id IN (?) AND name = ?
 */
export function sqlFingerprint(sql: string): string {
  let out = "";
  const n = Math.min(sql.length, 8192);
  let i = 0;
  let lastSpace = true;
  const push = (s: string) => {
    out += s;
    lastSpace = false;
  };
  while (i < n) {
    const c = sql[i]!;
    const d = sql[i + 1];
    if (c === "-" && d === "-") {
      while (i < n && sql[i] !== "\n") i++;
      continue;
    }
    if (c === "#") {
      while (i < n && sql[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && d === "*") {
      const e = sql.indexOf("*/", i + 2);
      i = e < 0 ? n : e + 2;
      if (!lastSpace) {
        out += " ";
        lastSpace = true;
      }
      continue;
    }
    if (c === "'" || c === '"') {
      // Double-quoted strings are identifiers in ANSI mode but literals in MySQL's default mode;
      // treat both as literals only when they follow an operator-ish context would be guessing,
      // so: single quotes are always literals, double quotes literals too (MySQL default).
      i++;
      while (i < n) {
        if (sql[i] === "\\") {
          i += 2;
          continue;
        }
        if (sql[i] === c) {
          if (sql[i + 1] === c) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
      push("?");
      continue;
    }
    if (c === "`") {
      const e = sql.indexOf("`", i + 1);
      const end = e < 0 ? n : e + 1;
      push(sql.slice(i, end));
      i = end;
      continue;
    }
    if (c >= "0" && c <= "9") {
      // A number only when it does not continue an identifier (t1, col2).
      const prev = out[out.length - 1];
      if (prev !== undefined && /[A-Za-z_$]/.test(prev)) {
        push(c);
        i++;
        continue;
      }
      let j = i + 1;
      if (c === "0" && (d === "x" || d === "X")) j = i + 2;
      while (j < n && /[0-9a-fA-F.eE]/.test(sql[j]!)) j++;
      push("?");
      i = j;
      continue;
    }
    if (c === " " || c === "\n" || c === "\t" || c === "\r") {
      if (!lastSpace) {
        out += " ";
        lastSpace = true;
      }
      i++;
      continue;
    }
    push(c);
    i++;
  }
  out = out.trim();
  // Negative numbers: "= -?" -> "= ?"
  out = out.replace(/([=<>(,]\s*)-\?/g, "$1?");
  // IN (?, ?, ?) -> IN (?)
  out = out.replace(/\(\s*\?(\s*,\s*\?)+\s*\)/g, "(?)");
  // VALUES (?), (?), (?) -> VALUES (?)
  out = out.replace(/(VALUES\s*)\(\?\)(\s*,\s*\(\?\))+/gi, "$1(?)");
  return out.length > 512 ? out.slice(0, 512) + "…" : out;
}

/** gRPC resource as /pkg.Service/Method. */
export function grpcResource(resource: string, service?: string, method?: string): string {
  if (resource) return resource.startsWith("/") ? resource : "/" + resource;
  if (service && method) return `/${service}/${method}`;
  return "/";
}

/** The fields of a record that normalization looks at (a subset of wirescope.v1.Record). */
export interface NormalizeInput {
  protocol: string;
  operation: string;
  resource: string;
  attr(name: string): string | undefined;
}

/**
 * Normalized (operation, resource) of a record by protocol. Unknown protocols keep their
 * operation and get their resource templated like a path (ids → {id}).
 */
export function normalize(r: NormalizeInput): { operation: string; resource: string } {
  const p = r.protocol.toLowerCase();
  switch (p) {
    case "http":
    case "http1":
    case "http2":
    case "https": {
      const path = r.resource || r.attr("url.path") || "/";
      return { operation: (r.operation || r.attr("http.request.method") || "").toUpperCase(), resource: templatePath(path) };
    }
    case "grpc":
      return { operation: r.operation || r.attr("rpc.method") || "", resource: grpcResource(r.resource, r.attr("rpc.service"), r.attr("rpc.method")) };
    case "mysql":
    case "postgres":
    case "postgresql":
    case "sql": {
      const text = r.resource || r.attr("db.query.text") || "";
      let op = r.operation || r.attr("db.operation.name") || "";
      const fp = sqlFingerprint(text);
      if (!op) op = (/^\s*([A-Za-z]+)/.exec(fp)?.[1] ?? "").toUpperCase();
      return { operation: op.toUpperCase(), resource: fp };
    }
    case "kafka":
      return { operation: r.operation || r.attr("messaging.operation.name") || "", resource: r.resource || r.attr("messaging.destination.name") || "" };
    case "redis":
      // Keys are unbounded: the command is the resource.
      return { operation: r.operation.toUpperCase(), resource: r.operation.toUpperCase() };
    default:
      return { operation: r.operation, resource: r.resource ? templatePath(r.resource) : "" };
  }
}

/** status_class tag: 1xx..5xx for HTTP, "ok"/"error" otherwise (the numeric code is in spans). */
/** Status classes by hundreds (one string each, not one per record). */
const HTTP_CLASSES = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

export function statusClass(protocol: string, status: bigint | number | undefined, error: boolean, incomplete: boolean): string {
  if (incomplete && status === undefined) return "incomplete";
  const p = protocol.toLowerCase();
  if ((p === "http" || p === "http1" || p === "http2" || p === "https") && status !== undefined) {
    const s = Number(status);
    if (s >= 100 && s < 600) return HTTP_CLASSES[Math.floor(s / 100)]!;
  }
  return error ? "error" : "ok";
}
