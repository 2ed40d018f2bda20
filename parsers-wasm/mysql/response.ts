// Generic server packets: OK, ERR and EOF.
//
//   OK   0x00 (or 0xfe as the result-set terminator under CLIENT_DEPRECATE_EOF)
//        affected_rows:lenenc last_insert_id:lenenc status:u16 warnings:u16 [info]
//   ERR  0xff code:u16 ['#' sqlstate:5] message
//   EOF  0xfe warnings:u16 status:u16          (payload length 5; < 9 in every case)
import { Payload } from "./payload";
import { MysqlTxn } from "./types";

export const PKT_OK: u32 = 0x00;
export const PKT_EOF: u32 = 0xfe;
export const PKT_ERR: u32 = 0xff;
export const PKT_INFILE: u32 = 0xfb;

/**
 * A 0xfe packet ends a row stream: an EOF (payload < 9) or, under CLIENT_DEPRECATE_EOF, an OK
 * with a 0xfe header. A text row can start with 0xfe only as the 8-byte length prefix of a value
 * of 16 MiB or more, so its packet is always full-size (0xffffff).
 */
@inline export function isTerminator(first: u32, len: i32): bool {
  return first == PKT_EOF && len < 0xffffff;
}

/** Reads an ERR payload into t (response "ERR"). */
export function readErr(p: Payload, t: MysqlTxn): void {
  p.u8(); // 0xff
  t.response = "ERR";
  t.errorCode = <i32>p.u16();
  if (p.left() >= 6 && load<u8>(p.pos) == 0x23 /* '#' */) {
    p.skip(1);
    t.sqlState = p.fixed(5);
  }
  let n = p.left();
  if (n > 1024) n = 1024;
  const m = new StaticArray<u8>(n);
  memory.copy(changetype<usize>(m), p.pos, <usize>n);
  t.errorMessage = m;
}

/** Reads an OK payload (header 0x00 or 0xfe) and returns its status flags. */
export function readOk(p: Payload, t: MysqlTxn): u32 {
  p.u8();
  const affected = p.lenenc();
  const insertId = p.lenenc();
  const status = p.u16();
  if (p.ok) {
    t.affectedRows = affected;
    t.insertId = insertId;
  }
  return status;
}

/** Status flags of an EOF (5 bytes) or deprecate-EOF OK terminator. */
export function terminatorStatus(p: Payload, len: i32, t: MysqlTxn): u32 {
  if (len == 5) {
    p.u8();
    p.u16(); // warnings
    return p.u16();
  }
  const save = t.affectedRows;
  const status = readOk(p, t);
  if (t.response == "RESULT_SET") t.affectedRows = save; // rows, not affected rows, for a result set
  return status;
}
