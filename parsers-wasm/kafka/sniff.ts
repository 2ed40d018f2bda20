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
  if (n == size + 4) return 85;
  return n < size + 4 ? 65 : 50;
}
