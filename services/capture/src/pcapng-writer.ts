// A pcapng writer that turns byte streams back into TCP/IP packets, so traffic seen without
// packets (socket payloads from eBPF) can be opened in Wireshark/tshark: real addresses and ports,
// a SYN / SYN-ACK / ACK handshake, data split at the MSS with consistent sequence and
// acknowledgement numbers, FIN or RST at the end, a comment per packet when asked, and bytes the
// source missed left as sequence jumps (tshark: "previous segment not captured").
//
// Layout written: SHB, one IDB (LINKTYPE_ETHERNET or LINKTYPE_RAW, if_tsresol = 9: ns), then one
// EPB per packet. Block layouts: draft-ietf-opsawg-pcapng §4.
import fs from "node:fs";
import net from "node:net";
import { CaptureError } from "./errors.js";

/** Where the bytes go. */
export interface ByteSink {
  write(chunk: Uint8Array): void;
  close?(): void;
}

export interface PcapngWriterOptions {
  /** Ethernet frames with made-up MAC addresses, or bare IP packets. */
  link: "ethernet" | "raw";
  /** Largest TCP payload per packet. */
  mss: number;
  /** shb_userappl. */
  application: string;
  /** if_name. */
  interfaceName: string;
  /**
   * After each data() call, the receiver acknowledges everything (a bare ACK), as real TCP does.
   * tshark needs the ACK to call bytes skipped by gap() missing rather than still coming.
   */
  acks: boolean;
}

const defaults: PcapngWriterOptions = { link: "ethernet", mss: 1460, application: "wirescope", interfaceName: "wirescope", acks: true };

export interface EndpointSpec {
  address: string;
  port: number;
}

/** A synthesized connection; dir 0 = client → server, 1 = server → client. */
export interface SynthConnection {
  readonly family: 4 | 6;
  /** Next sequence number per direction. */
  readonly next: [number, number];
  closed: boolean;
}

interface ConnState extends SynthConnection {
  readonly addr: [Buffer, Buffer];
  readonly port: [number, number];
  readonly mac: [Buffer, Buffer];
  next: [number, number];
  ipId: [number, number];
}

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;

/** Writes a pcapng capture of synthesized TCP connections. */
export class PcapngWriter {
  private readonly opts: PcapngWriterOptions;
  private out = Buffer.allocUnsafe(1 << 18);
  private len = 0;
  private nextMac = 1;
  private ended = false;
  /** Packets written. */
  packets = 0;

  constructor(
    private readonly sink: ByteSink,
    opts: Partial<PcapngWriterOptions> = {},
  ) {
    this.opts = { ...defaults, ...opts };
    if (!(this.opts.mss >= 1 && this.opts.mss <= 65495)) throw new RangeError(`mss must be 1..65495, got ${this.opts.mss}`);
    this.writeHeader();
  }

  /** A writer into a new file (buffered; call end()). */
  static toFile(path: string, opts: Partial<PcapngWriterOptions> = {}): PcapngWriter {
    let fd: number;
    try {
      fd = fs.openSync(path, "w");
    } catch (e) {
      throw new CaptureError("io", `${path}: ${(e as Error).message}`, { cause: e });
    }
    return new PcapngWriter(
      {
        write: (c) => {
          for (let off = 0; off < c.length; ) off += fs.writeSync(fd, c, off, c.length - off);
        },
        close: () => fs.closeSync(fd),
      },
      opts,
    );
  }

