// `wirescope decode` end to end: the real command (node bin/wirescope.js decode) on every shared
// capture, its NDJSON checked field by field against the capture's truth file (what tshark
// decoded), plus the command's contract: errors, exit codes, --proto, --format table, --redact,
// truncated captures, progress.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";
import type { RecordJson } from "@wirescope/wire";
import { REPO_ROOT, WIRESCOPE_BIN } from "./support/index.js";

const CAPTURES = SHARED_CAPTURES;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a time limit; kills it (by pid) if it overruns. */
function wirescope(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [WIRESCOPE_BIN, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on("data", (b: Buffer) => out.push(b));
    p.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`wirescope ${args.join(" ")}: no exit within ${timeoutMs} ms`));
    }, timeoutMs);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

type Json = Record<string, unknown>;
type Rec = RecordJson;

const CONTRACT_KEYS = ["protocol", "client", "server", "startNs", "durationNs", "operation", "resource", "status", "error", "reqBytes", "respBytes"];

function parseNdjson(stdout: string): Rec[] {
  const lines = stdout.split("\n").filter(Boolean);
  return lines.map((l) => {
    const j = JSON.parse(l) as Rec;
    for (const k of CONTRACT_KEYS) assert.ok(k in j, `record without ${k}: ${l}`);
    assert.match(j.startNs, /^\d+$/);
    assert.match(j.durationNs, /^\d+$/);
    assert.equal(typeof j.attributes, "object");
    return j;
  });
}

interface Truth {
  capture: string;
  protocol: string;
  tshark_command: string;
  capture_facts: { tcp_streams: Record<string, { endpoints: string[]; client?: string; server?: string }> };
  transactions: Json[];
}

function truthOf(file: string): Truth {
  return JSON.parse(fs.readFileSync(`${file}.truth.json`, "utf8")) as Truth;
}

const pathOnly = (uri: string) => uri.split("?")[0]!;

/** Truth files write IPv6 endpoints as "::1:50051"; the NDJSON contract as "[::1]:50051". */
function endpointOf(truth: string): string {
  const i = truth.lastIndexOf(":");
  const addr = truth.slice(0, i);
  return addr.includes(":") ? `[${addr}]:${truth.slice(i + 1)}` : truth;
}

/**
 * The fields a truth transaction fixes in our record. Returns [what we got, what tshark says]
 * restricted to the fields tshark decoded.
 */
