// Counting the records of Produce requests and Fetch responses from the batch headers alone, as
// the bytes stream by: the count and the codec are outside the compressed part of a batch, so
// every codec (gzip, snappy, lz4, zstd) is counted without decompressing anything, and a message
// of any size is counted in constant memory.
//
//   RecordBatch (magic 2), 61-byte header, then the records (compressed as a whole when the
//   codec is not none):
//     0 base_offset:int64  8 batch_length:int32 (bytes after this field)  12 partition_leader_epoch:int32
//    16 magic:int8  17 crc:uint32  21 attributes:int16  23 last_offset_delta:int32
//    27 base_timestamp:int64  35 max_timestamp:int64  43 producer_id:int64  51 producer_epoch:int16
//    53 base_sequence:int32  57 records_count:int32  61 records...
//   attributes: bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 4 transactional,
//   bit 5 control batch (a transaction marker, not an application message: not counted)
//
//   Legacy message set (magic 0/1): entries of offset:int64 message_size:int32 then the message
//     0 crc:uint32  4 magic:int8  5 attributes:int8 (bits 0-2 codec) ...
//   An uncompressed entry is one message. A compressed entry wraps a whole inner message set in
//   its value: how many messages it holds is only known after decompressing, so the field is
//   left uncounted.
//
// A batch that does not fit in what is left of its field is the partial batch a broker may end a
// Fetch response's field with (clients drop it): it is not counted, when its length and magic
// byte are plausible (else the field is garbage: uncounted). A Produce request holds whole
// batches: one that does not fit leaves the message uncounted. A magic byte we do not know or a
// negative count leaves the field uncounted; a message whose structure does not add up (a length
// past its end) leaves the message uncounted.
//
// Why a walker of its own: the api/ decoders read a buffered prefix of a message (the first
// MAX_BODY_PREFIX bytes) with random access, and RECORDS fields make up nearly all of a large
// Produce or Fetch. The walker follows the same message from its body's first byte to its last
// as the chunks arrive: it keeps no bytes but the few of one header or length that a chunk
// boundary cut (left queued), and skips every batch body (ByteQueue.skip drops bytes that have
// not arrived yet without copying them). It also reads the topic names, topic ids and error codes
// that do not lie whole inside the buffered prefix (what the api/ decoders could not see), so the
// topics and the first error code of a message of any size come out as for a small one; a message
// that fits the prefix costs it no reads. A name cut by a chunk boundary waits in the queue like a
// cut header. Its program is the message's layout for one version:
//
//   Produce request:   transactional_id(v3+) acks+timeout_ms
//                      [ name | topic_id(v13+), [ index RECORDS tags ] tags ] tags
//   Fetch response:    throttle_time_ms(v1+) error_code+session_id(v7+)
//                      [ name | topic_id(v13+), [ partition_index error_code high_watermark
//                        last_stable_offset(v4+) log_start_offset(v5+)
//                        aborted_transactions(v4+)[ producer_id first_offset tags ]
//                        preferred_read_replica(v11+) RECORDS tags ] tags ] tags
//   (tags: tagged fields, flexible versions only; strings, bytes and arrays are compact there)
import { ByteQueue } from "../../common/index";
import { KafkaTxn, MAX_BODY_PREFIX } from "../types";
import { Reader } from "../reader";

const BATCH_HEADER: i32 = 61;
/** offset + message_size + crc + magic + attributes */
const LEGACY_ENTRY_MIN: i32 = 18;
/** base_offset + batch_length + partition_leader_epoch + magic: enough to size and tell a batch */
const BATCH_PEEK: i32 = 17;

// Program operations (one i32 each, FIXED and ARRAY followed by one operand).
const OP_FIXED: i32 = 1; // [OP_FIXED, n]: n bytes of fixed-size fields
const OP_STR: i32 = 2; // a (nullable) string: int16 length, or compact (uvarint length + 1)
const OP_ARRAY: i32 = 3; // [OP_ARRAY, body length]: int32 count, or compact (uvarint count + 1); body follows
const OP_RECORDS: i32 = 4; // a RECORDS field: int32 length, or compact (uvarint length + 1)
const OP_TAGS: i32 = 5; // a tagged-field section (flexible versions)
// Fields read where the buffered prefix (what the api/ decoders saw) does not hold them whole:
const OP_NAME: i32 = 6; // a topic name (a string as OP_STR)
const OP_TOPIC_ID: i32 = 7; // a topic id (16 bytes)
const OP_ERROR: i32 = 8; // an error code (int16)

/** Longest topic name read (Kafka allows 249 characters); a longer string is skipped. */
const MAX_NAME: i64 = 1024;

const PROGRAM_CAP: i32 = 32;
const MAX_DEPTH: i32 = 3;

