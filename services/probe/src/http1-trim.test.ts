import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DECLARE_MIN, Http1Trimmer } from "./http1-trim.js";
import type { CopyPolicy } from "./copy-policy.js";

/** A message and the [start, end) ranges of its body bytes (what may be left out). */
interface Msg {
  bytes: Buffer;
  body: [number, number][];
}

function clMsg(head: string, body: number): Msg {
  const h = Buffer.from(head.replace("{CL}", String(body)), "latin1");
  return { bytes: Buffer.concat([h, Buffer.alloc(body, 0x62)]), body: body ? [[h.length, h.length + body]] : [] };
}

function chunkedMsg(head: string, chunks: number[], trailer = ""): Msg {
  const parts: Buffer[] = [Buffer.from(head, "latin1")];
  const body: [number, number][] = [];
  let at = parts[0].length;
  for (const n of chunks) {
    const line = Buffer.from(n.toString(16) + "\r\n", "latin1");
    parts.push(line, Buffer.alloc(n, 0x63), Buffer.from("\r\n"));
    body.push([at + line.length, at + line.length + n]);
    at += line.length + n + 2;
  }
  parts.push(Buffer.from("0\r\n" + trailer + "\r\n", "latin1"));
  return { bytes: Buffer.concat(parts), body };
}

/** Concatenates messages, shifting their body ranges. */
function stream(msgs: Msg[]): Msg {
  const body: [number, number][] = [];
  let at = 0;
  for (const m of msgs) {
    for (const [a, b] of m.body) body.push([a + at, b + at]);
    at += m.bytes.length;
  }
  return { bytes: Buffer.concat(msgs.map((m) => m.bytes)), body };
}

interface Out {
  /** Byte ranges stated as gaps. */
  gaps: [number, number][];
  /** Kept bytes, in order, with the stream position of each event's first byte checked. */
  kept: Buffer;
  events: number;
}

/**
 * Feeds one direction of a connection as events cut at `cuts` (`kernelGaps`: event start -> bytes
 * the kernel did not copy at its end) and rebuilds what would be published.
 */
function run(tr: Http1Trimmer, key: number, dir: number, s: Buffer, cuts: number[], kernelGaps: Map<number, number> = new Map()): Out {
  const gaps: [number, number][] = [];
  const kept: Buffer[] = [];
  let events = 0;
  let prev = 0;
  for (const end of [...cuts, s.length]) {
    if (end <= prev) continue;
    const g = kernelGaps.get(prev) ?? 0; // the kernel copied only len - g of this event
    const len = end - prev - g;
    const n = tr.trim(key, dir, s, prev, len, end - prev);
    if (n === 0) {
      kept.push(s.subarray(prev, prev + len));
      if (g) gaps.push([prev + len, end]);
      events++;
    } else {
      const p = tr.pieces;
      for (let i = 0; i < n * 3; i += 3) {
        const at = prev + p[i];
        kept.push(s.subarray(at, at + p[i + 1]));
        if (p[i + 2]) gaps.push([at + p[i + 1], at + p[i + 1] + p[i + 2]]);
        events++;
      }
    }
    prev = end;
  }
  return { gaps: merge(gaps), kept: Buffer.concat(kept), events };
}

function merge(r: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of r) {
    const last = out[out.length - 1];
    if (last && last[1] === a) last[1] = b;
    else out.push([a, b]);
  }
  return out;
}

function keptOf(s: Buffer, gaps: [number, number][]): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const [a, b] of gaps) {
    parts.push(s.subarray(at, a));
    at = b;
  }
  parts.push(s.subarray(at));
  return Buffer.concat(parts);
}

const REQ = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const POST = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {CL}\r\n\r\n";
const RESP_CL = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: {CL}\r\n\r\n";
const RESP_CHUNKED = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";