  /**
   * Starts a connection at tsNs. With `handshake` (default) a SYN, SYN-ACK and ACK are written;
   * without, the connection appears mid-way, as for one that existed before the capture started.
   */
  openConnection(client: EndpointSpec, server: EndpointSpec, tsNs: bigint, opts: { handshake?: boolean; comment?: string; isn?: [number, number] } = {}): SynthConnection {
    const [ca, sa] = addressPair(client.address, server.address);
    const family = ca.length === 4 ? 4 : 6;
    checkPort(client.port);
    checkPort(server.port);
    const isn = opts.isn ?? [(Math.random() * 2 ** 32) >>> 0, (Math.random() * 2 ** 32) >>> 0];
    const c: ConnState = {
      family,
      addr: [ca, sa],
      port: [client.port, server.port],
      mac: [this.mac(), this.mac()],
      next: [isn[0] >>> 0, isn[1] >>> 0],
      ipId: [1, 1],
      closed: false,
    };
    if (opts.handshake ?? true) {
      this.packet(c, 0, SYN, tsNs, undefined, 0, 0, opts.comment);
      c.next[0] = (c.next[0] + 1) >>> 0;
      this.packet(c, 1, SYN | ACK, tsNs, undefined, 0, 0, undefined);
      c.next[1] = (c.next[1] + 1) >>> 0;
      this.packet(c, 0, ACK, tsNs, undefined, 0, 0, undefined);
    }
    return c;
  }

  /** Bytes sent in one direction at tsNs, split at the MSS; `comment` goes on the first packet. */
  data(conn: SynthConnection, dir: 0 | 1, bytes: Uint8Array, tsNs: bigint, comment?: string): void {
    const c = this.live(conn);
    const mss = this.opts.mss;
    for (let off = 0; off < bytes.length; off += mss) {
      const n = Math.min(mss, bytes.length - off);
      this.packet(c, dir, ACK | PSH, tsNs, bytes, off, n, off === 0 ? comment : undefined);
      c.next[dir] = (c.next[dir] + n) >>> 0;
    }
    if (this.opts.acks && bytes.length) this.packet(c, (dir ^ 1) as 0 | 1, ACK, tsNs, undefined, 0, 0, undefined);
  }

  /** `len` bytes of one direction that the source missed: the sequence number jumps over them. */
  gap(conn: SynthConnection, dir: 0 | 1, len: number): void {
    const c = this.live(conn);
    if (!(len >= 0)) throw new RangeError(`gap length must be ≥ 0, got ${len}`);
    c.next[dir] = (c.next[dir] + len) >>> 0;
  }

  /** Ends a connection: FIN from the client, FIN-ACK from the server, last ACK; or a RST from `dir`. */
  close(conn: SynthConnection, tsNs: bigint, how: { rst?: boolean; dir?: 0 | 1; comment?: string } = {}): void {
    const c = this.live(conn);
    if (how.rst) {
      this.packet(c, how.dir ?? 0, RST | ACK, tsNs, undefined, 0, 0, how.comment);
    } else {
      const first = how.dir ?? 0;
      const second = (first ^ 1) as 0 | 1;
      this.packet(c, first, FIN | ACK, tsNs, undefined, 0, 0, how.comment);
      c.next[first] = (c.next[first] + 1) >>> 0;
      this.packet(c, second, FIN | ACK, tsNs, undefined, 0, 0, undefined);
      c.next[second] = (c.next[second] + 1) >>> 0;
      this.packet(c, first, ACK, tsNs, undefined, 0, 0, undefined);
    }
    c.closed = true;
  }

  /** Pushes buffered bytes to the sink. */
  flush(): void {
    if (this.len) {
      this.sink.write(this.out.subarray(0, this.len));
      this.out = Buffer.allocUnsafe(this.out.length);
      this.len = 0;
    }
  }

