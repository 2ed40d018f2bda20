// Streaming reader for pcap and pcapng captures.
//
// One window buffer is refilled from the file as records are consumed; a packet is handed out as
// (buf, offset, capLen) inside that window, in one reused object, so reading allocates nothing
// per packet. The bytes stay valid until the next call to next().
//
// pcap (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/):
//
//   file header (24 bytes)                     record header (16 bytes) + capLen bytes
//   +--------+-----+-----+------+------+------+------+   +--------+--------+--------+--------+
//   | magic  |major|minor| zone | sigf | snap | link |   | ts sec | ts frac| capLen | origLen|
//   +--------+-----+-----+------+------+------+------+   +--------+--------+--------+--------+
//   magic a1b2c3d4 = µs, a1b23c4d = ns, a1b2cd34 = Kuznetsov's "modified" pcap (8 more bytes per
//   record header); read as big-endian bytes they tell the byte order of the whole file.
//
// pcapng (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/): a sequence of blocks
//
//   +------+-------+------------------+-------+
//   | type | len   | body ... options | len   |   len covers the whole block, multiple of 4
//   +------+-------+------------------+-------+
//   SHB (0a0d0d0a) starts a section and fixes its byte order (1a2b3c4d); IDB (1) declares an
//   interface (link type, if_tsresol, if_tsoffset); EPB (6), SPB (3) and the obsolete PB (2) hold
//   packets. Everything else is skipped.
import fs from "node:fs";
import zlib from "node:zlib";
import { CaptureError } from "./errors.js";

/** One captured frame. The object and its bytes are reused: copy what you keep. */
export interface CapturePacket {
  /** pcapng interface id (0 for pcap). */
  iface: number;
  /** LINKTYPE_* of the interface that captured the frame. */
  linkType: number;
  /** Seconds since the Unix epoch. */
  tsSec: number;
  /** Nanoseconds within the second. */
  tsNsec: number;
  buf: Buffer;
  offset: number;
  /** Bytes present in the file. */
  capLen: number;
  /** Bytes the frame had on the wire (≥ capLen when the snap length cut it). */
  origLen: number;
  /** opt_comment of the packet when `comments` is on (pcapng only), else undefined. */
  comment: string | undefined;
}

export interface CaptureReaderOptions {
  /** Initial window size; grows up to maxRecordBytes for a larger record. */
  bufferSize: number;
  /** A record or block larger than this is corrupt. */
  maxRecordBytes: number;
  /** Parse packet comments (pcapng opt_comment). */
  comments: boolean;
}

const defaults: CaptureReaderOptions = { bufferSize: 1 << 20, maxRecordBytes: 64 << 20, comments: false };

/** What the reader saw; warnings are counted, never thrown. */
export interface CaptureReaderStats {
  packets: number;
  /** The file ended inside a record or block: the rest of it was dropped. */
  truncatedRecords: number;
  /** Blocks or records with impossible values (skipped, or reading stopped when it cannot resync). */
  corruptRecords: number;
  /** pcapng blocks that hold no packets (name resolution, statistics, custom, ...). */
  skippedBlocks: number;
  /** Sections (pcapng SHB) seen. */
  sections: number;
}

interface Iface {
  linkType: number;
  snapLen: number;
  /** Units per second are 10^decExp when binExp < 0, else 2^binExp. */
  decExp: number;
  binExp: number;
  offsetSec: number;
}

const SHB = 0x0a0d0d0a;
const IDB = 1;
const PB = 2;
const SPB = 3;
const EPB = 6;

type Format = "pcap" | "pcapng";

/**
 * Pull reader over one capture file or buffer. Construction reads the file header and fails
 * with a {@link CaptureError} when the input is not a capture; after that, damage found further on
 * is counted in {@link stats} and described in {@link warnings}, and reading stops or skips.
 */
export class CaptureReader {
  readonly format: Format;
  readonly stats: CaptureReaderStats = { packets: 0, truncatedRecords: 0, corruptRecords: 0, skippedBlocks: 0, sections: 0 };
  readonly warnings: string[] = [];
  /** Total size of the input in bytes (for progress). */
  readonly size: number;