function expectFor(t: Json, r: Rec): [Json, Json] {
  const a = r.attributes;
  const got: Json = {};
  const want: Json = {};
  const put = (k: string, ours: unknown, theirs: unknown) => {
    got[k] = ours;
    want[k] = theirs;
  };
  if ("uri" in t) {
    // HTTP/1.1
    put("protocol", r.protocol, "http1");
    put("operation", r.operation, t["method"]);
    put("resource", r.resource, pathOnly(t["uri"] as string));
    put("status", r.status, t["status"] ?? null);
    put("error", r.error, ((t["status"] as number) ?? 0) >= 500);
    put("http.request.method", a["http.request.method"], t["method"]);
    put("url.path", a["url.path"], pathOnly(t["uri"] as string));
    put("server.address", a["server.address"], t["host"]);
    put("network.protocol.version", a["network.protocol.version"], "1.1");
  } else if ("stream_id" in t && t["grpc"]) {
    put("protocol", r.protocol, "grpc");
    put("operation", r.operation, t["grpc_method"]);
    put("resource", r.resource, t["path"]);
    put("status", r.status, t["grpc_status"]);
    put("error", r.error, t["grpc_status"] !== 0);
    put("rpc.system", a["rpc.system"], "grpc");
    put("rpc.service", a["rpc.service"], t["grpc_service"]);
    put("rpc.method", a["rpc.method"], t["grpc_method"]);
    put("rpc.grpc.status_code", a["rpc.grpc.status_code"], t["grpc_status"]);
    put("rpc.grpc.status_message", a["rpc.grpc.status_message"] ?? "", t["grpc_message"] ?? "");
    // the truth lists each message as [compressed flag, length]
    put("rpc.request.messages", a["rpc.request.messages"], (t["grpc_messages_request"] as unknown[]).length);
    put("rpc.response.messages", a["rpc.response.messages"], (t["grpc_messages_response"] as unknown[]).length);
  } else if ("stream_id" in t) {
    put("protocol", r.protocol, "http2");
    put("operation", r.operation, t["method"]);
    put("resource", r.resource, pathOnly(t["path"] as string));
    put("status", r.status, t["status"] ?? null);
    put("error", r.error, ((t["status"] as number) ?? 0) >= 500);
    put("http.request.method", a["http.request.method"], t["method"]);
    put("url.path", a["url.path"], pathOnly(t["path"] as string));
    put("server.address", a["server.address"], t["authority"]);
    put("network.protocol.version", a["network.protocol.version"], "2");
    put("http.response.status_code", a["http.response.status_code"], t["status"]);
  } else if ("api_key" in t) {
    put("protocol", r.protocol, "kafka");
    put("operation", r.operation, t["api_name"]);
    put("messaging.system", a["messaging.system"], "kafka");
    put("kafka.api_key", a["kafka.api_key"], t["api_key"]);
    put("kafka.api_version", a["kafka.api_version"], t["api_version"]);
    put("kafka.correlation_id", a["kafka.correlation_id"], t["correlation_id"]);
    put("messaging.client.id", a["messaging.client.id"], t["client_id"]);
    if (t["tshark_request_body_decoded"] !== false) {
      const topics = t["topics"] as string[];
      put("kafka.topics", a["kafka.topics"] ?? [], topics);
      put("resource", r.resource, topics.join(","));
    }
    const codes = t["error_codes"] as number[];
    if (t["tshark_response_body_decoded"] !== false && codes.length) {
      const first = codes.find((c) => c !== 0) ?? 0;
      put("status", r.status, first);
      put("error", r.error, first !== 0);
    }
  } else if ("command" in t) {
    put("protocol", r.protocol, "mysql");
    put("operation", r.operation, t["command"]);
    put("db.system", a["db.system"], "mysql");
    put("mysql.command", a["mysql.command"], t["command"]);
    if (t["user"]) put("db.user", a["db.user"], t["user"]);
    if (typeof t["query"] === "string") put("db.query.text", a["db.query.text"], t["query"]);
    if (t["stmt_id"] !== undefined) put("mysql.stmt_id", a["mysql.stmt_id"], t["stmt_id"]);
    if (t["stmt_id_assigned"] !== undefined) put("mysql.stmt_id", a["mysql.stmt_id"], t["stmt_id_assigned"]);
    if (t["outcome"] === "NO_RESPONSE_IN_FILE") {
      // COM_QUIT and COM_STMT_CLOSE never get a response: they are complete without one
      if (t["command"] !== "COM_QUIT" && t["command"] !== "COM_STMT_CLOSE") {
        put("incomplete", r.incomplete ?? false, true);
        put("status", r.status, null);
      }
    } else {
      put("mysql.response", a["mysql.response"], t["response"]);
      put("status", r.status, t["error_code"] ?? 0);
      put("error", r.error, t["response"] === "ERR");
      if (t["rows"] !== undefined) put("mysql.rows", a["mysql.rows"], t["rows"]);
      // (the login's OK packet carries affected_rows 0 too; our LOGIN record leaves it out)
      if (t["affected_rows"] !== undefined && t["command"] !== "LOGIN") put("mysql.affected_rows", a["mysql.affected_rows"], t["affected_rows"]);
    }
  } else {
    throw new Error(`unknown truth transaction shape: ${JSON.stringify(t)}`);
  }
  return [got, want];
}

