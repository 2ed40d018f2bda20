// Writes one MysqlTxn as a wirescope.v1.Record (NDJSON contract in docs/protocols.md):
//   operation = command (COM_QUERY, ..., LOGIN), resource = normalized statement (literals → ?),
//   status = error code or 0, error = ERR; attributes db.system, mysql.command, db.query.text
//   (masked when redacting), mysql.stmt_id, mysql.response, db.response.status_code, mysql.rows,
//   mysql.affected_rows, ...
import { Rec, normalizeSql, redacting } from "../common/index";
import { MysqlTxn, COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB, COM_FIELD_LIST } from "./types";

@inline function bytesPtr(b: StaticArray<u8>): usize {
  return changetype<usize>(b);
}

/** The statement's first keyword, upper-cased (db.operation.name), written as a string attribute. */
function operationName(p: usize, n: i32): void {
  let i = 0;
  while (i < n) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x28) {
      i++;
    } else if (c == 0x2f && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2a) {
      i += 2;
      while (i + 1 < n && !(load<u8>(p + <usize>i) == 0x2a && load<u8>(p + <usize>i + 1) == 0x2f)) i++;
      i += 2;
    } else break;
  }
  let j = i;
  while (j < n && j - i < 32) {
    const c = <u32>load<u8>(p + <usize>j) | 0x20;
    if (c - 0x61 < 26) j++;
    else break;
  }
  if (j == i) return;
  Rec.attrBegin("db.operation.name");
  for (let k = i; k < j; k++) {
    const c = <u32>load<u8>(p + <usize>k);
    Rec.putByte(c - 0x61 < 26 ? c - 0x20 : c);
  }
  Rec.attrEnd();
}

export function writeRecord(t: MysqlTxn, incomplete: bool): void {
  const redact = redacting();
  Rec.begin("mysql");
  Rec.startNs(t.startNs);
  Rec.durationNs(t.endNs - t.startNs);
  Rec.operation(t.command);
  const q = t.query;
  if (q !== null) {
    Rec.resourceBegin();
    normalizeSql(bytesPtr(q), q.length);
    Rec.strEnd();
  } else if (t.cmd == <i32>COM_INIT_DB && t.schema !== null) {
    Rec.resource(t.schema!);
  } else if (t.cmd == <i32>COM_FIELD_LIST && t.table !== null) {
    Rec.resource(t.table!);
  } else if (t.stmtId >= 0) {
    // a statement prepared before the capture started: named by its id, its text unknown
    Rec.resourceBegin();
    Rec.putStr("statement_id=");
    Rec.putInt(t.stmtId);
    Rec.strEnd();
  }
  const err = t.response == "ERR";
  const known = !incomplete && t.response.length > 0 && t.response != "SSL";
  const noResponse = !incomplete && t.response.length == 0; // COM_QUIT, COM_STMT_CLOSE, ...
  if (known) Rec.status(<i64>t.errorCode);
  else if (noResponse) Rec.status(0);
  Rec.error(err);
  Rec.requestBytes(t.reqBytes);
  Rec.responseBytes(t.respBytes);
  if (incomplete) Rec.incomplete();
  const tr = t.trace;
  if (tr !== null) Rec.trace(bytesPtr(tr), bytesPtr(tr) + 16, <u32>tr[24], "w3c");

  Rec.attrStr("db.system", "mysql");
  Rec.attrStr("mysql.command", t.command);
  if (q !== null) {
    if (t.cmd == <i32>COM_QUERY || t.cmd == <i32>COM_STMT_PREPARE || t.stmtId >= 0) {
      Rec.attrBegin("db.query.text");
      if (redact) normalizeSql(bytesPtr(q), q.length);
      else Rec.putRaw(bytesPtr(q), q.length);
      Rec.attrEnd();
    }
    operationName(bytesPtr(q), q.length);
  }
  if (t.stmtId >= 0) Rec.attrInt("mysql.stmt_id", t.stmtId);
  const names = t.attrNames;
  if (names !== null && names.length > 0) {
    Rec.listBegin("mysql.query_attributes");
    for (let i = 0; i < names.length; i++) Rec.listItemRaw(bytesPtr(names[i]), names[i].length);
    Rec.listEnd();
  }
  if (t.response.length > 0) Rec.attrStr("mysql.response", t.response);
  if (known) {
    Rec.attrBegin("db.response.status_code");
    Rec.putInt(<i64>t.errorCode);
    Rec.attrEnd();
  }
  if (err) {
    const s = t.sqlState;
    if (s !== null) Rec.attrStr("mysql.sqlstate", s);
    const m = t.errorMessage;
    if (m !== null) {
      Rec.attrBegin("mysql.error_message");
      if (redact) normalizeSql(bytesPtr(m), m.length);
      else Rec.putRaw(bytesPtr(m), m.length);
      Rec.attrEnd();
    }
  }
  if (t.response == "RESULT_SET") Rec.attrInt("mysql.rows", t.rows);
  if (t.affectedRows >= 0 && t.response == "OK") Rec.attrInt("mysql.affected_rows", t.affectedRows);
  if (t.insertId > 0 && t.response == "OK") Rec.attrInt("mysql.insert_id", t.insertId);
  if (t.columns >= 0) Rec.attrInt("mysql.columns", t.columns);
  if (t.params >= 0) Rec.attrInt("mysql.params", t.params);
  const schema = t.schema;
  if (schema !== null) Rec.attrStr("db.namespace", schema);
  const table = t.table;
  if (table !== null) Rec.attrStr("db.collection.name", table);
  const user = t.user;
  if (user !== null) Rec.attrStr("db.user", user);
  const plugin = t.authPlugin;
  if (plugin !== null && plugin.length > 0) Rec.attrStr("mysql.auth_plugin", plugin);
  const path = t.authPath;
  if (path !== null) Rec.attrStr("mysql.auth_path", path);
  if (t.authSwitch) Rec.attrBool("mysql.auth_switch", true);
  if (t.tls) Rec.attrBool("mysql.tls", true);
  const z = t.compression;
  if (z !== null) {
    Rec.attrBool("mysql.compressed", true);
    if (z.length > 0) Rec.attrStr("mysql.compression", z);
    if (t.compressedLost > 0) Rec.attrInt("mysql.compressed_lost", t.compressedLost);
  }
  const v = t.serverVersion;
  if (v !== null) Rec.attrStr("mysql.server_version", v);
  Rec.end();
}
