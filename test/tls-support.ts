// The TLS tests' oracle: tshark decrypting a tcpdump capture with the clients' key log, turned
// into (method, path, status) exchanges that the probe's records are compared with.
import path from "node:path";
import fs from "node:fs";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { ProbeService, Role, type Record as Record_ } from "@wirescope/wire";
import { createClient, type ManagedProcess } from "@wirescope/runtime";
import { REPO_ROOT, startNats, freePort, waitFor } from "./support/index.js";
import { spawnProbe, runChild } from "./probe-support.js";
import { startParser } from "./parser-support.js";

/** A self-signed certificate and key for CN=localhost in `dir`. */
export function selfSigned(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
  return { cert, key };
}

export interface Exchange {
  method: string;
  path: string;
  status: number;
}
/** "METHOD path status", the form records and tshark are compared in. */
export const exchangeKey = (e: Exchange) => `${e.method} ${e.path} ${e.status}`;

/** tshark's exchanges from the decrypted capture: HTTP/1.1 requests and responses paired in
 *  order per TCP stream (nginx's `return` answers a POST before its body arrives, so tshark shows
 *  that response first), HTTP/2 HEADERS frames joined by (TCP stream, stream id). `tsharkArgs`
 *  go before the others (e.g. -d decode-as rules). */
export function tsharkExchanges(pcap: string, keylog: string, tsharkArgs: string[] = []): Exchange[] {
  const out = execFileSync("tshark", [...tsharkArgs, "-r", pcap, "-o", `tls.keylog_file:${keylog}`, "-Y", "http || http2.type == 1", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
    "-e", "tcp.stream", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code",
    "-e", "http2.type", "-e", "http2.streamid", "-e", "http2.headers.method", "-e", "http2.headers.path", "-e", "http2.headers.status"], { encoding: "utf8", timeout: 60_000 });
  const h1req = new Map<string, { method: string; path: string }[]>();
  const h1resp = new Map<string, number[]>();
  const h2 = new Map<string, Partial<Exchange>>();
  for (const line of out.trim().split("\n").filter(Boolean)) {
    const [stream, method, uri, code, types, sids, h2m, h2p, h2s] = line.split("\t");
    // pipelined requests (gnutls-cli sends them as typed) share a packet: values joined by "|"
    const uris = (uri ?? "").split("|");
    if (method) method.split("|").forEach((m, i) => (h1req.get(stream!) ?? h1req.set(stream!, []).get(stream!)!).push({ method: m, path: uris[i]! }));
    if (code) code.split("|").forEach((c) => (h1resp.get(stream!) ?? h1resp.set(stream!, []).get(stream!)!).push(Number(c)));
    // a packet holds several frames: the i-th HEADERS frame carries the i-th header values (a
    // packet goes one way, so its HEADERS are all requests or all responses)
    const t = (types ?? "").split("|");
    const ids = (sids ?? "").split("|").filter((_, i) => t[i] === "1");
    const ms = (h2m ?? "").split("|"), ps = (h2p ?? "").split("|"), ss = (h2s ?? "").split("|");
    ids.forEach((id, i) => {
      const k = `${stream}/${id}`;
      const e = h2.get(k) ?? {};
      if (ms[i]) e.method = ms[i];
      if (ps[i]) e.path = ps[i];
      if (ss[i]) e.status = Number(ss[i]);
      h2.set(k, e);
    });
  }
  const exchanges = [...h1req].flatMap(([stream, reqs]) => reqs.map((q, i) => ({ ...q, status: h1resp.get(stream)?.[i] ?? 0 })));
  return [...exchanges, ...[...h2.values()].filter((e): e is Exchange => !!e.method && !!e.path && !!e.status)];
}

/** A record as the TLS tests compare it: HTTP method, target, status. The decoders keep the query
 *  apart (url.query): the target tshark shows is path?query. */
export function recordExchange(r: Record_): Exchange {
  const q = r.attributes["url.query"]?.value.value;
  return { method: r.operation, path: r.resource + (q ? `?${q}` : ""), status: Number(r.status) };
}

/** What the TLS tests check of every record read inside TLS: the library that read it (a name,
 *  or one per record, e.g. when the two ends use different libraries) and whether it must be
 *  complete. */
export interface TlsRecordCheck {
  library: string | ((r: Record_) => string);
  complete?: boolean;
}

/** The TLS tests' oracle check: at each end (client and server records apart) the records'
 *  exchanges equal tshark's `theirs` (keys sorted), each with `tls` = true, the library named by
 *  `check`, and complete unless `check.complete` is false. `key` makes a record's key (default
 *  "METHOD path status"). */
