// The compressed protocol (CLIENT_COMPRESS: zlib; CLIENT_ZSTD_COMPRESSION_ALGORITHM: zstd), both
// directions, from the first packet after the login's OK.
// Spec: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_compression.html
//
//   compressed packet   comp_len:u24le comp_seq:u8 uncomp_len:u24le payload (comp_len bytes)
//                       uncomp_len = 0: the payload is sent as is (what is too small to gain, < 50
//                       bytes by default); otherwise it is one zlib stream (zstd: one zstd frame)
//                       that inflates to uncomp_len bytes
//
// The payloads, inflated, concatenate into the ordinary packet stream: a MySQL packet may span
// compressed packets and one compressed packet may hold several. That stream goes through the
// connection's usual framing (MysqlConnection.framed) from a queue of its own per direction.
// Uncompressed payloads stream through without being buffered whole; a compressed one is
// inflated once all of it has arrived. A zstd frame is not decoded (nor a zlib stream that is
// corrupt or inflates beyond MAX_INFLATED): its bytes are a gap in the inner stream, counted
// (mysql.compressed_lost), and decoding resynchronises at the next command like after any gap.
// Which payload is which is read from its magic bytes, so zlib and zstd both work whatever the
// login said.
import { ByteQueue } from "../common/index";
import { Inflater, isZlib } from "./inflate";
import { detect, RESYNC_SCORE } from "./sniff";
import { MysqlConnection } from "./pair";
import { QUEUE_LIMIT } from "./types";

/** Largest inflated payload decoded (the protocol allows 16 MiB); a larger one is lost. */
const MAX_INFLATED: i32 = 4 << 20;
const ZSTD_MAGIC: u32 = 0xfd2fb528; // 28 b5 2f fd


export class Compressed {
  /** the inflated packet streams, client → server and server → client */
  readonly iq0: ByteQueue = new ByteQueue();
  readonly iq1: ByteQueue = new ByteQueue();
  /** bytes of an uncompressed payload still to pass through, per direction */
  private raw0: i32 = 0;
  private raw1: i32 = 0;
  /** the compressed framing was lost (a gap), per direction */
  private lost0: bool = false;
  private lost1: bool = false;
  private inflater: Inflater | null = null;
  /** compressed packets whose payload could not be decoded (zstd, corrupt, too large) */
  lost: i64 = 0;

  constructor(
    private readonly conn: MysqlConnection,
    /** what the login negotiated: "zlib" or "zstd"; "" for a connection picked up after its login, until a payload says */
    public algo: string,
  ) {
    this.iq0.limit = QUEUE_LIMIT;
    this.iq1.limit = QUEUE_LIMIT;
  }

