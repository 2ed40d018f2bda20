// Every HTTP/1.1, HTTP/2 and gRPC capture in the shared set decodes to what tshark says in its
// truth file (transactions: method, path, authority/host, status, gRPC status, message counts,
// DATA byte counts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { decodeCapture } from "../../http1/test/decode.js";
import type { RecordJson } from "@wirescope/wire/record-json";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";

const CAPTURES = SHARED_CAPTURES;

interface Truth {
  tshark_command: string;
  capture_facts: { tcp_streams: Record<string, { endpoints: string[]; client?: string; server?: string }> };
  transactions: Record<string, unknown>[];
}

function load(folder: string): { file: string; truth: Truth }[] {
  const dir = path.join(CAPTURES, folder);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".truth.json"))
    .map((f) => ({ file: path.join(dir, f.replace(/\.truth\.json$/, "")), truth: JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Truth }));
}

/** Ports tshark needed decode-as for (from its -d 'tcp.port==N,proto'), forced the same way here. */
function decodeAs(truth: Truth): Record<number, string> {
  const out: Record<number, string> = {};
  for (const m of truth.tshark_command.matchAll(/tcp\.port==(\d+),(\w+)/g)) out[+m[1]!] = m[2] === "http" ? "http1" : "http2";
  return out;
}

/** The records of one TCP stream of the truth file, matched by endpoints. */
function recordsOf(records: RecordJson[], truth: Truth, stream: number): RecordJson[] {
  const eps = truth.capture_facts.tcp_streams[String(stream)]!.endpoints.map((e) => e.replace(/^(.*):(\d+)$/, (_, a: string, p: string) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`)));
  return records.filter((r) => eps.includes(r.client) && eps.includes(r.server));
}

const splitUri = (u: string) => {
  const q = u.indexOf("?");
  return q < 0 ? { path: u, query: undefined } : { path: u.slice(0, q), query: u.slice(q + 1) };
};

describe("captures: HTTP/1.1", () => {
  for (const { file, truth } of load("http1")) {
    it(path.basename(file), () => {
      const { records } = decodeCapture(file, { portProto: decodeAs(truth), flags: 0 });
      const byStream = new Map<number, Record<string, unknown>[]>();
      for (const t of truth.transactions) byStream.set(t["tcp_stream"] as number, [...(byStream.get(t["tcp_stream"] as number) ?? []), t]);
      for (const [stream, txs] of byStream) {
        const got = recordsOf(records, truth, stream);
        assert.equal(got.length, txs.length, `tcp stream ${stream}: record count`);
        txs.forEach((t, i) => {
          const r = got[i]!;
          const { path: p, query } = splitUri(t["uri"] as string);
          assert.equal(r.protocol, "http1");
          assert.equal(r.operation, t["method"]);
          assert.equal(r.attributes["http.request.method"], t["method"]);
          assert.equal(r.resource, p);
          assert.equal(r.attributes["url.path"], p);
          assert.equal(r.attributes["url.query"], query);
          assert.equal(r.attributes["server.address"], t["host"]);
          assert.equal(r.status, t["status"]);
          assert.equal(r.attributes["http.response.status_code"], t["status"]);
          assert.equal(r.attributes["network.protocol.version"], "1.1");
          assert.equal(r.error, (t["status"] as number) >= 500);
          assert.equal(r.incomplete, undefined);
        });
      }
    });
  }
});

function checkH2(file: string, truth: Truth): void {
  const { records } = decodeCapture(file, { portProto: decodeAs(truth), flags: 0 });
  const streams = new Set(truth.transactions.map((t) => t["tcp_stream"] as number));
  for (const stream of streams) {
    const txs = truth.transactions.filter((t) => t["tcp_stream"] === stream);
    const got = recordsOf(records, truth, stream);
    assert.equal(got.length, txs.length, `tcp stream ${stream}: record count`);
    for (const t of txs) {
      // records come out when streams end; match them by path + order among equal paths
      const idx = got.findIndex((r) => r.attributes["url.path"] === splitUri(t["path"] as string).path || r.resource === t["path"]);
      assert.ok(idx >= 0, `stream ${String(t["stream_id"])} ${String(t["path"])}: no record`);
      const r = got.splice(idx, 1)[0]!;
      assert.equal(r.attributes["server.address"], t["authority"]);
      assert.equal(r.attributes["network.protocol.version"], "2");
      assert.equal(r.reqBytes, t["request_data_bytes"]);
      assert.equal(r.respBytes, t["response_data_bytes"]);
      if (t["grpc"]) {
        assert.equal(r.protocol, "grpc");
        assert.equal(r.resource, t["path"]);
        assert.equal(r.operation, t["grpc_method"]);
        assert.equal(r.attributes["rpc.system"], "grpc");
        assert.equal(r.attributes["rpc.service"], t["grpc_service"]);
        assert.equal(r.attributes["rpc.method"], t["grpc_method"]);
        assert.equal(r.status, t["grpc_status"]);
        assert.equal(r.attributes["rpc.grpc.status_code"], t["grpc_status"]);
        assert.equal(r.attributes["rpc.grpc.status_message"], t["grpc_message"]);
        assert.equal(r.attributes["rpc.request.messages"], (t["grpc_messages_request"] as unknown[]).length);
        assert.equal(r.attributes["rpc.response.messages"], (t["grpc_messages_response"] as unknown[]).length);
        assert.equal(r.error, t["grpc_status"] !== 0);
      } else {
        const { path: p, query } = splitUri(t["path"] as string);
        assert.equal(r.protocol, "http2");
        assert.equal(r.operation, t["method"]);
        assert.equal(r.attributes["http.request.method"], t["method"]);
        assert.equal(r.resource, p);
        assert.equal(r.attributes["url.path"], p);
        assert.equal(r.attributes["url.query"], query);
        assert.equal(r.status, t["status"]);
        assert.equal(r.attributes["http.response.status_code"], t["status"]);
        assert.equal(r.error, (t["status"] as number) >= 500);
      }
      assert.equal(r.incomplete, t["response_complete"] ? undefined : true);
      assert.equal(r.attributes["http2.request_unknown"], undefined);
    }
  }
}

describe("captures: HTTP/2", () => {
  for (const { file, truth } of load("http2")) it(path.basename(file), () => checkH2(file, truth));
});

describe("captures: gRPC", () => {
  for (const { file, truth } of load("grpc")) it(path.basename(file), () => checkH2(file, truth));
});
