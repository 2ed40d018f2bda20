// One answered (or abandoned) Item → one wirescope.v1.Record (fields in README.md and
// docs/protocols.md "PostgreSQL").
import { Rec, redacting, normalizeSql } from "../../common/index";
import { Item, K_LOGIN, K_CANCEL } from "./item";
import { normalizePg, firstKeyword } from "./sql";
import { F_QUERY, F_PARSE, F_EXECUTE, F_FUNCTION_CALL, F_SYNC, F_DESCRIBE, F_CLOSE, F_BIND } from "./types";

@inline function ptr(b: ArrayBuffer): usize {
  return changetype<usize>(b);
}

function putUpper(p: usize, n: i32): void {
  for (let k = 0; k < n; k++) {
    const c = <u32>load<u8>(p + <usize>k);
    Rec.putByte(c - 0x61 < 26 ? c - 0x20 : c);
  }
}

function messageName(kind: u32): string {
  switch (kind) {
    case F_QUERY: return "Query";
    case F_PARSE: return "Parse";
    case F_BIND: return "Bind";
    case F_EXECUTE: return "Execute";
    case F_DESCRIBE: return "Describe";
    case F_CLOSE: return "Close";
    case F_SYNC: return "Sync";
    case F_FUNCTION_CALL: return "FunctionCall";
    case K_LOGIN: return "StartupMessage";
    case K_CANCEL: return "CancelRequest";
  }
  return "Other";
}

/** Operation of a record without statement text or command tag. */
function fallbackOperation(kind: u32): string {
  switch (kind) {
    case F_FUNCTION_CALL: return "FUNCTION_CALL";
    case F_EXECUTE: return "EXECUTE";
    case F_PARSE: return "PREPARE";
    case F_BIND: return "BIND";
    case F_DESCRIBE: return "DESCRIBE";
    case F_CLOSE: return "CLOSE";
    case F_SYNC: return "SYNC";
  }
  return "QUERY";
}

/** Writes `it` as a record; `endNs` < 0 and `incomplete` when no response was seen. */
export function writeItem(it: Item, endNs: i64, respBytes: i64, incomplete: bool): void {
  const text = it.text;
  Rec.begin("postgresql");
  Rec.startNs(it.startNs);
  if (!incomplete) Rec.durationNs(endNs - it.startNs);
  // operation: the statement's first keyword; without a statement, the command tag's first
  // word (a statement prepared before the capture), or what the message was.
  let kwAt = 0;
  let kwN = 0;
  if (text !== null) {
    const k = firstKeyword(ptr(text), text.byteLength);
    kwAt = k & 0xffffff;
    kwN = k >>> 24;
  }
  const tag = it.tag;
  if (it.kind == K_LOGIN) Rec.operation("LOGIN");
  else if (it.kind == K_CANCEL) Rec.operation("CANCEL");
  else if (kwN > 0) {
    Rec.operationBegin();
    putUpper(ptr(text!) + <usize>kwAt, kwN);
    Rec.strEnd();
  } else if (tag !== null && tag.byteLength > 0) {
    let w = 0;
    while (w < tag.byteLength && load<u8>(ptr(tag) + <usize>w) != 0x20) w++;
    Rec.operationRaw(ptr(tag), w);
  } else Rec.operation(fallbackOperation(it.kind));
  if (text !== null) {
    Rec.resourceBegin();
    normalizePg(ptr(text), text.byteLength);
    Rec.strEnd();
  }
  // a login that switched to TLS has no outcome we can see
  const noStatus = incomplete || it.tls;
  if (!noStatus) Rec.status(it.error ? 1 : 0);
  Rec.error(it.error);
  Rec.requestBytes(it.reqBytes);
  if (!incomplete) Rec.responseBytes(respBytes);
  if (incomplete) Rec.incomplete();

  Rec.attrStr("db.system", "postgresql");
  Rec.attrStr("db.system.name", "postgresql");
  Rec.attrStr("postgresql.message", messageName(it.kind));
  if (text !== null) {
    Rec.attrBegin("db.query.text");
    if (redacting()) normalizePg(ptr(text), text.byteLength);
    else Rec.putRaw(ptr(text), text.byteLength);
    Rec.attrEnd();
  }
  if (kwN > 0) {
    Rec.attrBegin("db.operation.name");
    putUpper(ptr(text!) + <usize>kwAt, kwN);
    Rec.attrEnd();
  }
  if (it.stmtName.length > 0) Rec.attrStr("db.query.prepared_statement", it.stmtName);
  if (it.portalName.length > 0) Rec.attrStr("postgresql.portal", it.portalName);
  if (it.unknownStmt) Rec.attrBool("postgresql.statement_unknown", true);
  if (!noStatus) {
    const code = it.sqlstate;
    if (it.error && code !== null) Rec.attrRaw("db.response.status_code", ptr(code), code.byteLength);
    else if (!it.error) Rec.attrStr("db.response.status_code", "00000");
  }
  if (it.error) {
    const sev = it.severity;
    if (sev !== null) Rec.attrRaw("postgresql.severity", ptr(sev), sev.byteLength);
    const m = it.message;
    if (m !== null) {
      Rec.attrBegin("postgresql.error_message");
      // messages quote values in double quotes ('invalid input syntax for type integer: "abc"'):
      // the shared rule, which masks them, is the right one here
      if (redacting()) normalizeSql(ptr(m), m.byteLength);
      else Rec.putRaw(ptr(m), m.byteLength);
      Rec.attrEnd();
    }
  }
  if (tag !== null) Rec.attrRaw("postgresql.command_tag", ptr(tag), tag.byteLength);
  if (it.rows >= 0) Rec.attrInt("postgresql.rows", it.rows);
  if (it.statements > 1) Rec.attrInt("postgresql.statements", it.statements);
  if (it.notices > 0) {
    Rec.attrInt("postgresql.notices", it.notices);
    const nc = it.noticeCode;
    if (nc !== null) Rec.attrRaw("postgresql.notice_code", ptr(nc), nc.byteLength);
  }
  if (it.copy != 0) Rec.attrStr("postgresql.copy", it.copy == 0x69 ? "in" : it.copy == 0x6f ? "out" : "both");
  if (it.suspended) Rec.attrBool("postgresql.portal_suspended", true);
  if (it.emptyQuery) Rec.attrBool("postgresql.empty_query", true);
  if (it.kind == K_LOGIN) {
    const u = it.user;
    if (u !== null) Rec.attrRaw("db.user", ptr(u), u.byteLength);
    const d = it.database;
    if (d !== null) Rec.attrRaw("db.namespace", ptr(d), d.byteLength);
    const a = it.application;
    if (a !== null) Rec.attrRaw("postgresql.application_name", ptr(a), a.byteLength);
    if (it.authMethod.length > 0) Rec.attrStr("postgresql.auth_method", it.authMethod);
    if (it.sslRefused) Rec.attrBool("postgresql.ssl_refused", true);
    if (it.gssRefused) Rec.attrBool("postgresql.gssenc_refused", true);
    if (it.tls) Rec.attrBool("postgresql.tls", true);
    const v = it.serverVersion;
    if (v !== null) Rec.attrRaw("postgresql.server_version", ptr(v), v.byteLength);
  }
  if (it.backendPid >= 0) Rec.attrInt("postgresql.backend_pid", it.backendPid);
  Rec.end();
}
