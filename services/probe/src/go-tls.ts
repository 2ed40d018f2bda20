// What the Go crypto/tls uprobes (bpf/tls-go.bpf.h) need of one Go executable, read from the file
// alone (no Go toolchain on the node): the Go version (register ABI since 1.17), the file offsets
// of crypto/tls.(*Conn).Read and Write and of each of their RET instructions (uretprobes crash Go:
// stacks move), and the struct offsets that lead from a *tls.Conn to its socket's fd, from DWARF.
//
//   .go.buildinfo ─▶ version        .symtab ─▶ Read/Write [addr, size), go:itab.*net.TCPConn,net.Conn
//   .text bytes of each function ─x86-length─▶ RET offsets
//   .debug_info ─▶ tls.Conn.conn, net.TCPConn.conn, net.conn.fd, net.netFD.pfd, poll.FD.Sysfd
import { ElfFile, ElfError } from "./elf.js";
import { structMemberOffsets, DwarfError } from "./dwarf.js";
import { returnOffsets, stackCheckBranch, callsTo, X86DecodeError } from "./x86-length.js";
import { GO_TLS, WS_MAX_GO_BINARIES } from "./gen/layout.js";
import type { AttachPorts, ExecutableHandler, HandlerVerdict } from "./tls-executables.js";

const READ = "crypto/tls.(*Conn).Read";
const WRITE = "crypto/tls.(*Conn).Write";
const MEMMOVE = "runtime.memmove";
// the linker renamed the itab symbols' prefix in Go 1.20
const ITABS = ["go:itab.*net.TCPConn,net.Conn", "go.itab.*net.TCPConn,net.Conn"];
const EM_X86_64 = 62;

/** Where the Go TLS programs find a *tls.Conn's socket (struct ws_go_tls). */
export interface GoTlsOffsets {
  connIface: number;
  tcpconnFd: number;
  netfdSysfd: number;
}

/**
 * Uprobe sites and offsets of a Go binary with crypto/tls. `entry`, `copy` and `rets` are file
 * offsets, `entryAddr` the link-time address of the entry probe.
 *
 *   entry: the stack check's jbe (emulated by the kernel), else the function's first instruction
 *   read.copy: Read's one call to runtime.memmove, the copy of plaintext into b (RAX = b, RBX =
 *              the plaintext, RCX = n): a call is emulated too; without exactly one such call,
 *              read.rets: every RET of Read (single-stepped: ~10 µs a hit in a VM)
 */
export interface GoTlsPlan {
  version: string;
  read: { entry: number; entryAddr: bigint; copy?: number; rets: number[] };
  write: { entry: number; entryAddr: bigint };
  itabTcpConn: bigint;
  offsets: GoTlsOffsets;
}

/** A Go binary with crypto/tls that the probes cannot follow, and why. */
export interface GoTlsUnsupported {
  unsupported: string;
  version?: string;
}

/**
 * The Go version recorded in .go.buildinfo ("go1.19.8"), or undefined.
 *
 *   "\xff Go buildinf:" (14) ptrSize (1) flags (1) ─ flags & 2: varint-length version string at 32
 *                                                 └ else: two pointers at 16: *string version, modinfo
 */
export function goVersion(elf: ElfFile): string | undefined {
  const s = elf.section(".go.buildinfo");
  if (!s || s.size < 32) return undefined;
  const h = elf.read(s.offset, Math.min(s.size, 4096));
  if (h.toString("latin1", 0, 14) !== "\xff Go buildinf:") return undefined;
  const ptrSize = h[14]!, flags = h[15]!;
  if (flags & 2) {
    let len = 0, shift = 0, o = 32;
    for (; o < h.length; o++) {
      len |= (h[o]! & 0x7f) << shift;
      shift += 7;
      if (!(h[o]! & 0x80)) break;
    }
    o++;
    return o + len <= h.length ? h.toString("utf8", o, o + len) : undefined;
  }
  if (ptrSize !== 8) return undefined;
  try {
    const str = elf.readAt(h.readBigUInt64LE(16), 16); // string header {ptr, len}
    const len = Number(str.readBigUInt64LE(8));
    return len > 0 && len < 64 ? elf.readAt(str.readBigUInt64LE(0), len).toString("utf8") : undefined;
  } catch {
    return undefined;
  }
}

/** true for go1.17 and later (and development versions): ABIInternal passes arguments in registers. */
export function hasRegisterAbi(version: string): boolean {
  const m = /^go(\d+)\.(\d+)/.exec(version);
  if (!m) return version.startsWith("devel");
  return Number(m[1]) > 1 || Number(m[2]) >= 17;
}

/** Go's pc-line table: `.gopclntab`, or `.data.rel.ro.gopclntab` in a position-independent binary
 *  linked by Go itself (-buildmode=pie: relocated data, read-only after relocation). */
function pclntab(elf: ElfFile) {
  return elf.section(".gopclntab") ?? elf.section(".data.rel.ro.gopclntab");
}

/** Where a stripped binary's function names are: its pc-line table, which a position-independent
 *  binary linked by the system linker (-buildmode=pie with cgo) keeps inside `.data.rel.ro`. */
function functionNames(elf: ElfFile) {
  return pclntab(elf) ?? elf.section(".data.rel.ro");
}

/**
 * Inspects an opened ELF file: null when it is not a Go binary using crypto/tls (nothing to do),
 * a plan when it can be traced, or the reason it cannot.
 */
