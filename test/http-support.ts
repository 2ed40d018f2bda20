// What tshark makes of HTTP/1.1, HTTP/2 and gRPC traffic in a capture, in the shape our records
// are compared with: one entry per request/response pair, from tshark's JSON output (-T json).
//
// HTTP/1.1: requests and responses paired by tshark's own http.request_in.
// HTTP/2: per (tcp.stream, stream id): request pseudo-headers, the final :status, grpc-status
// and grpc-message (response headers or trailers), DATA payload bytes each way, and the number of
// gRPC length-prefixed messages in the concatenated DATA payloads tshark dissected.
import { execFile } from "node:child_process";

type J = Record<string, unknown>;

function tsharkJson(file: string, decodeAs: string[], keylog?: string): Promise<J[]> {
  const args = ["-r", file, "-T", "json", "--no-duplicate-keys"];
  for (const d of decodeAs) args.push("-d", d);
  if (keylog) args.push("-o", `tls.keylog_file:${keylog}`);
  return new Promise((resolve, reject) => {
    execFile("tshark", args, { maxBuffer: 1 << 30, timeout: 180_000 }, (err, stdout) => {
      if (err) reject(new Error(`tshark failed: ${err.message}`));
      else resolve(JSON.parse(stdout || "[]") as J[]);
    });
  });
}

const arr = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** First value of key `k` anywhere under `o` (depth-first). */
function find(o: unknown, k: string): string | undefined {
  if (!o || typeof o !== "object") return undefined;
  if (Array.isArray(o)) {
    for (const x of o) {
      const v = find(x, k);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  const rec = o as J;
  if (k in rec && typeof rec[k] === "string") return rec[k] as string;
  for (const v of Object.values(rec)) {
    const r = find(v, k);
    if (r !== undefined) return r;
  }
  return undefined;
}

export interface TsharkHttp1 {
  frame: number;
  tcpStream: number;
  method: string;
  uri: string;
  host?: string;
  status?: number;
}

/**
 * HTTP/1.1 requests in frame order, each with the status of the final response tshark dissected
 * for it. Responses are matched to requests by order on their TCP connection (that is HTTP/1.1's
 * rule; tshark's own http.request_in does not follow pipelining), interim 1xx responses skipped.
 */
export async function tsharkHttp1(file: string, port: number): Promise<TsharkHttp1[]> {
  const pkts = await tsharkJson(file, [`tcp.port==${port},http`]);
  const reqs: TsharkHttp1[] = [];
  const statuses = new Map<number, number[]>();
  for (const p of pkts) {
    const l = (p["_source"] as J)["layers"] as J;
    const frame = Number(find(l["frame"], "frame.number"));
    const tcpStream = Number(find(l["tcp"], "tcp.stream"));
    for (const h of arr(l["http"] as J | J[])) {
      const method = find(h, "http.request.method");
      if (method !== undefined) reqs.push({ frame, tcpStream, method, uri: find(h, "http.request.uri") ?? "", host: find(h, "http.host") });
      const code = find(h, "http.response.code");
      if (code !== undefined && (Number(code) >= 200 || Number(code) === 101)) statuses.set(tcpStream, [...(statuses.get(tcpStream) ?? []), Number(code)]);
    }
  }
  const next = new Map<number, number>();
  for (const r of reqs) {
    const i = next.get(r.tcpStream) ?? 0;
    r.status = statuses.get(r.tcpStream)?.[i];
    next.set(r.tcpStream, i + 1);
  }
  return reqs;
}

export interface TsharkH2Stream {
  tcpStream: number;
  streamId: number;
  method?: string;
  path?: string;
  authority?: string;
  contentType?: string;
  status?: number;
  grpcStatus?: number;
  grpcMessage?: string;
  reqBytes: number;
  respBytes: number;
  reqMessages: number;
  respMessages: number;
  h2cUpgrade?: boolean;
  /** Capture time (ns since the epoch, decimal) of the packet holding the stream's first request HEADERS. */
  startNs?: string;
  /** ... of the packet that ended it: the server's END_STREAM, or the first RST_STREAM either way. */
  endNs?: string;
}

/** tshark's frame.time_epoch ("1764610191.123456000") as decimal nanoseconds (a record's startNs form). */
function epochNs(t: string | undefined): string | undefined {
  if (t === undefined) return undefined;
  const [sec, frac = ""] = t.split(".");
  return String(BigInt(sec!) * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9)));
}

