import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { tlsMappings, TlsLibraries, type TlsLibraryPorts } from "./tls-libraries.js";
import { WS_TLS_NONE, WS_TLS_OPENSSL, WS_TLS_GNUTLS } from "./gen/layout.js";

/** Ports whose attach is `attach`, and whose markKnown calls are kept in `known`. */
function ports(attach: (path: string, dev: number, ino: number, lib: number) => number, known: string[] = []): TlsLibraryPorts {
  return { attach, markKnown: (dev, ino) => known.push(`${dev}:${ino}`) };
}

const MAPS = `55d0c0a00000-55d0c0a2c000 r--p 00000000 fe:01 1048600                    /usr/bin/curl
7f1c2a3b4000-7f1c2a3d5000 r--p 00000000 fe:01 1310912                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2a3d5000-7f1c2a432000 r-xp 00021000 fe:01 1310912                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2a500000-7f1c2a560000 r-xp 00021000 00:2a 77                         /opt/app/lib/libssl.so.1.1
7f1c2a600000-7f1c2a660000 r-xp 00021000 00:2a 78                         /opt/old/libssl.so.3 (deleted)
7f1c2a700000-7f1c2a760000 r-xp 00021000 fe:01 99                         /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f1c2a800000-7f1c2a860000 r-xp 00021000 fe:01 100                        /usr/lib/x86_64-linux-gnu/libgnutls.so.30
7f1c2a900000-7f1c2a960000 r-xp 00021000 fe:01 101                        /usr/lib/x86_64-linux-gnu/libssl3.so
7ffd1c1e0000-7ffd1c201000 rw-p 00000000 00:00 0                          [stack]
`;

describe("tlsMappings", () => {
  it("keeps executable TLS library mappings once per file, with the kernel's dev_t and the library", () => {
    assert.deepEqual(tlsMappings(MAPS), [
      { dev: (0xfe << 20) | 1, ino: 1310912, path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", lib: WS_TLS_OPENSSL, library: "OpenSSL" },
      { dev: 0x2a, ino: 77, path: "/opt/app/lib/libssl.so.1.1", lib: WS_TLS_OPENSSL, library: "OpenSSL" },
      { dev: (0xfe << 20) | 1, ino: 100, path: "/usr/lib/x86_64-linux-gnu/libgnutls.so.30", lib: WS_TLS_GNUTLS, library: "GnuTLS" },
      { dev: (0xfe << 20) | 1, ino: 101, path: "/usr/lib/x86_64-linux-gnu/libssl3.so", lib: WS_TLS_NONE, library: "NSS" },
    ]);
  });
  it("ignores text that is not a maps line", () => {
    assert.deepEqual(tlsMappings("libssl.so\n\n garbage libssl.so.3\n"), []);
  });
});

describe("TlsLibraries", () => {
  // a /proc-shaped directory: the core only reads <root>/<pid>/maps
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tls-libs-"));
  for (const pid of [10, 11, 12]) {
    fs.mkdirSync(path.join(root, String(pid)));
    fs.writeFileSync(path.join(root, String(pid), "maps"), MAPS);
  }
  fs.mkdirSync(path.join(root, "self"));

  it("attaches each file once however many processes map it, reports a failure or an unreadable library once", () => {
    const calls: string[] = [];
    const errors: string[] = [];
    const known: string[] = [];
    const libs = new TlsLibraries(ports((p, dev, ino, lib) => {
      calls.push(`${p} ${dev} ${ino} ${lib}`);
      if (ino === 77) throw new Error("no SSL_read symbol");
      return 8;
    }, known), (p, e) => errors.push(`${p}: ${e}`), root);
    assert.equal(libs.scanAll(), 2);
    assert.equal(calls.length, 3, "one attach per file, not per process");
    assert.match(calls[0]!, /\/10\/root\/usr\/lib\/x86_64-linux-gnu\/libssl\.so\.3 266338305 1310912 1$/);
    assert.match(calls[2]!, /libgnutls\.so\.30 266338305 100 2$/);
    assert.deepEqual(errors, [
      "/opt/app/lib/libssl.so.1.1: no SSL_read symbol",
      "/usr/lib/x86_64-linux-gnu/libssl3.so: NSS: TLS library present, its plaintext is not read by this probe",
    ]);
    assert.deepEqual(known, [`${(0xfe << 20) | 1}:101`], "the unreadable library is no longer announced");
    // announcements of files already handled cost a counter, never another attach
    for (let i = 0; i < 1000; i++) libs.onMapped(11, (0xfe << 20) | 1, 1310912);
    libs.onMapped(12, 0x2a, 77);
    assert.equal(calls.length, 3);
    assert.equal(errors.length, 2);
    assert.deepEqual(libs.stats, { attached: 2, failed: 1, repeats: 1001, gone: 0, unsupported: 1 });
    assert.equal(libs.files.size, 4);
  });

  it("a process gone before its maps are read is counted, and the file is offered again later", () => {
    const calls: string[] = [];
    const libs = new TlsLibraries(ports((p) => (calls.push(p), 8)), undefined, root);
    libs.onMapped(999, 1, 1310912);
    assert.deepEqual(libs.stats, { attached: 0, failed: 0, repeats: 0, gone: 1, unsupported: 0 });
    libs.onMapped(10, (0xfe << 20) | 1, 1310912);
    assert.equal(libs.stats.attached, 1);
    assert.equal(calls.length, 1);
  });

  it("an attach that fails because the process exited meanwhile is not held against the file", () => {
    fs.mkdirSync(path.join(root, "20"));
    fs.writeFileSync(path.join(root, "20", "maps"), MAPS);
    let n = 0;
    const libs = new TlsLibraries(ports((p) => {
      n++;
      if (p.includes("/20/")) {
        fs.rmSync(path.join(root, "20"), { recursive: true });
        throw new Error("ENOENT");
      }
      return 8;
    }), undefined, root);
    libs.onMapped(20, (0xfe << 20) | 1, 1310912);
    assert.deepEqual(libs.stats, { attached: 0, failed: 0, repeats: 0, gone: 1, unsupported: 0 });
    libs.onMapped(10, (0xfe << 20) | 1, 1310912);
    assert.equal(libs.stats.attached, 1, "offered again by the next process");
    assert.equal(n, 2);
  });
});
