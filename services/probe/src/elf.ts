// A small reader of 64-bit little-endian ELF files (x86-64), for what the TLS attach code needs of
// an executable: section headers, PT_LOAD segments (link-time address → file offset), a few named
// symbols of .symtab, and section contents (compressed DWARF sections inflated). The file is read
// on demand through its descriptor: deciding that an executable is not interesting costs its
// headers only. Bad input throws ElfError (the caller counts it), never reads out of the file.
//
//   ELF header ─ e_phoff ─▶ program headers (PT_LOAD: p_offset, p_vaddr, p_filesz)
//              └ e_shoff ─▶ section headers ─ e_shstrndx ─▶ section names
//   .symtab (24-byte Elf64_Sym) ─ sh_link ─▶ .strtab
//   SHF_COMPRESSED section: Elf64_Chdr {ch_type (1 = zlib), _, ch_size, ch_addralign} + zlib
//   .zdebug_* (older Go linkers): "ZLIB" + 8-byte big-endian size + zlib
import fs from "node:fs";
import zlib from "node:zlib";

export class ElfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ElfError";
  }
}

export interface ElfSection {
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

export interface ElfSymbol {
  value: bigint;
  size: number;
}

const SHF_COMPRESSED = 0x800n;
const PT_LOAD = 1;
/** Largest section this reader inflates or loads (a Go binary's .debug_info is a few MiB). */
const MAX_SECTION_BYTES = 256 * 1024 * 1024;

export class ElfFile {
  readonly type: number;
  readonly machine: number;
  readonly sections: ElfSection[] = [];
  readonly segments: ElfSegment[] = [];
  private readonly size: number;

  /** The open file: `/proc/self/fd/<fd>` names it for as long as this ElfFile is open. */
  private constructor(readonly fd: number) {
    this.size = fs.fstatSync(fd).size;
    const h = this.read(0, 64);
    if (h.readUInt32BE(0) !== 0x7f454c46) throw new ElfError("not an ELF file");
    if (h[4] !== 2 || h[5] !== 1) throw new ElfError("not a 64-bit little-endian ELF file");
    this.type = h.readUInt16LE(16);
    this.machine = h.readUInt16LE(18);
    const phoff = Number(h.readBigUInt64LE(32));
    const shoff = Number(h.readBigUInt64LE(40));
    const phentsize = h.readUInt16LE(54), phnum = h.readUInt16LE(56);
    const shentsize = h.readUInt16LE(58), shnum = h.readUInt16LE(60), shstrndx = h.readUInt16LE(62);
    if (phnum && phentsize < 56) throw new ElfError("bad program header size");
    const ph = this.read(phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      this.segments.push({ type: ph.readUInt32LE(o), flags: ph.readUInt32LE(o + 4), offset: Number(ph.readBigUInt64LE(o + 8)),
        vaddr: ph.readBigUInt64LE(o + 16), filesz: Number(ph.readBigUInt64LE(o + 32)) });
    }
    if (!shnum) return; // no section headers: nothing named to find
    if (shentsize < 64 || shstrndx >= shnum) throw new ElfError("bad section header table");
    const sh = this.read(shoff, shnum * shentsize);
    const raw = [];
    for (let i = 0; i < shnum; i++) {
      const o = i * shentsize;
      raw.push({ nameOff: sh.readUInt32LE(o), type: sh.readUInt32LE(o + 4), flags: sh.readBigUInt64LE(o + 8), addr: sh.readBigUInt64LE(o + 16),
        offset: Number(sh.readBigUInt64LE(o + 24)), size: Number(sh.readBigUInt64LE(o + 32)), link: sh.readUInt32LE(o + 40) });
    }
    const names = this.read(raw[shstrndx]!.offset, raw[shstrndx]!.size);
    for (const r of raw) {
      const end = names.indexOf(0, r.nameOff);
      this.sections.push({ ...r, name: r.nameOff < names.length ? names.toString("latin1", r.nameOff, end < 0 ? names.length : end) : "" });
    }
  }

