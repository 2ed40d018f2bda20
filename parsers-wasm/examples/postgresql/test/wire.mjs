// Builders for PostgreSQL protocol 3.0 messages (https://www.postgresql.org/docs/current/protocol-message-formats.html),
// used by gen-vectors.mjs. Plain JavaScript so the vectors can be regenerated without a build.
export const B = (...parts) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Array.isArray(p) ? Buffer.from(p) : p)));
export const i16 = (v) => { const b = Buffer.alloc(2); b.writeInt16BE(v); return b; };
export const i32 = (v) => { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; };
export const cstr = (s) => B(s, [0]);
/** A typed message: type, length (counting itself), body. */
export const msg = (type, ...body) => { const b = B(...body); return B(type, i32(b.length + 4), b); };

// ---- frontend ----
export const startup = (params, version = 196608) => { const b = B(i32(version), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), [0]); return B(i32(b.length + 4), b); };
export const sslRequest = () => B(i32(8), i32(80877103));
export const gssencRequest = () => B(i32(8), i32(80877104));
export const cancelRequest = (pid, key) => B(i32(16), i32(80877102), i32(pid), i32(key));
export const query = (sql) => msg("Q", cstr(sql));
export const parse = (name, sql, types = []) => msg("P", cstr(name), cstr(sql), i16(types.length), ...types.map(i32));
export const bind = (portal, stmt, params = []) => msg("B", cstr(portal), cstr(stmt), i16(0), i16(params.length), ...params.map((p) => (p === null ? i32(-1) : B(i32(Buffer.byteLength(p)), p))), i16(0));
export const describe = (kind, name) => msg("D", kind, cstr(name));
export const execute = (portal, maxRows = 0) => msg("E", cstr(portal), i32(maxRows));
export const sync = () => msg("S");
export const flush = () => msg("H");
export const close = (kind, name) => msg("C", kind, cstr(name));
export const terminate = () => msg("X");
export const password = (pw) => msg("p", cstr(pw));
export const saslInitial = (mech, data) => msg("p", cstr(mech), i32(data.length), data);
export const saslResponse = (data) => msg("p", data);
export const copyData = (data) => msg("d", data);
export const copyDone = () => msg("c");
export const copyFail = (why) => msg("f", cstr(why));

// ---- backend ----
export const auth = (code, extra = Buffer.alloc(0)) => msg("R", i32(code), extra);
export const authOk = () => auth(0);
export const paramStatus = (k, v) => msg("S", cstr(k), cstr(v));
export const keyData = (pid, key) => msg("K", i32(pid), i32(key));
export const ready = (status = "I") => msg("Z", status);
export const rowDescription = (names) => msg("T", i16(names.length), ...names.map((n) => B(cstr(n), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0))));
export const dataRow = (values) => msg("D", i16(values.length), ...values.map((v) => (v === null ? i32(-1) : B(i32(Buffer.byteLength(v)), v))));
export const commandComplete = (tag) => msg("C", cstr(tag));
export const fields = (f) => B(...Object.entries(f).flatMap(([k, v]) => [k, cstr(v)]), [0]);
export const errorResponse = (f) => msg("E", fields(f));
export const noticeResponse = (f) => msg("N", fields(f));
export const emptyQuery = () => msg("I");
export const parseComplete = () => msg("1");
export const bindComplete = () => msg("2");
export const closeComplete = () => msg("3");
export const noData = () => msg("n");
export const paramDescription = (oids) => msg("t", i16(oids.length), ...oids.map(i32));
export const portalSuspended = () => msg("s");
export const copyInResponse = (cols) => msg("G", [0], i16(cols), ...Array.from({ length: cols }, () => i16(0)));
export const copyOutResponse = (cols) => msg("H", [0], i16(cols), ...Array.from({ length: cols }, () => i16(0)));
export const notification = (pid, channel, payload) => msg("A", i32(pid), cstr(channel), cstr(payload));
