// Kafka primitive types for the test broker: big-endian reader and writer over Buffers, in the
// classic encodings (int16/int32 lengths) and, with `flex` set, the flexible ones of KIP-482:
// compact strings, bytes and arrays (unsigned varint N+1, 0 = null) and tagged-field sections.
// The request header's client id stays a classic string in every version: read it before
// setting `flex`.

/** Thrown for a request the broker cannot parse; the connection is closed. */
export class WireError extends Error {}

export class WireReader {
  private pos = 0;
  /** Compact strings/bytes/arrays (flexible versions). */
  flex = false;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new WireError(`request truncated at byte ${this.pos} (need ${n} more of ${this.buf.length})`);
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  /** Unsigned LEB128 varint (at most 5 bytes). */
  uvarint(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      this.need(1);
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return v;
    }
    throw new WireError("varint longer than 5 bytes");
  }
  /** Length of a string, bytes or array: -1 for null. */
  private len(wide: boolean): number {
    if (this.flex) return this.uvarint() - 1;
    return wide ? this.int32() : this.int16();
  }
  /** A tagged-field section (flexible versions): skipped, nothing here is tagged-only. */
  tags(): void {
    if (!this.flex) return;
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint(); // tag
      const size = this.uvarint();
      this.need(size);
      this.pos += size;
    }
  }
  uuid(): Buffer {
    this.need(16);
    const b = this.buf.subarray(this.pos, this.pos + 16);
    this.pos += 16;
    return b;
  }
  nullableString(): string | null {
    const n = this.len(false);
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  string(): string {
    return this.nullableString() ?? "";
  }
  nullableBytes(): Buffer | null {
    const n = this.len(true);
    if (n < 0) return null;
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** An array of `item`; null arrays come back as null. */
  array<T>(item: (r: WireReader) => T): T[] | null {
    const n = this.len(true);
    if (n < 0) return null;
    if (n > this.remaining) throw new WireError(`array of ${n} elements in ${this.remaining} bytes`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }
}

export class WireWriter {
  private chunks: Buffer[] = [];
  private size = 0;
  /** `flex`: compact strings/bytes/arrays (flexible versions). */
  constructor(readonly flex = false) {}

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }
  int8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.push(b);
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.push(b);
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  int64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return this.push(b);
  }
  uvarint(v: number): this {
    const o: number[] = [];
    do {
      let x = v & 0x7f;
      v >>>= 7;
      if (v) x |= 0x80;
      o.push(x);
    } while (v);
    return this.push(Buffer.from(o));
  }
  /** Length of a string, bytes or array; -1 for null. */
  private len(n: number, wide: boolean): this {
    if (this.flex) return this.uvarint(n + 1);
    return wide ? this.int32(n) : this.int16(n);
  }
  /** An empty tagged-field section (flexible versions only). */
  tags(): this {
    return this.flex ? this.uvarint(0) : this;
  }
  uuid(id: Buffer): this {
    return this.push(id);
  }
  nullableString(s: string | null): this {
    if (s === null) return this.len(-1, false);
    const b = Buffer.from(s, "utf8");
    this.len(b.length, false);
    return this.push(b);
  }
  string(s: string): this {
    return this.nullableString(s);
  }
  nullableBytes(b: Buffer | null): this {
    if (b === null) return this.len(-1, true);
    this.len(b.length, true);
    return this.push(b);
  }
  array<T>(items: readonly T[] | null, each: (w: WireWriter, item: T) => void): this {
    if (items === null) return this.len(-1, true);
    this.len(items.length, true);
    for (const it of items) each(this, it);
    return this;
  }
  raw(b: Buffer): this {
    return this.push(b);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}
