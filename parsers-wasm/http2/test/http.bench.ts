// Decode-only throughput of the HTTP/1.1 and HTTP/2 (HPACK) plugins on one core: synthesized,
// realistic traffic fed through the real plugin host (ConnectionEngine, forced plugin, no
// detection) in 64 KiB chunks, alternating directions as a busy keep-alive connection would.
//   node parsers-wasm/dist/http2/test/http.bench.js   (or: npm run bench -- http.bench)
import { ConnectionEngine, PluginRegistry, Plugin } from "@wirescope/plugin-host";
import path from "node:path";
import { H2_PREFACE, h2Frame, hpackIndexedName, hpackNewName } from "@wirescope/plugin-host/test-support/http2";
import { WASM_DIR } from "../../http1/test/decode.js";

const CHUNK = 64 * 1024;

function registry(name: string, meter: boolean): PluginRegistry {
  const r = new PluginRegistry();
  r.add(Plugin.fromFile(path.join(WASM_DIR, `${name}.json`), { flags: 1, meter }));
  return r;
}

// ---- HTTP/1.1: GETs and POSTs with a typical browser/API header set, 200-byte bodies

function http1Traffic(n: number): { client: Buffer; server: Buffer } {
  const c: Buffer[] = [];
  const s: Buffer[] = [];
  const body = Buffer.alloc(200, 0x7a);
  for (let i = 0; i < n; i++) {
    const post = i % 5 === 0;
    c.push(
      Buffer.from(
        `${post ? "POST" : "GET"} /api/v1/items/${i % 1000}?page=${i % 7}&sort=name HTTP/1.1\r\nHost: shop.internal:8080\r\n` +
          `User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\nAccept: application/json\r\n` +
          `Accept-Encoding: gzip, deflate, br\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033${String(i % 100).padStart(2, "0")}-01\r\n` +
          (post ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` : "\r\n"),
      ),
    );
    if (post) c.push(body);
    s.push(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nDate: Sun, 22 Nov 2026 02:00:00 GMT\r\nServer: bench\r\n\r\n`), body);
  }
  return { client: Buffer.concat(c), server: Buffer.concat(s) };
}

// ---- HTTP/2: HPACK with dynamic-table reuse, as browsers and gRPC clients produce it

/** Requests go out in batches of `concurrency` (a server's SETTINGS_MAX_CONCURRENT_STREAMS). */
function http2Traffic(n: number, concurrency = 100): { client: Buffer; server: Buffer; steps: [0 | 1, Buffer][] } {
  const c: Buffer[] = [H2_PREFACE, h2Frame(4, 0, 0, Buffer.alloc(0))];
  const s: Buffer[] = [h2Frame(4, 0, 0, Buffer.alloc(0)), h2Frame(4, 1, 0, Buffer.alloc(0))];
  // first request puts authority, user-agent and a custom header in the table; the rest reuse
  // them by index (62.. counting from the newest), and send only the path as a literal
  const body = Buffer.alloc(120, 0x7a);
  for (let i = 0; i < n; i++) {
    const sid = 2 * i + 1;
    const path = `/api/v1/items/${i % 1000}?page=${i % 7}`;
    let req: Buffer;
    if (i === 0) {
      req = Buffer.concat([Buffer.from([0x82, 0x86]), hpackIndexedName(4, path), hpackIndexedName(1, "shop.internal:8443", true), hpackIndexedName(58, "bench-client/1.0 (linux)", true), hpackNewName("x-tenant", "acme-corp", true)]);
    } else {
      // 62 = x-tenant, 63 = user-agent, 64 = authority
      req = Buffer.concat([Buffer.from([0x82, 0x86]), hpackIndexedName(4, path), Buffer.from([0x80 | 64, 0x80 | 63, 0x80 | 62])]);
    }
    c.push(h2Frame(1, 5, sid, req));
    let resp: Buffer;
    if (i === 0) resp = Buffer.concat([Buffer.from([0x88]), hpackIndexedName(31, "application/json", true), hpackIndexedName(54, "bench", true)]);
    else resp = Buffer.concat([Buffer.from([0x88, 0x80 | 63, 0x80 | 62])]); // content-type, server
    s.push(h2Frame(1, 4, sid, resp), h2Frame(0, 1, sid, body));
  }
  const steps: [0 | 1, Buffer][] = [];
  // client: preface + settings + first batch; server: settings + first batch's responses; ...
  for (let b = 0; b * concurrency < n; b++) {
    const from = b * concurrency;
    const to = Math.min(n, from + concurrency);
    steps.push([0, Buffer.concat(c.slice(b === 0 ? 0 : from + 2, to + 2))]);
    steps.push([1, Buffer.concat(s.slice(b === 0 ? 0 : 2 + from * 2, 2 + to * 2))]);
  }
  return { client: Buffer.concat(c), server: Buffer.concat(s), steps };
}

function bench(name: string, plugin: string, traffic: { client: Buffer; server: Buffer; steps?: [0 | 1, Buffer][] }, expected: number, meter: boolean): void {
  const reg = registry(plugin, meter);
  name += meter ? " metered" : "";
  const run = () => {
    const engine = new ConnectionEngine(reg);
    const conn = engine.openConnection({ protocol: plugin });
    let records = 0;
    let ts = 1n;
    const { client, server } = traffic;
    if (traffic.steps) {
      for (const [d, b] of traffic.steps) records += conn.data(d, b, ts++).records.length;
      return records + conn.close(ts).records.length;
    }
    // interleave: a client chunk, then the server bytes answering up to the same share
    const steps = Math.ceil(Math.max(client.length, server.length) / CHUNK);
    const cStep = Math.ceil(client.length / steps);
    const sStep = Math.ceil(server.length / steps);
    for (let i = 0; i < steps; i++) {
      records += conn.data(0, client.subarray(i * cStep, (i + 1) * cStep), ts++).records.length;
      records += conn.data(1, server.subarray(i * sStep, (i + 1) * sStep), ts++).records.length;
    }
    records += conn.close(ts).records.length;
    return records;
  };
  // warm up (JIT, wasm tier-up), then measure
  const warm = run();
  if (warm !== expected) throw new Error(`${name}: decoded ${warm} records, expected ${expected}`);
  const bytes = traffic.client.length + traffic.server.length;
  // best of 5 runs, in CPU seconds of this process (a per-core figure even on a shared machine)
  let best = Infinity;
  let bestWall = Infinity;
  for (let k = 0; k < 5; k++) {
    globalThis.gc?.();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    run();
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cu = process.cpuUsage(c0);
    best = Math.min(best, (cu.user + cu.system) / 1e6);
    bestWall = Math.min(bestWall, wall);
  }
  const fmt = (v: number) => Math.round(v).toLocaleString("en-US");
  console.log(`| ${name} | ${expected} | ${(bytes / 1e6).toFixed(1)} MB | ${fmt(expected / best)} | ${(bytes / best / 1e6).toFixed(1)} | ${fmt(expected / bestWall)} |`);
}

console.log("| traffic | records | bytes | records/s (CPU) | MB/s (CPU) | records/s (wall) |");
console.log("|---|---:|---:|---:|---:|---:|");
// metered: the host's fuel meter on (production default: runaway loops trap); unmetered: the
// decoder's own cost
const N1 = 200_000;
const t1 = http1Traffic(N1);
bench("http1 (keep-alive, 20% POST)", "http1", t1, N1, false);
bench("http1 (keep-alive, 20% POST)", "http1", t1, N1, true);
const N2 = 200_000;
const t2 = http2Traffic(N2);
bench("http2 (HPACK dynamic reuse)", "http2", t2, N2, false);
bench("http2 (HPACK dynamic reuse)", "http2", t2, N2, true);