  /** Opens `path` (a regular file; /proc/<pid>/exe works). @throws ElfError, or the fs error */
  static open(path: string): ElfFile {
    const fd = fs.openSync(path, "r");
    try {
      return new ElfFile(fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** `len` bytes at file offset `off`. @throws ElfError past the end of the file */
  read(off: number, len: number): Buffer {
    if (off < 0 || len < 0 || off + len > this.size || len > MAX_SECTION_BYTES) throw new ElfError(`read of ${len} bytes at ${off} is outside the file (${this.size} bytes)`);
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = fs.readSync(this.fd, b, got, len - got, off + got);
      if (n <= 0) throw new ElfError("file shorter than its size");
      got += n;
    }
    return b;
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /**
   * A section's contents, inflated when compressed (SHF_COMPRESSED zlib, or the older `.zdebug_`
   * twin of a `.debug_` name). undefined when the section is absent (SHT_NOBITS too).
   */
  sectionData(name: string): Buffer | undefined {
    let s = this.section(name);
    let zdebug = false;
    if (!s && name.startsWith(".debug_")) {
      s = this.section(".z" + name.slice(1));
      zdebug = !!s;
    }
    if (!s || s.type === 8 /* SHT_NOBITS */) return undefined;
    const raw = this.read(s.offset, s.size);
    if (zdebug) {
      if (raw.length < 12 || raw.toString("latin1", 0, 4) !== "ZLIB") throw new ElfError(`${s.name}: not ZLIB-compressed`);
      return inflate(raw.subarray(12), Number(raw.readBigUInt64BE(4)), s.name);
    }
    if (s.flags & SHF_COMPRESSED) {
      if (raw.length < 24) throw new ElfError(`${s.name}: short compression header`);
      const type = raw.readUInt32LE(0);
      if (type !== 1) throw new ElfError(`${s.name}: compression type ${type} (only zlib is read)`);
      return inflate(raw.subarray(24), Number(raw.readBigUInt64LE(8)), s.name);
    }
    return raw;
  }

  /** The symbols of .symtab with these names (absent ones are missing from the map). */
  findSymbols(names: Iterable<string>): Map<string, ElfSymbol> {
    const out = new Map<string, ElfSymbol>();
    const symtab = this.section(".symtab");
    if (!symtab || symtab.link >= this.sections.length) return out;
    const wanted = new Map<string, Buffer>();
    for (const n of names) wanted.set(n, Buffer.from(n + "\0", "latin1"));
    const syms = this.read(symtab.offset, symtab.size);
    const strs = this.read(this.sections[symtab.link]!.offset, this.sections[symtab.link]!.size);
    // compare names in place: a Go binary has tens of thousands of symbols
    const firsts = new Set([...wanted.values()].map((b) => b[0]));
    for (let o = 0; o + 24 <= syms.length && out.size < wanted.size; o += 24) {
      const nameOff = syms.readUInt32LE(o);
      if (nameOff >= strs.length || !firsts.has(strs[nameOff]!)) continue;
      for (const [n, b] of wanted) {
        if (!out.has(n) && nameOff + b.length <= strs.length && strs.compare(b, 0, b.length, nameOff, nameOff + b.length) === 0) {
          out.set(n, { value: syms.readBigUInt64LE(o + 8), size: Number(syms.readBigUInt64LE(o + 16)) });
          break;
        }
      }
    }
    return out;
  }

  /** The file offset of link-time address `vaddr` (inside a PT_LOAD segment's file bytes). */
  fileOffset(vaddr: bigint): number | undefined {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + BigInt(s.filesz)) return s.offset + Number(vaddr - s.vaddr);
    }
    return undefined;
  }

  /** `len` bytes at link-time address `vaddr`. @throws ElfError outside the file's loaded bytes */
  readAt(vaddr: bigint, len: number): Buffer {
    const off = this.fileOffset(vaddr);
    if (off === undefined || this.fileOffset(vaddr + BigInt(Math.max(len - 1, 0))) !== off + Math.max(len - 1, 0)) {
      throw new ElfError(`address 0x${vaddr.toString(16)} (+${len}) is not in a loaded segment`);
    }
    return this.read(off, len);
  }
}

function inflate(data: Buffer, size: number, name: string): Buffer {
  if (size > MAX_SECTION_BYTES) throw new ElfError(`${name}: ${size} bytes inflated is too big`);
  try {
    return zlib.inflateSync(data, { maxOutputLength: Math.max(size, 1) });
  } catch (e) {
    throw new ElfError(`${name}: ${(e as Error).message}`);
  }
}
