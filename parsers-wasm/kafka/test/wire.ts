// Kafka wire builders for vectors (gen-vectors.mjs) and benchmark traffic (traffic.ts), written
// from https://kafka.apache.org/protocol.html and the message schemas of apache/kafka.

/** A writer for both encodings: `flex` switches strings, arrays and bytes to their compact forms. */
export class W {
  private parts: Buffer[] = [];
  constructor(readonly flex = false) {}
  raw(b: Buffer | number[]): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  i8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.raw(b);
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.raw(b);
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.raw(b);
  }
  i64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    return this.raw(b);
  }
  uvar(v: number): this {
    const o: number[] = [];
    do {
      let x = v & 0x7f;
      v >>>= 7;
      if (v) x |= 0x80;
      o.push(x);
    } while (v);
    return this.raw(o);
  }
  str(s: string | null): this {
    if (s === null) return this.flex ? this.uvar(0) : this.i16(-1);
    const b = Buffer.from(s, "utf8");
    if (this.flex) this.uvar(b.length + 1);
    else this.i16(b.length);
    return this.raw(b);
  }
  bytes(b: Buffer | null): this {
    if (b === null) return this.flex ? this.uvar(0) : this.i32(-1);
    if (this.flex) this.uvar(b.length + 1);
    else this.i32(b.length);
    return this.raw(b);
  }
  arr<T>(items: T[] | null, each: (w: this, item: T) => void): this {
    if (items === null) return this.flex ? this.uvar(0) : this.i32(-1);
    if (this.flex) this.uvar(items.length + 1);
    else this.i32(items.length);
    for (const it of items) each(this, it);
    return this;
  }
  /** A tagged-field section with `n` two-byte fields (flexible only). */
  tags(n = 0): this {
    if (this.flex) {
      this.uvar(n);
      for (let i = 0; i < n; i++) this.uvar(i).uvar(2).raw([0xab, 0xcd]);
    }
    return this;
  }
  uuid(hex: string): this {
    return this.raw(Buffer.from(hex, "hex"));
  }
  buf(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export const frame = (body: Buffer): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(body.length);
  return Buffer.concat([b, body]);
};

/**
 * Request: header v1 (api key, version, correlation id, client id) or, when `flex`, v2 (plus one
 * tagged field, to be skipped; the client id stays a classic nullable string). No client id
 * (clientId undefined) is header v0.
 */
export function request(key: number, version: number, corr: number, clientId: string | undefined, flex: boolean, body: Buffer): Buffer {
  const h = new W(false).i16(key).i16(version).i32(corr);
  if (clientId !== undefined) h.str(clientId);
  if (flex) h.uvar(1).uvar(0).uvar(1).raw([0x01]);
  return frame(Buffer.concat([h.buf(), body]));
}

/** Response: header v0 (correlation id) or v1 (plus tagged fields). */
export function response(corr: number, headerTags: boolean, body: Buffer): Buffer {
  const h = new W(false).i32(corr);
  if (headerTags) h.uvar(0);
  return frame(Buffer.concat([h.buf(), body]));
}

/**
 * A record batch (magic 2) holding `count` records: header fields as the protocol guide lays
 * them out, then `payload` opaque bytes standing for the records (compressed as a whole when
 * `codec` is not 0; decoders count from the header and never look inside).
 */
export function recordBatch(count: number, codec = 0, opts: { control?: boolean; payload?: number; baseOffset?: number } = {}): Buffer {
  // control batches are transactional (bit 4) and control (bit 5)
  const attributes = (codec & 7) | (opts.control ? 0x30 : 0);
  const body = new W(false)
    .i32(0) // partition_leader_epoch
    .i8(2) // magic
    .i32(0) // crc (not checked by decoders that only count)
    .i16(attributes)
    .i32(count - 1) // last_offset_delta
    .i64(1_700_000_000_000).i64(1_700_000_000_000) // base/max timestamp
    .i64(-1).i16(-1).i32(-1) // producer id, epoch, base sequence
    .i32(count)
    .raw(Buffer.alloc(opts.payload ?? 8 * count, 0x5a))
    .buf();
  return Buffer.concat([new W(false).i64(opts.baseOffset ?? 0).i32(body.length).buf(), body]);
}

/** A legacy message set entry (magic 1): offset, size, crc, magic, attributes (codec), timestamp, key, value. */
export function legacyMessage(codec: number, value: Buffer, offset = 0): Buffer {
  const msg = new W(false).i32(0).i8(1).i8(codec & 7).i64(1_700_000_000_000).bytes(null).bytes(value).buf();
  return Buffer.concat([new W(false).i64(offset).i32(msg.length).buf(), msg]);
}
