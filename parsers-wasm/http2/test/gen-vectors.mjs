#!/usr/bin/env node
// Writes test/vectors/frames.md: HTTP/2 and gRPC vectors as hex, built from readable frame
// descriptions below (a hand-written hex file would be unreviewable). HPACK blocks are either the
// RFC 7541 Appendix C examples verbatim (Huffman, dynamic table) or literals encoded here without
// Huffman. Run: node parsers-wasm/http2/test/gen-vectors.mjs   (the output is committed)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { huffmanEncode } from "../gen-huffman.mjs";

const hex = (s) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
const END_STREAM = 1, ACK = 1, END_HEADERS = 4, PADDED = 8, PRIORITY = 0x20;

function frame(type, flags, sid, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(sid, 5);
  return Buffer.concat([h, payload]);
}
const settings = (pairs = []) => frame(T.SETTINGS, 0, 0, Buffer.concat(pairs.map(([id, v]) => { const b = Buffer.alloc(6); b.writeUInt16BE(id); b.writeUInt32BE(v, 2); return b; })));
const settingsAck = () => frame(T.SETTINGS, ACK, 0);
const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

// HPACK without Huffman
function int(prefixBits, first, v) {
  const max = (1 << prefixBits) - 1;
  if (v < max) return Buffer.from([first | v]);
  const out = [first | max];
  v -= max;
  while (v >= 128) { out.push((v & 127) | 128); v >>= 7; }
  out.push(v);
  return Buffer.from(out);
}
const str = (s) => { const b = Buffer.from(s); return Buffer.concat([int(7, 0, b.length), b]); };
/** Huffman string literal (H bit set). */
const hstr = (s) => { const b = huffmanEncode(Buffer.from(s)); return Buffer.concat([int(7, 0x80, b.length), b]); };
const idx = (i) => int(7, 0x80, i);
/** literal without indexing; name = static index or string */
const lit = (name, value) => typeof name === "number" ? Buffer.concat([int(4, 0, name), str(value)]) : Buffer.concat([Buffer.from([0]), str(name), str(value)]);
/** literal with incremental indexing */
const inc = (name, value) => typeof name === "number" ? Buffer.concat([int(6, 0x40, name), str(value)]) : Buffer.concat([Buffer.from([0x40]), str(name), str(value)]);
const sizeUpdate = (n) => int(5, 0x20, n);
const block = (...parts) => Buffer.concat(parts);

const S = { authority: 1, GET: 2, POST: 3, pathSlash: 4, path: 4, http: 6, https: 7, s200: 8, s204: 9, s304: 11, s404: 13, s500: 14, contentType: 31 };
const headers = (sid, blk, flags = END_HEADERS) => frame(T.HEADERS, flags, sid, blk);
const data = (sid, bytes, flags = 0) => frame(T.DATA, flags, sid, Buffer.from(bytes));
const grpcMsg = (...lens) => Buffer.concat(lens.map((n) => Buffer.concat([Buffer.from([0]), u32(n), Buffer.alloc(n, 0x61)])));
const req = (method, p, extra = []) => block(idx(method === "GET" ? S.GET : S.POST), idx(S.http), lit(S.path, p), lit(S.authority, "svc.test"), ...extra);
const grpcReq = (p) => req("POST", p, [lit(S.contentType, "application/grpc"), lit("te", "trailers")]);
const grpcResp = () => block(idx(S.s200), lit(S.contentType, "application/grpc"));
const trailers = (status, msg) => block(lit("grpc-status", String(status)), ...(msg === undefined ? [] : [lit("grpc-message", msg)]));

const vectors = [];
function vec(name, steps, records, options) {
  vectors.push({ name, steps, records, options });
}
const C = (...b) => ({ client: Buffer.concat(b) });
const Sv = (...b) => ({ server: Buffer.concat(b) });