/** The walk of one message through a direction's queue (one per direction of a connection). */
export class RecordsWalk {
  /** Walking a message now. */
  active: bool = false;
  /** The transaction the counts go to (the last one walked, once the walk is over). */
  txn: KafkaTxn | null = null;
  /** Stream offset just past the message. */
  end: i64 = 0;
  private flex: bool = false;
  /** What the program walks: 0 Produce request, 1 Fetch response (-1: none yet); its version. */
  private kind: i32 = -1;
  private version: i32 = -1;
  private readonly prog: StaticArray<i32> = new StaticArray<i32>(PROGRAM_CAP);
  private len: i32 = 0;
  private pc: i32 = 0;
  // open arrays, innermost last: first op of the element, op after the array, elements left
  private readonly fromPc: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private readonly toPc: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private readonly left: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private depth: i32 = 0;
  /** Bytes left of the RECORDS field being walked (-1: not inside one). */
  private recLeft: i64 = -1;
  /** Tagged fields left of the section being walked. */
  private tagsLeft: i32 = 0;
  /**
   * Stream offset where the message's buffered prefix ends. The api/ decoders read topics and
   * error codes from that prefix; the walk reads those that do not lie whole inside it, so a
   * message of any size names all its topics and its first error code, and a message that fits
   * the prefix costs the walk no reads.
   */
  private prefixEnd: i64 = 0;
  private readonly rd: Reader = new Reader(0, 0);

  /**
   * Starts walking the message at the head of `q` (its size field first), `size` bytes after
   * that, of which the first `header` are the request or response header. Returns false (and
   * does nothing) for messages without RECORDS fields.
   */
  start(q: ByteQueue, t: KafkaTxn, response: bool, size: i32, header: i32): bool {
    const key = t.apiKey;
    const v = t.apiVersion;
    const kind = key == 0 && !response ? 0 : key == 1 && response ? 1 : -1;
    if (kind < 0) return false;
    if (kind != this.kind || v != this.version) {
      // a direction of a connection carries one version of one message nearly always: build once
      this.len = 0;
      if (kind == 0) this.produceRequest(v, v >= 9);
      else this.fetchResponse(v, v >= 12);
      this.kind = kind;
      this.version = v;
    }
    this.active = true;
    this.txn = t;
    t.walking = true;
    this.end = q.consumed + 4 + <i64>size;
    this.prefixEnd = q.consumed + 4 + <i64>(size < MAX_BODY_PREFIX ? size : MAX_BODY_PREFIX);
    this.pc = 0;
    this.depth = 0;
    this.recLeft = -1;
    this.tagsLeft = 0;
    q.skip(4 + <i64>header);
    return true;
  }

  /** Stops a walk that cannot finish (a gap, the connection's end): its count is not exact. */
  abort(): void {
    if (!this.active) return;
    this.active = false;
    const t = this.txn!;
    t.recordsUncounted = true;
    t.walking = false;
  }

  private op(x: i32): void {
    unchecked((this.prog[this.len++] = x));
  }

  private fixed(n: i32): void {
    if (n <= 0) return;
    this.op(OP_FIXED);
    this.op(n);
  }

  private tags(): void {
    if (this.flex) this.op(OP_TAGS);
  }

  /** Opens an array: returns what close() needs. */
  private open(): i32 {
    this.op(OP_ARRAY);
    this.op(0);
    return this.len;
  }

  private close(body: i32): void {
    unchecked((this.prog[body - 1] = this.len - body));
  }

  private produceRequest(v: i32, flex: bool): void {
    this.flex = flex;
    if (v >= 3) this.op(OP_STR); // transactional_id
    this.fixed(6); // acks, timeout_ms
    this.topics(v, false, 4, false, 0); // index
  }

  private fetchResponse(v: i32, flex: bool): void {
    this.flex = flex;
    this.fixed(v >= 1 ? 4 : 0); // throttle_time_ms
    if (v >= 7) {
      this.op(OP_ERROR);
      this.fixed(4); // session_id
    }
    // partition_index error_code high_watermark last_stable_offset(v4+) log_start_offset(v5+),
    // aborted_transactions(v4+), preferred_read_replica(v11+)
    this.topics(v, true, 8 + (v >= 4 ? 8 : 0) + (v >= 5 ? 8 : 0), v >= 4, v >= 11 ? 4 : 0);
  }

  /**
   * topics[ name | topic_id(v13+), partitions[ partition_index, error_code when `errors`, `head`
   * bytes, aborted_transactions when `aborted`, `tail` bytes, RECORDS, tags ] tags ] tags
   */
  private topics(v: i32, errors: bool, head: i32, aborted: bool, tail: i32): void {
    const topics = this.open();
    this.op(v >= 13 ? OP_TOPIC_ID : OP_NAME);
    const parts = this.open();
    if (errors) {
      this.fixed(4); // partition_index
      this.op(OP_ERROR);
    }
    this.fixed(head);
    if (aborted) {
      const a = this.open();
      this.fixed(16); // producer_id, first_offset
      this.tags();
      this.close(a);
    }
    this.fixed(tail);
    this.op(OP_RECORDS);
    this.tags();
    this.close(parts);
    this.tags();
    this.close(topics);
    this.tags();
  }

