// TLS plaintext of position-independent Go programs (-buildmode=pie), as distributions that build
// every Go program so ship them: one linked by Go itself (CGO_ENABLED=0, its data in .data.rel.ro.*
// sections) and one linked by the system's linker with cgo (linked at address 0, no .gopclntab
// section). The probe sites are file offsets as for any binary; the load bias (where the kernel put
// the binary) is the probed address minus the site's link-time address, which the programs use to
// check the *net.TCPConn itab. A long test: the two builds take about a minute on a busy machine.
import { test } from "node:test";
import { bpfAvailable } from "./probe-support.js";
import { buildGo, checkProbeSites, goProgramsMatchTshark } from "./go-tls-support.js";

for (const kind of ["pie", "pie-cgo"] as const) {
  test(`probe Go TLS (${kind}): probe sites and instruction boundaries agree with objdump, struct offsets from DWARF with the compiler's (reflect)`, { timeout: 240_000 }, () => {
    checkProbeSites(kind);
  });
}

test("probe Go TLS: position-independent binaries (a server linked by Go, clients by the system linker with cgo): both ends' records match tshark's decryption; a stripped one is counted", { timeout: 300_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  await goProgramsMatchTshark(t, buildGo("pie"), buildGo("pie-cgo"), buildGo("pie-cgo-stripped"));
});

