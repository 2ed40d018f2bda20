// Go crypto/tls programs for the probe's tests (test/probe-tls-go*.test.ts): builds of
// test/fixtures/gotls with the machine's Go toolchain, the binary analysis checked against objdump
// and reflect, and a server and clients traced by the real probe and parser whose records are
// compared with tshark's decryption of the same traffic (the programs' KeyLogWriter).
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { Role } from "@wirescope/wire";
import { ElfFile } from "@wirescope/probe/elf";
import { inspectGoTls, type GoTlsPlan } from "@wirescope/probe/go-tls";
import { instructionStarts, returnOffsets } from "@wirescope/probe/x86-length";
import { REPO_ROOT, tempDir } from "./support/index.js";
import { settleRecords, readRecords, parserStatus } from "./parser-support.js";
import { selfSigned, tsharkExchanges, exchangeKey, assertEndsMatchTshark, tracedPipeline } from "./tls-support.js";
import { startTcpdump } from "./support/tcpdump.js";

const run = promisify(execFile);

type GoLink = "plain" | "pie" | "pie-cgo";
/** A build of test/fixtures/gotls (see buildGo). */
export type GoBuild = GoLink | `${GoLink}-stripped`;

const builds = new Map<string, string>();
let buildDir: string | undefined;

/**
 * Builds test/fixtures/gotls once per run and kind (Go's caches live in the build's temp dir too):
 *   plain: as `go build` makes it (statically linked, linked at a fixed address)
 *   pie:   -buildmode=pie linked by Go itself (CGO_ENABLED=0): loaded at a random address, its
 *          read-only data in .data.rel.ro.* sections
 *   pie-cgo: -buildmode=pie with cgo, linked by the system's linker, as distributions that build
 *          every Go program position-independent ship them (linked at 0, no .gopclntab section)
 * and "<kind>-stripped", a stripped copy (as dh_strip leaves Debian's nats-server and influxd).
 */
