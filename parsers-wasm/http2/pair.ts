// An HTTP/2 stream becomes one Record: `http2`, or `grpc` when the request's content-type starts
// with application/grpc (or, for a stream picked up mid-way, when a grpc-status was seen).
//
// gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
//   request   HEADERS :method POST, :path /pkg.Service/Method, content-type application/grpc...
//             DATA    Length-Prefixed-Message* (1 byte compressed flag, 4 bytes length, message)
//   response  HEADERS :status 200 ...; DATA messages; HEADERS (trailers) grpc-status, grpc-message
//   or        trailers-only: one HEADERS with :status, grpc-status, grpc-message and END_STREAM

import { Rec, hexVal, eqAscii } from "../common/index";
import { writeTarget } from "../http1/url";
import { writeTrace } from "../http1/pair";
import { Stream, V_METHOD, V_PATH, V_AUTHORITY, V_GRPC_MESSAGE } from "./types";

/** Writes the record of stream s; `incomplete` when its response was not seen to the end. */
export function emitStream(s: Stream, incomplete: bool): void {
  const inferred = !s.isGrpc && s.grpcStatus < 0 && grpcShaped(s);
  const grpc = s.isGrpc || s.grpcStatus >= 0 || inferred;
  Rec.begin(grpc ? "grpc" : "http2");
  Rec.startNs(s.startTs);
  if (s.respHeaders && s.endTs >= s.startTs) Rec.durationNs(s.endTs - s.startTs);
  const unknown = (!s.has(V_PATH) || !s.has(V_METHOD)) && (s.reqUnknown || !s.reqHeaders);
  if (grpc) writeGrpc(s);
  else writeHttp(s);
  if (s.has(V_AUTHORITY)) Rec.attrRaw("server.address", s.ptr(V_AUTHORITY), s.size(V_AUTHORITY));
  Rec.attrStr("network.protocol.version", "2");
  Rec.requestBytes(s.reqBytes);
  Rec.responseBytes(s.respBytes);
  if (unknown) Rec.attrBool("http2.request_unknown", true);
  if (s.unknownFields > 0) Rec.attrInt("http2.unknown_fields", <i64>s.unknownFields);
  if (inferred) Rec.attrBool("http2.grpc_inferred", true);
  if (s.rstCode >= 0) Rec.attrInt("http2.rst_stream.error_code", s.rstCode);
  if (s.pushed) Rec.attrBool("http2.pushed", true);
  if (incomplete) Rec.incomplete();
  writeTrace(s.trace);
  Rec.end();
}

/**
 * A stream picked up mid-way whose content-type and grpc-status were dynamic-table entries from
 * before pickup (a long-lived gRPC channel references them for ever) is still recognisably gRPC
 * when everything known says so: POST to /service/method, request fields that could not be
 * decoded (where content-type was), DATA in both directions that splits exactly into
 * length-prefixed messages (flag byte 0 or 1), at least one message, and a response that ended
 * with a HEADERS block (trailers, or trailers-only). Plain HTTP/2 has no such trailers in
 * practice, and a known content-type or a fully decoded request never takes this path.
 */
function grpcShaped(s: Stream): bool {
  if (!s.reqUnknown || !s.respEndHeaders || !s.reqMsgs.whole || !s.respMsgs.whole) return false;
  if (s.reqMsgs.messages + s.respMsgs.messages == 0) return false;
  if (s.status != 200 || !s.has(V_METHOD) || !s.has(V_PATH)) return false;
  if (s.size(V_METHOD) != 4 || !eqAscii(s.ptr(V_METHOD), 4, "POST")) return false;
  // "/a/b": a leading slash, exactly one more, no query, neither part empty
  const p = s.ptr(V_PATH);
  const n = s.size(V_PATH);
  if (n < 4 || load<u8>(p) != 0x2f) return false;
  let slash = -1;
  for (let i = 1; i < n; i++) {
    const c = load<u8>(p + <usize>i);
    if (c == 0x3f || c == 0x23) return false;
    if (c == 0x2f) {
      if (slash >= 0) return false;
      slash = i;
    }
  }
  return slash > 1 && slash < n - 1;
}