  /**
   * Walks what `q` holds of the message. Returns true when the message has been walked to its
   * last byte (the walk is over), false when more bytes are needed. What was walked is consumed
   * (past what is queued, skipped as it arrives: batch bodies are never copied); a header or a
   * length that the queue's end cuts stays queued for the next call.
   */
  run(q: ByteQueue): bool {
    if (q.skipping() > 0) return false; // the bytes skipped have not all arrived yet
    const t = this.txn!;
    const p = q.ptr();
    const n = <i64>q.avail();
    const base = q.consumed; // stream offset of p
    const rest = this.end - base; // bytes of the message not walked before this call
    let o: i64 = 0; // walked in this call; beyond n when the walk skips bytes still to come
    let done = false;
    while (o <= n) {
      const left = rest - o; // bytes of the message after o
      const have = n - o; // bytes queued after o
      const at = p + <usize>o;
      if (this.recLeft >= 0) {
        // inside a RECORDS field: one batch, or the field's end
        const rl = this.recLeft;
        let step: i64 = rl; // a partial batch, the field's end, or a field that cannot be counted: all of it
        if (rl >= BATCH_PEEK) {
          if (have < BATCH_PEEK) break;
          const size = <i64>(<i32>bswap<u32>(load<u32>(at + 8)));
          const whole = 12 + size;
          if (size >= 0 && whole <= rl) {
            const magic = <i32>load<i8>(at + 16);
            if (magic == 2 && whole >= BATCH_HEADER) {
              if (have < BATCH_HEADER) break;
              const attributes = <i32>bswap<u16>(load<u16>(at + 21));
              const count = <i32>bswap<u32>(load<u32>(at + 57));
              if (count >= 0) {
                t.codecs |= 1 << (attributes & 7);
                if ((attributes & 0x20) == 0) t.records += count;
                step = whole;
              } else t.recordsUncounted = true;
            } else if ((magic == 0 || magic == 1) && whole >= LEGACY_ENTRY_MIN) {
              if (have < LEGACY_ENTRY_MIN) break;
              const codec = <i32>load<u8>(at + 17) & 7;
              t.codecs |= 1 << codec;
              if (codec == 0) t.records++;
              else t.recordsUncounted = true;
              step = whole;
            } else t.recordsUncounted = true; // a magic byte we do not know, or a header too short
          } else if (this.kind == 0 || size < 0 || <u32>load<i8>(at + 16) > 2) t.recordsUncounted = true;
          // else the partial batch a broker may end a Fetch response's field with: clients drop it
        } else if (rl > 0 && this.kind == 0) t.recordsUncounted = true;
        o += step;
        this.recLeft = step == rl ? -1 : rl - step;
        continue;
      }
      if (this.tagsLeft > 0) {
        // tag:uvarint size:uvarint then size bytes
        const lim = have < left ? have : left;
        uvarint(at, lim);
        const a = vlen;
        let b: i32 = 0;
        let size: i64 = 0;
        if (a > 0) {
          size = <i64>uvarint(at + <usize>a, lim - a);
          b = vlen;
        }
        if (a > 0 && b > 0) {
          if (<i64>(a + b) + size > left) o = this.broken(t, o, rest);
          else {
            o += <i64>(a + b) + size;
            this.tagsLeft--;
          }
          continue;
        }
        if (a < 0 || b < 0 || have >= left) o = this.broken(t, o, rest);
        else break;
        continue;
      }
      if (this.depth > 0 && this.pc == unchecked(this.toPc[this.depth - 1])) {
        this.nextElement();
        continue;
      }
      if (this.pc >= this.len) {
        if (this.depth > 0) {
          o = this.broken(t, o, rest); // a program bug would land here; never spin
          continue;
        }
        if (left > 0) {
          o += left; // the layout is walked: skip whatever a newer version added after it
          continue;
        }
        done = true;
        break;
      }
      const op = unchecked(this.prog[this.pc]);
      if (op == OP_TOPIC_ID || op == OP_ERROR) {
        const k: i64 = op == OP_ERROR ? 2 : 16;
        if (k > left) {
          o = this.broken(t, o, rest);
          continue;
        }
        if (base + o + k > this.prefixEnd) {
          // not whole inside the buffered prefix: the api/ decoders did not see it
          if (have < k) break;
          if (op == OP_ERROR) t.error(<i32>(<i16>bswap<u16>(load<u16>(at))));
          else t.addTopicId(this.rd.reset(at, 16).uuid());
        }
        o += k;
        this.pc += 1;
        continue;
      }
      if (op == OP_FIXED) {
        const k = <i64>unchecked(this.prog[this.pc + 1]);
        if (k > left) o = this.broken(t, o, rest);
        else {
          o += k;
          this.pc += 2;
        }
        continue;
      }
      // a count or length: int16 (strings) or int32, or in flexible versions a uvarint
      // (tagged fields: the count itself; the others: the length plus one, 0 for null)
      let v: i64 = 0;
      let k: i32 = 0;
      if (this.flex || op == OP_TAGS) {
        const u = uvarint(at, have < left ? have : left);
        k = vlen;
        if (k == 0 && have < left) break;
        if (k <= 0 || u > 0x80000000) {
          o = this.broken(t, o, rest);
          continue;
        }
        v = op == OP_TAGS ? <i64>u : <i64>u - 1;
      } else {
        k = op == OP_STR || op == OP_NAME ? 2 : 4;
        if (<i64>k > left) {
          o = this.broken(t, o, rest);
          continue;
        }
        if (have < <i64>k) break;
        v = op == OP_STR || op == OP_NAME ? <i64>(<i16>bswap<u16>(load<u16>(at))) : <i64>(<i32>bswap<u32>(load<u32>(at)));
      }
      const after = left - <i64>k; // bytes of the message after the count or length
      if (v > after) {
        o = this.broken(t, o, rest); // longer than the message, or more elements than bytes
        continue;
      }
      if (op == OP_NAME && v > 0 && v <= MAX_NAME && base + o + <i64>k + v > this.prefixEnd && (this.kind == 0 || !t.requestNamed)) {
        // a topic name the buffered prefix does not hold whole (a response's only when its
        // request named none: the response repeats them)
        if (have < <i64>k + v) break;
        t.addTopic(this.rd.reset(at, k + <i32>v).str(this.flex));
      }
      o += <i64>k;
      if (op == OP_STR || op == OP_NAME) {
        if (v > 0) o += v;
        this.pc += 1;
      } else if (op == OP_RECORDS) {
        t.recordFields++;
        if (v > 0) this.recLeft = v;
        this.pc += 1;
      } else if (op == OP_TAGS) {
        this.tagsLeft = <i32>v;
        this.pc += 1;
      } else {
        // OP_ARRAY
        const body = unchecked(this.prog[this.pc + 1]);
        if (v <= 0) {
          this.pc += 2 + body;
          continue;
        }
        if (this.depth == MAX_DEPTH) {
          o = this.broken(t, o, rest);
          continue;
        }
        const d = this.depth++;
        unchecked((this.fromPc[d] = this.pc + 2));
        unchecked((this.toPc[d] = this.pc + 2 + body));
        unchecked((this.left[d] = <i32>v));
        this.pc += 2;
      }
    }
    q.skip(o);
    if (done) {
      this.active = false;
      t.walking = false;
    }
    return done;
  }