vec(
  "RFC 7541 C.4 requests and C.6 responses: Huffman, dynamic table, eviction",
  [
    C(PREFACE, settings(), headers(1, hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), END_HEADERS | END_STREAM),
      headers(3, hex("8286 84be 5886 a8eb 1064 9cbf"), END_HEADERS | END_STREAM),
      headers(5, hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), END_HEADERS | END_STREAM)),
    Sv(settings([[1, 256]]), settingsAck(),
      headers(1, hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"), END_HEADERS | END_STREAM),
      headers(3, hex("4883 640e ffc1 c0bf"), END_HEADERS | END_STREAM),
      headers(5, hex("88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"), END_HEADERS | END_STREAM)),
  ],
  [
    { protocol: "http2", operation: "GET", resource: "/", status: 302, attributes: { "server.address": "www.example.com", "network.protocol.version": "2", "url.path": "/" } },
    { protocol: "http2", operation: "GET", resource: "/", status: 307, attributes: { "server.address": "www.example.com" } },
    { protocol: "http2", operation: "GET", resource: "/index.html", status: 200, attributes: { "server.address": "www.example.com" } },
  ],
);

vec(
  "Every frame type: padded and prioritised HEADERS, padded DATA, PRIORITY, PING, WINDOW_UPDATE, unknown type",
  [
    C(PREFACE, settings([[2, 0], [4, 65535]]),
      frame(T.HEADERS, END_HEADERS | PADDED | PRIORITY, 1, Buffer.concat([Buffer.from([3]), u32(0), Buffer.from([15]), req("POST", "/submit?id=7"), Buffer.alloc(3)])),
      frame(T.PRIORITY, 0, 1, Buffer.concat([u32(0), Buffer.from([200])])),
      frame(T.DATA, PADDED, 1, Buffer.concat([Buffer.from([4]), Buffer.from("hello"), Buffer.alloc(4)])),
      frame(T.DATA, END_STREAM, 1, Buffer.from(" world")),
      frame(T.PING, 0, 0, Buffer.alloc(8, 1)), frame(0xfa, 0x3, 0, Buffer.from("ext")), frame(T.WINDOW_UPDATE, 0, 0, u32(1000))),
    Sv(settings(), settingsAck(), frame(T.PING, ACK, 0, Buffer.alloc(8, 1)),
      headers(1, block(idx(S.s200), lit(S.contentType, "text/plain"))),
      frame(T.DATA, PADDED | END_STREAM, 1, Buffer.concat([Buffer.from([2]), Buffer.from("ok"), Buffer.alloc(2)]))),
  ],
  [{ protocol: "http2", operation: "POST", resource: "/submit", status: 200, reqBytes: 11, respBytes: 2, startNs: "1000", durationNs: "1000", attributes: { "url.query": "id=7", "http.request.method": "POST", "http.response.status_code": 200 } }],
);

{
  // one header block in three frames
  const blk = req("GET", "/continued", [lit("x-long", "v".repeat(60)), lit("x-other", "w".repeat(40))]);
  vec(
    "HEADERS + CONTINUATION + CONTINUATION",
    [
      C(PREFACE, settings(), frame(T.HEADERS, END_STREAM, 1, blk.subarray(0, 10)), frame(T.CONTINUATION, 0, 1, blk.subarray(10, 50)), frame(T.CONTINUATION, END_HEADERS, 1, blk.subarray(50))),
      Sv(settings(), headers(1, block(idx(S.s404)), END_HEADERS | END_STREAM)),
    ],
    [{ operation: "GET", resource: "/continued", status: 404, respBytes: 0 }],
  );
}

vec(
  "Interleaved streams finish out of order",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/slow"), END_HEADERS | END_STREAM), headers(3, req("GET", "/fast"), END_HEADERS | END_STREAM), headers(5, req("POST", "/up")), data(5, "abc"), data(5, "defg", END_STREAM)),
    Sv(settings(), headers(1, block(idx(S.s200))), headers(3, block(idx(S.s200))), data(1, "part1"), data(3, "fast", END_STREAM), headers(5, block(idx(S.s204)), END_HEADERS | END_STREAM), data(1, "part2", END_STREAM)),
  ],
  [
    { resource: "/fast", status: 200, respBytes: 4 },
    { resource: "/up", status: 204, reqBytes: 7, respBytes: 0 },
    { resource: "/slow", status: 200, respBytes: 10 },
  ],
);

