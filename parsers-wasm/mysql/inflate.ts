// zlib inflate (RFC 1950 wrapper around RFC 1951 deflate) for the MySQL compressed protocol,
// where each compressed packet is one complete zlib stream whose inflated size the packet header
// states. Written after Mark Adler's puff.c: canonical Huffman codes decoded a bit at a time from
// per-length counts, no lookup tables to build beyond those. Every read and write is bounds-
// checked and every loop consumes input or produces output, so bad input ends in a status, never
// a trap or a loop; the work is linear in the output size (each output byte costs at most one
// symbol decode of <= 15 bits, or a copy).

// Base lengths and extra bits of length codes 257..285, and of distance codes 0..29 (RFC 1951 3.2.5).
const LEN_BASE = memory.data<u16>([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]);
const LEN_EXTRA = memory.data<u8>([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]);
const DIST_BASE = memory.data<u16>([1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]);
const DIST_EXTRA = memory.data<u8>([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]);
// The order in which code length code lengths are sent (RFC 1951 3.2.7).
const CLEN_ORDER = memory.data<u8>([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);

const MAX_BITS: i32 = 15;

/** A zlib stream header at p (2 bytes): CM 8 (deflate), window <= 32 KiB, header checksum, no preset dictionary. */
export function isZlib(p: usize): bool {
  const cmf = <u32>load<u8>(p);
  const flg = <u32>load<u8>(p, 1);
  return (cmf & 0x0f) == 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 == 0 && (flg & 0x20) == 0;
}

/** A canonical Huffman code: how many codes of each length, and the symbols in code order. */
class Huffman {
  count: StaticArray<u16> = new StaticArray<u16>(MAX_BITS + 1);
  symbol: StaticArray<u16>;
  constructor(n: i32) {
    this.symbol = new StaticArray<u16>(n);
  }

  /** Builds the code from `n` code lengths at `lengths` (u8 each); false when over-subscribed. */
  build(lengths: usize, n: i32): bool {
    const count = this.count;
    for (let i = 0; i <= MAX_BITS; i++) count[i] = 0;
    for (let i = 0; i < n; i++) count[<i32>load<u8>(lengths + <usize>i)]++;
    if (<i32>count[0] == n) return true; // no codes: an empty distance code is allowed
    let left = 1;
    for (let len = 1; len <= MAX_BITS; len++) {
      left <<= 1;
      left -= <i32>count[len];
      if (left < 0) return false;
    }
    const offs = new StaticArray<u16>(MAX_BITS + 1);
    for (let len = 1; len < MAX_BITS; len++) offs[len + 1] = offs[len] + count[len];
    for (let i = 0; i < n; i++) {
      const l = <i32>load<u8>(lengths + <usize>i);
      if (l != 0) this.symbol[offs[l]++] = <u16>i;
    }
    return true;
  }
}

export class Inflater {
  private src: usize = 0;
  private end: usize = 0;
  private bitBuf: u32 = 0;
  private bitCnt: i32 = 0;
  private bad: bool = false;
  private out: usize = 0;
  private outLen: i32 = 0;
  private outCap: i32 = 0;
  private readonly lit: Huffman = new Huffman(288);
  private readonly dist: Huffman = new Huffman(30);
  private readonly fixedLit: Huffman = new Huffman(288);
  private readonly fixedDist: Huffman = new Huffman(30);
  private readonly lengths: usize = heap.alloc(320);
  private fixedBuilt: bool = false;

  /**
   * Inflates the zlib stream of `n` bytes at `src` into `cap` bytes at `out`. Returns the number
   * of bytes written, or -1 when the stream is malformed, truncated or inflates past `cap`.
   * The Adler-32 trailer is not checked (the bytes were checksummed by TCP already).
   */
  inflate(src: usize, n: i32, out: usize, cap: i32): i32 {
    if (n < 2 || !isZlib(src)) return -1;
    this.src = src + 2;
    this.end = src + <usize>n;
    this.bitBuf = 0;
    this.bitCnt = 0;
    this.bad = false;
    this.out = out;
    this.outLen = 0;
    this.outCap = cap;
    let last: u32 = 0;
    do {
      last = this.bits(1);
      const type = this.bits(2);
      let ok = false;
      if (type == 0) ok = this.stored();
      else if (type == 1) ok = this.fixed();
      else if (type == 2) ok = this.dynamic();
      if (!ok || this.bad) return -1;
    } while (last == 0);
    return this.outLen;
  }

  private bits(need: i32): u32 {
    let val = this.bitBuf;
    while (this.bitCnt < need) {
      if (this.src >= this.end) {
        this.bad = true;
        return 0;
      }
      val |= <u32>load<u8>(this.src) << <u32>this.bitCnt;
      this.src++;
      this.bitCnt += 8;
    }
    this.bitBuf = val >> <u32>need;
    this.bitCnt -= need;
    return val & ((1 << <u32>need) - 1);
  }

  private stored(): bool {
    // the rest of the current byte is padding
    this.bitBuf = 0;
    this.bitCnt = 0;
    if (this.src + 4 > this.end) return false;
    const len = <i32>load<u16>(this.src);
    const nlen = <i32>load<u16>(this.src, 2);
    this.src += 4;
    if (len != (~nlen & 0xffff)) return false;
    if (this.src + <usize>len > this.end || this.outLen + len > this.outCap) return false;
    memory.copy(this.out + <usize>this.outLen, this.src, <usize>len);
    this.src += <usize>len;
    this.outLen += len;
    return true;
  }

  private decode(h: Huffman): i32 {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len++) {
      code |= <i32>this.bits(1);
      const count = <i32>h.count[len];
      if (code - count < first) return <i32>h.symbol[index + (code - first)];
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    return -1; // ran out of codes
  }

  private codes(lit: Huffman, dist: Huffman): bool {
    for (;;) {
      const sym = this.decode(lit);
      if (sym < 0 || this.bad) return false;
      if (sym < 256) {
        if (this.outLen >= this.outCap) return false;
        store<u8>(this.out + <usize>this.outLen, <u8>sym);
        this.outLen++;
        continue;
      }
      if (sym == 256) return true;
      const li = sym - 257;
      if (li >= 29) return false;
      const len = <i32>load<u16>(LEN_BASE + (<usize>li << 1)) + <i32>this.bits(<i32>load<u8>(LEN_EXTRA + <usize>li));
      const ds = this.decode(dist);
      if (ds < 0 || ds >= 30) return false;
      const d = <i32>load<u16>(DIST_BASE + (<usize>ds << 1)) + <i32>this.bits(<i32>load<u8>(DIST_EXTRA + <usize>ds));
      if (this.bad || d > this.outLen || this.outLen + len > this.outCap) return false;
      // byte by byte: the source may overlap what is being written (runs)
      const o = this.out + <usize>this.outLen;
      for (let i = 0; i < len; i++) store<u8>(o + <usize>i, load<u8>(o + <usize>i - <usize>d));
      this.outLen += len;
    }
    return false; // not reached: the loop ends at the end-of-block code or on an error
  }

  private fixed(): bool {
    if (!this.fixedBuilt) {
      const l = this.lengths;
      for (let i = 0; i < 144; i++) store<u8>(l + <usize>i, 8);
      for (let i = 144; i < 256; i++) store<u8>(l + <usize>i, 9);
      for (let i = 256; i < 280; i++) store<u8>(l + <usize>i, 7);
      for (let i = 280; i < 288; i++) store<u8>(l + <usize>i, 8);
      this.fixedLit.build(l, 288);
      for (let i = 0; i < 30; i++) store<u8>(l + <usize>i, 5);
      this.fixedDist.build(l, 30);
      this.fixedBuilt = true;
    }
    return this.codes(this.fixedLit, this.fixedDist);
  }

  private dynamic(): bool {
    const nlen = <i32>this.bits(5) + 257;
    const ndist = <i32>this.bits(5) + 1;
    const ncode = <i32>this.bits(4) + 4;
    if (this.bad || nlen > 286 || ndist > 30) return false;
    const l = this.lengths;
    for (let i = 0; i < 19; i++) store<u8>(l + <usize>load<u8>(CLEN_ORDER + <usize>i), i < ncode ? <u8>this.bits(3) : 0);
    // the code length code reuses the literal table's storage
    const lencode = this.lit;
    if (!lencode.build(l, 19)) return false;
    let index = 0;
    while (index < nlen + ndist) {
      const sym = this.decode(lencode);
      if (sym < 0 || this.bad) return false;
      if (sym < 16) {
        store<u8>(l + <usize>index, <u8>sym);
        index++;
        continue;
      }
      let len: u8 = 0;
      let rep = 0;
      if (sym == 16) {
        if (index == 0) return false;
        len = load<u8>(l + <usize>(index - 1));
        rep = 3 + <i32>this.bits(2);
      } else if (sym == 17) {
        rep = 3 + <i32>this.bits(3);
      } else {
        rep = 11 + <i32>this.bits(7);
      }
      if (this.bad || index + rep > nlen + ndist) return false;
      for (let i = 0; i < rep; i++) store<u8>(l + <usize>(index + i), len);
      index += rep;
    }
    if (load<u8>(l + 256) == 0) return false; // no end-of-block code
    if (!this.lit.build(l, nlen)) return false;
    if (!this.dist.build(l + <usize>nlen, ndist)) return false;
    return this.codes(this.lit, this.dist);
  }
}
