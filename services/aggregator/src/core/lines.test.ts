import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SpanClock, escStr, num, parserLossesLine, spanTagsField } from "./lines.js";
import { spanTagsJson } from "./span-attributes.js";
import type { SpanRec } from "./spans.js";

describe("escStr", () => {
  it("quotes as the three rewrites in a row do, whichever of them has anything to match", () => {
    const ref = (v: string) => '"' + v.replace(/[\\"]/g, "\\$&").replace(/[\u0000-\u0009\u000b-\u001f]/g, " ").replace(/\n/g, "\\n") + '"';
    const alphabet = ['"', "\\", "\n", "\t", "\u0000", "\u001f", "a", "é", " ", "{", "}", ":", ","];
    let seed = 3;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
    const inputs = ["", "plain", JSON.stringify([{ key: "http.route", value: "/a\"b\\c" }]), ...Array.from({ length: 3000 }, () => Array.from({ length: rnd() % 12 }, () => alphabet[rnd() % alphabet.length]).join(""))];
    for (const v of inputs) assert.equal(escStr(v), ref(v), JSON.stringify(v));
  });
});

describe("num", () => {
  it("writes what String(Math.round(v * 1000) / 1000) writes", () => {
    const ref = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : "0");
    let seed = 11;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const inputs = [0, -0, 0.0004, 0.0005, 0.001, 0.1, 0.12, 1, 999.9995, 1e-7, -1.5, -0.0004, NaN, Infinity, 2 ** 43 - 0.001, 2 ** 43, 2 ** 43 + 0.5, 1e21, 1.5e22, 1_764_600_000_123.456];
    for (let i = 0; i < 20_000; i++) inputs.push(rnd() * 10 ** Math.floor(rnd() * 16), 1_764_600_000_000 + rnd() * 1e9, Math.round(rnd() * 1e9) / 1000);
    for (const v of inputs) assert.equal(num(v), ref(v), String(v));
  });
});

describe("spanTagsField", () => {
  it("writes escStr(spanTagsJson(s)) for every protocol and awkward values", () => {
    const alphabet = ['"', "\\", "\n", "\t", "\u0000", "\u001f", "\u007f", "a", "é", "😀", "\ud800", " ", "{", "}", ":", ",", "/", "?"];
    let seed = 5;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
    const str = () => (rnd() % 3 === 0 ? "/items/{id}" : Array.from({ length: rnd() % 10 }, () => alphabet[rnd() % alphabet.length]).join(""));
    const protocols = ["http1", "http2", "grpc", "mysql", "postgres", "redis", "kafka", "amqp", ""];
    for (let i = 0; i < 3000; i++) {
      const s = {
        protocol: protocols[i % protocols.length]!,
        operation: str(),
        resource: i % 7 === 0 ? "/pkg.Svc/Method" : str(),
        status: rnd() % 4 === 0 ? undefined : rnd() % 600,
        serverAddress: rnd() % 5 ? "10.0.0.1" : str(),
        serverPort: rnd() % 3 ? 8080 : 0,
        clientAddress: rnd() % 5 ? "::1" : "",
        clientPort: rnd() % 65536,
        peer: str(),
        error: rnd() % 5 === 0,
        incomplete: rnd() % 7 === 0,
        tls: rnd() % 2 === 0,
        linkedBy: ["", "tcp", "header", "thread", "trace"][rnd() % 5]!,
      } as unknown as SpanRec;
      assert.equal(spanTagsField(s), escStr(spanTagsJson(s)), JSON.stringify(s));
    }
  });
});

describe("SpanClock", () => {
  it("gives each series a timestamp once over the windows it keeps, then forgets the oldest window's", () => {
    const clock = new SpanClock(3);
    const a = "kind=server,namespace=-,node=n1,protocol=http,service=a";
    const b = "kind=server,namespace=-,node=n1,protocol=http,service=b";
    const t = 1_764_650_000_123_456_789n;
    clock.next();
    clock.take(a, t);
    assert.equal(clock.used(a, t), true);
    assert.equal(clock.used(b, t), false, "per series");
    assert.equal(clock.used(a, t + 1n), false);
    clock.next();
    clock.next();
    assert.equal(clock.used(a, t), true, "still within the 3 windows kept");
    clock.next();
    assert.equal(clock.used(a, t), false, "forgotten with its window");
    // far from the first timestamp (beyond 2^53 ns): kept exactly too
    const far = t + 2n ** 60n;
    clock.take(a, far);
    assert.equal(clock.used(a, far), true);
    assert.equal(clock.used(a, far + 1n), false);
  });
});

it("parserLossesLine: a parser entry's losses as drops_* integer fields of a pipeline point at the entry's own ns; nothing when nothing grew", () => {
  const ts = 1_795_000_000_123n * 1_000_000n + 42n;
  assert.equal(
    parserLossesLine("parser-a1", { "requests_missed.gap": 5, "raw_batches_missed.gap": 1, "plugin_drops.my plugin": 2 }, ts),
    `pipeline,component=parser,instance=parser-a1 drops_requests_missed_gap=5i,drops_raw_batches_missed_gap=1i,drops_plugin_drops_my\\ plugin=2i ${ts}`,
  );
  // what an entry from elsewhere may hold that is not a count is not written
  assert.equal(parserLossesLine("p", { a: 0, b: -1, c: 1.5, d: Number.NaN }, ts), undefined);
  assert.equal(parserLossesLine("p", {}, ts), undefined);
});