describe("Http1Trimmer", () => {
  test("a Content-Length response body becomes one stated gap; heads are kept", () => {
    const tr = new Http1Trimmer();
    const req = Buffer.from(REQ);
    assert.equal(tr.trim(1, 1, req, 0, req.length, req.length), 0, "a request without body passes unchanged");
    const resp = clMsg(RESP_CL, 65536);
    const out = run(tr, 1, 2, resp.bytes, []);
    assert.deepEqual(out.gaps, resp.body);
    assert.equal(out.kept.toString("latin1"), RESP_CL.replace("{CL}", "65536"));
    assert.equal(tr.stats.trimmed_bytes, 65536);
  });

  test("every split of a keep-alive exchange (CL, chunked with trailers, HEAD, 1xx, 204) leaves out exactly the bodies", () => {
    const reqs = stream([
      clMsg(POST, 300), { bytes: Buffer.from(REQ), body: [] },
      { bytes: Buffer.from("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"), body: [] },
      chunkedMsg("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", [5, 17]),
      { bytes: Buffer.from("GET /n HTTP/1.1\r\n\r\n"), body: [] },
    ]);
    const resps = stream([
      { bytes: Buffer.from("HTTP/1.1 100 Continue\r\n\r\n"), body: [] },
      clMsg(RESP_CL, 40),
      chunkedMsg(RESP_CHUNKED, [3, 4096, 1], "x-t: 1\r\n"),
      { bytes: Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"), body: [] }, // HEAD: no body
      clMsg(RESP_CL, 12),
      { bytes: Buffer.from("HTTP/1.1 204 No Content\r\n\r\n"), body: [] },
    ]);
    for (const step of [1, 2, 3, 5, 7, 11, 64, 1000]) {
      const cuts = (n: number) => Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);
      const tr = new Http1Trimmer();
      const rq = run(tr, 7, 2, reqs.bytes, cuts(reqs.bytes.length));
      const rs = run(tr, 7, 1, resps.bytes, cuts(resps.bytes.length));
      assert.deepEqual(rq.gaps, reqs.body, `requests, events of ${step} bytes`);
      assert.deepEqual(rs.gaps, resps.body, `responses, events of ${step} bytes`);
      assert.ok(rq.kept.equals(keptOf(reqs.bytes, reqs.body)));
      assert.ok(rs.kept.equals(keptOf(resps.bytes, resps.body)));
      assert.equal(tr.stats.passthrough_conns, 0);
    }
  });

  test("a kernel gap inside a body is absorbed; one outside a body turns trimming off", () => {
    const tr = new Http1Trimmer();
    const req = Buffer.from(REQ);
    tr.trim(3, 1, req, 0, req.length, req.length);
    const resp = clMsg(RESP_CL, 10000);
    // the kernel copied 4096 of the first 8000 bytes
    const out = run(tr, 3, 2, resp.bytes, [8000], new Map([[0, 8000 - 4096]]));
    assert.deepEqual(out.gaps, resp.body);
    assert.equal(tr.stats.passthrough_conns, 0);
    // a gap in a header section: the framing is lost, bytes pass through from then on
    tr.trim(3, 1, req, 0, req.length, req.length);
    const h = clMsg(RESP_CL, 100).bytes;
    assert.equal(tr.trim(3, 2, h, 0, 10, h.length), 0);
    assert.equal(tr.stats.passthrough_conns, 1);
    assert.equal(tr.trim(3, 2, h, 0, h.length, h.length), 0, "off for good");
  });

  test("other protocols, responses without a seen request, Upgrade and close-delimited bodies pass through", () => {
    const cases: [string, string | undefined][] = [
      ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", undefined],
      ["\x00\x00\x00\x2a\x00\x03", undefined],
      ["*1\r\n$4\r\nPING\r\n", undefined],
      ["GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", undefined],
      [REQ, "HTTP/1.1 200 OK\r\n\r\nbody until close"],
      [REQ, "HTTP/1.1 101 Switching Protocols\r\n\r\n"],
    ];
    let key = 100;
    for (const [first, second] of cases) {
      const tr = new Http1Trimmer();
      const a = Buffer.from(first, "latin1");
      assert.equal(tr.trim(++key, 2, a, 0, a.length, a.length), 0);
      if (second) {
        const b = Buffer.from(second + "x".repeat(500), "latin1");
        assert.equal(tr.trim(key, 1, b, 0, b.length, b.length), 0, JSON.stringify(second));
      }
      const later = clMsg(RESP_CL, 500).bytes;
      assert.equal(tr.trim(key, 1, later, 0, later.length, later.length), 0, `${JSON.stringify(first)}: nothing trimmed later`);
      assert.equal(tr.stats.trimmed_bytes, 0);
    }
  });

  test("connections interleaved event by event keep their own state; a key forgotten and used again starts afresh", () => {
    const tr = new Http1Trimmer();
    const req = Buffer.from(REQ);
    const a = clMsg(RESP_CL, 1000);
    const b = chunkedMsg(RESP_CHUNKED, [700]);
    tr.trim(1, 1, req, 0, req.length, req.length);
    tr.trim(2, 2, req, 0, req.length, req.length); // the server's side: requests arrive (ingress)
    // alternate 100 bytes of each: key 1 (the client's side) reads its response (ingress), key 2
    // (the server's side) writes another (egress)
    const gapsA: [number, number][] = [];
    const gapsB: [number, number][] = [];
    for (let at = 0; at < Math.max(a.bytes.length, b.bytes.length); at += 100) {
      for (const [key, dir, m, gaps] of [[1, 2, a, gapsA], [2, 1, b, gapsB]] as const) {
        if (at >= m.bytes.length) continue;
        const n = Math.min(100, m.bytes.length - at);
        const k = tr.trim(key, dir, m.bytes, at, n, n);
        for (let i = 0; i < k * 3; i += 3) if (tr.pieces[i + 2]) gaps.push([at + tr.pieces[i] + tr.pieces[i + 1], at + tr.pieces[i] + tr.pieces[i + 1] + tr.pieces[i + 2]]);
      }
    }
    assert.deepEqual(merge(gapsA), a.body);
    assert.deepEqual(merge(gapsB), b.body);
    // connection 1 forgotten in the middle of a body it was reading; its key comes back as a new
    // connection that reads a request: followed from its start, not taken for the old body's rest
    tr.trim(1, 1, req, 0, req.length, req.length);
    const c = clMsg(RESP_CL, 5000);
    tr.trim(1, 2, c.bytes, 0, 200, 200);
    tr.forget(1);
    const post = clMsg(POST, 300);
    const out = run(tr, 1, 2, post.bytes, [50]);
    assert.deepEqual(out.gaps, post.body);
    assert.equal(tr.stats.http1_conns, 3);
    assert.equal(tr.stats.passthrough_conns, 0);
  });

  test("the connection table is bounded: connections beyond it pass through, counted", () => {
    const tr = new Http1Trimmer(4);
    const req = Buffer.from(REQ);
    for (let k = 0; k < 10; k++) tr.trim(k, 1, req, 0, req.length, req.length);
    assert.equal(tr.size, 4);
    assert.equal(tr.stats.table_full, 6);
    tr.forget(0);
    tr.trim(20, 1, req, 0, req.length, req.length);
    assert.equal(tr.size, 4);
  });

  test("work stays linear: a long body costs one step per event, not per byte", () => {
    const tr = new Http1Trimmer();
    const req = Buffer.from(REQ);
    tr.trim(9, 1, req, 0, req.length, req.length);
    const h = Buffer.from(RESP_CL.replace("{CL}", "50000000"), "latin1");
    // events of 16 KiB: the body part of each is one piece
    let pieces = 0;
    const ev = Buffer.alloc(16384);
    pieces += tr.trim(9, 2, h, 0, h.length, h.length);
    for (let done = 0; done < 50_000_000; done += 16384) pieces += tr.trim(9, 2, ev, 0, Math.min(16384, 50_000_000 - done), Math.min(16384, 50_000_000 - done));
    assert.equal(pieces, Math.ceil(50_000_000 / 16384));
    assert.equal(tr.stats.trimmed_bytes, 50_000_000);
  });

  describe("bodies declared to the kernel", () => {
    /**
     * One direction of a connection written or read in `calls` (their ends), the kernel modelled
     * as bpf/ emit_data does: the bytes of a call before the declared body end of the policy it
     * holds (of the same stream) are one event without payload, the rest one event. The policy the
     * trimmer hands over reaches the "kernel" `lag` calls later (a native batch's delay). Returns
     * what would be published and the bytes the kernel did not copy.
     */
    function kernelRun(m: Msg, calls: number[], lag: number, stream = 0): Out & { cut: number; declared: number } {
      let held: [number, number] | undefined; // [body end, stream] the kernel holds
      const queue: [number, number][] = [];
      let declared = 0;
      const tr = new Http1Trimmer(16, (_k, p: CopyPolicy | undefined) => {
        if (p) queue.push([p.bodyEnd[1], p.stream]);
        declared++;
      });
      // the requests first (as many as there are answers: the trimmer pairs each with one)
      const req = Buffer.from(REQ.repeat(m.bytes.toString("latin1").split("HTTP/1.1 200").length - 1));
      tr.trim(1, 1, req, 0, req.length, req.length, 0, stream);
      const gaps: [number, number][] = [];
      const kept: Buffer[] = [];
      let events = 0;
      let cut = 0;
      let prev = 0;
      const feed = (at: number, len: number, orig: number) => {
        const n = tr.trim(1, 2, m.bytes, at, len, orig, at, stream);
        if (n === 0) {
          kept.push(m.bytes.subarray(at, at + len));
          if (orig > len) gaps.push([at + len, at + orig]);
          events++;
          return;
        }
        for (let i = 0; i < n * 3; i += 3) {
          const a = at + tr.pieces[i];
          kept.push(m.bytes.subarray(a, a + tr.pieces[i + 1]));
          if (tr.pieces[i + 2]) gaps.push([a + tr.pieces[i + 1], a + tr.pieces[i + 1] + tr.pieces[i + 2]]);
          events++;
        }
      };
      for (const [i, end] of [...calls, m.bytes.length].entries()) {
        if (i >= lag && queue.length) held = queue.shift();
        if (end <= prev) continue;
        const body = held && held[1] === stream && prev < held[0] ? Math.min(end, held[0]) - prev : 0;
        if (body) {
          feed(prev, 0, body);
          cut += body;
        }
        if (prev + body < end) feed(prev + body, end - prev - body, end - prev - body);
        prev = end;
      }
      return { gaps: merge(gaps), kept: Buffer.concat(kept), events, cut, declared };
    }

    const every = (n: number, size: number) => Array.from({ length: Math.floor(size / n) }, (_, i) => (i + 1) * n);

    test("a long Content-Length body: declared once its head is parsed, later calls' body bytes not copied, the result exact", () => {
      const m = stream([clMsg(RESP_CL, 1_000_000), clMsg(RESP_CL, 10), clMsg(RESP_CL, 300_000)]);
      for (const lag of [0, 1, 5]) {
        const out = kernelRun(m, every(65536, m.bytes.length), lag);
        assert.deepEqual(out.gaps, m.body, `lag ${lag}`);
        assert.ok(out.kept.equals(keptOf(m.bytes, m.body)), `lag ${lag}: the same bytes published`);
        assert.ok(out.cut > 1_000_000 - (lag + 2) * 65536, `lag ${lag}: the kernel left out ${out.cut} bytes`);
      }
    });

    test("many chunks in one call (a reader's big read, a corked writer) are copied whole: no cut crosses a chunk-size line", () => {
      // a Go server's shape: small answers with Content-Length, big ones in 4 KiB chunks, read
      // 64 KiB at a time
      const m = stream([clMsg(RESP_CL, 100), chunkedMsg(RESP_CHUNKED, Array(64).fill(4096)), clMsg(RESP_CL, 200), chunkedMsg(RESP_CHUNKED, Array(40).fill(4000))]);
      for (const lag of [0, 3]) {
        const out = kernelRun(m, every(65536, m.bytes.length), lag);
        assert.deepEqual(out.gaps, m.body);
        assert.ok(out.kept.equals(keptOf(m.bytes, m.body)));
        assert.equal(out.cut, 0, "chunks shorter than the declaration threshold: nothing left out by the kernel");
      }
      // one long chunk (node's res.end(body) without Content-Length) is declared like a body
      const big = stream([chunkedMsg(RESP_CHUNKED, [500_000, 100_000]), clMsg(RESP_CL, 5)]);
      const out = kernelRun(big, every(32768, big.bytes.length), 2);
      assert.deepEqual(out.gaps, big.body);
      assert.ok(out.kept.equals(keptOf(big.bytes, big.body)));
      assert.ok(out.cut > 500_000 - 3 * 32768, `${out.cut} bytes left out (all but the calls before the declaration arrived)`);
    });

    test("every split of calls, any lag: the published bytes equal the trimmer's own", () => {
      const m = stream([clMsg(RESP_CL, 3 * DECLARE_MIN), chunkedMsg(RESP_CHUNKED, [2 * DECLARE_MIN, 100, DECLARE_MIN + 1]), clMsg(RESP_CL, DECLARE_MIN)]);
      for (const size of [1000, 4096, 20_000, 70_000]) {
        for (const lag of [0, 1, 2]) {
          const out = kernelRun(m, every(size, m.bytes.length), lag);
          assert.deepEqual(out.gaps, m.body, `calls of ${size}, lag ${lag}`);
          assert.ok(out.kept.equals(keptOf(m.bytes, m.body)), `calls of ${size}, lag ${lag}`);
        }
      }
    });

    test("a policy of another byte stream is not applied; the stream is the one the head came in", () => {
      const m = clMsg(RESP_CL, 200_000);
      const out = kernelRun(m, every(65536, m.bytes.length), 0, 7);
      assert.ok(out.cut > 0);
      assert.deepEqual(out.gaps, m.body);
      const seen: (CopyPolicy | undefined)[] = [];
      const tr = new Http1Trimmer(16, (_k, p) => seen.push(p && { bodyEnd: [...p.bodyEnd], stream: p.stream }));
      const req = Buffer.from(POST.replace("{CL}", "100000"));
      tr.trim(3, 2, req, 0, req.length, req.length, 0, 9);
      assert.deepEqual(seen, [{ bodyEnd: [0, 0], stream: 9 }, { bodyEnd: [0, req.length + 100_000], stream: 9 }]);
      tr.forget(3);
      assert.deepEqual(seen.at(-1), undefined);
      assert.equal(seen.length, 3);
    });
  });
});
