import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mapWritePath } from "./v1-transport.js";
import { parseVersion, redact, authHeaders } from "./detect.js";

describe("mapWritePath", () => {
  it("maps the v2 write path to /write with 1.x precision names", () => {
    assert.equal(mapWritePath("/api/v2/write?org=&bucket=wirescope&precision=us"), "/write?db=wirescope&precision=u");
    assert.equal(mapWritePath("/api/v2/write?org=x&bucket=db%2Fweekly&precision=ns"), "/write?db=db&rp=weekly&precision=ns");
    assert.equal(mapWritePath("/query?q=1"), "/query?q=1");
  });
});

describe("detect helpers", () => {
  it("parses versions", () => {
    assert.deepEqual(parseVersion("1.6.7~rc0"), { major: 1, minor: 6 });
    assert.deepEqual(parseVersion("v2.7.1"), { major: 2, minor: 7 });
    assert.deepEqual(parseVersion("weird"), { major: 0, minor: 0 });
  });
  it("redacts credentials", () => {
    assert.equal(redact("http://u:secret@h:8086/?p=secret"), "http://***@h:8086/?p=***");
  });
  it("uses Basic auth for 1.x user/password and Token for 2.x", () => {
    assert.equal(authHeaders({ url: "", database: "", user: "a", password: "b" }).authorization, "Basic YTpi");
    assert.equal(authHeaders({ url: "", database: "", token: "t" }).authorization, "Token t");
  });
});
