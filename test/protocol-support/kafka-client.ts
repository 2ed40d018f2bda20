// A minimal Kafka client written from the message schemas, for tests that need requests no
// client library sends (flexible versions, topic ids, a Fetch naming what the test chooses).
import net from "node:net";
import assert from "node:assert/strict";
import { WireReader, WireWriter } from "@wirescope/cli/demo/kafka-broker/wire";

/** One client connection: requests answered in order, header v2 for flexible versions. */
export class Client {
  private buf = Buffer.alloc(0);
  private waiters: { ok: (b: Buffer) => void; fail: (e: Error) => void; what: string }[] = [];
  private corr = 0;
  private constructor(private readonly s: net.Socket) {
    s.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const n = this.buf.readInt32BE(0);
        const msg = this.buf.subarray(4, 4 + n);
        this.buf = this.buf.subarray(4 + n);
        this.waiters.shift()?.ok(msg);
      }
    });
    // the broker closes the connection on a request it cannot parse
    s.on("close", () => {
      for (const w of this.waiters.splice(0)) w.fail(new Error(`connection closed before the answer to ${w.what}`));
    });
  }
  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new Client(s)));
      s.once("error", reject);
    });
  }
  /** Sends a request; resolves with a reader past the response header. */
  call(key: number, version: number, flex: boolean, body: (w: WireWriter) => void): Promise<WireReader> {
    const corr = ++this.corr;
    const h = new WireWriter().int16(key).int16(version).int32(corr).nullableString("flex-client");
    if (flex) h.uvarint(0); // request header v2: no tagged fields
    const b = new WireWriter(flex);
    body(b);
    const msg = Buffer.concat([h.toBuffer(), b.toBuffer()]);
    const size = Buffer.alloc(4);
    size.writeInt32BE(msg.length);
    return new Promise((resolve, reject) => {
      this.waiters.push({ what: `api ${key} v${version}`, fail: reject, ok: (m) => {
        const r = new WireReader(m);
        assert.equal(r.int32(), corr);
        if (flex && key !== 18) r.uvarint(); // response header v1 (ApiVersions: always v0)
        r.flex = flex;
        resolve(r);
      } });
      this.s.write(Buffer.concat([size, msg]));
    });
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.s.end(resolve));
  }
}

/** CRC-32C (Castagnoli), over a record batch from its attributes on. */
export function crc32c(b: Buffer): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

export const zigzag = (n: number) => new WireWriter().uvarint((n << 1) ^ (n >> 31)).toBuffer();

/** A record batch (magic 2) of one record with a value. */
export function recordBatch(value: string): Buffer {
  const v = Buffer.from(value);
  const rec = Buffer.concat([Buffer.from([0]), zigzag(0), zigzag(0), zigzag(-1), zigzag(v.length), v, zigzag(0)]);
  const records = Buffer.concat([zigzag(rec.length), rec]);
  const tail = new WireWriter().int16(0).int32(0).int64(1700000000000n).int64(1700000000000n).int64(-1n).int16(-1).int32(-1).int32(1).raw(records).toBuffer();
  const head = new WireWriter().int64(0n).int32(4 + 1 + 4 + tail.length).int32(-1).int8(2).int32(crc32c(tail) | 0).toBuffer();
  return Buffer.concat([head, tail]);
}
