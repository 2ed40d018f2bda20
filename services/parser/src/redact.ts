// Host-side redaction, applied to a plugin's record bytes before anything leaves the parser.
// Plugins already redact when configured with the redact flag (docs/plugin-abi.md); this is the
// second line: header names the operator adds (--redact-header), SQL literals in db.query.text
// (idempotent on already-masked text), and attributes that would carry a message body.
//
// Most records contain none of these, so a byte search decides first; only records that match
// are decoded, changed and re-encoded.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordSchema } from "@wirescope/wire";
import { DEFAULT_REDACTED_HEADERS, MASK } from "@wirescope/runtime/redact";

// The header list and the mask are shared with the probe's command-line redaction.
export { DEFAULT_REDACTED_HEADERS, MASK };

export interface RedactionPolicy {
  /** Lower-case header names whose values are masked. */
  headers: Set<string>;
  /** Protocols for which redaction is off (debugging). */
  disabledFor: Set<string>;
}

export function redactionPolicy(extraHeaders: readonly string[] = [], disabledFor: readonly string[] = []): RedactionPolicy {
  return {
    headers: new Set([...DEFAULT_REDACTED_HEADERS, ...extraHeaders.map((h) => h.trim().toLowerCase()).filter(Boolean)]),
    disabledFor: new Set(disabledFor),
  };
}

const HEADER_PREFIXES = ["http.request.header.", "http.response.header.", "rpc.grpc.request.metadata.", "rpc.grpc.response.metadata."];

/**
 * Returns the record bytes with secrets masked (the same array when nothing matched).
 * Returns undefined when the bytes cannot be decoded (the caller counts a drop). The caller
 * skips records whose attribute keys need nothing (readHead's `sensitive`).
 */
export function redactRecord(bytes: Uint8Array, policy: RedactionPolicy): Uint8Array | undefined {
  let rec;
  try {
    rec = fromBinary(RecordSchema, bytes);
  } catch {
    return undefined;
  }
  let changed = false;
  for (const [key, val] of Object.entries(rec.attributes)) {
    const lk = key.toLowerCase();
    if (lk === "db.query.text" && val.value.case === "stringValue") {
      const masked = maskSqlLiterals(val.value.value);
      if (masked !== val.value.value) {
        val.value.value = masked;
        changed = true;
      }
      continue;
    }
    if (/(^|\.)body$/.test(lk)) {
      delete rec.attributes[key];
      changed = true;
      continue;
    }
    const prefix = HEADER_PREFIXES.find((p) => lk.startsWith(p));
    if (prefix && policy.headers.has(lk.slice(prefix.length).replace(/_/g, "-"))) {
      if (val.value.case === "stringList") val.value.value.values = val.value.value.values.map(() => MASK);
      else val.value = { case: "stringValue", value: MASK };
      changed = true;
    }
  }
  return changed ? toBinary(RecordSchema, rec) : bytes;
}

/**
 * Replaces SQL literals with `?`: quoted strings ('…', "…", with doubled-quote and backslash
 * escapes), hex/binary literals and numbers that are not part of an identifier. Backquoted
 * identifiers are kept.
 */
export function maskSqlLiterals(sql: string): string {
  let out = "";
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "`") {
      const j = sql.indexOf("`", i + 1);
      const end = j < 0 ? n : j + 1;
      out += sql.slice(i, end);
      i = end;
    } else if (c === "'" || c === '"') {
      i++;
      while (i < n) {
        const d = sql[i]!;
        if (d === "\\") i += 2;
        else if (d === c && sql[i + 1] === c) i += 2;
        else if (d === c) {
          i++;
          break;
        } else i++;
      }
      out += "?";
    } else if (/[0-9]/.test(c) && !/[A-Za-z0-9_$.]/.test(sql[i - 1] ?? " ")) {
      let j = i;
      if ((c === "0" && /[xXbB]/.test(sql[i + 1] ?? "")) || false) j += 2;
      while (j < n && /[0-9A-Fa-f.eE_]/.test(sql[j]!)) {
        if (/[eE]/.test(sql[j]!) && /[+-]/.test(sql[j + 1] ?? "")) j++;
        j++;
      }
      if (j < n && /[A-Za-z_$]/.test(sql[j]!)) {
        // an identifier that starts with digits (legal in MySQL): keep it
        out += sql.slice(i, j);
      } else out += "?";
      i = j;
    } else if ((c === "x" || c === "X" || c === "b" || c === "B") && sql[i + 1] === "'" && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? " ")) {
      const j = sql.indexOf("'", i + 2);
      i = j < 0 ? n : j + 1;
      out += "?";
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
