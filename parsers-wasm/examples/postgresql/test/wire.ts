// Builders for PostgreSQL protocol 3.0 messages (https://www.postgresql.org/docs/current/protocol-message-formats.html),
// used by gen-vectors.mjs (through the compiled copy in parsers-wasm/dist) and traffic.ts.
type Part = string | number[] | Buffer;
export const B = (...parts: Part[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Array.isArray(p) ? Buffer.from(p) : p)));
export const i16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};
export const i32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};
export const cstr = (s: string): Buffer => B(s, [0]);
/** A typed message: type, length (counting itself), body. */
export const msg = (type: string, ...body: Part[]): Buffer => {
  const b = B(...body);
  return B(type, i32(b.length + 4), b);
};

// ---- frontend ----
export const startup = (params: Record<string, string>, version = 196608): Buffer => { const b = B(i32(version), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), [0]); return B(i32(b.length + 4), b); };
export const sslRequest = (): Buffer => B(i32(8), i32(80877103));
export const gssencRequest = (): Buffer => B(i32(8), i32(80877104));
export const cancelRequest = (pid: number, key: number): Buffer => B(i32(16), i32(80877102), i32(pid), i32(key));
export const query = (sql: string): Buffer => msg("Q", cstr(sql));
export const parse = (name: string, sql: string, types: number[] = []): Buffer => msg("P", cstr(name), cstr(sql), i16(types.length), ...types.map(i32));
export const bind = (portal: string, stmt: string, params: (string | null)[] = []): Buffer => msg("B", cstr(portal), cstr(stmt), i16(0), i16(params.length), ...params.map((p) => (p === null ? i32(-1) : B(i32(Buffer.byteLength(p)), p))), i16(0));
export const describe = (kind: "S" | "P", name: string): Buffer => msg("D", kind, cstr(name));
export const execute = (portal: string, maxRows = 0): Buffer => msg("E", cstr(portal), i32(maxRows));
export const sync = (): Buffer => msg("S");
export const flush = (): Buffer => msg("H");
export const close = (kind: "S" | "P", name: string): Buffer => msg("C", kind, cstr(name));
export const terminate = (): Buffer => msg("X");
export const password = (pw: string): Buffer => msg("p", cstr(pw));
export const saslInitial = (mech: string, data: Buffer): Buffer => msg("p", cstr(mech), i32(data.length), data);
export const saslResponse = (data: Buffer): Buffer => msg("p", data);
export const copyData = (data: Buffer): Buffer => msg("d", data);
export const copyDone = (): Buffer => msg("c");
export const copyFail = (why: string): Buffer => msg("f", cstr(why));

// ---- backend ----
export const auth = (code: number, extra: Buffer = Buffer.alloc(0)): Buffer => msg("R", i32(code), extra);
export const authOk = (): Buffer => auth(0);
export const paramStatus = (k: string, v: string): Buffer => msg("S", cstr(k), cstr(v));
export const keyData = (pid: number, key: number): Buffer => msg("K", i32(pid), i32(key));
export const ready = (status = "I"): Buffer => msg("Z", status);
export const rowDescription = (names: string[]): Buffer => msg("T", i16(names.length), ...names.map((n) => B(cstr(n), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0))));
export const dataRow = (values: (string | null)[]): Buffer => msg("D", i16(values.length), ...values.map((v) => (v === null ? i32(-1) : B(i32(Buffer.byteLength(v)), v))));
export const commandComplete = (tag: string): Buffer => msg("C", cstr(tag));
export const fields = (f: Record<string, string>): Buffer => B(...Object.entries(f).flatMap(([k, v]) => [k, cstr(v)]), [0]);
export const errorResponse = (f: Record<string, string>): Buffer => msg("E", fields(f));
export const noticeResponse = (f: Record<string, string>): Buffer => msg("N", fields(f));
export const emptyQuery = (): Buffer => msg("I");
export const parseComplete = (): Buffer => msg("1");
export const bindComplete = (): Buffer => msg("2");
export const closeComplete = (): Buffer => msg("3");
export const noData = (): Buffer => msg("n");
export const paramDescription = (oids: number[]): Buffer => msg("t", i16(oids.length), ...oids.map(i32));
export const portalSuspended = (): Buffer => msg("s");
export const copyInResponse = (cols: number): Buffer => msg("G", [0], i16(cols), ...Array.from({ length: cols }, () => i16(0)));
export const copyOutResponse = (cols: number): Buffer => msg("H", [0], i16(cols), ...Array.from({ length: cols }, () => i16(0)));
export const notification = (pid: number, channel: string, payload: string): Buffer => msg("A", i32(pid), cstr(channel), cstr(payload));
