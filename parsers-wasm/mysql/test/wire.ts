// MySQL wire builders for vectors (gen-vectors.mjs) and benchmark traffic (traffic.ts), written
// from the protocol documentation: https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html

import zlib from "node:zlib";

type Part = Buffer | string | number[];
export const B = (...parts: Part[]): Buffer => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
export const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
/** Length-encoded integer. */
export const lenenc = (n: number): Buffer => (n < 251 ? Buffer.from([n]) : n < 65536 ? B([0xfc], u16(n)) : B([0xfd], [n & 255, (n >> 8) & 255, (n >> 16) & 255]));
/** Length-encoded string. */
export const lstr = (s: string): Buffer => {
  const b = Buffer.from(s, "utf8");
  return B(lenenc(b.length), b);
};
export const cstr = (s: string): Buffer => B(s, [0]);
/** packet: payload_length:u24le sequence_id:u8 payload */
export const pkt = (seq: number, payload: Buffer): Buffer => B([payload.length & 255, (payload.length >> 8) & 255, (payload.length >> 16) & 255, seq], payload);

export const CAPS = {
  LONG_PASSWORD: 1,
  FOUND_ROWS: 2,
  LONG_FLAG: 4,
  CONNECT_WITH_DB: 8,
  PROTOCOL_41: 0x200,
  SSL: 0x800,
  TRANSACTIONS: 0x2000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PLUGIN_AUTH: 0x80000,
  PLUGIN_AUTH_LENENC: 0x200000,
  COMPRESS: 0x20,
  DEPRECATE_EOF: 0x1000000,
  OPTIONAL_RESULTSET_METADATA: 0x2000000,
  ZSTD: 0x4000000,
  QUERY_ATTRIBUTES: 0x8000000,
};
export const BASE_CAPS =
  CAPS.LONG_PASSWORD | CAPS.FOUND_ROWS | CAPS.LONG_FLAG | CAPS.PROTOCOL_41 | CAPS.TRANSACTIONS | CAPS.SECURE_CONNECTION | CAPS.MULTI_STATEMENTS | CAPS.MULTI_RESULTS | CAPS.PLUGIN_AUTH | CAPS.PLUGIN_AUTH_LENENC;

/** Protocol-10 server greeting. */
export function greeting(version: string, caps: number, plugin: string): Buffer {
  const scramble = Buffer.alloc(20, 0x41);
  return B([10], cstr(version), u32(42), scramble.subarray(0, 8), [0], u16(caps & 0xffff), [0x21], u16(2), u16(caps >>> 16), [21], Buffer.alloc(10), scramble.subarray(8), [0], cstr(plugin));
}
/** HandshakeResponse41. */
export function login(caps: number, user: string, auth: Buffer, db: string | null, plugin: string): Buffer {
  return B(u32(caps | (db ? CAPS.CONNECT_WITH_DB : 0)), u32(16 << 20), [0x21], Buffer.alloc(23), cstr(user), lenenc(auth.length), auth, db ? cstr(db) : [], cstr(plugin));
}
export const ok = (affected = 0, insertId = 0, status = 2, header = 0x00): Buffer => B([header], lenenc(affected), lenenc(insertId), u16(status), u16(0));
export const eof = (status = 2): Buffer => B([0xfe], u16(0), u16(status));
export const err = (code: number, state: string, msg: string): Buffer => B([0xff], u16(code), "#", state, msg);
export const coldef = (name: string, table = "t"): Buffer => B(lstr("def"), lstr("shop"), lstr(table), lstr(table), lstr(name), lstr(name), [0x0c], u16(0x21), u32(64), [0xfd], u16(0), [0], u16(0));
export const textRow = (...vals: (string | number | null)[]): Buffer => B(...vals.map((v) => (v === null ? Buffer.from([0xfb]) : lstr(String(v)))));
/** Binary row of (INT, VARCHAR): header 0x00, null bitmap, values. */
export const binaryRow = (id: number, name: string): Buffer => B([0x00], [0x00], u32(id), lstr(name));

/** One binary-protocol parameter: a string (MYSQL_TYPE_STRING), an integer (LONGLONG) or NULL. */
export interface Param {
  name?: string;
  value: string | number | null;
}
const paramType = (v: Param["value"]): number => (typeof v === "number" ? 0x08 : v === null ? 0x06 : 0xfe);
const paramValue = (v: Param["value"]): Buffer => {
  if (v === null) return Buffer.alloc(0);
  if (typeof v === "number") {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    return b;
  }
  return lstr(v);
};
/** null bitmap (offset 0), new_params_bind_flag = 1, types [with names], values. */
export function paramBlock(params: Param[], named: boolean): Buffer {
  const bitmap = Buffer.alloc((params.length + 7) >> 3);
  params.forEach((p, i) => {
    if (p.value === null) bitmap[i >> 3]! |= 1 << (i & 7);
  });
  const types = params.map((p) => B(u16(paramType(p.value)), named ? lstr(p.name ?? "") : []));
  return B(bitmap, [1], ...types, ...params.map((p) => paramValue(p.value)));
}
/** COM_QUERY payload under CLIENT_QUERY_ATTRIBUTES: count, set count 1, the block, then the text. */
export function queryWithAttrs(sql: string, attrs: Param[]): Buffer {
  return B([3], lenenc(attrs.length), [1], attrs.length ? paramBlock(attrs, true) : [], sql);
}
/**
 * COM_STMT_EXECUTE payload. With `qa` (CLIENT_QUERY_ATTRIBUTES) the parameter count is sent
 * (flag PARAMETER_COUNT_AVAILABLE) and every parameter has a name (empty for positional ones).
 */
export function execute(id: number, params: Param[], qa: boolean, flags = 0): Buffer {
  const head = B([0x17], u32(id), [flags | (qa ? 0x08 : 0)], u32(1));
  if (qa) return B(head, lenenc(params.length), params.length ? paramBlock(params, true) : []);
  return params.length ? B(head, paramBlock(params, false)) : head;
}

const u24 = (n: number): Buffer => Buffer.from([n & 255, (n >> 8) & 255, (n >> 16) & 255]);
/**
 * Compressed-protocol packet: comp_len:u24 comp_seq:u8 uncomp_len:u24 payload. With `deflate` the
 * payload is a zlib stream of `inner` (uncomp_len = its length; level 0 makes stored blocks), else
 * `inner` as is (uncomp_len 0).
 */
export function cpkt(seq: number, inner: Buffer, deflate: boolean, level = 6): Buffer {
  const payload = deflate ? zlib.deflateSync(inner, { level }) : inner;
  return B(u24(payload.length), [seq], u24(deflate ? inner.length : 0), payload);
}
/** A compressed packet whose payload is a zstd frame standing for `inner` (magic 28 b5 2f fd; not a real frame). */
export function zstdPkt(seq: number, inner: Buffer): Buffer {
  const payload = B([0x28, 0xb5, 0x2f, 0xfd], Buffer.alloc(Math.max(8, inner.length >> 1), 0x11));
  return B(u24(payload.length), [seq], u24(inner.length), payload);
}