vec(
  "RST_STREAM cancels a request before its response",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/cancelled"), END_HEADERS | END_STREAM)),
    C(frame(T.RST_STREAM, 0, 1, u32(8))),
    Sv(settings(), headers(3, block(idx(S.s200)), END_HEADERS | END_STREAM)),
  ],
  [{ resource: "/cancelled", status: null, incomplete: true, error: true, attributes: { "http2.rst_stream.error_code": 8 } }],
);

vec(
  "GOAWAY: streams above the last stream id were never processed",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/one"), END_HEADERS | END_STREAM), headers(3, req("GET", "/two"), END_HEADERS | END_STREAM)),
    Sv(settings(), frame(T.GOAWAY, 0, 0, Buffer.concat([u32(1), u32(0)])), headers(1, block(idx(S.s200)), END_HEADERS | END_STREAM)),
  ],
  [
    { resource: "/two", status: null, incomplete: true },
    { resource: "/one", status: 200 },
  ],
);

vec(
  "Dynamic table size update and incremental indexing, then references",
  [
    C(PREFACE, settings(),
      headers(1, block(sizeUpdate(0), sizeUpdate(200), idx(S.GET), idx(S.http), inc(S.path, "/cached/path"), inc(S.authority, "dyn.test")), END_HEADERS | END_STREAM),
      headers(3, block(idx(S.GET), idx(S.http), idx(63), idx(62)), END_HEADERS | END_STREAM)),
    Sv(settings(), headers(1, block(inc("x-srv", "1"), idx(S.s200)), END_HEADERS | END_STREAM), headers(3, block(idx(62), idx(S.s404)), END_HEADERS | END_STREAM)),
  ],
  [
    { resource: "/cached/path", status: 200, attributes: { "server.address": "dyn.test" } },
    { resource: "/cached/path", status: 404, attributes: { "server.address": "dyn.test" } },
  ],
);

vec(
  "Mid-stream pickup: unknown dynamic entries are marked unknown, never guessed",
  [
    // no preface: the client's first bytes are a HEADERS frame referring to a table we never saw
    C(headers(7, block(idx(S.GET), idx(S.http), idx(62), idx(63)), END_HEADERS | END_STREAM), headers(9, block(idx(S.POST), idx(S.http), inc(S.path, "/known"), idx(64)), END_HEADERS)),
    C(data(9, "x", END_STREAM), headers(11, block(idx(S.GET), idx(S.http), idx(62)), END_HEADERS | END_STREAM)),
    Sv(headers(7, block(idx(S.s200)), END_HEADERS | END_STREAM), headers(9, block(idx(S.s200)), END_HEADERS | END_STREAM), headers(11, block(idx(S.s500)), END_HEADERS | END_STREAM)),
  ],
  [
    { operation: "GET", resource: "", status: 200, attributes: { "http2.request_unknown": true, "url.path": null } },
    { operation: "POST", resource: "/known", status: 200, reqBytes: 1, attributes: { "http2.request_unknown": null } },
    { operation: "GET", resource: "/known", status: 500, error: true },
  ],
);

vec(
  "Pickup after missed bytes: a SETTINGS frame first does not make the tables known",
  [
    { gap: "client" },
    Sv(settings(), headers(5, block(idx(S.s200), idx(62)), END_HEADERS | END_STREAM)),
    C(headers(7, block(idx(S.GET), idx(S.http), idx(62), idx(S.authority + 0) /* :authority, empty value */), END_HEADERS | END_STREAM)),
    Sv(headers(7, block(idx(S.s404)), END_HEADERS | END_STREAM)),
  ],
  [
    { protocol: "http2", operation: "", resource: "", status: 200, attributes: { "http2.request_unknown": true } },
    { protocol: "http2", operation: "GET", resource: "", status: 404, attributes: { "http2.request_unknown": true, "url.path": null } },
  ],
  { detect: false },
);