export function inspectGoTls(elf: ElfFile): GoTlsPlan | GoTlsUnsupported | null {
  if (!elf.section(".go.buildinfo") && !elf.section(".note.go.buildid") && !pclntab(elf)) return null;
  const syms = elf.findSymbols([READ, WRITE, MEMMOVE, ...ITABS]);
  const read = syms.get(READ), write = syms.get(WRITE);
  const version = goVersion(elf);
  if (!read || !write) {
    if (elf.section(".symtab")) return null; // a Go binary without crypto/tls
    // stripped (-ldflags=-s): crypto/tls is there when its function names are in the pc table
    const names = functionNames(elf);
    if (names && elf.read(names.offset, names.size).includes(READ)) return { unsupported: "stripped Go binary (no symbol table): crypto/tls not traced", version };
    return null;
  }
  if (elf.machine !== EM_X86_64) return { unsupported: `Go TLS on machine ${elf.machine}: only x86-64 is supported`, version };
  if (!version || !hasRegisterAbi(version)) return { unsupported: `Go version ${version ?? "unknown"}: only go1.17 and later (register ABI) are supported`, version };
  let offsets: GoTlsOffsets;
  try {
    const info = elf.sectionData(".debug_info"), abbrev = elf.sectionData(".debug_abbrev");
    if (!info || !abbrev) return { unsupported: "Go binary without DWARF (built with -ldflags=-w): crypto/tls not traced", version };
    const structs = structMemberOffsets(info, abbrev, elf.sectionData(".debug_str"),
      new Set(["crypto/tls.Conn", "net.TCPConn", "net.conn", "net.netFD", "internal/poll.FD"]));
    const off = (s: string, m: string) => {
      const v = structs.get(s)?.get(m);
      if (v === undefined) throw new DwarfError(`${s}.${m} not in DWARF`);
      return v;
    };
    offsets = {
      connIface: off("crypto/tls.Conn", "conn"),
      tcpconnFd: off("net.TCPConn", "conn") + off("net.conn", "fd"),
      netfdSysfd: off("net.netFD", "pfd") + off("internal/poll.FD", "Sysfd"),
    };
  } catch (e) {
    if (e instanceof DwarfError || e instanceof ElfError) return { unsupported: `DWARF unreadable: ${e.message}`, version };
    throw e;
  }
  const code = (s: { value: bigint; size: number }, name: string) => {
    const off = elf.fileOffset(s.value);
    if (off === undefined || s.size <= 0 || s.size > 1 << 20) throw new ElfError(`${name} is not in a loaded segment`);
    return { off, bytes: elf.read(off, s.size) };
  };
  const entrySite = (s: { value: bigint }, c: { off: number; bytes: Buffer }) => {
    const at = stackCheckBranch(c.bytes) ?? 0;
    return { entry: c.off + at, entryAddr: s.value + BigInt(at) };
  };
  try {
    const r = code(read, READ), w = code(write, WRITE);
    const memmove = syms.get(MEMMOVE);
    const copies = memmove ? callsTo(r.bytes, read.value, memmove.value) : [];
    const readSites: GoTlsPlan["read"] = { ...entrySite(read, r), rets: [] };
    if (copies.length === 1) readSites.copy = r.off + copies[0]!;
    else {
      readSites.rets = returnOffsets(r.bytes).map((o) => r.off + o);
      if (!readSites.rets.length) throw new ElfError(`${READ} has no RET instruction`);
    }
    return {
      version,
      read: readSites,
      write: entrySite(write, w),
      itabTcpConn: syms.get(ITABS[0]!)?.value ?? syms.get(ITABS[1]!)?.value ?? 0n,
      offsets,
    };
  } catch (e) {
    if (e instanceof X86DecodeError || e instanceof ElfError) return { unsupported: `cannot find the probe sites: ${e.message}`, version };
    throw e;
  }
}

/** struct ws_go_tls for a plan (laid out by gen/layout.ts). */
export function goTlsValue(p: GoTlsPlan): Buffer {
  const b = Buffer.alloc(GO_TLS.size);
  b.writeBigUInt64LE(p.itabTcpConn, GO_TLS.itab_tcpconn);
  b.writeBigUInt64LE(p.read.entryAddr, GO_TLS.read_entry);
  b.writeBigUInt64LE(p.write.entryAddr, GO_TLS.write_entry);
  b.writeUInt32LE(p.offsets.connIface, GO_TLS.conn_iface);
  b.writeUInt32LE(p.offsets.tcpconnFd, GO_TLS.tcpconn_fd);
  b.writeUInt32LE(p.offsets.netfdSysfd, GO_TLS.netfd_sysfd);
  return b;
}

/**
 * The Go row of the executables' attach table: a slot of go_tls_binaries per binary (the uprobes'
 * attach cookie), then uprobes on both entries and on Read's copy (or every RET of Read).
 */
export class GoTlsHandler implements ExecutableHandler {
  readonly name = "go";
  private nextSlot = 0;

  attach(elf: ElfFile, path: string, ports: AttachPorts): HandlerVerdict {
    const plan = inspectGoTls(elf);
    if (!plan || "unsupported" in plan) return plan;
    if (this.nextSlot >= WS_MAX_GO_BINARIES) return { unsupported: `more than ${WS_MAX_GO_BINARIES} Go binaries with crypto/tls: not traced` };
    const slot = this.nextSlot;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    ports.setMapEntry("go_tls_binaries", key, goTlsValue(plan));
    const links = ports.attachUprobes(path, [
      { program: "go_tls_read_enter", offset: plan.read.entry, cookie: slot },
      { program: "go_tls_write_enter", offset: plan.write.entry, cookie: slot },
      ...(plan.read.copy !== undefined ? [{ program: "go_tls_read_copy", offset: plan.read.copy, cookie: slot }] : []),
      ...plan.read.rets.map((offset) => ({ program: "go_tls_read_return", offset, cookie: slot })),
    ]);
    this.nextSlot++;
    return { links };
  }
}
