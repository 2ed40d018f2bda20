// Header names the HTTP/2 decoder cares about, identified once (when a literal name is read or a
// dynamic-table entry is inserted) so that decoding an indexed field is a table lookup.

export const H_OTHER: i32 = 0;
export const H_METHOD: i32 = 1;
export const H_PATH: i32 = 2;
export const H_AUTHORITY: i32 = 3;
export const H_SCHEME: i32 = 4;
export const H_STATUS: i32 = 5;
export const H_CONTENT_TYPE: i32 = 6;
export const H_GRPC_STATUS: i32 = 7;
export const H_GRPC_MESSAGE: i32 = 8;
export const H_TRACEPARENT: i32 = 9;
export const H_B3: i32 = 10;
export const H_B3_TRACEID: i32 = 11;
export const H_B3_SPANID: i32 = 12;
export const H_B3_SAMPLED: i32 = 13;
export const H_HOST: i32 = 14;
/** Names whose values are worth keeping: ids 1..H_KEEP_MAX. */
export const H_KEEP_MAX: i32 = 14;
/** A field whose name (and value) cannot be known: a dynamic-table reference we never saw. */
export const H_UNKNOWN: i32 = -1;

@inline function eq(p: usize, len: i32, s: string): bool {
  // s is ASCII; compare code units to bytes without allocating.
  if (len != s.length) return false;
  for (let i = 0; i < len; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>s.charCodeAt(i)) return false;
  }
  return true;
}

/** Identifies a header name (lowercase, as HTTP/2 requires; uppercase names are not matched). */
export function nameId(p: usize, len: i32): i32 {
  if (len < 2) return H_OTHER;
  const c0 = load<u8>(p);
  if (c0 == 0x3a /* : */) {
    switch (len) {
      case 5: return eq(p, len, ":path") ? H_PATH : H_OTHER;
      case 7:
        if (eq(p, len, ":method")) return H_METHOD;
        if (eq(p, len, ":scheme")) return H_SCHEME;
        if (eq(p, len, ":status")) return H_STATUS;
        return H_OTHER;
      case 10: return eq(p, len, ":authority") ? H_AUTHORITY : H_OTHER;
    }
    return H_OTHER;
  }
  switch (len) {
    case 2: return eq(p, len, "b3") ? H_B3 : H_OTHER;
    case 4: return eq(p, len, "host") ? H_HOST : H_OTHER;
    case 11:
      if (eq(p, len, "grpc-status")) return H_GRPC_STATUS;
      if (eq(p, len, "traceparent")) return H_TRACEPARENT;
      if (eq(p, len, "x-b3-spanid")) return H_B3_SPANID;
      return H_OTHER;
    case 12:
      if (eq(p, len, "content-type")) return H_CONTENT_TYPE;
      if (eq(p, len, "grpc-message")) return H_GRPC_MESSAGE;
      if (eq(p, len, "x-b3-traceid")) return H_B3_TRACEID;
      if (eq(p, len, "x-b3-sampled")) return H_B3_SAMPLED;
      return H_OTHER;
  }
  return H_OTHER;
}
