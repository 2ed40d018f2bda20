// OpenSSL linked into an executable (node: OpenSSL is part of the node binary, not libssl.so).
// A row of the executables' attach table (tls-executables.ts): an executable that exports
// SSL_read and SSL_write in its dynamic symbol table (node does, for native addons) gets the same
// uprobes as libssl (addon TlsUprobes, WS_TLS_OPENSSL) on its own file: every process running it,
// now or later, is covered. Node's TLS moves the socket bytes itself (memory BIOs, libuv writes),
// so its connections are linked by the handshake write after a call (bpf/tls.bpf.h).
//
// The check must be cheap: every executable started on the host is inspected once. It reads the
// GNU hash table of the dynamic symbols (a few hundred bytes per name), never the whole table:
//
//   .gnu.hash: nbuckets, symoffset, bloom_size, bloom_shift, bloom[bloom_size] (u64),
//              buckets[nbuckets] (u32), chain[] (u32, one per symbol from symoffset; bit 0 = last)
//   h = djb2(name); i = buckets[h % nbuckets]; while: (chain[i - symoffset] | 1) == (h | 1) and
//   .dynstr[.dynsym[i].st_name] == name → found (defined: st_shndx != 0); stop after bit 0
import { ElfError, type ElfFile } from "./elf.js";
import { WS_TLS_OPENSSL } from "./gen/layout.js";
import type { ExecutableHandler, HandlerVerdict } from "./tls-executables.js";

const SHT_GNU_HASH = 0x6ffffff6;
/** Chain entries followed per name at most (a sane table has a handful per bucket). */
const MAX_CHAIN = 4096;

function gnuHash(name: string): number {
  let h = 5381;
  for (let i = 0; i < name.length; i++) h = (h * 33 + name.charCodeAt(i)) >>> 0;
  return h;
}

/**
 * Which of `names` the ELF file defines and exports as dynamic symbols (through .gnu.hash; a file
 * without one is read linearly). Imports (undefined symbols) do not count.
 */
export function exportedSymbols(elf: ElfFile, names: readonly string[]): Set<string> {
  const out = new Set<string>();
  const dynsym = elf.section(".dynsym");
  if (!dynsym || dynsym.link >= elf.sections.length) return out;
  const dynstr = elf.sections[dynsym.link]!;
  const nsyms = Math.floor(dynsym.size / 24);
  const nameAt = (off: number, len: number): string | undefined => (off + len <= dynstr.size ? elf.read(dynstr.offset + off, len).toString("latin1") : undefined);
  const matches = (i: number, name: string): boolean => {
    if (i >= nsyms) return false;
    const sym = elf.read(dynsym.offset + i * 24, 24);
    const shndx = sym.readUInt16LE(6);
    return shndx !== 0 && nameAt(sym.readUInt32LE(0), name.length + 1) === name + "\0";
  };
  const hash = elf.sections.find((s) => s.type === SHT_GNU_HASH && s.name === ".gnu.hash");
  if (!hash) {
    // no GNU hash (rare): the whole table, once
    const syms = elf.read(dynsym.offset, nsyms * 24);
    const strs = elf.read(dynstr.offset, dynstr.size);
    for (let i = 1; i < nsyms; i++) {
      const off = syms.readUInt32LE(i * 24);
      if (syms.readUInt16LE(i * 24 + 6) === 0 || off >= strs.length) continue;
      const end = strs.indexOf(0, off);
      const n = strs.toString("latin1", off, end < 0 ? strs.length : end);
      if (names.includes(n)) out.add(n);
    }
    return out;
  }
  const hdr = elf.read(hash.offset, 16);
  const nbuckets = hdr.readUInt32LE(0), symoffset = hdr.readUInt32LE(4), bloomSize = hdr.readUInt32LE(8);
  if (nbuckets === 0) return out;
  const buckets = hash.offset + 16 + bloomSize * 8;
  const chains = buckets + nbuckets * 4;
  for (const name of names) {
    const h = gnuHash(name);
    let i = elf.read(buckets + (h % nbuckets) * 4, 4).readUInt32LE(0);
    if (i < symoffset) continue;
    for (let n = 0; n < MAX_CHAIN; n++, i++) {
      const c = elf.read(chains + (i - symoffset) * 4, 4).readUInt32LE(0);
      if ((c | 1) >>> 0 === (h | 1) >>> 0 && matches(i, name)) {
        out.add(name);
        break;
      }
      if (c & 1) break;
    }
  }
  return out;
}

/** The functions an executable must export to get OpenSSL's uprobes (the rest are optional). */
const REQUIRED = ["SSL_read", "SSL_write"] as const;

/** The attach table's row for OpenSSL inside executables. */
export class OpenSslExecutableHandler implements ExecutableHandler {
  readonly name = "openssl";

  /** @param attachTls the addon's attach of a TLS library's uprobes on a file (links made) */
  constructor(private readonly attachTls: (path: string, lib: number) => number) {}

  attach(elf: ElfFile, path: string): HandlerVerdict {
    let found: Set<string>;
    try {
      found = exportedSymbols(elf, REQUIRED);
    } catch (e) {
      if (e instanceof ElfError) return null; // a malformed dynamic table: not ours to read
      throw e;
    }
    if (found.size < REQUIRED.length) return null;
    return { links: this.attachTls(path, WS_TLS_OPENSSL) };
  }
}