  /** At the end of an array element: on to the next element, or past the array. */
  private nextElement(): void {
    const d = this.depth - 1;
    const n = unchecked(this.left[d]) - 1;
    if (n > 0) {
      unchecked((this.left[d] = n));
      this.pc = unchecked(this.fromPc[d]);
    } else {
      this.pc = unchecked(this.toPc[d]);
      this.depth = d;
    }
  }

  /** The message does not add up: its count cannot be exact. Returns where the walk goes: its end. */
  private broken(t: KafkaTxn, o: i64, rest: i64): i64 {
    t.recordsUncounted = true;
    this.recLeft = -1;
    this.tagsLeft = 0;
    this.depth = 0;
    this.pc = this.len;
    return rest > o ? rest : o;
  }
}

/** Length in bytes of the last varint uvarint() read: 0 when cut short, -1 when longer than 5 bytes. */
let vlen: i32 = 0;

/** An unsigned LEB128 varint of at most 5 bytes (u32) at `p`, `lim` bytes readable. */
function uvarint(p: usize, lim: i64): u64 {
  let v: u64 = 0;
  for (let i: i32 = 0; i < 5; i++) {
    if (<i64>i >= lim) {
      vlen = 0;
      return 0;
    }
    const b = <u64>load<u8>(p + <usize>i);
    v |= (b & 0x7f) << (7 * <u64>i);
    if ((b & 0x80) == 0) {
      vlen = i + 1;
      return v;
    }
  }
  vlen = -1;
  return 0;
}

const CODEC_NAMES: string[] = ["none", "gzip", "snappy", "lz4", "zstd", "codec5", "codec6", "codec7"];

/** Name of codec bit `i` of KafkaTxn.codecs. */
export function codecName(i: i32): string {
  return CODEC_NAMES[i & 7];
}
