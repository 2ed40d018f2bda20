import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { RecordSchema } from "@wirescope/wire";
import { LoadedPlugin, PluginError, PluginSet } from "./wasm-plugins.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const redisDir = path.join(root, "parsers-wasm/examples/redis/build");
const redisWasm = () => new Uint8Array(fs.readFileSync(path.join(redisDir, "redis.wasm")));
const redisManifest = () => JSON.parse(fs.readFileSync(path.join(redisDir, "redis.json"), "utf8"));
const on = () => true;

describe("LoadedPlugin.load", () => {
  it("loads the Redis example", () => {
    const p = LoadedPlugin.load(redisManifest(), redisWasm(), "builtin", on);
    assert.equal(p.manifest.name, "redis");
    assert.match(p.sha256, /^[0-9a-f]{64}$/);
  });

  it("refuses bytes that are not WebAssembly", () => {
    assert.throws(() => LoadedPlugin.load(redisManifest(), new TextEncoder().encode("not wasm at all"), "store", on), (e: unknown) => e instanceof PluginError && e.code === "not_wasm");
  });

  it("refuses a truncated module", () => {
    const w = redisWasm();
    assert.throws(() => LoadedPlugin.load(redisManifest(), w.subarray(0, w.length >> 1), "store", on), (e: unknown) => e instanceof PluginError && e.code === "not_wasm");
  });

  it("refuses a wrong ABI version and a bad name", () => {
    assert.throws(() => LoadedPlugin.load({ ...redisManifest(), abi: 3 }, redisWasm(), "store", on), /ABI 3/);
    assert.throws(() => LoadedPlugin.load({ ...redisManifest(), name: "../x" }, redisWasm(), "store", on), /not a plugin name/);
  });

  it("refuses a module without the ABI exports", () => {
    // (module (memory (export "memory") 1 2)) — valid WebAssembly, nothing else
    const tiny = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 1, 1, 2, 7, 10, 1, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 2, 0]);
    assert.throws(() => LoadedPlugin.load(redisManifest(), tiny, "store", on), (e: unknown) => e instanceof PluginError && /plugin redis/.test(e.message));
  });
});

describe("PluginSet", () => {
  it("detects and decodes RESP through a session", () => {
    const set = new PluginSet();
    set.put(LoadedPlugin.load(redisManifest(), redisWasm(), "builtin", on));
    const s = set.open({ roleKnown: true, serverPort: 6379 });
    const te = new TextEncoder();
    const r1 = s.data(0, te.encode("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"), 1000n);
    assert.equal(r1.state, "decoding");
    const r2 = s.data(1, te.encode("+OK\r\n"), 2000n);
    assert.equal(r2.records.length, 1);
    const rec = fromBinary(RecordSchema, r2.records[0]!);
    assert.equal(rec.protocol, "redis");
    assert.equal(rec.startNs, 1000n);
    s.free();
  });

  it("keeps detecting when no plugin claims the bytes", () => {
    const set = new PluginSet();
    set.put(LoadedPlugin.load(redisManifest(), redisWasm(), "builtin", on));
    const s = set.open({ roleKnown: true, serverPort: 6379 });
    assert.equal(s.data(0, new Uint8Array([0x16, 0x03, 0x01, 0x00]), 1n).state, "detecting");
  });
});