/** Records tshark does not list as transactions, which we emit on purpose (see below). */
function explainedExtra(capture: string, r: Rec): boolean {
  // zeek__auth: three connections where the server refuses the host before any login request
  // (ERR 1130 as its first packet); tshark shows the ERR but lists no transaction for it
  return capture === "zeek__auth.pcap" && r.operation === "LOGIN" && r.status === 1130;
}

const captures = fs
  .readdirSync(CAPTURES, { recursive: true })
  .map((f) => path.join(CAPTURES, f.toString()))
  .filter((f) => /\.pcap(ng)?$/.test(f) && fs.existsSync(`${f}.truth.json`))
  .sort();

describe("wirescope decode on the shared captures", () => {
  test("the captures are there", () => assert.ok(captures.length >= 12, `expected the shared captures in ${CAPTURES}`));

  for (const file of captures) {
    const name = path.basename(file);
    test(`${name}: every transaction tshark decoded, field by field`, { timeout: 120_000 }, async () => {
      const truth = truthOf(file);
      const run = await wirescope(["decode", file]);
      assert.equal(run.code, 0, run.stderr);
      const recs = parseNdjson(run.stdout);
      const streams = truth.capture_facts.tcp_streams;
      const used = new Set<Rec>();
      // transactions in request order, per connection; records of that connection in start order
      const byStream = new Map<number, Json[]>();
      for (const t of truth.transactions) {
        const s = t["tcp_stream"] as number;
        if (!byStream.has(s)) byStream.set(s, []);
        byStream.get(s)!.push(t);
      }
      for (const [s, ts] of byStream) {
        const facts = streams[String(s)]!;
        const ends = facts.endpoints.map(endpointOf).sort().join(" ");
        const mine = recs.filter((r) => !used.has(r) && [r.client, r.server].sort().join(" ") === ends && !explainedExtra(name, r)).sort((a, b) => (BigInt(a.startNs) < BigInt(b.startNs) ? -1 : BigInt(a.startNs) > BigInt(b.startNs) ? 1 : 0));
        ts.sort((a, b) => (a["request_frame"] as number) - (b["request_frame"] as number));
        assert.equal(mine.length, ts.length, `${name} tcp.stream ${s}: ${ts.length} transactions in the truth, ${mine.length} records:\n${mine.map((r) => JSON.stringify(r)).join("\n")}`);
        ts.forEach((t, i) => {
          const r = mine[i]!;
          used.add(r);
          if (facts.client) {
            assert.equal(r.client, endpointOf(facts.client), `${name} stream ${s}: client`);
            assert.equal(r.server, endpointOf(facts.server!));
          }
          const [got, want] = expectFor(t, r);
          assert.deepEqual(got, want, `${name} stream ${s} transaction ${i} (${JSON.stringify(t)})`);
          if (r.incomplete) assert.equal(r.status, null);
        });
      }
      const extra = recs.filter((r) => !used.has(r));
      for (const r of extra) assert.ok(explainedExtra(name, r), `${name}: record tshark does not list: ${JSON.stringify(r)}`);
    });
  }
});