function writeHttp(s: Stream): void {
  if (s.has(V_METHOD)) {
    Rec.operationRaw(s.ptr(V_METHOD), s.size(V_METHOD));
    Rec.attrRaw("http.request.method", s.ptr(V_METHOD), s.size(V_METHOD));
  }
  if (s.has(V_PATH)) writeTarget(s.ptr(V_PATH), s.size(V_PATH));
  if (s.status >= 0 && s.respHeaders) {
    Rec.status(<i64>s.status);
    Rec.error(s.status >= 500);
    Rec.attrInt("http.response.status_code", <i64>s.status);
  } else if (s.rstCode > 0) {
    Rec.error(true);
  }
}

function writeGrpc(s: Stream): void {
  Rec.attrStr("rpc.system", "grpc");
  if (s.has(V_PATH)) {
    const p = s.ptr(V_PATH);
    const n = s.size(V_PATH);
    // "/pkg.Service/Method": service between the first and the last '/', method after it
    let slash = n - 1;
    while (slash > 0 && load<u8>(p + <usize>slash) != 0x2f) slash--;
    const from = n > 0 && load<u8>(p) == 0x2f ? 1 : 0;
    Rec.resourceRaw(p, n);
    if (slash > from) {
      Rec.operationRaw(p + <usize>slash + 1, n - slash - 1);
      Rec.attrRaw("rpc.service", p + <usize>from, slash - from);
      Rec.attrRaw("rpc.method", p + <usize>slash + 1, n - slash - 1);
    }
  }
  if (s.grpcStatus >= 0) {
    Rec.status(<i64>s.grpcStatus);
    Rec.error(s.grpcStatus != 0);
    Rec.attrInt("rpc.grpc.status_code", <i64>s.grpcStatus);
    Rec.attrBegin("rpc.grpc.status_message");
    if (s.has(V_GRPC_MESSAGE)) putPercentDecoded(s.ptr(V_GRPC_MESSAGE), s.size(V_GRPC_MESSAGE));
    Rec.attrEnd();
  } else if (s.rstCode > 0 || (s.status >= 0 && s.status != 200 && s.respHeaders)) {
    Rec.error(true);
  }
  if (s.status >= 0 && s.respHeaders) Rec.attrInt("http.response.status_code", <i64>s.status);
  if (s.reqMsgs.hdrLeft >= 0) Rec.attrInt("rpc.request.messages", <i64>s.reqMsgs.messages);
  if (s.respMsgs.hdrLeft >= 0) Rec.attrInt("rpc.response.messages", <i64>s.respMsgs.messages);
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md "Status-Message"). */
function putPercentDecoded(p: usize, n: i32): void {
  let i = 0;
  let run = 0;
  while (i < n) {
    const c = load<u8>(p + <usize>i);
    if (c == 0x25 && i + 2 < n) {
      const hi = hexVal(<u32>load<u8>(p + <usize>i + 1));
      const lo = hexVal(<u32>load<u8>(p + <usize>i + 2));
      if (hi >= 0 && lo >= 0) {
        if (run > 0) Rec.putRaw(p + <usize>(i - run), run);
        run = 0;
        // decoded bytes may form UTF-8 sequences: write them through putRaw one at a time
        const tmp = memory.data(4);
        store<u8>(tmp, <u8>((hi << 4) | lo));
        let k = 1;
        // gather a following run of %XX to keep multi-byte UTF-8 intact
        let j = i + 3;
        while (k < 4 && j + 2 < n && load<u8>(p + <usize>j) == 0x25) {
          const h2 = hexVal(<u32>load<u8>(p + <usize>j + 1));
          const l2 = hexVal(<u32>load<u8>(p + <usize>j + 2));
          if (h2 < 0 || l2 < 0) break;
          const b = (h2 << 4) | l2;
          if ((b & 0xc0) != 0x80) break;
          store<u8>(tmp + <usize>k, <u8>b);
          k++;
          j += 3;
        }
        Rec.putRaw(tmp, k);
        i = j;
        continue;
      }
    }
    run++;
    i++;
  }
  if (run > 0) Rec.putRaw(p + <usize>(n - run), run);
}