  /** Flushes and closes the sink. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.flush();
    this.sink.close?.();
  }

  // ---------------------------------------------------------------------------------------------

  private live(conn: SynthConnection): ConnState {
    if (this.ended) throw new Error("pcapng writer already ended");
    if (conn.closed) throw new Error("connection already closed");
    return conn as ConnState;
  }

  private mac(): Buffer {
    const n = this.nextMac++;
    // locally administered unicast: 02:00:xx:xx:xx:xx
    return Buffer.from([0x02, 0x00, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  }

  private reserve(n: number): number {
    if (this.len + n > this.out.length) {
      this.flush();
      if (n > this.out.length) this.out = Buffer.allocUnsafe(n);
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  private writeHeader(): void {
    // SHB: type, len, byte-order magic, version 1.0, section length -1, shb_userappl
    const appl = Buffer.from(this.opts.application, "utf8");
    const shbOpts = optionsLength([appl]);
    const shbLen = 28 + shbOpts;
    let o = this.reserve(shbLen);
    const b = this.out;
    b.writeUInt32LE(0x0a0d0d0a, o);
    b.writeUInt32LE(shbLen, o + 4);
    b.writeUInt32LE(0x1a2b3c4d, o + 8);
    b.writeUInt16LE(1, o + 12);
    b.writeUInt16LE(0, o + 14);
    b.writeInt32LE(-1, o + 16);
    b.writeInt32LE(-1, o + 20);
    writeOptions(b, o + 24, [[4, appl]]);
    b.writeUInt32LE(shbLen, o + shbLen - 4);
    // IDB: link type, snaplen 0 (no limit), if_name, if_tsresol = 9
    const name = Buffer.from(this.opts.interfaceName, "utf8");
    const tsresol = Buffer.from([9]);
    const idbLen = 20 + optionsLength([name, tsresol]);
    o = this.reserve(idbLen);
    b.writeUInt32LE(1, o);
    b.writeUInt32LE(idbLen, o + 4);
    b.writeUInt16LE(this.opts.link === "ethernet" ? 1 : 101, o + 8);
    b.writeUInt16LE(0, o + 10);
    b.writeUInt32LE(0, o + 12);
    writeOptions(b, o + 16, [
      [2, name],
      [9, tsresol],
    ]);
    b.writeUInt32LE(idbLen, o + idbLen - 4);
  }

  /** One TCP packet from `dir` with the current sequence numbers, wrapped in an EPB. */
  private packet(c: ConnState, dir: 0 | 1, flags: number, tsNs: bigint, data: Uint8Array | undefined, off: number, n: number, comment: string | undefined): void {
    const eth = this.opts.link === "ethernet" ? 14 : 0;
    const ipLen = c.family === 4 ? 20 : 40;
    const frameLen = eth + ipLen + 20 + n;
    const commentBuf = comment === undefined ? undefined : Buffer.from(comment, "utf8");
    const optLen = commentBuf ? optionsLength([commentBuf]) : 0;
    const blockLen = 32 + pad4(frameLen) + optLen;
    const o = this.reserve(blockLen);
    const b = this.out;
    b.writeUInt32LE(6, o);
    b.writeUInt32LE(blockLen, o + 4);
    b.writeUInt32LE(0, o + 8);
    b.writeUInt32LE(Number(BigInt.asUintN(64, tsNs) >> 32n), o + 12);
    b.writeUInt32LE(Number(BigInt.asUintN(32, tsNs)), o + 16);
    b.writeUInt32LE(frameLen, o + 20);
    b.writeUInt32LE(frameLen, o + 24);
    let p = o + 28;
    const src = c.addr[dir];
    const dst = c.addr[dir ^ 1]!;
    if (eth) {
      c.mac[dir ^ 1]!.copy(b, p);
      c.mac[dir].copy(b, p + 6);
      b.writeUInt16BE(c.family === 4 ? 0x0800 : 0x86dd, p + 12);
      p += 14;
    }
    const ip = p;
    if (c.family === 4) {
      b.writeUInt16BE(0x4500, p);
      b.writeUInt16BE(20 + 20 + n, p + 2);
      b.writeUInt16BE(c.ipId[dir] & 0xffff, p + 4);
      c.ipId[dir]++;
      b.writeUInt16BE(0x4000, p + 6);
      b[p + 8] = 64;
      b[p + 9] = 6;
      b.writeUInt16BE(0, p + 10);
      src.copy(b, p + 12);
      dst.copy(b, p + 16);
      b.writeUInt16BE(checksum(b, p, 20, 0), p + 10);
      p += 20;
    } else {
      b.writeUInt32BE(0x60000000, p);
      b.writeUInt16BE(20 + n, p + 4);
      b[p + 6] = 6;
      b[p + 7] = 64;
      src.copy(b, p + 8);
      dst.copy(b, p + 24);
      p += 40;
    }
    const tcp = p;
    b.writeUInt16BE(c.port[dir], p);
    b.writeUInt16BE(c.port[dir ^ 1]!, p + 2);
    b.writeUInt32BE(c.next[dir], p + 4);
    b.writeUInt32BE(flags & ACK ? c.next[dir ^ 1]! : 0, p + 8);
    b[p + 12] = 5 << 4;
    b[p + 13] = flags;
    b.writeUInt16BE(65535, p + 14);
    b.writeUInt32BE(0, p + 16); // checksum, urgent pointer
    if (n) b.set(data!.subarray(off, off + n), p + 20);
    // TCP checksum over the pseudo-header (addresses, protocol, TCP length) and the segment.
    let sum = 6 + 20 + n;
    const aOff = c.family === 4 ? ip + 12 : ip + 8;
    sum = sumWords(b, aOff, c.family === 4 ? 8 : 32, sum);
    b.writeUInt16BE(checksum(b, tcp, 20 + n, sum), tcp + 16);
    p += 20 + n;
    b.fill(0, p, o + 28 + pad4(frameLen));
    if (commentBuf) writeOptions(b, o + 28 + pad4(frameLen), [[1, commentBuf]]);
    b.writeUInt32LE(blockLen, o + blockLen - 4);
    this.packets++;
  }
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function optionsLength(values: Buffer[]): number {
  return values.reduce((s, v) => s + 4 + pad4(v.length), 0) + 4;
}

/** Writes options and opt_endofopt at `o`. */
function writeOptions(b: Buffer, o: number, opts: [number, Buffer][]): void {
  for (const [code, v] of opts) {
    if (v.length > 0xffff) throw new RangeError("pcapng option longer than 65535 bytes");
    b.writeUInt16LE(code, o);
    b.writeUInt16LE(v.length, o + 2);
    v.copy(b, o + 4);
    b.fill(0, o + 4 + v.length, o + 4 + pad4(v.length));
    o += 4 + pad4(v.length);
  }
  b.writeUInt32LE(0, o);
}

function sumWords(b: Buffer, off: number, len: number, sum: number): number {
  let i = 0;
  for (; i + 1 < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  if (i < len) sum += b[off + i]! << 8;
  return sum;
}

function checksum(b: Buffer, off: number, len: number, initial: number): number {
  let sum = sumWords(b, off, len, initial);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bad TCP port ${port}`);
}

/** Parses both addresses; an IPv4 paired with an IPv4-mapped IPv6 address becomes IPv4 on both sides. */
function addressPair(a: string, b: string): [Buffer, Buffer] {
  let x = parseAddress(a);
  let y = parseAddress(b);
  if (x.length !== y.length) {
    x = unmap(x, a);
    y = unmap(y, b);
  }
  if (x.length !== y.length) throw new RangeError(`cannot mix IPv4 and IPv6 in one connection: ${a} and ${b}`);
  return [x, y];
}

function unmap(addr: Buffer, text: string): Buffer {
  if (addr.length === 4) return addr;
  const mapped = addr.subarray(0, 10).every((v) => v === 0) && addr[10] === 0xff && addr[11] === 0xff;
  if (!mapped) throw new RangeError(`cannot mix IPv4 and IPv6 in one connection: ${text}`);
  return addr.subarray(12);
}

/** IPv4 or IPv6 text to bytes (4 or 16). */
export function parseAddress(text: string): Buffer {
  const t = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (net.isIPv4(t)) return Buffer.from(t.split(".").map(Number));
  if (!net.isIPv6(t)) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  let s = t.split("%")[0]!;
  const out = Buffer.alloc(16);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const q = v4[1]!.split(".").map(Number);
    tail = [(q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith(":") && !s.endsWith("::")) s = s.slice(0, -1);
  }
  const [head, rest] = s.includes("::") ? s.split("::") : [s, undefined];
  const hw = head ? head.split(":").filter((x) => x !== "").map((x) => parseInt(x, 16)) : [];
  const rw = rest !== undefined && rest !== "" ? rest.split(":").map((x) => parseInt(x, 16)) : [];
  const words = [...hw, ...new Array<number>(8 - hw.length - rw.length - tail.length).fill(0), ...rw, ...tail];
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}
