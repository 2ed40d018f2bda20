// Packet framing over one direction's ByteQueue.
//
//   packet   payload_length:u24le sequence_id:u8 payload
//
// A payload of exactly 0xffffff bytes continues in the next packet (a "multi-packet" of 16 MiB
// or more); the logical payload is the concatenation. Only the first PAYLOAD_PREFIX bytes of a
// packet are buffered for decoding (enough for every header we read and for a long query text);
// the rest, and every continuation packet, is skipped as it streams by without being buffered.
import { ByteQueue } from "../common/index";
import { MAX_PACKET, PAYLOAD_PREFIX } from "./types";

export class Packet {
  /** payload bytes available at ptr (a prefix of the payload when it is longer) */
  ptr: usize = 0;
  avail: i32 = 0;
  /** full payload length of this packet */
  len: i32 = 0;
  seq: i32 = 0;
  /** ts of the chunk that carried the header, and of the chunk with the last byte we hold */
  startNs: i64 = 0;
  endNs: i64 = 0;
  /** the logical payload continues in the next packet(s) */
  more: bool = false;
  /** a continuation of the previous packet's payload: header only (avail = 0), not a message */
  cont: bool = false;
}

export class Framer {
  /** The next packet continues a logical payload whose head was already handled. */
  continuation: bool = false;
  readonly pkt: Packet = new Packet();
  /**
   * Stream offset just past the packet whose header is at the head of the queue and whose
   * payload prefix is still arriving (-1: none). A gap that ends before it lost part of that
   * packet only: skipping to it keeps the framing.
   */
  partialEnd: i64 = -1;

  /**
   * The next whole packet (or its buffered prefix) at the head of q, or null when more bytes are
   * needed. A continuation packet comes back with `cont` set and only its header read (its
   * sequence id and length still count). Call done() after handling a returned packet.
   */
  next(q: ByteQueue): Packet | null {
    if (q.avail() < 4) return null;
    const len = <i32>q.u24le(0);
    const cont = this.continuation;
    const take = cont ? 0 : len < PAYLOAD_PREFIX ? len : PAYLOAD_PREFIX;
    if (q.avail() < 4 + take) {
      this.partialEnd = q.consumed + 4 + <i64>len;
      return null;
    }
    this.partialEnd = -1;
    const k = this.pkt;
    k.ptr = q.ptr() + 4;
    k.avail = take;
    k.len = len;
    k.seq = <i32>q.u8(3);
    k.startNs = q.headTs();
    k.endNs = q.tsAt(3 + take);
    k.more = len == MAX_PACKET;
    k.cont = cont;
    return k;
  }

  /** Consumes the packet returned by next() (its unbuffered tail is skipped as it arrives). */
  done(q: ByteQueue): void {
    const k = this.pkt;
    this.continuation = k.more;
    q.skip(4 + <i64>k.len);
  }

  reset(): void {
    this.continuation = false;
    this.partialEnd = -1;
  }
}