export function assertEndsMatchTshark(t: TestContext, records: Record_[], theirs: string[], check: TlsRecordCheck, key: (r: Record_) => string = (r) => exchangeKey(recordExchange(r))): void {
  t.diagnostic(`records: ${JSON.stringify(records.map((r) => [r.protocol, Role[r.role], r.operation, r.resource, Number(r.status ?? -1)]))}`);
  for (const role of [Role.CLIENT, Role.SERVER]) {
    const mine = records.filter((r) => r.role === role);
    assert.deepEqual(mine.map(key).sort(), theirs, `${Role[role]} records = tshark`);
    for (const r of mine) {
      assert.equal(r.attributes["tls"]?.value.value, true, `tls attribute: ${r.resource}`);
      assert.equal(r.attributes["tls.library"]?.value.value, typeof check.library === "string" ? check.library : check.library(r), `tls.library: ${r.resource}`);
      if (check.complete !== false) assert.equal(r.incomplete, false, `complete: ${r.resource}`);
    }
  }
}

export interface TracedPipeline {
  probe: ManagedProcess;
  parser: Awaited<ReturnType<typeof startParser>>;
  nc: NatsConnection;
  /** The probe's status counters. */
  counters(): Promise<Record<string, number>>;
}

/**
 * NATS, `wirescope probe` (traffic of `port` only) and a parser, stopped after the test; resolves
 * once the probe publishes, `warmup` being called until then (warm-up exchanges are not compared:
 * a client started after the probe may lose its first calls while it is being attached).
 * `parserArgs` go to `wirescope parser` (e.g. --plugin-dir of an example plugin).
 */
export async function tracedPipeline(t: TestContext, dir: string, port: number, warmup: () => Promise<unknown>, parserArgs: string[] = []): Promise<TracedPipeline> {
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const grpcPort = await freePort();
  const probe = await spawnProbe(url, grpcPort, dir, ["--allow-port", String(port)]);
  t.after(() => probe.stop());
  const parser = await startParser(url, parserArgs);
  t.after(() => parser.proc.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  let published = 0;
  const sub = nc.subscribe("wirescope.raw.>", {
    callback: () => {
      published++;
    },
  });
  t.after(() => sub.unsubscribe());
  const deadline = Date.now() + 60_000;
  while (published === 0) {
    if (Date.now() > deadline || probe.hasExited) throw new Error(`the probe did not publish: ${probe.tail()}`);
    await warmup();
    await new Promise((r) => setTimeout(r, 300));
  }
  return { probe, parser, nc, counters: async () => (await ctl.status({})).counters };
}

/** nginx serving HTTPS (HTTP/1.1 and h2 by ALPN) on 127.0.0.1:port: 404 for /missing, "hello <uri>" otherwise. */
export async function startNginx(dir: string, port: number, tls: { cert: string; key: string }): Promise<ChildProcess> {
  const conf = path.join(dir, "nginx.conf");
  fs.writeFileSync(conf, `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    location = /missing { return 404; }
    location / { return 200 "hello $uri\\n"; }
  }
}
`);
  const p = spawn("nginx", ["-c", conf, "-p", dir], { stdio: "ignore" });
  await waitFor(() => spawnSync("ss", ["-ltn", `sport = :${port}`], { encoding: "utf8" }).stdout.includes(`:${port}`), { timeoutMs: 15_000, intervalMs: 100, what: "nginx listening" });
  return p;
}

/** python ssl + http.client: three GETs and a POST on one connection (argv: port, key log file). */
export const PY_CLIENT = `
import http.client, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.keylog_filename = sys.argv[2]
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
for p in ["/py/one", "/missing", "/py/two?x=1"]:
    c.request("GET", p)
    c.getresponse().read()
c.request("POST", "/py/form", body=b"a=1&b=2", headers={"Content-Type": "application/x-www-form-urlencoded"})
c.getresponse().read()
c.close()
`;

export const NODE_TLS_FIXTURES = path.join(REPO_ROOT, "test/fixtures/node-tls");

/** The node TLS fixture servers (test/fixtures/node-tls/server.mjs: node:http2 secure with HTTP/1.1, grpc-js), started now: resolves with their ports and pid once they listen. */
export async function startNodeTlsServers(t: TestContext, tls: { cert: string; key: string }): Promise<{ web: number; grpc: number; pid: number }> {
  const p = await runChild("node-tls-servers", { file: path.join(NODE_TLS_FIXTURES, "server.mjs") }, [tls.cert, tls.key]);
  t.after(() => p.kill());
  const m = await p.waitLine(/^PORTS (\d+) (\d+)$/, 60_000);
  return { web: Number(m[1]), grpc: Number(m[2]), pid: p.pid };
}