  private readonly opts: CaptureReaderOptions;
  private readonly fd: number | undefined;
  /** A pipe or terminal (stdin): read in order, no positioned reads; size unknown (0). */
  private readonly sequential: boolean = false;
  private win: Buffer;
  private pos = 0;
  private end = 0;
  /** File offset of win[0]. */
  private base = 0;
  private eof = false;
  private done = false;
  private le = true;
  // pcap
  private nsRes = false;
  private recHdr = 16;
  private linkType = 0;
  private snapLen = 0;
  // pcapng
  private ifaces: Iface[] = [];
  private lastSec = 0;
  private lastNsec = 0;
  private readonly pkt: CapturePacket;

  private constructor(
    private readonly name: string,
    source: { fd: number; size: number; sequential: boolean } | { buffer: Buffer },
    opts: Partial<CaptureReaderOptions>,
  ) {
    this.opts = { ...defaults, ...opts };
    if ("buffer" in source) {
      this.win = source.buffer;
      this.end = source.buffer.length;
      this.eof = true;
      this.size = source.buffer.length;
    } else {
      this.fd = source.fd;
      this.size = source.size;
      this.sequential = source.sequential;
      this.win = Buffer.allocUnsafe(source.sequential ? this.opts.bufferSize : Math.max(4096, Math.min(this.opts.bufferSize, Math.max(source.size, 4096))));
    }
    this.pkt = { iface: 0, linkType: 0, tsSec: 0, tsNsec: 0, buf: this.win, offset: 0, capLen: 0, origLen: 0, comment: undefined };
    try {
      this.format = this.readFileHeader();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * Opens a capture file ("-" = standard input, read as a stream). Throws a CaptureError with a
   * one-line message when it is not a capture.
   */
  static open(path: string, opts: Partial<CaptureReaderOptions> = {}): CaptureReader {
    let fd: number;
    try {
      fd = path === "-" ? 0 : fs.openSync(path, "r");
    } catch (e) {
      throw new CaptureError("io", `${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`, { cause: e });
    }
    let size: number;
    let sequential: boolean;
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new CaptureError("io", `${path}: is a directory, not a capture`);
      sequential = !st.isFile();
      size = sequential ? 0 : st.size;
    } catch (e) {
      if (fd !== 0) fs.closeSync(fd);
      throw e instanceof CaptureError ? e : new CaptureError("io", `${path}: ${(e as Error).message}`, { cause: e });
    }
    if (!sequential && size >= 2) {
      // gzip-compressed captures (as tshark reads them): decompressed in memory.
      const head = Buffer.alloc(2);
      fs.readSync(fd, head, 0, 2, 0);
      if (head[0] === 0x1f && head[1] === 0x8b) {
        try {
          const plain = zlib.gunzipSync(fs.readFileSync(fd), { maxOutputLength: MAX_GUNZIP });
          return new CaptureReader(path, { buffer: plain }, opts);
        } catch (e) {
          if (e instanceof CaptureError) throw e;
          throw new CaptureError("corrupt", `${path}: gzip-compressed, but it does not decompress (${(e as Error).message})`, { cause: e });
        } finally {
          if (fd !== 0) fs.closeSync(fd);
        }
      }
    }
    return new CaptureReader(path === "-" ? "stdin" : path, { fd, size, sequential }, opts);
  }

  /** Reads a capture held in memory. */
  static fromBuffer(buffer: Buffer, name = "buffer", opts: Partial<CaptureReaderOptions> = {}): CaptureReader {
    return new CaptureReader(name, { buffer }, opts);
  }

  /** Bytes of the input consumed so far. */
  get position(): number {
    return this.base + this.pos;
  }

  close(): void {
    if (this.fd !== undefined && !this.closed) {
      this.closed = true;
      if (this.fd !== 0) fs.closeSync(this.fd);
    }
  }
  private closed = false;

  /** The next packet, or null at the end of the input (or where damage stops reading). */
  next(): CapturePacket | null {
    if (this.done) return null;
    const p = this.format === "pcap" ? this.nextPcap() : this.nextPcapng();
    if (p) this.stats.packets++;
    else this.done = true;
    return p;
  }

  // ---- window ---------------------------------------------------------------------------------

  /** Makes at least n bytes available from pos; false when the input ends first. */
  private ensure(n: number): boolean {
    if (this.end - this.pos >= n) return true;
    if (this.eof || this.fd === undefined) return false;
    if (this.pos > 0) {
      this.win.copyWithin(0, this.pos, this.end);
      this.base += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    }
    if (n > this.win.length) {
      const grown = Buffer.allocUnsafe(Math.max(n, Math.min(this.win.length * 2, this.opts.maxRecordBytes + 64)));
      this.win.copy(grown, 0, 0, this.end);
      this.win = grown;
      this.pkt.buf = grown;
    }
    while (this.end < n || this.end < this.win.length) {
      let r: number;
      try {
        r = fs.readSync(this.fd, this.win, this.end, this.win.length - this.end, this.sequential ? null : this.base + this.end);
      } catch (e) {
        throw new CaptureError("io", `${this.name}: ${(e as Error).message}`, { cause: e });
      }
      if (r === 0) {
        this.eof = true;
        break;
      }
      this.end += r;
      if (this.end >= n && this.end - this.pos >= 65536) break;
    }
    return this.end - this.pos >= n;
  }

  private u16(off: number): number {
    return this.le ? this.win.readUInt16LE(off) : this.win.readUInt16BE(off);
  }
  private u32(off: number): number {
    return this.le ? this.win.readUInt32LE(off) : this.win.readUInt32BE(off);
  }

  private warn(kind: "truncatedRecords" | "corruptRecords", what: string): void {
    this.stats[kind]++;
    if (this.warnings.length < 20) this.warnings.push(`${this.name}: ${what} at byte ${this.position}`);
  }

  // ---- file header ----------------------------------------------------------------------------

  private readFileHeader(): Format {
    if (!this.ensure(4)) {
      if (this.end === this.pos) throw new CaptureError("not-capture", `${this.name}: empty file, not a pcap or pcapng capture`);
      throw new CaptureError("not-capture", `${this.name}: ${this.end - this.pos} bytes, too short to be a capture`);
    }
    const be = this.win.readUInt32BE(this.pos);
    if (be === SHB) {
      this.readShb(true);
      return "pcapng";
    }
    let le: boolean;
    switch (be) {
      case 0xa1b2c3d4:
      case 0xa1b23c4d:
      case 0xa1b2cd34:
        le = false;
        break;
      case 0xd4c3b2a1:
      case 0x4d3cb2a1:
      case 0x34cdb2a1:
        le = true;
        break;
      default:
        throw new CaptureError("not-capture", `${this.name}: not a pcap or pcapng capture (${describeMagic(this.win, this.pos, this.end)})`);
    }
    this.le = le;
    if (!this.ensure(24)) throw new CaptureError("truncated", `${this.name}: truncated pcap file header (${this.end - this.pos} of 24 bytes)`);
    const magic = this.u32(this.pos);
    this.nsRes = magic === 0xa1b23c4d;
    this.recHdr = magic === 0xa1b2cd34 ? 24 : 16;
    const major = this.u16(this.pos + 4);
    if (major !== 2) throw new CaptureError("unsupported", `${this.name}: pcap version ${major}.${this.u16(this.pos + 6)} is not supported (expected 2.x)`);
    this.snapLen = this.u32(this.pos + 16);
    // Upper bits of the link-type word carry the FCS length (draft-ietf-opsawg-pcap §4); the IP
    // length fields make a trailing FCS harmless, so only the link type is kept.
    this.linkType = this.u32(this.pos + 20) & 0x03ffffff;
    this.pos += 24;
    return "pcap";
  }

  // ---- pcap -----------------------------------------------------------------------------------

  private nextPcap(): CapturePacket | null {
    const h = this.recHdr;
    if (!this.ensure(h)) {
      if (this.end > this.pos) this.warn("truncatedRecords", `truncated record header (${this.end - this.pos} of ${h} bytes)`);
      return null;
    }
    const p = this.pos;
    const sec = this.u32(p);
    const frac = this.u32(p + 4);
    const capLen = this.u32(p + 8);
    const origLen = this.u32(p + 12);
    if (capLen > this.opts.maxRecordBytes || (!this.nsRes && frac >= 1_000_000) || frac >= 1_000_000_000) {
      // A pcap record cannot be skipped without trusting its length: stop here.
      this.warn("corruptRecords", `corrupt record header (captured length ${capLen}, fraction ${frac}); reading stopped`);
      return null;
    }
    if (!this.ensure(h + capLen)) {
      this.warn("truncatedRecords", `truncated record (${this.end - this.pos - h} of ${capLen} bytes)`);
      this.pos = this.end;
      return null;
    }
    const pkt = this.pkt;
    pkt.iface = 0;
    pkt.linkType = this.linkType;
    pkt.tsSec = sec;
    pkt.tsNsec = this.nsRes ? frac : frac * 1000;
    pkt.buf = this.win;
    pkt.offset = this.pos + h;
    pkt.capLen = capLen;
    pkt.origLen = Math.max(origLen, capLen);
    pkt.comment = undefined;
    this.pos += h + capLen;
    return pkt;
  }

  // ---- pcapng ---------------------------------------------------------------------------------

  /** Reads the SHB at pos; `first`: a failure is fatal (the file is not pcapng after all). */
  private readShb(first: boolean): boolean {
    const fail = (code: "truncated" | "corrupt" | "unsupported", msg: string): false => {
      if (first) throw new CaptureError(code, `${this.name}: ${msg}`);
      this.warn(code === "truncated" ? "truncatedRecords" : "corruptRecords", `${msg}; reading stopped`);
      return false;
    };
    if (!this.ensure(12)) return fail("truncated", "truncated pcapng section header");
    const bom = this.win.readUInt32LE(this.pos + 8);
    if (bom === 0x1a2b3c4d) this.le = true;
    else if (bom === 0x4d3c2b1a) this.le = false;
    else return fail(first ? "corrupt" : "corrupt", `pcapng section header with a bad byte-order magic (0x${bom.toString(16)})`);
    const len = this.u32(this.pos + 4);
    if (len < 28 || len % 4 !== 0 || len > this.opts.maxRecordBytes) return fail("corrupt", `pcapng section header with a bad length (${len})`);
    if (!this.ensure(len)) return fail("truncated", `truncated pcapng section header (${this.end - this.pos} of ${len} bytes)`);
    const major = this.u16(this.pos + 12);
    if (major !== 1) return fail("unsupported", `pcapng version ${major}.${this.u16(this.pos + 14)} is not supported (expected 1.x)`);
    this.ifaces = [];
    this.stats.sections++;
    this.pos += len;
    return true;
  }

  private nextPcapng(): CapturePacket | null {
    for (;;) {
      if (!this.ensure(12)) {
        if (this.end > this.pos) this.warn("truncatedRecords", `truncated block header (${this.end - this.pos} bytes)`);
        return null;
      }
      let b = this.pos;
      if (this.win.readUInt32BE(b) === SHB) {
        if (!this.readShb(false)) return null;
        continue;
      }
      const type = this.u32(b);
      const len = this.u32(b + 4);
      if (len < 12 || len % 4 !== 0 || len > this.opts.maxRecordBytes) {
        this.warn("corruptRecords", `corrupt block (type ${type}, length ${len}); reading stopped`);
        return null;
      }
      if (!this.ensure(len)) {
        this.warn("truncatedRecords", `truncated block (type ${type}, ${this.end - this.pos} of ${len} bytes)`);
        this.pos = this.end;
        return null;
      }
      b = this.pos; // ensure() may have moved the window
      if (this.u32(b + len - 4) !== len) {
        this.warn("corruptRecords", `block of type ${type} whose trailing length differs; reading stopped`);
        return null;
      }
      this.pos += len;
      switch (type) {
        case IDB:
          this.readIdb(b, len);
          continue;
        case EPB:
        case PB: {
          if (len < 32) break;
          const iface = type === EPB ? this.u32(b + 8) : this.u16(b + 8);
          const capLen = this.u32(b + 20);
          const info = this.ifaces[iface];
          if (!info || capLen > len - 32) {
            this.warn("corruptRecords", info ? `packet block with captured length ${capLen} beyond its block` : `packet block for undeclared interface ${iface}`);
            continue;
          }
          const pkt = this.pkt;
          this.setTime(info, this.u32(b + 12), this.u32(b + 16));
          pkt.iface = iface;
          pkt.linkType = info.linkType;
          pkt.tsSec = this.lastSec;
          pkt.tsNsec = this.lastNsec;
          pkt.buf = this.win;
          pkt.offset = b + 28;
          pkt.capLen = capLen;
          pkt.origLen = Math.max(this.u32(b + 24), capLen);
          pkt.comment = this.opts.comments ? this.findComment(b + 28 + pad4(capLen), b + len - 4) : undefined;
          return pkt;
        }
        case SPB: {
          const info = this.ifaces[0];
          if (!info || len < 16) {
            this.warn("corruptRecords", "simple packet block without interface 0");
            continue;
          }
          const origLen = this.u32(b + 8);
          let capLen = Math.min(origLen, len - 16);
          if (info.snapLen > 0) capLen = Math.min(capLen, info.snapLen);
          // SPBs carry no timestamp: they get the last one seen, so durations stay sane.
          const pkt = this.pkt;
          pkt.iface = 0;
          pkt.linkType = info.linkType;
          pkt.tsSec = this.lastSec;
          pkt.tsNsec = this.lastNsec;
          pkt.buf = this.win;
          pkt.offset = b + 12;
          pkt.capLen = capLen;
          pkt.origLen = Math.max(origLen, capLen);
          pkt.comment = undefined;
          return pkt;
        }
        default:
          this.stats.skippedBlocks++;
          continue;
      }
      this.warn("corruptRecords", `packet block too short (${len} bytes)`);
    }
  }

  private readIdb(b: number, len: number): void {
    if (len < 20) {
      this.warn("corruptRecords", "interface description block too short");
      return;
    }
    const iface: Iface = { linkType: this.u16(b + 8), snapLen: this.u32(b + 12), decExp: 6, binExp: -1, offsetSec: 0 };
    for (let o = b + 16; o + 4 <= b + len - 4; ) {
      const code = this.u16(o);
      const olen = this.u16(o + 2);
      if (code === 0 || o + 4 + olen > b + len - 4) break;
      if (code === 9 && olen >= 1) {
        const v = this.win[o + 4]!;
        if (v & 0x80) {
          iface.binExp = v & 0x7f;
        } else {
          iface.decExp = v;
        }
      } else if (code === 14 && olen >= 8) {
        const hi = this.le ? this.win.readInt32LE(o + 8) : this.win.readInt32BE(o + 4);
        const lo = this.le ? this.win.readUInt32LE(o + 4) : this.win.readUInt32BE(o + 8);
        iface.offsetSec = hi * 4294967296 + lo;
      }
      o += 4 + pad4(olen);
    }
    if (iface.binExp < 0 && iface.decExp > 18) {
      this.warn("corruptRecords", `interface with an impossible timestamp resolution 10^-${iface.decExp}; using µs`);
      iface.decExp = 6;
    }
    this.ifaces.push(iface);
  }

  /** Converts a 64-bit timestamp in the interface's units to (lastSec, lastNsec). */
  private setTime(info: Iface, hi: number, lo: number): void {
    if (info.binExp >= 0) {
      const unitsPerSec = 2 ** info.binExp;
      const total = hi * 4294967296 + lo;
      const sec = Math.floor(total / unitsPerSec);
      this.lastSec = sec + info.offsetSec;
      this.lastNsec = Math.min(999_999_999, Math.floor(((total - sec * unitsPerSec) / unitsPerSec) * 1e9));
      return;
    }
    const k = info.decExp;
    if (hi < 0x200000) {
      // total < 2^53: exact in a double.
      const total = hi * 4294967296 + lo;
      const d = POW10[k]!;
      let sec = Math.floor(total / d);
      let rem = total - sec * d;
      if (rem < 0) {
        sec--;
        rem += d;
      } else if (rem >= d) {
        sec++;
        rem -= d;
      }
      this.lastSec = sec + info.offsetSec;
      this.lastNsec = k <= 9 ? rem * POW10[9 - k]! : Math.floor(rem / POW10[k - 9]!);
      return;
    }
    const total = (BigInt(hi) << 32n) | BigInt(lo);
    const d = BIG_POW10[k]!;
    this.lastSec = Number(total / d) + info.offsetSec;
    const rem = total % d;
    this.lastNsec = k <= 9 ? Number(rem) * POW10[9 - k]! : Number(rem / BIG_POW10[k - 9]!);
  }

  private findComment(from: number, to: number): string | undefined {
    for (let o = from; o + 4 <= to; ) {
      const code = this.u16(o);
      const olen = this.u16(o + 2);
      if (code === 0 || o + 4 + olen > to) return undefined;
      if (code === 1) return this.win.toString("utf8", o + 4, o + 4 + olen);
      o += 4 + pad4(olen);
    }
    return undefined;
  }
}

/** Largest gzip-compressed capture we decompress in memory. */
const MAX_GUNZIP = 1 << 30;

const POW10 = Array.from({ length: 19 }, (_, i) => 10 ** i);
const BIG_POW10 = Array.from({ length: 19 }, (_, i) => 10n ** BigInt(i));

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function describeMagic(buf: Buffer, pos: number, end: number): string {
  const head = buf.subarray(pos, Math.min(end, pos + 8));
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip-compressed; decompress it first";
  const hex = head.subarray(0, 4).toString("hex");
  const text = head.toString("latin1");
  return /^[\x20-\x7e]+$/.test(text) ? `starts with text "${text}"` : `starts with 0x${hex}`;
}
