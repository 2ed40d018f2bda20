// Bounds-checked big-endian reader over one buffered Kafka message.
//
// Never traps: reading past the end sets `ok = false` and returns zeros, so a decoder walks a
// cut or malformed body to its end and keeps what it read before the damage. Callers check `ok`
// inside loops so a bogus array length cannot spin.

const HEX = "0123456789abcdef";

export class Reader {
  pos: usize;
  end: usize;
  ok: bool = true;

  constructor(ptr: usize, len: i32) {
    this.pos = ptr;
    this.end = ptr + <usize>len;
  }

  /** Points this reader at another message (one reader per connection, no allocation per message). */
  reset(ptr: usize, len: i32): Reader {
    this.pos = ptr;
    this.end = ptr + <usize>len;
    this.ok = true;
    return this;
  }

  @inline has(n: i32): bool {
    if (this.ok && n >= 0 && this.pos + <usize>n <= this.end) return true;
    this.ok = false;
    return false;
  }

  remaining(): i32 {
    return this.ok ? <i32>(this.end - this.pos) : 0;
  }

  i8(): i32 {
    if (!this.has(1)) return 0;
    const v = <i32>load<i8>(this.pos);
    this.pos += 1;
    return v;
  }

  i16(): i32 {
    if (!this.has(2)) return 0;
    const v = <i32>(<i16>bswap<u16>(load<u16>(this.pos)));
    this.pos += 2;
    return v;
  }

  i32(): i32 {
    if (!this.has(4)) return 0;
    const v = <i32>bswap<u32>(load<u32>(this.pos));
    this.pos += 4;
    return v;
  }

  i64(): i64 {
    if (!this.has(8)) return 0;
    const v = <i64>bswap<u64>(load<u64>(this.pos));
    this.pos += 8;
    return v;
  }

  skip(n: i32): void {
    if (n <= 0) return;
    if (this.has(n)) this.pos += <usize>n;
  }

  /** Unsigned LEB128 varint, at most 5 bytes (u32). */
  uvarint(): u32 {
    let v: u32 = 0;
    for (let shift: u32 = 0; shift < 35; shift += 7) {
      if (!this.has(1)) return 0;
      const b = <u32>load<u8>(this.pos);
      this.pos += 1;
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    this.ok = false;
    return 0;
  }

  /**
   * Length of a string/bytes/array field: int16/int32 when not flexible, uvarint(N+1) when
   * flexible. Returns -1 for null.
   */
  private len(flexible: bool, wide: bool): i32 {
    if (flexible) {
      const n = this.uvarint();
      return <i32>n - 1;
    }
    return wide ? this.i32() : this.i16();
  }

  /** STRING / NULLABLE_STRING / COMPACT_(NULLABLE_)STRING; null and "" both come back as "". */
  str(flexible: bool): string {
    const n = this.len(flexible, false);
    if (n <= 0 || !this.has(n)) return "";
    const s = String.UTF8.decodeUnsafe(this.pos, <usize>n);
    this.pos += <usize>n;
    return s;
  }

  /** Like str, but tells null apart: returns null for a null string. */
  nullableStr(flexible: bool): string | null {
    const n = this.len(flexible, false);
    if (n < 0) return null;
    if (n == 0 || !this.has(n)) return "";
    const s = String.UTF8.decodeUnsafe(this.pos, <usize>n);
    this.pos += <usize>n;
    return s;
  }

  skipStr(flexible: bool): void {
    const n = this.len(flexible, false);
    if (n > 0) this.skip(n);
  }

  /** BYTES / RECORDS and their compact forms. */
  skipBytes(flexible: bool): void {
    const n = this.len(flexible, true);
    if (n > 0) this.skip(n);
  }

  /** Length of a BYTES / RECORDS field (-1 for null); the bytes follow at `pos`. */
  bytesLen(flexible: bool): i32 {
    return this.len(flexible, true);
  }

  /**
   * Array element count (-1 for null). A count that could not possibly fit in the remaining
   * bytes (each element takes at least one byte) marks the reader broken.
   */
  arrayLen(flexible: bool): i32 {
    const n = this.len(flexible, true);
    if (n > this.remaining()) {
      this.ok = false;
      return 0;
    }
    return n;
  }

  /** Skips a tagged-field section (flexible versions only). */
  tags(flexible: bool): void {
    if (!flexible) return;
    const n = <i32>this.uvarint();
    for (let i = 0; i < n && this.ok; i++) {
      this.uvarint(); // tag
      const size = <i32>this.uvarint();
      this.skip(size);
    }
  }

  /** A 16-byte UUID as 32 lowercase hex digits. */
  uuid(): string {
    if (!this.has(16)) return "";
    let s = "";
    for (let i = 0; i < 16; i++) {
      const b = <i32>load<u8>(this.pos + <usize>i);
      s += HEX.charAt(b >> 4) + HEX.charAt(b & 15);
    }
    this.pos += 16;
    return s;
  }
}
