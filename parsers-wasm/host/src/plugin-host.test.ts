// The plugin host with real modules: the Redis example plugin, a plugin built to misbehave on
// request (parsers-wasm/test-support/fixtures/misbehave), and small hand-assembled modules for
// the loader's refusals. parsers-wasm/build.mjs must have run (npm test does).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { RecordSchema } from "@wirescope/wire/gen/wirescope/v1/record_pb";
import { Plugin, PluginError, PluginRegistry, ConnectionEngine, meterModule, type Dir } from "./index.js";
import { recordToJson } from "@wirescope/wire/record-json";
import { H2_PREFACE, h2Frame, hpackIndexedName } from "./test-support/http2.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const REDIS = path.join(root, "parsers-wasm/examples/redis/build/redis.json");
const MISBEHAVE = path.join(root, "parsers-wasm/test-support/fixtures/misbehave/build/misbehave.json");
const enc = (s: string) => new TextEncoder().encode(s);

function built(p: string): string {
  assert.ok(fs.existsSync(p), `${p} missing: run node parsers-wasm/build.mjs`);
  return p;
}

// ---- a tiny WebAssembly assembler for the loader tests ----
function u32(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const str = (s: string) => [...u32(s.length), ...Buffer.from(s)];
const vec = (items: number[][]) => [...u32(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...u32(body.length), ...body];
const I32 = 0x7f;
const I64 = 0x7e;

interface FakeOptions {
  abiVersion?: number;
  startTrap?: boolean;
  memMax?: number;
  omit?: string;
  importName?: string;
}

/** A module with every ABI export as a stub (feed/gap/close return 0). */
function fakePlugin(o: FakeOptions = {}): Uint8Array {
  const types = [
    [0x60, ...vec([]), ...vec([[I32]])], // 0: () -> i32
    [0x60, ...vec([[I32]]), ...vec([[I32]])], // 1: (i32) -> i32
    [0x60, ...vec([[I32], [I32], [I32]]), ...vec([[I32]])], // 2: detect
    [0x60, ...vec([]), ...vec([])], // 3: () -> ()
    [0x60, ...vec([[I32]]), ...vec([])], // 4: (i32) -> ()
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I64]]), ...vec([[I32]])], // 5: feed
    [0x60, ...vec([[I32], [I32], [I32], [I64]]), ...vec([[I32]])], // 6: gap
    [0x60, ...vec([[I32], [I64]]), ...vec([[I32]])], // 7: close
  ];
  const fns: [string, number, number[]][] = [
    ["abi_version", 0, [0x41, ...u32(o.abiVersion ?? 1), 0x0b]],
    ["input_buffer", 1, [0x41, ...u32(1024), 0x0b]],
    ["detect", 2, [0x41, 0, 0x0b]],
    ["conn_new", 0, [0x41, 1, 0x0b]],
    ["conn_free", 4, [0x0b]],
    ["feed", 5, [0x41, 0, 0x0b]],
    ["gap", 6, [0x41, 0, 0x0b]],
    ["close", 7, [0x41, 0, 0x0b]],
    ["out_ptr", 0, [0x41, 0, 0x0b]],
    ["out_len", 0, [0x41, 0, 0x0b]],
    ["out_clear", 3, [0x0b]],
    ["configure", 4, [0x0b]],
    ["__start", 3, o.startTrap ? [0x00, 0x0b] : [0x0b]],
  ];
  const imports = o.importName ? [[...str("env"), ...str(o.importName), 0x00, ...u32(3)]] : [];
  const nImp = imports.length;
  const kept = fns.filter(([n]) => n !== o.omit);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...(imports.length ? section(2, vec(imports)) : []),
    ...section(3, vec(kept.map(([, t]) => u32(t)))),
    ...section(5, vec([[0x01, ...u32(1), ...u32(o.memMax ?? 16)]])),
    ...section(7, vec([...(o.omit === "memory" ? [] : [[...str("memory"), 0x02, 0]]), ...kept.filter(([n]) => n !== "__start").map(([n]) => [...str(n), 0x00, ...u32(nImp + kept.findIndex(([k]) => k === n))])])),
    ...section(8, u32(nImp + kept.findIndex(([n]) => n === "__start"))),
    ...section(10, vec(kept.map(([, , body]) => { const b = [0x00, ...body]; return [...u32(b.length), ...b]; }))),
  ];
  return Uint8Array.from(bytes);
}

const manifest = (name = "fake", extra: Record<string, unknown> = {}) => ({ name, version: "1.0.0", abi: 1, protocols: [name], ports: [], ...extra });

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PluginError, `expected a PluginError, got ${e}`);
    assert.ok(!e.message.includes("\n"), "one-line message");
    return e.code;
  }
  assert.fail("expected the plugin to be refused");
}