export function buildGo(kind: GoBuild): string {
  const have = builds.get(kind);
  if (have) return have;
  const strip = kind.endsWith("-stripped");
  const base = strip ? kind.slice(0, -"-stripped".length) : kind;
  const dir = (buildDir ??= tempDir("wirescope-gotls-build-"));
  const out = path.join(dir, `gotls-${kind}`);
  if (strip) {
    execFileSync("strip", ["-o", out, buildGo(base as GoLink)]);
  } else {
    try {
      execFileSync("go", ["version"], { stdio: "ignore" });
    } catch {
      throw new Error("the Go toolchain is missing: apt-get install golang-go (scripts/install-deps.sh --test)");
    }
    const env = { ...process.env, GOCACHE: path.join(dir, "gocache"), GOPATH: path.join(dir, "gopath"), GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local", CGO_ENABLED: kind === "pie-cgo" ? "1" : "0" };
    const flags = kind === "plain" ? [] : kind === "pie" ? ["-buildmode=pie"] : ["-buildmode=pie", "-ldflags=-linkmode=external"];
    execFileSync("go", ["build", ...flags, "-o", out, "."], { cwd: path.join(REPO_ROOT, "test/fixtures/gotls"), env, stdio: ["ignore", "ignore", "pipe"], timeout: 180_000 });
  }
  builds.set(kind, out);
  return out;
}

function plan(bin: string): GoTlsPlan {
  const elf = ElfFile.open(bin);
  try {
    const p = inspectGoTls(elf);
    if (!p || "unsupported" in p) throw new Error(`not traceable: ${JSON.stringify(p)}`);
    return p;
  } finally {
    elf.close();
  }
}

/** objdump's instruction addresses, RETs, jbe's and calls of runtime.memmove in [start, start + size). */
function objdump(bin: string, start: bigint, size: number): { starts: bigint[]; rets: bigint[]; jbe: bigint[]; memmove: bigint[] } {
  const out = execFileSync("objdump", ["-d", "--no-show-raw-insn", `--start-address=0x${start.toString(16)}`, `--stop-address=0x${(start + BigInt(size)).toString(16)}`, bin], { encoding: "utf8", maxBuffer: 64 << 20 });
  const starts: bigint[] = [], rets: bigint[] = [], jbe: bigint[] = [], memmove: bigint[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s+([0-9a-f]+):\t(\S+)/.exec(line);
    if (!m) continue;
    const at = BigInt(`0x${m[1]}`);
    starts.push(at);
    if (/^(ret|retq|repz|bnd)$/.test(m[2]!) && /\bret/.test(line)) rets.push(at);
    if (m[2] === "jbe") jbe.push(at);
    if (/^call/.test(m[2]!) && line.includes("<runtime.memmove>")) memmove.push(at);
  }
  return { starts, rets, jbe, memmove };
}

/**
 * The binary analysis of one build alone against the toolchain's own view: every RET the probe
 * finds is one objdump shows, every instruction boundary of both functions agrees, the probe sites
 * are objdump's jbe and call of runtime.memmove, the struct offsets read from DWARF equal those the
 * compiler reports through reflect, and the stripped copy is recognized.
 */
export function checkProbeSites(kind: GoLink): void {
  const bin = buildGo(kind), stripped = buildGo(`${kind}-stripped`);
  const p = plan(bin);
  assert.match(p.version, /^go1\.\d+/);
  const elf = ElfFile.open(bin);
  try {
    const syms = elf.findSymbols(["crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write"]);
    for (const [name, site] of [["crypto/tls.(*Conn).Read", p.read], ["crypto/tls.(*Conn).Write", p.write]] as const) {
      const sym = syms.get(name)!;
      const start = elf.fileOffset(sym.value)!;
      const code = elf.read(start, sym.size);
      const theirs = objdump(bin, sym.value, sym.size);
      assert.ok(theirs.rets.length > 0, `objdump shows returns in ${name}`);
      assert.deepEqual(returnOffsets(code).map((o) => sym.value + BigInt(o)), theirs.rets, `${name}: every RET and only RETs`);
      assert.deepEqual(instructionStarts(code).map((o) => sym.value + BigInt(o)), theirs.starts, `${name}: every instruction boundary`);
      // the entry probe sits on the stack check's jbe (emulated), at the address the programs use
      assert.equal(site.entryAddr, theirs.jbe[0], `${name}: entry probe on the first jbe`);
      assert.equal(site.entryAddr, sym.value + BigInt(site.entry - start));
    }
    const readSym = syms.get("crypto/tls.(*Conn).Read")!;
    const copies = objdump(bin, readSym.value, readSym.size).memmove;
    assert.equal(copies.length, 1, "Read copies plaintext with one call of runtime.memmove");
    assert.equal(readSym.value + BigInt(p.read.copy! - elf.fileOffset(readSym.value)!), copies[0], "Read's copy probe on that call");
    assert.deepEqual(p.read.rets, [], "no RET probe when the copy is found");
  } finally {
    elf.close();
  }
  const [connIface, tcpconnFd, netfdSysfd] = execFileSync(bin, ["offsets"], { encoding: "utf8" }).trim().split(" ").map(Number);
  assert.deepEqual(p.offsets, { connIface, tcpconnFd, netfdSysfd }, "DWARF offsets = reflect's");
  assert.ok(p.itabTcpConn > 0n, "the *net.TCPConn itab symbol was found");
  const s = ElfFile.open(stripped);
  try {
    assert.match(JSON.stringify(inspectGoTls(s)), /stripped Go binary/);
  } finally {
    s.close();
  }
}

/** A Go program of the fixture, its stdout waited on by `line`. */
export function startGo(bin: string, args: string[]): { proc: ChildProcess; line: (re: RegExp) => Promise<RegExpMatchArray> } {
  const proc = spawn(bin, args, { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  const waiters: (() => void)[] = [];
  proc.stdout!.on("data", (d: Buffer) => ((out += d), waiters.forEach((w) => w())));
  return {
    proc,
    line: (re) => new Promise((res, rej) => {
      const check = () => {
        const m = re.exec(out);
        if (m) res(m);
      };
      waiters.push(check);
      check();
      proc.once("exit", (c) => rej(new Error(`${bin} exited ${c}: ${out}`)));
    }),
  };
}

/**
 * A Go HTTPS server (`serverBin`) and Go clients (`clientBin`) under the probe and a parser: both
 * ends' records of HTTP/1.1 and h2 exchanges equal tshark's decryption with their key log; the
 * stripped binary's client is counted and logged once as unsupported, its server end traced.
 */
export async function goProgramsMatchTshark(t: TestContext, serverBin: string, clientBin: string, stripped: string): Promise<void> {
  const dir = tempDir("wirescope-probe-tls-go-");
  const bin = clientBin;
  // three files (three inodes): the server's, found by the scan at start; two clients' started later
  const early = path.join(dir, "gotls-early"), late = path.join(dir, "gotls-late");
  fs.copyFileSync(serverBin, early);
  fs.copyFileSync(bin, late);
  fs.chmodSync(early, 0o755);
  fs.chmodSync(late, 0o755);
  const tls = selfSigned(dir);
  const keylog = path.join(dir, "keylog.txt");
  const server = startGo(early, ["server", tls.cert, tls.key, keylog]);
  t.after(() => server.proc.kill("SIGKILL"));
  const port = Number((await server.line(/listening (\d+)/))[1]);

  const base = `https://127.0.0.1:${port}`;
  const { parser, nc, counters } = await tracedPipeline(t, dir, port, () => run(bin, ["client", "h1", keylog, `${base}/warmup`]));
  // the exec counters are host-wide (any Go binary started meanwhile counts): at least `want`
  const waitCounter = async (name: string, want: number, what: string, meanwhile?: () => Promise<unknown>) => {
    const until = Date.now() + 30_000;
    while (((await counters())[name] ?? 0) < want) {
      if (Date.now() > until) throw new Error(`${what}: ${name} never reached ${want}: ${JSON.stringify(await counters())}`);
      await (meanwhile?.() ?? new Promise((r) => setTimeout(r, 100)));
    }
  };
  // (more warm-ups meanwhile: an exec whose file cannot be found any more is announced again)
  await waitCounter("tls.go.binaries_attached", 2, "the server's binary (scan at start) and the client's (exec)", () => run(bin, ["client", "h1", keylog, `${base}/warmup`]));

  // a stripped client, twice: counted and logged once, runs unharmed; its server side is traced
  // (the counter is host-wide: other Go binaries started meanwhile may move it too)
  const unsupportedBefore = (await counters())["tls.go.binaries_unsupported"] ?? 0;
  for (let i = 0; i < 2; i++) await run(stripped, ["client", "h1", keylog, `${base}/stripped`]);
  await waitCounter("tls.go.binaries_unsupported", unsupportedBefore + 1, "the stripped binary");

  const pcap = path.join(dir, "tls.pcap");
  const tcpdump = await startTcpdump(pcap, ["-i", "lo", `tcp port ${port}`]);
  t.after(() => tcpdump.stop());
  await run(bin, ["client", "h1", keylog, `${base}/h1/a`, `${base}/missing`, `${base}/h1/b?q=2`, `POST ${base}/h1/post`]);
  // started after the probe, a file it never saw: it waits until the exec announcement got it its uprobes
  const h2 = startGo(late, ["client", "h2", keylog, "--wait", `${base}/h2/a`, `${base}/missing`, `POST ${base}/h2/post`]);
  t.after(() => h2.proc.kill("SIGKILL"));
  await waitCounter("tls.go.binaries_attached", 3, "the late client's binary");
  h2.proc.stdin!.end("go\n");
  await new Promise((r) => h2.proc.once("exit", r));
  assert.equal(h2.proc.exitCode, 0);

  // records of this test's server only: a stack of another test whose NATS port was free again and
  // taken by ours (a NATS restart test) may publish into this NATS server
  const ours = <T extends { record: { resource: string; server?: { port: number } } }>(l: T[]) =>
    l.filter((s) => s.record.resource !== "/warmup" && s.record.resource !== "/stripped" && s.record.server?.port === port);
  const waitUntil = Date.now() + 90_000;
  while (ours(await readRecords(nc).catch(() => [])).length < 14 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 500));
  const all = (await settleRecords(nc, 2000, 30_000)).map((s) => s.record).filter((r) => r.server?.port === port);
  const records = ours(all.map((record) => ({ record }))).map((s) => s.record);
  await new Promise((r) => setTimeout(r, 300));
  await tcpdump.stop();

  const theirs = tsharkExchanges(pcap, keylog).map(exchangeKey).sort();
  assert.equal(theirs.length, 7, `tshark decrypted every exchange: ${JSON.stringify(theirs)}`);
  const c = await counters();
  t.diagnostic(`tls counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("tls."))))}`);
  t.diagnostic(`all records of the port: ${JSON.stringify(all.map((r) => [r.protocol, Role[r.role], r.operation, r.resource, Number(r.status ?? -1)]))}`);
  assertEndsMatchTshark(t, records, theirs, { library: "go" });
  assert.equal(records.filter((r) => r.protocol === "http2").length, 6, "h2 over ALPN decoded on both ends");
  // the stripped client's requests: seen by the traced server only
  const strippedRecs = all.filter((r) => r.resource === "/stripped");
  assert.deepEqual(strippedRecs.map((r) => [Role[r.role], r.attributes["tls.library"]?.value.value, Number(r.status)]), [["SERVER", "go", 200], ["SERVER", "go", 200]]);
  assert.ok((c["tls.calls"] ?? 0) >= 28, `plaintext calls: ${c["tls.calls"]}`);
  assert.ok((c["tls.cipher_bytes_saved"] ?? 0) > 2000, `ciphertext not published: ${c["tls.cipher_bytes_saved"]}`);
  assert.equal(c["tls.go_no_fd"] ?? 0, 0);
  assert.equal(c["tls.go_not_tcpconn"] ?? 0, 0);
  assert.equal(c["tls.go.attach_failed"] ?? 0, 0);
  assert.equal(c["tls.go_read_closed"] ?? 0, 0);
  const log = fs.readFileSync(path.join(dir, "probe.log"), "utf8");
  const notTraced = log.split("\n").filter((l) => l.includes("not traced"));
  t.diagnostic(`not traced: ${notTraced.join("\n")}`);
  assert.equal(notTraced.filter((l) => l.includes(path.basename(stripped))).length, 1, "the stripped binary logged once");
  const st = await parserStatus(parser);
  assert.deepEqual(Object.entries(st.counters).filter(([k, v]) => /desync|resync/.test(k) && v > 0), [], "the decoders never lost their place");
}

