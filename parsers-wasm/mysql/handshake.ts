// Connection phase: server greeting, the client's handshake response (or SSL request), and the
// authentication exchange that follows.
//
//   greeting (server, seq 0)   0x0a version\0 thread_id:u32 auth1:8 0x00 caps_lo:u16 charset:u8
//                              status:u16 caps_hi:u16 auth_len:u8 reserved:10 auth2 plugin\0
//   response (client, seq 1)   caps:u32 max_packet:u32 charset:u8 filler:23 user\0 auth db\0
//                              plugin\0 attrs                                (CLIENT_PROTOCOL_41)
//                              caps:u16 max_packet:u24 user\0 auth                  (pre-4.1)
//   SSL request (client)       the first 32 bytes of a 4.1 response with CLIENT_SSL, nothing else
//   auth switch (server)       0xfe plugin\0 data
//   auth more data (server)    0x01 data   (caching_sha2_password: 0x03 fast ok, 0x04 full auth)
import { Payload } from "./payload";
import {
  CLIENT_CONNECT_WITH_DB,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SSL,
  MysqlTxn,
} from "./types";

export class Greeting {
  version: string = "";
  caps: u32 = 0;
  plugin: string | null = null;
}

/** Parses a protocol-10 greeting; null when the payload is not one. */
export function readGreeting(ptr: usize, len: i32): Greeting | null {
  const p = new Payload(ptr, len);
  if (p.u8() != 10) return null;
  const g = new Greeting();
  g.version = p.cstr();
  p.skip(4 + 8 + 1); // thread id, auth data part 1, filler
  let caps = p.u16();
  if (p.left() > 0) {
    p.skip(1 + 2); // charset, status
    caps |= p.u16() << 16;
    const authLen = <i32>p.u8();
    p.skip(10);
    if (caps & CLIENT_SECURE_CONNECTION) p.skip(max(13, authLen - 8));
    if (caps & CLIENT_PLUGIN_AUTH && p.left() > 0) g.plugin = p.cstr();
  }
  if (!p.ok && g.version.length == 0) return null;
  g.caps = caps;
  return g;
}

export class LoginRequest {
  caps: u32 = 0;
  ssl: bool = false;
  user: string = "";
  schema: string | null = null;
  plugin: string | null = null;
}

/** Parses the client's handshake response (or SSL request). */
export function readLogin(ptr: usize, len: i32): LoginRequest {
  const p = new Payload(ptr, len);
  const l = new LoginRequest();
  const lo = p.u16();
  if ((lo & CLIENT_PROTOCOL_41) == 0) {
    // pre-4.1: caps:u16 max_packet:u24 user\0 ...
    l.caps = lo;
    p.skip(3);
    l.user = p.cstr();
    return l;
  }
  l.caps = lo | (p.u16() << 16);
  p.skip(4 + 1 + 23);
  if ((l.caps & CLIENT_SSL) != 0 && len <= 32) {
    l.ssl = true;
    return l;
  }
  l.user = p.cstr();
  if (l.caps & CLIENT_PLUGIN_AUTH_LENENC_DATA) {
    p.skipLenencStr();
  } else if (l.caps & CLIENT_SECURE_CONNECTION) {
    p.skip(<i32>p.u8());
  } else {
    p.cstr();
  }
  if (l.caps & CLIENT_CONNECT_WITH_DB && p.left() > 0) {
    const db = p.cstr();
    if (db.length > 0) l.schema = db;
  }
  if (l.caps & CLIENT_PLUGIN_AUTH && p.left() > 0) l.plugin = p.cstr();
  return l;
}

/** COM_CHANGE_USER: 0x11 user\0 auth(len:u8 or \0) schema\0 [charset:u16 plugin\0 attrs]. */
export function readChangeUser(ptr: usize, len: i32, caps: u32, t: MysqlTxn): void {
  const p = new Payload(ptr, len);
  p.u8();
  t.user = p.cstr();
  if (caps & CLIENT_SECURE_CONNECTION || caps == 0) p.skip(<i32>p.u8());
  else p.cstr();
  const db = p.cstr();
  if (db.length > 0) t.schema = db;
  if (p.left() >= 2) {
    p.skip(2);
    if (p.left() > 0) {
      const plugin = p.cstr();
      if (plugin.length > 0) t.authPlugin = plugin;
    }
  }
}

/** Auth switch request (0xfe plugin\0 data): the plugin the server asks for. */
export function readAuthSwitch(ptr: usize, len: i32, t: MysqlTxn): void {
  const p = new Payload(ptr, len);
  p.u8();
  t.authSwitch = true;
  t.authPlugin = len > 1 ? p.cstr() : "mysql_old_password";
}

/** Auth more data (0x01 ...): caching_sha2_password says 0x03 (fast path ok) or 0x04 (full). */
export function readAuthMoreData(ptr: usize, len: i32, t: MysqlTxn): void {
  if (len != 2) return; // e.g. a public key (sha256_password / full path without TLS)
  const b = load<u8>(ptr + 1);
  if (b == 3) t.authPath = "fast";
  else if (b == 4) t.authPath = "full";
}