vec(
  "Lost bytes mid-frame: framing resumes inside the next chunk, where whole frames run to its end",
  [
    C(PREFACE, settings(), headers(1, req("POST", "/upload")), data(1, "first part")),
    { gap: "client", len: 5000 },
    // the rest of a DATA frame we lost the start of, then a new request: one chunk
    C(Buffer.alloc(37, 0x07), data(1, "end", END_STREAM), headers(3, req("GET", "/after-gap"), END_HEADERS | END_STREAM)),
    Sv(settings(), headers(1, block(idx(S.s200)), END_HEADERS | END_STREAM), headers(3, block(idx(S.s404)), END_HEADERS | END_STREAM)),
  ],
  [
    { resource: "/upload", status: 200 },
    { resource: "/after-gap", status: 404, attributes: { "http2.request_unknown": null } },
  ],
  // the resync point is found inside the chunk as written; split into other pieces, the new
  // request is found only where a piece starts at a frame (split modes would lose it)
  { detect: false, modes: ["whole", "truncated", "gapped"] },
);

{
  // A gRPC channel opened before pickup: the client's content-type and te, the server's
  // content-type and "grpc-status: 0" are dynamic entries from before (62.. on each side).
  const oldReq = (p) => block(idx(S.POST), idx(S.http), lit(S.path, p), idx(62), idx(63));
  const oldResp = () => block(idx(S.s200), idx(62));
  vec(
    "Mid-stream gRPC: content-type and grpc-status from before pickup; gRPC-shaped streams are gRPC, without a status",
    [
      C(headers(9, oldReq("/echo.v1.Echo/Get")), data(9, grpcMsg(3), END_STREAM)),
      Sv(headers(9, oldResp()), data(9, grpcMsg(4)), headers(9, block(idx(63)), END_HEADERS | END_STREAM)),
      // a status with a literal value under an unknown name: still unknown
      C(headers(11, oldReq("/echo.v1.Echo/Get")), data(11, grpcMsg(1), END_STREAM)),
      Sv(headers(11, block(idx(S.s200), idx(62), Buffer.from([0x7f, 0x02]) /* name: dynamic 64+1, unknown */, str("5")), END_HEADERS | END_STREAM)),
      // server streaming, messages split across frames
      C(headers(13, oldReq("/echo.v1.Echo/Watch")), data(13, grpcMsg(2), END_STREAM)),
      Sv(headers(13, oldResp()), data(13, grpcMsg(5, 6).subarray(0, 8)), data(13, grpcMsg(5, 6).subarray(8)), data(13, grpcMsg(7)), headers(13, block(idx(63)), END_HEADERS | END_STREAM)),
      // once the server names grpc-status literally, the stream is gRPC by its status
      C(headers(15, oldReq("/echo.v1.Echo/Get")), data(15, grpcMsg(1), END_STREAM)),
      Sv(headers(15, oldResp()), data(15, grpcMsg(1)), headers(15, trailers(0), END_HEADERS | END_STREAM)),
    ],
    [
      { protocol: "grpc", operation: "Get", resource: "/echo.v1.Echo/Get", status: null, error: false, reqBytes: 8, respBytes: 9,
        attributes: { "rpc.service": "echo.v1.Echo", "rpc.method": "Get", "rpc.grpc.status_code": null, "rpc.request.messages": 1, "rpc.response.messages": 1, "http2.grpc_inferred": true, "http2.unknown_fields": 4, "http2.request_unknown": null } },
      { protocol: "grpc", operation: "Get", status: null, attributes: { "rpc.request.messages": 1, "rpc.response.messages": 0, "http2.grpc_inferred": true, "http2.unknown_fields": 4 } },
      { protocol: "grpc", operation: "Watch", status: null, attributes: { "rpc.request.messages": 1, "rpc.response.messages": 3, "http2.grpc_inferred": true } },
      { protocol: "grpc", operation: "Get", status: 0, attributes: { "rpc.grpc.status_code": 0, "http2.grpc_inferred": null, "http2.unknown_fields": 3 } },
    ],
  );
  vec(
    "Mid-stream: what is not gRPC-shaped stays HTTP/2 (no trailers; a body that is not length-prefixed; a known content-type)",
    [
      C(headers(9, block(idx(S.POST), idx(S.http), lit(S.path, "/a.B/C"), idx(62))), data(9, grpcMsg(3), END_STREAM)),
      Sv(headers(9, block(idx(S.s200), idx(62))), data(9, grpcMsg(4), END_STREAM)),
      C(headers(11, block(idx(S.POST), idx(S.http), lit(S.path, "/a.B/C"), idx(62))), data(11, "{\"json\": true}", END_STREAM)),
      Sv(headers(11, block(idx(S.s200), idx(62))), data(11, "{}"), headers(11, block(idx(63)), END_HEADERS | END_STREAM)),
      C(headers(13, block(idx(S.POST), idx(S.http), lit(S.path, "/a.B/C"), lit(S.contentType, "application/octet-stream"))), data(13, grpcMsg(3), END_STREAM)),
      Sv(headers(13, block(idx(S.s200), idx(62))), data(13, grpcMsg(4)), headers(13, block(idx(63)), END_HEADERS | END_STREAM)),
      C(headers(15, block(idx(S.POST), idx(S.http), lit(S.path, "/upload/file/x"), idx(62))), data(15, grpcMsg(3), END_STREAM)),
      Sv(headers(15, block(idx(S.s200), idx(62))), data(15, grpcMsg(4)), headers(15, block(idx(63)), END_HEADERS | END_STREAM)),
    ],
    [
      { protocol: "http2", operation: "POST", resource: "/a.B/C", status: 200, attributes: { "http2.grpc_inferred": null, "http2.unknown_fields": 2 } },
      { protocol: "http2", operation: "POST", resource: "/a.B/C", status: 200, attributes: { "http2.grpc_inferred": null } },
      { protocol: "http2", operation: "POST", resource: "/a.B/C", status: 200, attributes: { "http2.grpc_inferred": null, "http2.unknown_fields": 2 } },
      { protocol: "http2", operation: "POST", resource: "/upload/file/x", status: 200, attributes: { "http2.grpc_inferred": null } },
    ],
  );
}