describe("Plugin.fromBytes / fromFile", () => {
  test("a well-formed module loads", () => {
    const p = Plugin.fromBytes(manifest(), fakePlugin());
    assert.equal(p.name, "fake");
    assert.equal(p.instance().detect(0, enc("x")), 0);
  });

  test("refuses: not WASM, bad ABI, missing export, forbidden import, memory cap, start trap", () => {
    assert.equal(code(() => Plugin.fromBytes(manifest(), enc("GET / HTTP/1.1\r\n\r\n"))), "not_wasm");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin().subarray(0, 40))), "not_wasm");
    assert.equal(code(() => Plugin.fromBytes({ ...manifest(), abi: 3 }, fakePlugin())), "bad_abi");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ abiVersion: 2 }))), "bad_abi");
    // a version 2 manifest needs the version 2 exports
    assert.equal(code(() => Plugin.fromBytes({ ...manifest(), abi: 2 }, fakePlugin({ abiVersion: 2 }))), "missing_export");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ omit: "feed" }))), "missing_export");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ omit: "memory" }))), "missing_export");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ importName: "seed" }))), "bad_import");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ memMax: 2048 }), { maxMemoryMiB: 0.03 })), "memory_cap");
    assert.equal(code(() => Plugin.fromBytes(manifest(), fakePlugin({ startTrap: true }))), "start_trap");
    assert.equal(code(() => Plugin.fromBytes({ name: "Bad Name", version: "1", abi: 1 }, fakePlugin())), "bad_manifest");
    assert.equal(code(() => Plugin.fromBytes({ name: "x", abi: 1 }, fakePlugin())), "bad_manifest");
    assert.equal(code(() => Plugin.fromBytes("nope", fakePlugin())), "bad_manifest");
    assert.equal(code(() => Plugin.fromFile("/nonexistent/plugin.json")), "io");
  });

  test("lowers a declared memory maximum above the cap to the cap", () => {
    const r = meterModule(fakePlugin({ memMax: 100 }), { maxPages: 1024, meter: true });
    assert.deepEqual(r.memory, { min: 1, max: 100 });
    const low = meterModule(fakePlugin({ memMax: 100 }), { maxPages: 50, meter: false });
    assert.equal(meterModule(low.binary, { maxPages: 1024, meter: false }).memory?.max, 50);
  });

  test("loads a directory, reporting the bad files and keeping the good ones", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wirescope-plugins-"));
    try {
      fs.copyFileSync(built(REDIS), path.join(dir, "redis.json"));
      fs.copyFileSync(REDIS.replace(/\.json$/, ".wasm"), path.join(dir, "redis.wasm"));
      fs.writeFileSync(path.join(dir, "junk.json"), JSON.stringify(manifest("junk")));
      fs.writeFileSync(path.join(dir, "junk.wasm"), "not wasm at all");
      const reg = new PluginRegistry();
      const res = reg.loadDir(dir);
      assert.deepEqual(res.loaded.map((p) => p.name), ["redis"]);
      assert.equal(res.errors.length, 1);
      assert.equal(res.errors[0]!.error.code, "not_wasm");
      assert.match(res.errors[0]!.error.message, /junk/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function engineWith(...files: string[]): ConnectionEngine {
  const reg = new PluginRegistry();
  for (const f of files) reg.add(Plugin.fromFile(built(f)));
  return new ConnectionEngine(reg);
}

describe("a per-connection limit (-3) restarts the plugin's state instead of dropping the connection", () => {
  test("restarted with a gap on each direction, only after progress; counted", () => {
    const eng = engineWith(MISBEHAVE);
    const c = eng.openConnection();
    assert.equal(c.data(0, enc("MB:REC a"), 1n).records.length, 1);
    const r = c.data(0, enc("MB:LIMIT"), 2n);
    assert.equal(r.state, "decoding");
    assert.equal(eng.counters.get("conn_restarted.limit"), 1);
    // a fresh state, told that it starts mid-way: one gap before this direction's next bytes
    const g = c.data(0, enc("MB:GAPS"), 3n);
    assert.equal(recordToJson(g.records[0]!).resource, "gaps=1");
    assert.equal(c.data(0, enc("MB:LIMIT"), 4n).state, "decoding");
    assert.equal(eng.counters.get("conn_restarted.limit"), 2);
    // no record since the last restart: the limit is final
    const last = c.data(0, enc("MB:LIMIT"), 5n);
    assert.equal(last.state, "rejected");
    assert.equal(last.reason, "limit");
    assert.equal(eng.counters.get("conn_restarted.limit"), 2);
    assert.equal(eng.counters.get("conn_dropped.limit"), 1);
  });
});

describe("isolation: traps, runaways, memory", { timeout: 60_000 }, () => {
  for (const [word, kind] of [
    ["LOOP", "runaway"],
    ["TRAP", "trap"],
    ["ABORT", "abort"],
    ["GROW", "memory"],
    ["RECURSE", "stack"],
  ] as const) {
    test(`MB:${word} costs only that instance's connections (${kind}), counted; new connections work`, () => {
      const eng = engineWith(MISBEHAVE);
      const bystander = eng.openConnection();
      assert.equal(bystander.data(0, enc("MB:REC first"), 1n).records.length, 1);
      const victim = eng.openConnection();
      const r = victim.data(0, enc(`MB:${word}`), 2n);
      assert.equal(r.state, "rejected");
      assert.equal(r.reason, "plugin_trap");
      const c = eng.counters.snapshot();
      assert.equal(c["plugin_traps.misbehave"], 1);
      assert.equal(c[`plugin_traps.misbehave.${kind}`], 1, JSON.stringify(c));
      // the bystander shared the dead instance: dropped at its next call, counted
      const b = bystander.data(0, enc("MB:REC again"), 3n);
      assert.equal(b.state, "rejected");
      assert.equal(b.reason, "plugin_trap");
      assert.equal(eng.counters.get("conn_dropped.plugin_trap"), 2);
      assert.equal(eng.counters.get("plugin_traps.misbehave"), 1, "one trap, counted once");
      // a fresh instance serves new connections
      const next = eng.openConnection();
      const n = next.data(0, enc("MB:REC after"), 4n);
      assert.equal(n.state, "decoding");
      assert.equal(recordToJson(n.records[0]!).operation, " after");
    });
  }

  test("memory stays within the cap", () => {
    const p = Plugin.fromFile(built(MISBEHAVE), { maxMemoryMiB: 8 });
    const reg = new PluginRegistry();
    reg.add(p);
    const eng = new ConnectionEngine(reg);
    eng.openConnection().data(0, enc("MB:GROW"), 1n);
    assert.equal(eng.counters.get("plugin_traps.misbehave.memory"), 1);
    const dead = [...Array(1)].map(() => p.instance()); // the dead instance is replaced
    assert.ok(dead[0]!.memoryBytes() <= 8 << 20);
    assert.equal(p.restarts, 1);
  });

  test("a detect() trap costs no live connection", () => {
    const eng = engineWith(MISBEHAVE);
    const live = eng.openConnection();
    live.data(0, enc("MB:REC x"), 1n);
    const probe = eng.openConnection();
    const r = probe.data(0, enc("MB:DETECTTRAP"), 2n);
    assert.equal(r.state, "detecting");
    assert.equal(eng.counters.get("detect_traps.misbehave"), 1);
    assert.equal(live.data(0, enc("MB:REC y"), 3n).records.length, 1);
  });

  test("negative returns end the connection with their reason", () => {
    const eng = engineWith(MISBEHAVE);
    const a = eng.openConnection({ protocol: "misbehave" });
    a.data(0, enc("MB:REC ok"), 1n);
    assert.equal(a.data(0, enc("MB:BROKEN"), 2n).reason, "broken");
    assert.equal(a.data(0, enc("MB:REC more"), 3n).records.length, 0);
    assert.ok(eng.counters.get("bytes_dropped.broken") > 0);
    // "not mine" right after the claim: detection runs again without this plugin
    const b = eng.openConnection();
    const r = b.data(0, enc("MB:NOTMINE"), 1n);
    assert.equal(eng.counters.get("detect_retracted.misbehave"), 1);
    assert.equal(r.state, "detecting");
  });
});

describe("ConnectionEngine", () => {
  test("detects by content, decodes, writes incomplete requests at close", () => {
    const eng = engineWith(MISBEHAVE, REDIS);
    const c = eng.openConnection({ portHint: 12345 });
    assert.equal(c.data(0, enc("*2\r\n$3\r\nGET\r\n$1\r\na\r\n"), 10n).state, "decoding");
    assert.equal(c.plugin?.name, "redis");
    const r = c.data(1, enc("$1\r\nx\r\n"), 20n);
    assert.equal(r.records.length, 1);
    const rec = fromBinary(RecordSchema, r.records[0]!);
    assert.equal(rec.operation, "GET");
    assert.equal(rec.durationNs, 10n);
    c.data(0, enc("*1\r\n$4\r\nPING\r\n"), 30n);
    const end = c.close(40n);
    assert.equal(end.state, "closed");
    assert.equal(recordToJson(end.records[0]!).incomplete, true);
  });

  test("unknown orientation: the better hypothesis wins and directions are swapped", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection({ clientKnown: false });
    // an array of bulk strings may be a request or a reply: no guess while the other side is silent
    assert.equal(c.data(1, enc("*1\r\n$4\r\nPING\r\n"), 1n).state, "detecting");
    const r = c.data(0, enc("+PONG\r\n"), 2n);
    assert.equal(c.flipped, true);
    assert.equal(c.orientation, "content");
    assert.equal(recordToJson(r.records[0]!).operation, "PING");
  });

  test("unknown orientation that content cannot decide is kept as the caller's and called a guess", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection({ clientKnown: false });
    c.data(1, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    const r = c.close(2n);
    assert.equal(r.state, "closed");
    assert.equal(c.flipped, false);
    assert.equal(c.orientation, "guessed");
    assert.equal(eng.counters.get("orientation_guessed"), 1);
  });

  test("port hints break ties; registry order otherwise", () => {
    const wasm = fs.readFileSync(built(REDIS).replace(/\.json$/, ".wasm"));
    const reg = new PluginRegistry();
    reg.add(Plugin.fromBytes(manifest("resp-a", { ports: [7000], abi: 2 }), wasm));
    reg.add(Plugin.fromBytes(manifest("resp-b", { ports: [7001], abi: 2 }), wasm));
    const eng = new ConnectionEngine(reg);
    const req = enc("*1\r\n$4\r\nPING\r\n");
    const a = eng.openConnection({ portHint: 7001 });
    a.data(0, req, 1n);
    assert.equal(a.plugin?.name, "resp-b");
    const b = eng.openConnection({ portHint: 9 });
    b.data(0, req, 1n);
    assert.equal(b.plugin?.name, "resp-a");
  });

  test("a connection picked up mid-way: garbage first, then a message start", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection();
    // the tail of a value written before the capture started (≥ 32 bytes: a window that short
    // may just be a prefix detectors cannot judge yet)
    assert.equal(c.data(0, enc("lue of a key written before we looked\r\n$5\r\ngarbage-tail"), 1n).state, "detecting");
    assert.equal(c.data(1, enc("+OK\r\n"), 2n).state, "detecting");
    const r = c.data(0, enc("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), 3n);
    assert.equal(r.state, "decoding");
    const r2 = c.data(1, enc("$1\r\nv\r\n"), 4n);
    assert.equal(r2.records.length, 1);
    assert.equal(recordToJson(r2.records[0]!).resource, "k");
    assert.ok(eng.counters.get("bytes_dropped.before_detect") > 0);
  });

  test("gives up after detectLimit bytes: unclaimed, counted, later bytes dropped and counted", () => {
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(built(REDIS)));
    const eng = new ConnectionEngine(reg, { detectLimit: 1000 });
    const c = eng.openConnection();
    let state = "";
    for (let i = 0; i < 20 && state !== "rejected"; i++) state = c.data((i % 2) as Dir, new Uint8Array(100).fill(0x41 + i), BigInt(i)).state;
    assert.equal(state, "rejected");
    assert.equal(c.reason, "unclaimed");
    assert.equal(eng.counters.get("unclaimed"), 1);
    c.data(0, new Uint8Array(50), 99n);
    assert.equal(eng.counters.get("bytes_dropped.unclaimed"), 1050);
  });

  test("a connection dribbling one byte per chunk costs few detection rounds", () => {
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(built(REDIS)));
    const eng = new ConnectionEngine(reg, { detectLimit: 4000 });
    const c = eng.openConnection();
    for (let i = 0; i < 4000 && c.state === "detecting"; i++) c.data(0, Uint8Array.of(0x41 + (i % 26)), BigInt(i));
    assert.equal(c.reason, "unclaimed");
    const rounds = eng.counters.get("detect_rounds");
    assert.ok(rounds > 10 && rounds < 400, `detect rounds ${rounds}`);
  });

  test("100,000 connections opened and closed: instance memory stays small (no leak per connection)", () => {
    const p = Plugin.fromFile(built(REDIS));
    const reg = new PluginRegistry();
    reg.add(p);
    const eng = new ConnectionEngine(reg);
    const req = enc("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
    const part = enc("+OK\r\n$5\r\nva");
    let records = 0;
    for (let i = 0; i < 100_000; i++) {
      const c = eng.openConnection({ protocol: "redis" });
      c.data(0, req, 1n);
      records += c.data(1, part, 2n).records.length; // the GET reply stays half-read in the queue
      records += c.close(3n).records.length;
    }
    assert.equal(records, 200_000);
    assert.ok(p.instance().memoryBytes() <= 4 << 20, `instance memory ${p.instance().memoryBytes()} bytes`);
    const st = p.stats();
    assert.equal(st.connections, 0, "every handle freed");
    assert.equal(st.restarts, 0);
    assert.ok(st.loops > 0, "metered");
  });

  test("detection windows are held only while detecting: an idle or a decoding connection holds none", () => {
    // A parser holds every open connection: 100,000 half-open ones under a flood. The windows
    // (six, with their arrays) were made for every connection and kept after a claim: ~0.9 KB
    // of heap each (1,271 bytes an idle connection, 2,057 a decoding one, before; 423 and 889
    // now). Measured per connection over 20,000, after a full collection.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(built(REDIS)));
    const eng = new ConnectionEngine(reg);
    const N = 20_000;
    const heapPer = (open: () => unknown): number => {
      const held: unknown[] = [];
      gc();
      const h0 = process.memoryUsage().heapUsed;
      for (let i = 0; i < N; i++) held.push(open());
      gc();
      const per = (process.memoryUsage().heapUsed - h0) / N;
      assert.equal(held.length, N);
      return per;
    };
    const idle = heapPer(() => eng.openConnection());
    const decoding = heapPer(() => {
      const c = eng.openConnection({ clientKnown: true });
      c.data(0, enc("*2\r\n$3\r\nGET\r\n$3\r\nke"), 1n); // claimed, the command half-read
      assert.equal(c.state, "decoding");
      return c;
    });
    const detecting = heapPer(() => {
      const c = eng.openConnection({ clientKnown: true });
      c.data(0, enc("xy"), 1n); // nothing to claim yet: windows held
      assert.equal(c.state, "detecting");
      return c;
    });
    assert.ok(idle < 700, `idle connection: ${idle.toFixed(0)} bytes of heap`);
    assert.ok(decoding < 1400, `decoding connection: ${decoding.toFixed(0)} bytes of heap`);
    assert.ok(detecting > idle + 500, `a detecting connection holds its windows (${detecting.toFixed(0)} against ${idle.toFixed(0)} bytes)`);
  });

  test("per-connection byte limit", () => {
    const reg = new PluginRegistry();
    reg.add(Plugin.fromFile(built(REDIS)));
    const eng = new ConnectionEngine(reg, { maxConnBytes: 64 });
    const c = eng.openConnection();
    c.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    const r = c.data(0, new Uint8Array(100), 2n);
    assert.equal(r.state, "rejected");
    assert.equal(r.reason, "limit_bytes");
    assert.equal(eng.counters.get("bytes_dropped.limit_bytes"), 100);
  });

  test("replacing a plugin: open connections keep their version, new ones get the new one", () => {
    const wasm = fs.readFileSync(built(REDIS).replace(/\.json$/, ".wasm"));
    const reg = new PluginRegistry();
    reg.add(Plugin.fromBytes(manifest("redis", { version: "1.0.0", abi: 2 }), wasm));
    const eng = new ConnectionEngine(reg);
    const old = eng.openConnection();
    old.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    const replaced = reg.add(Plugin.fromBytes(manifest("redis", { version: "2.0.0", abi: 2 }), wasm));
    assert.equal(replaced?.version, "1.0.0");
    const fresh = eng.openConnection();
    fresh.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    assert.equal(old.plugin?.version, "1.0.0");
    assert.equal(fresh.plugin?.version, "2.0.0");
    // the old connection still pairs its reply (its state lives in the old instance)
    assert.equal(old.data(1, enc("+PONG\r\n"), 2n).records.length, 1);
    assert.ok(reg.remove("redis"));
    const none = eng.openConnection();
    assert.equal(none.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n).state, "detecting");
  });

  test("a caller passing numbers for timestamps does not kill the instance", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection({ protocol: "redis" });
    c.data(0, enc("*1\r\n$4\r\nPING\r\n"), 5 as unknown as bigint);
    const r = c.data(1, enc("+PONG\r\n"), 9 as unknown as bigint);
    assert.equal(recordToJson(r.records[0]!).durationNs, "4");
    assert.equal(c.gap(1, 3.7, 10 as unknown as bigint).state, "decoding");
    assert.equal(eng.counters.get("plugin_traps.redis"), 0);
  });

  test("misuse is harmless and counted: data after close, close twice, free then data, odd gaps, a 3 MiB chunk", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection();
    c.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    assert.equal(c.gap(1, -5, 2n).state, "decoding");
    assert.equal(c.gap(1, Number.NaN, 2n).state, "decoding");
    assert.equal(c.close(3n).state, "closed");
    assert.equal(c.close(4n).state, "closed");
    assert.deepEqual(c.data(0, enc("*1\r\n$4\r\nPING\r\n"), 5n).records, []);
    assert.equal(eng.counters.get("bytes_dropped.after_close"), 14);
    const d = eng.openConnection();
    d.data(0, enc("*1\r\n$4\r\nPING\r\n"), 1n);
    d.free();
    d.free();
    assert.deepEqual(d.data(1, enc("+PONG\r\n"), 2n).records, []);
    // a chunk bigger than maxFeed is split; the plugin skips the big value without buffering it
    const e = eng.openConnection({ protocol: "redis" });
    const big = new Uint8Array(3 << 20).fill(0x78);
    const head = enc(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${big.length}\r\n`);
    const all = new Uint8Array(head.length + big.length + 2);
    all.set(head);
    all.set(big, head.length);
    all.set(enc("\r\n"), head.length + big.length);
    assert.equal(e.data(0, all, 1n).state, "decoding");
    const r = e.data(1, enc("+OK\r\n"), 2n);
    assert.equal(recordToJson(r.records[0]!).reqBytes, all.length);
    assert.equal(eng.counters.get("plugin_traps.redis"), 0);
  });

  test("forced protocol skips detection; unknown protocol is rejected", () => {
    const eng = engineWith(REDIS);
    const c = eng.openConnection({ protocol: "redis" });
    assert.equal(c.state, "decoding");
    assert.equal(eng.openConnection({ protocol: "nope" }).reason, "unknown_protocol");
  });
});

describe("detection asks each plugin once per distinct opening (detect is stateless)", () => {
  test("500 connections opening with the same request: one detect call per plugin, then none; the same claims and records", () => {
    const eng = engineWith(REDIS, MISBEHAVE);
    const plugins = 2;
    let records = 0;
    for (let i = 0; i < 500; i++) {
      const c = eng.openConnection({ clientKnown: true, portHint: 6379 });
      const ts = BigInt(i * 10);
      records += c.data(0, enc("*1\r\n$4\r\nPING\r\n"), ts).records.length;
      assert.equal(c.state, "decoding");
      assert.equal(c.plugin?.name, "redis");
      records += c.data(1, enc("+PONG\r\n"), ts + 1n).records.length;
      records += c.close(ts + 2n).records.length;
    }
    assert.equal(records, 500);
    assert.equal(eng.counters.get("detect_rounds"), 500);
    // the first connection asked both plugins; the other 499 were answered from the memo
    assert.deepEqual(eng.detects, { calls: plugins, remembered: 499 * plugins });
    // another opening, or the same bytes in the other direction, is asked again (once)
    const other = eng.openConnection({ clientKnown: true });
    other.data(0, enc("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), 9000n);
    const reply = eng.openConnection({ clientKnown: true });
    reply.data(1, enc("*1\r\n$4\r\nPING\r\n"), 9001n);
    assert.equal(eng.detects.calls, 3 * plugins);
    assert.equal(other.plugin?.name, "redis");
  });

  test("a detect() that trapped is asked again next time, and counted again", () => {
    const eng = engineWith(MISBEHAVE);
    for (let i = 0; i < 2; i++) assert.equal(eng.openConnection().data(0, enc("MB:DETECTTRAP"), BigInt(i)).state, "detecting");
    assert.equal(eng.counters.get("detect_traps.misbehave"), 2);
    assert.equal(eng.detects.remembered, 0);
  });
});

describe("a connection that switches protocols (-4): detected again from the byte where the new one begins", () => {
  const HTTP1 = path.join(root, "parsers-wasm/build/http1.json");
  const HTTP2 = path.join(root, "parsers-wasm/build/http2.json");
  const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
  const CONNECT = enc("CONNECT 127.0.0.1:50051 HTTP/1.1\r\nHost: 127.0.0.1:50051\r\n\r\n");
  const OK200 = enc("HTTP/1.1 200 Connection Established\r\n\r\n");
  // GET http /inside, END_STREAM | END_HEADERS; the answer :status 404
  const REQ = h2Frame(1, 5, 1, Buffer.concat([Buffer.from([0x82, 0x86]), hpackIndexedName(4, "/inside"), hpackIndexedName(1, "tunnel.test")]));
  const RESP = h2Frame(1, 5, 1, [0x8d]);
  const registry = () => {
    const r = new PluginRegistry();
    r.add(Plugin.fromFile(built(HTTP1)));
    r.add(Plugin.fromFile(built(HTTP2)));
    return r;
  };
  const summary = (recs: Uint8Array[]) => recs.map((b) => recordToJson(fromBinary(RecordSchema, b))).map((r) => [r.protocol, r.operation, r.resource, r.status]);
  const want = [["http1", "CONNECT", "127.0.0.1:50051", 200], ["http2", "GET", "/inside", 404]];

  for (const clientKnown of [true, false]) {
    test(`CONNECT, 200 with the server's first HTTP/2 frame in the same chunk, then HTTP/2 (client ${clientKnown ? "known" : "from content"})`, () => {
      const engine = new ConnectionEngine(registry());
      const conn = engine.openConnection({ clientKnown, portHint: 3128 });
      const recs: Uint8Array[] = [];
      const steps: [Dir, Uint8Array][] = [[0, CONNECT], [1, cat(OK200, h2Frame(4, 0, 0))], [0, cat(H2_PREFACE, h2Frame(4, 0, 0), REQ)], [1, cat(h2Frame(4, 1, 0), RESP)]];
      for (const [d, b] of steps) recs.push(...conn.data(d, b, 1000n).records);
      recs.push(...conn.close(2000n).records);
      assert.deepEqual(summary(recs), want);
      const c = engine.counters.snapshot();
      assert.equal(c["conn_switched.http1"], 1);
      assert.equal(c["conn_claimed.http2"], 1);
      assert.equal(conn.switches, 1);
      assert.equal(conn.flipped, false);
    });
  }

  test("the whole exchange in two chunks (switch in the middle of each): nothing lost either side", () => {
    const engine = new ConnectionEngine(registry());
    const conn = engine.openConnection({ clientKnown: true });
    const recs: Uint8Array[] = [];
    recs.push(...conn.data(0, cat(CONNECT, H2_PREFACE, h2Frame(4, 0, 0), REQ), 1000n).records);
    recs.push(...conn.data(1, cat(OK200, h2Frame(4, 0, 0), h2Frame(4, 1, 0), RESP), 1500n).records);
    recs.push(...conn.close(2000n).records);
    assert.deepEqual(summary(recs), want);
  });

  test("a tunnel nobody recognises (TLS) is unclaimed after the switch, the CONNECT still written", () => {
    const engine = new ConnectionEngine(registry());
    const conn = engine.openConnection({ clientKnown: true });
    const recs: Uint8Array[] = [];
    recs.push(...conn.data(0, CONNECT, 1000n).records);
    recs.push(...conn.data(1, OK200, 1100n).records);
    recs.push(...conn.data(0, Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), 1200n).records);
    recs.push(...conn.close(2000n).records);
    assert.deepEqual(summary(recs), [want[0]]);
    assert.equal(engine.counters.snapshot()["unclaimed"], 1);
  });
});

