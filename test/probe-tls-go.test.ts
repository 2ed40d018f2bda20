// TLS plaintext of Go crypto/tls through uprobes on (*Conn).Read/Write and on Read's copy of the
// plaintext (no uretprobes: Go moves stacks). A small Go HTTPS server and client
// (test/fixtures/gotls) are built here with the machine's Go toolchain; the traffic is traced by
// the real probe (`wirescope probe`) and decoded by the real parser. The oracle is tshark: the same
// traffic recorded by tcpdump and decrypted with the programs' KeyLogWriter. Both ends' records
// must agree with it field by field (method, path, status), carry tls = true and tls.library = go.
//
// Lifecycle: the server runs before the probe starts (found by the /proc scan), the clients'
// binaries are started after it (announced by the exec tracepoint); a stripped binary (strip) is
// counted as unsupported once, logged once, and runs unharmed.
//
// The first test checks the binary analysis alone against the toolchain's own view (objdump,
// reflect). Position-independent builds: test/probe-tls-go-pie.long.test.ts.
import { test } from "node:test";
import { bpfAvailable } from "./probe-support.js";
import { buildGo, checkProbeSites, goProgramsMatchTshark } from "./go-tls-support.js";

test("probe Go TLS (plain): probe sites and instruction boundaries agree with objdump, struct offsets from DWARF with the compiler's (reflect)", { timeout: 240_000 }, () => {
  checkProbeSites("plain");
});

test("probe Go TLS: HTTP/1.1 and h2 between Go programs, both ends' records match tshark's decryption; a stripped binary is counted", { timeout: 300_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await goProgramsMatchTshark(t, buildGo("plain"), buildGo("plain"), buildGo("plain-stripped"));
});