vec(
  "gRPC: a DATA payload whose flag byte is not 0 or 1 is not counted as messages",
  [
    C(PREFACE, settings(), headers(1, grpcReq("/s.S/M")), data(1, Buffer.concat([Buffer.from([7]), u32(1), Buffer.from("a")]), END_STREAM)),
    Sv(settings(), headers(1, grpcResp()), data(1, grpcMsg(2)), headers(1, trailers(0), END_HEADERS | END_STREAM)),
  ],
  [{ protocol: "grpc", status: 0, attributes: { "rpc.request.messages": null, "rpc.response.messages": 1 } }],
);

vec(
  "A stream still open at close lasts until its last response frame",
  [
    C(PREFACE, settings(), headers(1, grpcReq("/s.S/Watch")), data(1, grpcMsg(1), END_STREAM)),
    Sv(settings(), headers(1, grpcResp())),
    Sv(data(1, grpcMsg(2))),
    Sv(data(1, grpcMsg(3))),
  ],
  [{ protocol: "grpc", status: null, incomplete: true, startNs: "1000", durationNs: "3000", attributes: { "rpc.response.messages": 2 } }],
);

{
  // every byte value that can appear in UTF-8 text, Huffman-coded: codes of 5 to 30 bits
  let text = "";
  for (let c = 0; c < 0x80; c++) if (c !== 0x25) text += String.fromCharCode(c);
  for (let c = 0x80; c < 0x100; c++) text += String.fromCharCode(c);
  text += "日本語€😀";
  let path = "/h";
  for (let c = 0x21; c < 0x7f; c++) if (c !== 0x3f && c !== 0x23) path += String.fromCharCode(c);
  vec(
    "Huffman strings with every UTF-8 byte value, indexed and reused",
    [
      C(PREFACE, settings(), headers(1, block(idx(S.POST), idx(S.http), Buffer.from([0x44]), hstr(path), Buffer.from([0x41]), hstr("huff.test"), lit(S.contentType, "application/grpc")), END_HEADERS), data(1, grpcMsg(1), END_STREAM),
        headers(3, block(idx(S.POST), idx(S.http), idx(63), idx(62), lit(S.contentType, "application/grpc")), END_HEADERS | END_STREAM)),
      Sv(settings(), headers(1, block(idx(S.s200), Buffer.from([0x40]), hstr("grpc-message"), hstr(encodeURIComponent("x").slice(0, 0) + text), Buffer.from([0x00]), hstr("grpc-status"), hstr("2")), END_HEADERS | END_STREAM),
        headers(3, block(idx(S.s200), idx(62), lit("grpc-status", "3")), END_HEADERS | END_STREAM)),
    ],
    [
      { protocol: "grpc", resource: path, status: 2, attributes: { "server.address": "huff.test", "rpc.grpc.status_message": text } },
      { protocol: "grpc", resource: path, status: 3, attributes: { "server.address": "huff.test", "rpc.grpc.status_message": text } },
    ],
  );
}