// ---- ABI v2: batches, counters, and version 1 plugins beside version 2 ones ----

const REDIS_V1 = path.join(root, "parsers-wasm/test-support/fixtures/redis-v1/build/redis-v1.json");

type Step = [conn: number, op: "data" | "gap" | "close", dir: Dir, what: string | number];

/**
 * Runs `steps` twice on fresh engines: one call per step (data/gap/close), then every step
 * through one EngineBatch flushed every `every` steps. Asserts the same records (bytes), states
 * and reasons per step and the same counters, each connection's results handed out in the order
 * of its steps (all of them in order unless `eager`); returns the batched engine.
 */
function sameBatched(registry: () => PluginRegistry, open: (eng: ConnectionEngine, i: number) => ReturnType<ConnectionEngine["openConnection"]>, conns: number, steps: Step[], every = 1000, eager = false): ConnectionEngine {
  const hex = (rs: Uint8Array[]) => rs.map((b) => Buffer.from(b).toString("hex"));
  const alone = new ConnectionEngine(registry());
  const ac = Array.from({ length: conns }, (_, i) => open(alone, i));
  const want = steps.map(([i, op, dir, what], k) => {
    const c = ac[i]!;
    const r = op === "data" ? c.data(dir, enc(what as string), BigInt(1000 + k)) : op === "gap" ? c.gap(dir, what as number, BigInt(1000 + k)) : c.close(BigInt(1000 + k));
    return { records: hex(r.records), state: r.state, reason: r.reason };
  });
  const eng = new ConnectionEngine(registry());
  const bc = Array.from({ length: conns }, (_, i) => open(eng, i));
  const got: { records: string[]; state: string; reason?: string }[] = [];
  const order: number[] = [];
  const batch = eng.batch<number>(
    (k, r) => {
      got[k] = { records: hex(r.records), state: r.state, reason: r.reason };
      order.push(k);
    },
    { eager },
  );
  steps.forEach(([i, op, dir, what], k) => {
    const c = bc[i]!;
    if (op === "data") batch.data(c, dir, enc(what as string), BigInt(1000 + k), k);
    else if (op === "gap") batch.gap(c, dir, what as number, BigInt(1000 + k), k);
    else batch.close(c, BigInt(1000 + k), k);
    if (k % every === every - 1) batch.flush();
  });
  batch.flush();
  assert.deepEqual(got, want);
  assert.deepEqual(eng.counters.snapshot(), alone.counters.snapshot());
  const ascending = (ks: number[]) => assert.deepEqual(ks, [...ks].sort((a, b) => a - b));
  for (let i = 0; i < conns; i++) ascending(order.filter((k) => steps[k]![0] === i));
  if (!eager) ascending(order);
  return eng;
}

