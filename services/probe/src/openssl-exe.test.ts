import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ElfFile } from "./elf.js";
import { exportedSymbols, OpenSslExecutableHandler } from "./openssl-exe.js";
import { WS_TLS_OPENSSL } from "./gen/layout.js";

const WANT = ["SSL_read", "SSL_write", "SSL_no_such_function"];
const withElf = <T>(path: string, f: (e: ElfFile) => T): T => {
  const e = ElfFile.open(path);
  try {
    return f(e);
  } finally {
    e.close();
  }
};

describe("exportedSymbols", () => {
  it("finds the OpenSSL functions node exports (through .gnu.hash), and only those that exist", () => {
    assert.deepEqual([...withElf(process.execPath, (e) => exportedSymbols(e, WANT))].sort(), ["SSL_read", "SSL_write"]);
  });
  it("libssl defines them; nginx only imports them (undefined symbols do not count)", () => {
    assert.deepEqual([...withElf("/usr/lib/x86_64-linux-gnu/libssl.so.3", (e) => exportedSymbols(e, WANT))].sort(), ["SSL_read", "SSL_write"]);
    assert.deepEqual([...withElf("/usr/sbin/nginx", (e) => exportedSymbols(e, WANT))], []);
  });
});

describe("OpenSslExecutableHandler", () => {
  it("attaches an executable that exports SSL_read and SSL_write, passes over one that does not", () => {
    const calls: string[] = [];
    const h = new OpenSslExecutableHandler((path, lib) => (calls.push(`${path} ${lib}`), 11));
    assert.deepEqual(withElf(process.execPath, (e) => h.attach(e, "/proc/1/exe")), { links: 11 });
    assert.deepEqual(calls, [`/proc/1/exe ${WS_TLS_OPENSSL}`]);
    assert.equal(withElf("/usr/bin/curl", (e) => h.attach(e, "/proc/2/exe")), null);
    assert.equal(calls.length, 1);
  });
});