vec(
  "gRPC unary: message split across DATA frames, status in trailers",
  [
    C(PREFACE, settings(), headers(1, grpcReq("/helloworld.Greeter/SayHello")), data(1, grpcMsg(3).subarray(0, 2)), data(1, grpcMsg(3).subarray(2), END_STREAM)),
    Sv(settings(), headers(1, grpcResp()), data(1, grpcMsg(20).subarray(0, 7)), data(1, grpcMsg(20).subarray(7)), headers(1, trailers(0), END_HEADERS | END_STREAM)),
  ],
  [{ protocol: "grpc", operation: "SayHello", resource: "/helloworld.Greeter/SayHello", status: 0, error: false, reqBytes: 8, respBytes: 25, durationNs: "1000",
     attributes: { "rpc.system": "grpc", "rpc.service": "helloworld.Greeter", "rpc.method": "SayHello", "rpc.grpc.status_code": 0, "rpc.grpc.status_message": "", "rpc.request.messages": 1, "rpc.response.messages": 1, "network.protocol.version": "2" } }],
);

vec(
  "gRPC trailers-only error with a percent-encoded message",
  [
    C(PREFACE, settings(), headers(1, grpcReq("/pkg.v1.Store/Get")), data(1, grpcMsg(0), END_STREAM)),
    Sv(settings(), headers(1, block(idx(S.s200), lit(S.contentType, "application/grpc"), lit("grpc-status", "5"), lit("grpc-message", "key%20not%20found%3A%20%C3%A9")), END_HEADERS | END_STREAM)),
  ],
  [{ protocol: "grpc", operation: "Get", status: 5, error: true, attributes: { "rpc.grpc.status_code": 5, "rpc.grpc.status_message": "key not found: é", "rpc.request.messages": 1, "rpc.response.messages": 0, "rpc.service": "pkg.v1.Store" } }],
);

vec(
  "gRPC client streaming, server streaming and bidi on one connection",
  [
    C(PREFACE, settings(), headers(1, grpcReq("/s.S/Client")), data(1, grpcMsg(1, 2, 3)), data(1, grpcMsg(4), END_STREAM),
      headers(3, grpcReq("/s.S/Server")), data(3, grpcMsg(5), END_STREAM), headers(5, grpcReq("/s.S/Bidi")), data(5, grpcMsg(1))),
    Sv(settings(), headers(1, grpcResp()), data(1, grpcMsg(2)), headers(1, trailers(0), END_HEADERS | END_STREAM),
      headers(3, grpcResp()), data(3, grpcMsg(1, 1)), data(3, grpcMsg(1)), headers(5, grpcResp()), data(5, grpcMsg(2))),
    C(data(5, grpcMsg(1, 1)), data(5, Buffer.alloc(0), END_STREAM)),
    Sv(headers(3, trailers(0), END_HEADERS | END_STREAM), data(5, grpcMsg(2, 2)), headers(5, trailers(13, "boom"), END_HEADERS | END_STREAM)),
  ],
  [
    { operation: "Client", status: 0, attributes: { "rpc.request.messages": 4, "rpc.response.messages": 1 } },
    { operation: "Server", status: 0, attributes: { "rpc.request.messages": 1, "rpc.response.messages": 3 } },
    { operation: "Bidi", status: 13, error: true, attributes: { "rpc.request.messages": 3, "rpc.response.messages": 3, "rpc.grpc.status_message": "boom" } },
  ],
);