describe("ABI v2 batches (EngineBatch): the same as one call per step", () => {
  const misbehave = () => {
    const r = new PluginRegistry();
    r.add(Plugin.fromFile(built(MISBEHAVE)));
    return r;
  };
  const forced = (eng: ConnectionEngine) => eng.openConnection({ protocol: "misbehave" });

  for (const eager of [false, true]) {
    const how = eager ? " (eager)" : "";
    test(`many connections of one instance in one call; a trap in the middle costs what it costs alone${how}`, () => {
      const steps: Step[] = [];
      for (let k = 0; k < 6; k++) for (let i = 0; i < 4; i++) steps.push([i, "data", 0, `MB:REC c${i} s${k}`]);
      steps.push([2, "data", 0, "MB:TRAP"]);
      for (let i = 0; i < 4; i++) steps.push([i, "data", 0, `MB:REC after ${i}`], [i, "close", 0, 0]);
      const eng = sameBatched(misbehave, forced, 4, steps, 1000, eager);
      assert.equal(eng.counters.get("plugin_traps.misbehave.trap"), 1);
      assert.equal(eng.counters.get("conn_dropped.plugin_trap"), 4);
      assert.ok(eng.batched.calls >= 1 && eng.batched.entries >= 24, JSON.stringify(eng.batched));
    });

    test(`negative answers inside a batch: not mine, broken, a restart after a limit; later steps follow the new state${how}`, () => {
      const steps: Step[] = [];
      for (let i = 0; i < 4; i++) steps.push([i, "data", 0, `MB:REC first ${i}`]);
      steps.push([0, "data", 0, "MB:NOTMINE"], [1, "data", 1, "MB:BROKEN"], [2, "data", 0, "MB:LIMIT"], [3, "gap", 1, 10]);
      for (let i = 0; i < 4; i++) steps.push([i, "data", 0, `MB:GAPS ${i}`], [i, "data", 1, `MB:REC again ${i}`]);
      for (let i = 0; i < 4; i++) steps.push([i, "close", 0, 0], [i, "data", 0, "MB:REC too late"]);
      const eng = sameBatched(misbehave, forced, 4, steps, 1000, eager);
      assert.equal(eng.counters.get("conn_restarted.limit"), 1);
      assert.equal(eng.counters.get("conn_dropped.not_mine"), 1);
      assert.equal(eng.counters.get("conn_dropped.broken"), 1);
      assert.ok(eng.batched.entries > 8);
    });

    test(`a connection that switches (CONNECT → HTTP/2) inside a batch, among other HTTP/1.1 connections${how}`, () => {
      const reg = () => {
        const r = new PluginRegistry();
        r.add(Plugin.fromFile(built(path.join(root, "parsers-wasm/build/http1.json"))));
        r.add(Plugin.fromFile(built(path.join(root, "parsers-wasm/build/http2.json"))));
        return r;
      };
      const pre = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      const steps: Step[] = [];
      for (let i = 0; i < 3; i++) steps.push([i, "data", 0, `GET /a${i} HTTP/1.1\r\nHost: h\r\n\r\n`], [i, "data", 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]);
      // connection 1 tunnels: the CONNECT, its 200 and the first tunnel bytes in one chunk
      steps.push([1, "data", 0, "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n"], [0, "data", 0, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"]);
      steps.push([1, "data", 1, "HTTP/1.1 200 Connection Established\r\n\r\n\u0000\u0000\u0000\u0004\u0000\u0000\u0000\u0000\u0000"], [1, "data", 0, pre], [2, "data", 0, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"]);
      steps.push([0, "data", 1, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"], [2, "data", 1, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"]);
      for (let i = 0; i < 3; i++) steps.push([i, "close", 0, 0]);
      const eng = sameBatched(reg, (e) => e.openConnection({ clientKnown: true }), 3, steps, 1000, eager);
      assert.equal(eng.counters.get("conn_switched.http1"), 1);
      assert.ok(eng.batched.entries > 0);
    });
  }

  test("eager: a step that runs at once comes out at once, a staged one at flush or before a later step of its connection that cannot wait", () => {
    const eng = new ConnectionEngine(misbehave());
    const a = eng.openConnection();
    const b = eng.openConnection();
    const seen: string[] = [];
    const batch = eng.batch<string>((tag, r) => seen.push(`${tag}:${r.records.length}`), { eager: true });
    // detection and the first record: one call each, handed out at once
    batch.data(a, 0, enc("MB:REC a1"), 1n, "a1");
    batch.data(b, 0, enc("MB:REC b1"), 2n, "b1");
    assert.deepEqual(seen, ["a1:1", "b1:1"]);
    // decoding: staged
    batch.data(a, 0, enc("MB:REC a2"), 3n, "a2");
    batch.data(b, 0, enc("MB:REC b2"), 4n, "b2");
    assert.deepEqual(seen.length, 2);
    // a chunk above 64 KiB is never staged: a's staged step (and everything staged) goes first
    batch.data(a, 0, enc(`MB:REC ${"x".repeat(70_000)}`), 5n, "a3");
    assert.deepEqual(seen, ["a1:1", "b1:1", "a2:1", "b2:1", "a3:1"]);
    batch.data(b, 0, enc("MB:REC b3"), 6n, "b3");
    assert.equal(seen.length, 5);
    batch.flush();
    assert.deepEqual(seen.slice(5), ["b3:1"]);
    assert.deepEqual(eng.batched, { calls: 2, entries: 3 });
  });
});

describe("counters a version 2 plugin reports per connection", () => {
  const reg = () => {
    const r = new PluginRegistry();
    r.add(Plugin.fromFile(built(REDIS)));
    return r;
  };
  // a reply without a request (a drop); after a gap, 4 bytes that are no request (dropped bytes)
  const steps: Step[] = [
    [0, "data", 1, "+OK\r\n"],
    [0, "data", 0, "*1\r\n$4\r\nPING\r\n"],
    [0, "data", 1, "+PONG\r\n"],
    [0, "gap", 0, 7],
    [0, "data", 0, "xx\r\n*1\r\n$4\r\nPING\r\n"],
    [0, "data", 1, "+PONG\r\n"],
    [0, "close", 0, 0],
  ];
  for (const every of [1, 1000]) {
    test(`plugin_drops / plugin_bytes_dropped, ${every === 1 ? "one call per step" : "batched"}`, () => {
      const eng = sameBatched(reg, (e) => e.openConnection({ protocol: "redis" }), 1, steps, every);
      assert.equal(eng.counters.get("plugin_drops.redis"), 1);
      assert.equal(eng.counters.get("plugin_bytes_dropped.redis"), 4);
      assert.equal(eng.counters.get("records.redis"), 2);
    });
  }
});

describe("a version 1 plugin beside version 2 ones", () => {
  const cmds = ["*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$1\r\nv\r\n", "*1\r\n$4\r\nPING\r\n", "-ERR nope\r\n"];
  const reg = () => {
    const r = new PluginRegistry();
    r.add(Plugin.fromFile(built(REDIS_V1)));
    r.add(Plugin.fromFile(built(REDIS)));
    return r;
  };

  test("loads (manifest and abi_version 1, no feed_batch) and decodes what the version 2 build decodes", () => {
    const v1 = Plugin.fromFile(built(REDIS_V1));
    assert.equal(v1.manifest.abi, 1);
    assert.equal(v1.instance().abi, 1);
    const steps: Step[] = [];
    cmds.forEach((c, k) => steps.push([0, "data", (k % 2) as Dir, c], [1, "data", (k % 2) as Dir, c]));
    steps.push([0, "close", 0, 0], [1, "close", 0, 0]);
    // connection 0 forced to the version 1 build, 1 to the version 2 build, in one batch
    const eng = sameBatched(reg, (e, i) => e.openConnection({ protocol: i === 0 ? "redis-v1" : "redis" }), 2, steps);
    assert.equal(eng.counters.get("records.redis-v1"), 3);
    assert.equal(eng.counters.get("records.redis"), 3);
    // the version 2 connection's steps after its first record went in batches, none of the version 1's
    assert.equal(eng.batched.entries, 5);
  });

  test("same records from both builds, and detection claims with the version 1 build alone", () => {
    const only = new PluginRegistry();
    only.add(Plugin.fromFile(built(REDIS_V1)));
    const eng = new ConnectionEngine(only);
    const c = eng.openConnection({ clientKnown: false });
    const both = new ConnectionEngine(reg());
    const c2 = both.openConnection({ protocol: "redis" });
    const recs: string[] = [];
    const recs2: string[] = [];
    cmds.forEach((s, k) => {
      recs.push(...c.data((k % 2) as Dir, enc(s), BigInt(k + 1)).records.map((b) => Buffer.from(b).toString("hex")));
      recs2.push(...c2.data((k % 2) as Dir, enc(s), BigInt(k + 1)).records.map((b) => Buffer.from(b).toString("hex")));
    });
    recs.push(...c.close(10n).records.map((b) => Buffer.from(b).toString("hex")));
    recs2.push(...c2.close(10n).records.map((b) => Buffer.from(b).toString("hex")));
    assert.equal(c.plugin?.name, "redis-v1");
    assert.equal(recs.length, 3);
    assert.deepEqual(recs, recs2);
  });
});
