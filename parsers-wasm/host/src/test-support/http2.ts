// HTTP/2 wire builders for tests: frames and the HPACK representations tests write by hand.
// Here rather than in parsers-wasm/http2/test/ because the plugin host's own tests (in this
// package, which parsers-wasm depends on) need them too; parsers-wasm's and test/'s HTTP/2 tests
// import them as @wirescope/plugin-host/test-support/http2.
//
//   +-----------------------------------------------+
//   |                 Length (24)                   |
//   +---------------+---------------+---------------+
//   |   Type (8)    |   Flags (8)   |
//   +-+-------------+---------------+-------------------------------+
//   |R|                 Stream Identifier (31)                      |
//   +=+=============================================================+
//   |                   Frame Payload (0...)                      ...   RFC 9113 §4.1

/** The client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** One frame: the 9-byte header, then `payload`. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array | readonly number[] = []): Buffer {
  const body = Buffer.from(payload as Uint8Array);
  const h = Buffer.alloc(9);
  h.writeUIntBE(body.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([h, body]);
}

/** An HPACK string literal, not Huffman-coded (RFC 7541 §5.2; values under 127 bytes). */
export function hpackString(v: string): Buffer {
  const b = Buffer.from(v);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A header field with a name from the static or dynamic table (`nameIndex`): with incremental
 *  indexing (§6.2.1, adds it to the dynamic table) or without indexing (§6.2.2). */
export function hpackIndexedName(nameIndex: number, value: string, incremental = false): Buffer {
  const prefix = incremental ? [0x40 | nameIndex] : nameIndex < 15 ? [nameIndex] : [15, nameIndex - 15];
  return Buffer.concat([Buffer.from(prefix), hpackString(value)]);
}

/** A header field with a literal name, with incremental indexing or without indexing. */
export function hpackNewName(name: string, value: string, incremental = false): Buffer {
  return Buffer.concat([Buffer.from([incremental ? 0x40 : 0x00]), hpackString(name), hpackString(value)]);
}
