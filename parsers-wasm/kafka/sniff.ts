// Detection from the first bytes of one direction.
//
//   request   size:int32 api_key:int16 api_version:int16 correlation_id:int32 client_id:string ...
//   response  size:int32 correlation_id:int32 ...
//
// A request header is distinctive: a known api key, a small version, and a client id whose
// length fits inside the message. Responses carry too little to claim a connection by
// themselves (a weak hint only). Ports are hints: detection is by content.
import { MAX_KNOWN_API_KEY } from "./types";

@inline function be16(p: usize): i32 {
  return <i32>(<i16>bswap<u16>(load<u16>(p)));
}
@inline function be32(p: usize): i32 {
  return <i32>bswap<u32>(load<u32>(p));
}

/** Largest request we consider plausible when detecting (Produce batches can be large). */
const MAX_REQUEST: i32 = 100 << 20;

export function detect(dir: i32, p: usize, n: i32): i32 {
  if (n < 4) {
    // a size's top byte is 0 for any message under 16 MiB
    return load<u8>(p) == 0 ? 5 : 0;
  }
  const size = be32(p);
  if (dir == 1) {
    if (size < 4 || size > (256 << 20)) return 0;
    return n == size + 4 ? 20 : 10;
  }
  if (size < 10 || size > MAX_REQUEST) return 0;
  if (n < 8) return 10;
  const key = be16(p + 4);
  const version = be16(p + 6);
  if (key < 0 || key > MAX_KNOWN_API_KEY || version < 0 || version > 20) return 0;
  if (n < 14) return 30;
  const idLen = be16(p + 12);
  if (idLen < -1 || idLen > size - 10) return 0;
  // client ids are printable
  const end = 14 + (idLen > 0 ? idLen : 0);
  for (let i = 14; i < end && i < n; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c < 0x20 || c > 0x7e) return 0;
  }
  // A response with a small correlation id reads as a Produce request header (api key 0,
  // version = the id): check the start of a Produce body too, when it is there.
  if (key == 0 && !produceBody(p, n, size, version, 14 + (idLen > 0 ? idLen : 0))) return 0;
  if (n == size + 4) return 85;
  return n < size + 4 ? 65 : 50;
}

/**
 * The start of a Produce request body at `off`: transactional_id (v3+; a nullable string, or a
 * compact one after the header's tagged fields from v9) then acks, which is -1, 0 or 1. True
 * when what is there fits (or is not there yet).
 */
function produceBody(p: usize, n: i32, size: i32, version: i32, off: i32): bool {
  let o = off;
  if (version >= 9) {
    // header tagged fields: a count, then (tag, size, data) each; then a compact nullable string
    let count = uvar(p, n, o);
    if (count < 0) return true;
    o = varEnd;
    if (count > 16) return false;
    for (; count > 0; count--) {
      if (uvar(p, n, o) < 0) return true;
      const sz = uvar(p, n, varEnd);
      if (sz < 0) return true;
      o = varEnd + sz;
      if (o > size + 4) return false;
    }
    const l = uvar(p, n, o);
    if (l < 0) return true;
    o = varEnd + (l > 0 ? l - 1 : 0);
    if (o > size + 4) return false;
  } else if (version >= 3) {
    if (o + 2 > n) return true;
    const l = be16(p + <usize>o);
    if (l < -1 || o + 2 + l > size + 4) return false;
    o += 2 + (l > 0 ? l : 0);
  }
  if (o + 2 > n) return true;
  const acks = be16(p + <usize>o);
  return acks >= -1 && acks <= 1;
}

let varEnd: i32 = 0;

/** An unsigned varint of at most 4 bytes at p[o..n): its value (end in varEnd), or -1 when cut or too long. */
function uvar(p: usize, n: i32, o: i32): i32 {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    if (o + k >= n) return -1;
    const b = <i32>load<u8>(p + <usize>(o + k));
    v |= (b & 0x7f) << (7 * k);
    if ((b & 0x80) == 0) {
      varEnd = o + k + 1;
      return v;
    }
  }
  return -1;
}