vec(
  "h2c upgrade: the HTTP/1.1 request is stream 1, then HTTP/2",
  [
    C(Buffer.from("GET /robots.txt HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")),
    Sv(Buffer.from("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"), settings(), headers(1, block(idx(S.s200), lit(S.contentType, "text/plain"))), data(1, "User-agent: *", END_STREAM)),
    C(PREFACE, settings(), settingsAck(), headers(3, req("GET", "/humans.txt"), END_HEADERS | END_STREAM)),
    Sv(settingsAck(), headers(3, block(idx(S.s404)), END_HEADERS | END_STREAM)),
  ],
  [
    { protocol: "http2", operation: "GET", resource: "/robots.txt", status: 200, respBytes: 13, startNs: "1000", durationNs: "1000", attributes: { "server.address": "up.test", "network.protocol.version": "2" } },
    { protocol: "http2", operation: "GET", resource: "/humans.txt", status: 404, attributes: { "server.address": "svc.test" } },
  ],
);

vec(
  "h2c upgrade refused: the connection stays HTTP/1.1",
  [
    C(Buffer.from("GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")),
    Sv(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")),
    C(Buffer.from("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")),
    Sv(Buffer.from("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")),
  ],
  [
    { protocol: "http1", resource: "/a", status: 200, respBytes: 2 },
    { protocol: "http1", resource: "/b", status: 404 },
  ],
);

vec(
  "Server push: PUSH_PROMISE carries the pushed request",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/index.html"), END_HEADERS | END_STREAM)),
    Sv(settings(), frame(T.PUSH_PROMISE, END_HEADERS, 1, Buffer.concat([u32(2), req("GET", "/style.css")])), headers(1, block(idx(S.s200))), data(1, "<html>", END_STREAM),
      headers(2, block(idx(S.s200))), data(2, "body{}", END_STREAM)),
  ],
  [
    { resource: "/index.html", status: 200, respBytes: 6, attributes: { "http2.pushed": null } },
    { resource: "/style.css", status: 200, respBytes: 6, attributes: { "http2.pushed": true } },
  ],
);

vec(
  "Interim 103 Early Hints, then the final response; traceparent",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/t", [lit("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]), END_HEADERS | END_STREAM)),
    Sv(settings(), headers(1, block(lit(8, "103"), lit("link", "</s.css>; rel=preload"))), headers(1, block(idx(S.s200)), END_HEADERS | END_STREAM)),
  ],
  [{ resource: "/t", status: 200, trace: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", flags: 1, format: "w3c" } }],
);

vec(
  "Connection closed mid-response: incomplete with the status seen",
  [
    C(PREFACE, settings(), headers(1, req("GET", "/cut"), END_HEADERS | END_STREAM)),
    Sv(settings(), headers(1, block(idx(S.s200))), data(1, "partial")),
  ],
  [{ resource: "/cut", status: 200, incomplete: true, respBytes: 7 }],
);

// ---- write Markdown
const here = path.dirname(fileURLToPath(import.meta.url));
let md = `# HTTP/2 and gRPC vectors

Generated by gen-vectors.mjs from readable frame descriptions; do not edit by hand. Run by
parsers-wasm/test-support/vectors.ts (whole, split at every byte boundary, bytewise, truncated,
gapped). Step i is stamped ts = 1000 × (i + 1).
`;
for (const v of vectors) {
  md += `\n## ${v.name}\n`;
  if (v.options) md += "\n```options\n" + JSON.stringify(v.options) + "\n```\n";
  for (const s of v.steps) {
    if (s.gap) {
      md += `\n\`\`\`gap ${s.gap} ${s.len ?? 0}\n\`\`\`\n`;
      continue;
    }
    const [dir, bytes] = s.client ? ["client", s.client] : ["server", s.server];
    const h = bytes.toString("hex").replace(/(.{64})/g, "$1\n").trim();
    md += `\n\`\`\`${dir}-hex\n${h}\n\`\`\`\n`;
  }
  md += "\n```records\n" + v.records.map((r) => JSON.stringify(r)).join("\n") + "\n```\n";
}
fs.writeFileSync(path.join(here, "vectors/frames.md"), md);
console.error(`gen-vectors: ${vectors.length} vectors`);