describe("wirescope decode contract", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-decode-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("a file that is not a capture: one line on stderr, exit 1, nothing on stdout", async () => {
    const f = path.join(dir, "notes.txt");
    fs.writeFileSync(f, "these are notes, not packets\n");
    for (const [file, msg] of [
      [f, /not a pcap or pcapng capture/],
      [path.join(dir, "missing.pcap"), /no such file/],
    ] as const) {
      const run = await wirescope(["decode", file]);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
      assert.match(run.stderr, msg);
      assert.match(run.stderr, /^wirescope decode: /);
    }
  });

  test("wrong usage exits 2 with a hint", async () => {
    const http1 = path.join(CAPTURES, "http1/zeek__pipelined-requests.pcap");
    for (const args of [["decode"], ["decode", http1, "--format", "xml"], ["decode", http1, "--proto", "http1"], ["decode", http1, "--proto", "80=gopher"], ["decode", http1, "--bogus"]]) {
      const run = await wirescope(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    }
  });

  test("--proto forces a plugin by port; content detection is the default", async () => {
    const kafka = path.join(CAPTURES, "kafka/deepflow__01-fetch-v12-ok.pcap");
    const auto = parseNdjson((await wirescope(["decode", kafka])).stdout);
    const forced = parseNdjson((await wirescope(["decode", kafka, "--proto", "36333=kafka"])).stdout);
    assert.equal(auto.length, 1);
    assert.deepEqual(forced, auto);
    // forcing the wrong protocol decodes nothing from it, and says so in the counters
    const wrong = await wirescope(["decode", kafka, "--proto", "36333=mysql", "--stats"]);
    assert.equal(wrong.code, 0);
    assert.equal(parseNdjson(wrong.stdout).filter((r) => r.protocol === "kafka").length, 0);
    assert.match(wrong.stderr, /"engine\.conn_claimed\.mysql":1/);
  });

  test("--format table prints a header and one aligned row per record", async () => {
    const f = path.join(CAPTURES, "http2/pcap_file_ex__http2_sample.pcapng");
    const run = await wirescope(["decode", f, "--format", "table"]);
    assert.equal(run.code, 0);
    const lines = run.stdout.trim().split("\n");
    assert.equal(lines.length, 1 + 21);
    assert.match(lines[0]!, /client -> server/);
    assert.match(lines[1]!, /http2 +127\.0\.0\.1:59289 -> 127\.0\.0\.1:8097 +GET +\/hello +404/);
  });

  test("--redact masks SQL literals; without it the query is as sent", async () => {
    const f = path.join(CAPTURES, "mysql/zeek__mysql.pcap");
    const plain = parseNdjson((await wirescope(["decode", f])).stdout);
    const red = parseNdjson((await wirescope(["decode", f, "--redact"])).stdout);
    const q = (rs: Rec[]) => rs.map((r) => r.attributes["db.query.text"]).filter(Boolean) as string[];
    assert.ok(q(plain).includes('insert into foo (animal, name) values ("dog", "Goofy")'));
    assert.ok(!q(red).some((s) => s.includes("Goofy")), q(red).join(" | "));
    assert.equal(red.length, plain.length);
  });

  test("a truncated capture prints what it holds, warns once, exits 0; requests cut off are incomplete", async () => {
    // frames 1-21: the fifth request (frame 20) and the first segment of its response (frame 21),
    // which the cut below leaves truncated: the fifth request gets no response
    const kept = path.join(dir, "kept.pcap");
    await new Promise<void>((resolve, reject) => {
      const p = spawn("editcap", ["-r", path.join(CAPTURES, "http1/zeek__pipelined-requests.pcap"), kept, "1-21"], { stdio: "ignore" });
      p.on("error", reject);
      p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`editcap exited ${code}`))));
    });
    const f = path.join(dir, "cut.pcap");
    const whole = fs.readFileSync(kept);
    fs.writeFileSync(f, whole.subarray(0, whole.length - 10));
    const run = await wirescope(["decode", f]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    assert.match(run.stderr, /truncated (record|block)/);
    const recs = parseNdjson(run.stdout);
    assert.equal(recs.length, 5);
    const last = recs.find((r) => r.resource === "/projects/calendar/images/header-sunbird.png")!;
    assert.equal(last.incomplete, true);
    assert.equal(last.status, null);
    assert.equal(recs.filter((r) => r.status === 200 && !r.incomplete).length, 4);
  });

  test("reads a capture from standard input (-), piped or redirected, gzip-compressed or not", async () => {
    const f = path.join(CAPTURES, "mysql/zeek__mysql.pcap");
    const direct = await wirescope(["decode", f]);
    const sh = (cmd: string) =>
      new Promise<Run>((resolve, reject) => {
        const p = spawn("sh", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        p.stdout.on("data", (b: Buffer) => out.push(b));
        p.stderr.on("data", (b: Buffer) => err.push(b));
        const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
        p.on("error", reject);
        p.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
        });
      });
    const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(WIRESCOPE_BIN)} decode -`;
    const gz = path.join(dir, "m.pcap.gz");
    fs.writeFileSync(gz, (await import("node:zlib")).gzipSync(fs.readFileSync(f)));
    for (const cmd of [`cat ${JSON.stringify(f)} | ${cli}`, `${cli} < ${JSON.stringify(f)}`, `${cli} < ${JSON.stringify(gz)}`]) {
      const run = await sh(cmd);
      assert.equal(run.code, 0, `${cmd}: ${run.stderr}`);
      assert.equal(run.stdout, direct.stdout, cmd);
    }
    const bad = await sh(`echo not a capture | ${cli}`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^wirescope decode: stdin: not a pcap or pcapng capture/);
  });

  test("--jobs N splits the connections between threads: the same records, in some order", async () => {
    for (const f of ["mysql/zeek__auth.pcap", "mysql/deepflow__mysql-statement.pcap", "grpc/gRPC-Go-for-Professionals__Unary.pcapng"]) {
      const file = path.join(CAPTURES, f);
      const one = await wirescope(["decode", file, "--stats"]);
      const three = await wirescope(["decode", file, "--jobs", "3", "--stats"]);
      assert.equal(three.code, 0, three.stderr);
      const sorted = (r: Run) => r.stdout.split("\n").filter(Boolean).sort();
      assert.deepEqual(sorted(three), sorted(one), f);
      const stats = (r: Run) => JSON.parse(/stats (\{.*\})/.exec(r.stderr)![1]!) as Record<string, number>;
      for (const k of ["records", "reader.packets", "tcp.connections", "tcp.bytes"]) assert.equal(stats(three)[k], stats(one)[k], `${f}: ${k}`);
    }
    const usage = await wirescope(["decode", "-", "--jobs", "2"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /standard input can be read only once/);
  });

  test("frames it cannot use are counted and named on stderr, never dropped silently", async () => {
    const f = path.join(dir, "snap40.pcap");
    await new Promise<void>((resolve, reject) => {
      const p = spawn("editcap", ["-s", "40", path.join(CAPTURES, "http1/zeek__pipelined-requests.pcap"), f], { stdio: "ignore" });
      p.on("error", reject);
      p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`editcap exited ${code}`))));
    });
    const run = await wirescope(["decode", f]);
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /^wirescope decode: skipped 49 frames cut inside their headers/);
    const stats = await wirescope(["decode", f, "--stats"]);
    assert.match(stats.stderr, /"frames_skipped\.truncated_header":49/);
  });

  test("--progress reports on stderr; a closed pipe ends quietly", async () => {
    const f = path.join(CAPTURES, "grpc/gRPC-Go-for-Professionals__Unary.pcapng");
    const run = await wirescope(["decode", f, "--progress"]);
    assert.equal(run.code, 0);
    assert.equal(parseNdjson(run.stdout).length, 1);
    assert.match(run.stderr, /^decode: 0\.4 MiB read, 1 records$/m);
    // without --progress and not on a terminal: silent for a small file
    assert.equal((await wirescope(["decode", f])).stderr, "");
    const head = await new Promise<Run>((resolve, reject) => {
      const p = spawn("sh", ["-c", `node ${JSON.stringify(WIRESCOPE_BIN)} decode ${JSON.stringify(path.join(CAPTURES, "http2/pcap_file_ex__http2_sample.pcapng"))} | head -n 1`], { stdio: ["ignore", "pipe", "pipe"] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      p.stdout.on("data", (b: Buffer) => out.push(b));
      p.stderr.on("data", (b: Buffer) => err.push(b));
      const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
      p.on("error", reject);
      p.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
    });
    assert.equal(head.stdout.trim().split("\n").length, 1);
    assert.equal(head.stderr, "");
  });
});
