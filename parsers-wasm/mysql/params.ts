// Binary parameter blocks: query attributes (MySQL 8.0.23+, CLIENT_QUERY_ATTRIBUTES) in COM_QUERY,
// and the parameters (plus attributes) of COM_STMT_EXECUTE.
// Spec: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query.html
//       https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
//
//   COM_QUERY (CLIENT_QUERY_ATTRIBUTES)
//     0x03 parameter_count:lenenc parameter_set_count:lenenc (always 1)
//          [if parameter_count > 0: null_bitmap:(n+7)/8 new_params_bind_flag:u8 (always 1)
//                                   (type:u16 name:lenenc-str) × n   values]
//          query text (to the end)
//   e.g. 03 01 01 00 01 fe00 01 61 01 31 "select @@version_comment limit 1"   (attribute a='1')
//
//   COM_STMT_EXECUTE
//     0x17 stmt_id:u32 flags:u8 iteration_count:u32
//          [if num_params (from PREPARE) > 0, or CLIENT_QUERY_ATTRIBUTES and flags & 0x08:
//             [CLIENT_QUERY_ATTRIBUTES: parameter_count:lenenc]   (num_params + attributes)
//             [if parameter_count > 0: null_bitmap new_params_bind_flag
//                                      [if bound: (type:u16 [name:lenenc-str if QA]) × n]  values]]
//
// Values are Binary Protocol Values: their length comes from the type (fixed 1/2/4/8 bytes, a
// length byte for temporal types, a lenenc string for the rest); NULL parameters (bit set in the
// bitmap, offset 0) have no value. Attribute names are never in the SQL text: the statement is
// what follows the block, and a block that does not parse leaves the statement unknown, never
// filled with the block's bytes.
import { Payload } from "./payload";
import { MysqlTxn } from "./types";

/** flags & PARAMETER_COUNT_AVAILABLE: parameter_count is sent (enum_cursor_type). */
export const PARAMETER_COUNT_AVAILABLE: u32 = 0x08;

const MYSQL_TYPE_NULL: u32 = 0x06;

/** Bytes of one binary value of `type` at p (reading its length prefix), or -1 when unknown. */
function valueLength(p: Payload, type: u32): i64 {
  switch (type) {
    case MYSQL_TYPE_NULL:
      return 0;
    case 0x01: // TINY
      return 1;
    case 0x02: // SHORT
    case 0x0d: // YEAR
      return 2;
    case 0x03: // LONG
    case 0x04: // FLOAT
    case 0x09: // INT24
      return 4;
    case 0x05: // DOUBLE
    case 0x08: // LONGLONG
      return 8;
    case 0x07: // TIMESTAMP
    case 0x0a: // DATE
    case 0x0b: // TIME
    case 0x0c: // DATETIME
    case 0x11: // TIMESTAMP2
    case 0x12: // DATETIME2
    case 0x13: // TIME2
      return <i64>p.u8();
    case 0x00: // DECIMAL
    case 0x0f: // VARCHAR
    case 0x10: // BIT
    case 0xf2: // VECTOR
    case 0xf5: // JSON
    case 0xf6: // NEWDECIMAL
    case 0xf7: // ENUM
    case 0xf8: // SET
    case 0xf9: // TINY_BLOB
    case 0xfa: // MEDIUM_BLOB
    case 0xfb: // LONG_BLOB
    case 0xfc: // BLOB
    case 0xfd: // VAR_STRING
    case 0xfe: // STRING
    case 0xff: // GEOMETRY
      return p.lenenc();
    default:
      return -1;
  }
}

@inline function isString(type: u32): bool {
  return type == 0x0f || type >= 0xf9;
}

/**
 * Reads a parameter block of `n` parameters at p (from the null bitmap on), leaving p just past
 * the values. With `named`, each type is followed by a name (CLIENT_QUERY_ATTRIBUTES): non-empty
 * names are added to t.attrNames, and a `traceparent` string value is kept in t.traceparent.
 * Returns false when the block is malformed or cut (p.ok is false then, or the types are not
 * sent: new_params_bind_flag 0 leaves the values unreadable).
 */
export function readParams(p: Payload, n: i64, named: bool, t: MysqlTxn | null): bool {
  if (n <= 0) return true;
  // every parameter takes at least 2 bytes of type: a count beyond the payload is not a block
  if (n > <i64>(p.left() >> 1)) return false;
  const count = <i32>n;
  const bitmap = p.pos;
  p.skip((count + 7) >> 3);
  if (p.u8() != 1 || !p.ok) return false;
  // types (and names) first, values after: walk both with two readers in step
  const types = p.pos;
  for (let i = 0; i < count; i++) {
    p.skip(2);
    if (named) p.skipLenencStr();
  }
  if (!p.ok) return false;
  const tp = new Payload(types, <i32>(p.pos - types));
  for (let i = 0; i < count; i++) {
    const type = tp.u16() & 0xff;
    let name: usize = 0;
    let nameLen: i32 = 0;
    if (named) {
      const l = tp.lenenc();
      if (l < 0 || l > <i64>tp.left()) return false;
      name = tp.pos;
      nameLen = <i32>l;
      tp.skip(nameLen);
      if (nameLen > 0 && t !== null) t.addAttrName(name, nameLen);
    }
    if ((load<u8>(bitmap + <usize>(i >> 3)) >> <u8>(i & 7)) & 1) continue; // NULL: no value
    const len = valueLength(p, type);
    if (len < 0 || len > <i64>p.left()) {
      p.ok = false;
      return false;
    }
    if (t !== null && nameLen == 11 && isString(type) && isTraceparent(name)) t.setTraceparent(p.pos, <i32>len);
    p.skip(<i32>len);
  }
  return p.ok;
}

function isTraceparent(p: usize): bool {
  // "traceparent": the W3C header's name, which MySQL connectors with OpenTelemetry support use
  // for the attribute that carries the caller's span
  return (
    load<u32>(p) == 0x63617274 /* "trac" */ && load<u32>(p, 4) == 0x72617065 /* "epar" */ &&
    load<u16>(p, 8) == 0x6e65 /* "en" */ && load<u8>(p, 10) == 0x74 /* "t" */
  );
}

/**
 * The COM_QUERY body after the command byte, under CLIENT_QUERY_ATTRIBUTES: reads the attribute
 * block and returns the offset of the query text in the body, or -1 when the block does not
 * parse (the text is then unknown). With t, attribute names and trace context go into it.
 */
export function queryTextOffset(body: usize, n: i32, t: MysqlTxn | null): i32 {
  const p = new Payload(body, n);
  const count = p.lenenc();
  const sets = p.lenenc();
  if (!p.ok || sets != 1) return -1;
  if (!readParams(p, count, true, t)) return -1;
  return <i32>(p.pos - body);
}

/**
 * Whether a COM_QUERY body starts with an attribute block rather than SQL text, for connections
 * whose capabilities were not seen. SQL text never has 0x01 as its second byte, while an
 * attribute block always has parameter_set_count = 1 there (or after a 0xfc two-byte count).
 */
export function looksLikeAttributes(body: usize, n: i32): bool {
  if (n < 2) return false;
  const b0 = <u32>load<u8>(body);
  if (b0 < 0xfb) return load<u8>(body, 1) == 1;
  return b0 == 0xfc && n >= 4 && load<u8>(body, 3) == 1;
}