function countMessages(b: Buffer): number {
  let off = 0;
  let n = 0;
  while (off + 5 <= b.length) {
    const len = b.readUInt32BE(off + 1);
    if (off + 5 + len > b.length) break;
    off += 5 + len;
    n++;
  }
  return n;
}

/**
 * HTTP/2 streams (client port → server `port`), as tshark dissects them. `as` = "http" lets
 * tshark's HTTP dissector follow an h2c upgrade; "http2" decodes prior-knowledge HTTP/2; "tls"
 * decrypts with `keylog` (h2 chosen by ALPN).
 */
export async function tsharkHttp2(file: string, port: number, as: "http2" | "http" | "tls" = "http2", keylog?: string): Promise<TsharkH2Stream[]> {
  const pkts = await tsharkJson(file, [`tcp.port==${port},${as}`], keylog);
  const streams = new Map<string, TsharkH2Stream & { req: Buffer[]; resp: Buffer[] }>();
  for (const p of pkts) {
    const l = (p["_source"] as J)["layers"] as J;
    const tcpStream = Number(find(l["tcp"], "tcp.stream"));
    const toServer = Number(find(l["tcp"], "tcp.dstport")) === port;
    const ts = epochNs(find(l["frame"], "frame.time_epoch"));
    // h2c: the upgrade request is HTTP/1.1 and becomes stream 1
    for (const h of arr(l["http"] as J | J[])) {
      const method = find(h, "http.request.method");
      const upgrade = find(h, "http.upgrade");
      if (method !== undefined && upgrade?.toLowerCase().includes("h2c")) {
        const s = get(streams, tcpStream, 1);
        s.method = method;
        s.path = find(h, "http.request.uri");
        s.authority = find(h, "http.host");
        s.h2cUpgrade = true;
      }
    }
    for (const h2 of arr(l["http2"] as J | J[])) {
      for (const st of arr(h2["http2.stream"] as J | J[])) {
        const id = Number(st["http2.streamid"]);
        const type = Number(st["http2.type"]);
        if (id && type === 3) {
          const s = get(streams, tcpStream, id);
          s.endNs ??= ts;
        }
        if (!id || (type !== 0 && type !== 1 && type !== 9)) continue;
        const s = get(streams, tcpStream, id);
        if (type === 1 && toServer) s.startNs ??= ts;
        // END_STREAM is flag bit 0 of DATA and HEADERS
        if (!toServer && type !== 9 && (Number(st["http2.flags"]) & 1) === 1) s.endNs ??= ts;
        if (type === 0) {
          const hex = (st["http2.data.data"] as string | undefined) ?? "";
          const b = Buffer.from(hex.replace(/:/g, ""), "hex");
          const parts = toServer ? s.req : s.resp;
          // with body reassembly, the last DATA frame carries the whole body instead of its own
          if (st["http2.body.fragments"] !== undefined) parts.length = 0;
          parts.push(b);
          continue;
        }
        for (const f of arr(st["http2.header"] as J | J[])) {
          const name = f["http2.header.name"] as string | undefined;
          const value = (f["http2.header.value"] as string | undefined) ?? "";
          if (name === undefined) continue;
          if (toServer) {
            if (name === ":method") s.method ??= value;
            else if (name === ":path") s.path ??= value;
            else if (name === ":authority") s.authority ??= value;
            else if (name === "content-type") s.contentType ??= value;
          } else {
            if (name === ":status" && Number(value) >= 200) s.status = Number(value);
            else if (name === "grpc-status") s.grpcStatus = Number(value);
            else if (name === "grpc-message") s.grpcMessage = decodeURIComponent(value);
          }
        }
      }
    }
  }
  return [...streams.values()].map(({ req, resp, ...s }) => {
    const rq = Buffer.concat(req);
    const rs = Buffer.concat(resp);
    return { ...s, reqBytes: rq.length, respBytes: rs.length, reqMessages: countMessages(rq), respMessages: countMessages(rs) };
  });
}

function get(m: Map<string, TsharkH2Stream & { req: Buffer[]; resp: Buffer[] }>, tcpStream: number, id: number) {
  const k = `${tcpStream}/${id}`;
  let s = m.get(k);
  if (!s) {
    s = { tcpStream, streamId: id, reqBytes: 0, respBytes: 0, reqMessages: 0, respMessages: 0, req: [], resp: [] };
    m.set(k, s);
  }
  return s;
}
