// Bounds-checked little-endian reader over one packet payload (or the buffered prefix of it).
// Reading past the end sets `ok = false` and yields zeros / empty strings: never a trap.

export class Payload {
  pos: usize;
  end: usize;
  ok: bool = true;

  constructor(ptr: usize, len: i32) {
    this.pos = ptr;
    this.end = ptr + <usize>len;
  }

  /** Points this reader at another payload (one reader per connection, no allocation per packet). */
  reset(ptr: usize, len: i32): Payload {
    this.pos = ptr;
    this.end = ptr + <usize>len;
    this.ok = true;
    return this;
  }

  @inline left(): i32 {
    return this.ok ? <i32>(this.end - this.pos) : 0;
  }

  @inline has(n: i32): bool {
    if (this.ok && n >= 0 && this.pos + <usize>n <= this.end) return true;
    this.ok = false;
    return false;
  }

  u8(): u32 {
    if (!this.has(1)) return 0;
    const v = <u32>load<u8>(this.pos);
    this.pos += 1;
    return v;
  }

  u16(): u32 {
    if (!this.has(2)) return 0;
    const v = <u32>load<u16>(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): u32 {
    if (!this.has(4)) return 0;
    const v = load<u32>(this.pos);
    this.pos += 4;
    return v;
  }

  skip(n: i32): void {
    if (n <= 0) return;
    if (this.has(n)) this.pos += <usize>n;
  }

  /** Length-encoded integer; 0xfb (NULL) reads as 0. */
  lenenc(): i64 {
    const b = this.u8();
    if (b < 0xfb) return <i64>b;
    if (b == 0xfc) return <i64>this.u16();
    if (b == 0xfd) {
      if (!this.has(3)) return 0;
      const v = <i64>load<u8>(this.pos) | (<i64>load<u8>(this.pos, 1) << 8) | (<i64>load<u8>(this.pos, 2) << 16);
      this.pos += 3;
      return v;
    }
    if (b == 0xfe) {
      if (!this.has(8)) return 0;
      const v = load<i64>(this.pos);
      this.pos += 8;
      return v;
    }
    return 0;
  }

  /** A NUL-terminated string (or up to the end when the NUL is missing). */
  cstr(): string {
    if (!this.ok) return "";
    let p = this.pos;
    while (p < this.end && load<u8>(p) != 0) p++;
    const s = String.UTF8.decodeUnsafe(this.pos, p - this.pos);
    this.pos = p < this.end ? p + 1 : p;
    return s;
  }

  /** `n` bytes as a string (clamped to what is there). */
  fixed(n: i32): string {
    const l = this.left();
    if (n > l) n = l;
    if (n <= 0) return "";
    const s = String.UTF8.decodeUnsafe(this.pos, <usize>n);
    this.pos += <usize>n;
    return s;
  }

  /** The rest of the payload as a string, at most `max` bytes. */
  rest(max: i32): string {
    let n = this.left();
    if (n > max) n = max;
    return this.fixed(n);
  }

  skipLenencStr(): void {
    const n = this.lenenc();
    if (n > 0 && n <= <i64>0x7fffffff) this.skip(<i32>n);
  }
}