  /** Compressed packets queued in q (one direction of the connection). */
  data(dir: i32, q: ByteQueue, ts: i64): void {
    if (dir == 0 ? this.lost0 : this.lost1) {
      // Commands start writes: after lost bytes, look for a compressed packet holding one at the
      // head of a chunk. The server's framing restarts when the client sends a command with
      // nothing waiting (serverRestart).
      if (dir == 1 || !this.plausibleHead(q)) {
        this.conn.bytesDropped += <i64>q.avail();
        q.clear(0);
        return;
      }
      this.lost0 = false;
    }
    const iq = dir == 0 ? this.iq0 : this.iq1;
    for (;;) {
      if (this.conn.stopped()) {
        q.clear(0);
        return;
      }
      const raw = dir == 0 ? this.raw0 : this.raw1;
      if (raw > 0) {
        const n = min(raw, q.avail());
        if (n <= 0) return;
        const ts0 = q.headTs();
        this.setRaw(dir, raw - n);
        this.feed(dir, iq, q.ptr(), n, ts0);
        q.consume(n);
        continue;
      }
      if (q.avail() < 7) return;
      const clen = <i32>q.u24le(0);
      const ulen = <i32>q.u24le(4);
      if (ulen == 0) {
        q.consume(7);
        this.setRaw(dir, clen);
        continue;
      }
      if (clen + 7 > QUEUE_LIMIT || ulen > MAX_INFLATED) {
        // too large to buffer or to inflate: skipped as it streams by
        q.skip(7 + <i64>clen);
        this.lose(dir, ulen, ts);
        continue;
      }
      if (q.avail() < 7 + clen) return;
      const p = q.ptr() + 7;
      const ts0 = q.tsAt(6 + clen);
      let n = -1;
      let out: usize = 0;
      if (this.algo.length == 0 && clen >= 4) this.algo = isZlib(p) ? "zlib" : load<u32>(p) == ZSTD_MAGIC ? "zstd" : "";
      if (clen >= 2 && isZlib(p)) {
        let inf = this.inflater;
        if (inf === null) this.inflater = inf = new Inflater();
        out = heap.alloc(<usize>ulen);
        n = inf.inflate(p, clen, out, ulen);
      }
      if (n == ulen) this.feed(dir, iq, out, n, ts0);
      else this.lose(dir, ulen, ts0); // zstd (magic 28 b5 2f fd), or not a stream we can inflate
      if (out != 0) heap.free(out);
      q.consume(7 + clen);
    }
  }

  /** The connection lost bytes of one direction (before decompression). */
  gap(dir: i32, ts: i64): void {
    this.setRaw(dir, 0);
    const iq = dir == 0 ? this.iq0 : this.iq1;
    iq.clear(0);
    const framed = this.conn.gapIn(dir, 0, ts, iq);
    if (dir == 0) this.lost0 = true;
    else this.lost1 = !framed;
  }

  /**
   * Picked up after the login (compressedCommand found a compressed command at the head of the
   * client's bytes): the client's framing starts here, the server's at its next response when
   * bytes of it were lost (or were read as plain packets).
   */
  pickUp(serverLost: bool): void {
    this.lost0 = false;
    this.lost1 = serverLost;
  }

  /** The client sent a command with nothing waiting: the server's next bytes start a response. */
  serverRestart(): void {
    if (!this.lost1) return;
    this.lost1 = false;
    this.raw1 = 0;
  }

  private setRaw(dir: i32, n: i32): void {
    if (dir == 0) this.raw0 = n;
    else this.raw1 = n;
  }

  /** Inflated bytes of one direction go through the packet framing. */
  private feed(dir: i32, iq: ByteQueue, p: usize, n: i32, ts: i64): void {
    while (n > 0) {
      const k = iq.take(p, n, ts);
      if (k <= 0) {
        // the framing holds more than the queue limit unconsumed (it never asks for that much)
        iq.settle();
        this.lose(dir, n, ts);
        return;
      }
      p += <usize>k;
      n -= k;
      this.conn.framed(dir, iq);
    }
    // keep what the framing left (it points into the input or the inflate buffer)
    iq.settle();
  }

  /** `len` inflated bytes of one direction could not be decoded. */
  private lose(dir: i32, len: i32, ts: i64): void {
    this.lost++;
    const iq = dir == 0 ? this.iq0 : this.iq1;
    if (iq.absorbGap(<i64>len)) return; // inside a packet being skipped anyway
    iq.clear(<i64>len);
    this.conn.gapIn(dir, len, ts, iq);
  }

  /** A compressed packet at the head of q whose payload starts with a plausible command. */
  private plausibleHead(q: ByteQueue): bool {
    const a = q.avail();
    if (a < 7 + 5 || q.u8(3) != 0) return false;
    const clen = <i32>q.u24le(0);
    const ulen = <i32>q.u24le(4);
    const p = q.ptr() + 7;
    if (ulen == 0) return detect(0, p, min(clen, a - 7)) >= RESYNC_SCORE;
    return isZlib(p) || load<u32>(p) == ZSTD_MAGIC;
  }
}
