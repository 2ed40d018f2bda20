// HPACK header-block decoder (RFC 7541) for observing HTTP/2: one instance per direction of a
// connection, fed whole header blocks (HEADERS/PUSH_PROMISE + CONTINUATION payloads joined).
//
//   0 1 2 3 4 5 6 7
//  +-+-+-+-+-+-+-+-+
//  |1|  index (7+) |   indexed field                      (6.1)
//  |0|1| index(6+) |   literal, incremental indexing       (6.2.1)  + [name] + value
//  |0|0|0|0|idx(4+)|   literal, without indexing           (6.2.2)  + [name] + value
//  |0|0|0|1|idx(4+)|   literal, never indexed              (6.2.3)  + [name] + value
//  |0|0|1| size(5+)|   dynamic table size update           (6.3)
//  +-+-+-+-+-+-+-+-+
//
// Only the values of the few names in hpack-names.ts are kept (in the dynamic table too); other
// entries keep just their size, which is all the table's eviction arithmetic needs.
//
// A connection picked up mid-way starts with an unknown dynamic table: entries inserted since
// pickup are exact (HPACK only ever adds at the front and evicts at the back), references past
// them are reported as H_UNKNOWN, never guessed.

import { HUFF_TABLE, HUFF_EMIT, HUFF_ACCEPT, HUFF_FAIL } from "./huffman-table";
import { nameId, H_OTHER, H_KEEP_MAX, H_UNKNOWN } from "./hpack-names";

/** Receives the decoded fields of one header block. */
export abstract class HeaderSink {
  /** A field; `id` from hpack-names.ts (H_OTHER for the rest). The value is valid during the call. */
  abstract field(id: i32, val: usize, len: i32): void;
  /** A field that cannot be known (dynamic-table entry from before pickup). */
  abstract unknownField(): void;
}

export const HPACK_OK: i32 = 0;
export const HPACK_ERR: i32 = -1;

const STATIC_COUNT: i32 = 61;
// name id and name length of static entries 1..61 (index 0 unused)
const S_ID = memory.data<u8>([
  0, 3, 1, 1, 2, 2, 4, 4, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
]);
const S_NAMELEN = memory.data<u8>([
  0, 10, 7, 7, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7, 7, 14, 15, 15, 13, 6, 27, 3, 5, 13, 13, 19, 16, 16, 14, 16, 13, 12, 6, 4, 4, 6, 7, 4, 4, 8,
  17, 13, 8, 19, 13, 4, 8, 12, 18, 19, 5, 7, 7, 11, 6, 10, 25, 17, 10, 4, 3, 16,
]);
// Static values that matter: entries 2..14 (":method GET" .. ":status 500"), 16 is not kept.
const S_VALUES = "GET" + "POST" + "/" + "/index.html" + "http" + "https" + "200" + "204" + "206" + "304" + "400" + "404" + "500";
const S_VOFF = memory.data<u8>([0, 0, 0, 3, 7, 8, 19, 23, 28, 31, 34, 37, 40, 43, 46, 49]);
let staticValues: usize = 0;

function staticValuePtr(i: i32): usize {
  if (staticValues == 0) {
    const n = S_VALUES.length;
    staticValues = heap.alloc(<usize>n);
    for (let k = 0; k < n; k++) store<u8>(staticValues + <usize>k, <u8>S_VALUES.charCodeAt(k));
  }
  return staticValues + <usize>load<u8>(S_VOFF + <usize>i);
}

/** One dynamic-table entry; slots are reused, value storage grows as needed. */
class Entry {
  id: i32 = 0;
  size: i32 = 0;
  nameLen: i32 = 0;
  val: usize = 0;
  valCap: i32 = 0;
  valLen: i32 = 0;
  setValue(p: usize, len: i32): void {
    if (len > this.valCap) {
      if (this.val != 0) heap.free(this.val);
      const cap = len < 32 ? 32 : len;
      this.val = heap.alloc(<usize>cap);
      this.valCap = cap;
    }
    memory.copy(this.val, p, <usize>len);
    this.valLen = len;
  }
  release(): void {
    if (this.val != 0) heap.free(this.val);
    this.val = 0;
    this.valCap = 0;
  }
}

/** Largest table size honoured; bigger updates keep this many bytes and mark older entries unknown. */
const MAX_TABLE: i32 = 65536;
/** Longest string decoded into the scratch buffer; longer values are skipped (counted). */
const MAX_STRING: i32 = 65536;

export class Hpack {
  private ring: StaticArray<Entry | null> = new StaticArray<Entry | null>(16);
  private head: i32 = 0; // next insert slot
  private count: i32 = 0;
  private size: i32 = 0;
  maxSize: i32 = 4096;
  /** The encoder's maximum is known (from the start of the connection or a size update). */
  maxKnown: bool = true;
  /** Entries older than the ones we hold may exist (mid-stream pickup or a capped table). */
  unknownTail: bool = false;
  /** Counters for the stats the plugin reports. */
  unknownRefs: i32 = 0;
  errors: i32 = 0;
  sizeUpdates: i32 = 0;
  private scratch: usize = 0;
  private scratchCap: i32 = 0;

  constructor(midStream: bool) {
    this.unknownTail = midStream;
    if (midStream) {
      this.maxKnown = false;
      this.maxSize = MAX_TABLE;
    }
  }

  free(): void {
    for (let i = 0; i < this.ring.length; i++) {
      const e = unchecked(this.ring[i]);
      if (e != null) e.release();
    }
    if (this.scratch != 0) heap.free(this.scratch);
    this.scratch = 0;
  }

  /** The table can no longer be trusted (bytes of a header block were lost). */
  forget(): void {
    // Entries we hold stay exact only if nothing was inserted in the lost bytes; we cannot know.
    this.count = 0;
    this.size = 0;
    this.unknownTail = true;
  }

  private entry(i: i32): Entry {
    // i = 0 is the newest entry
    const cap = this.ring.length;
    const slot = (this.head - 1 - i + cap * 2) & (cap - 1);
    return changetype<Entry>(unchecked(this.ring[slot]));
  }

  private evictTo(limit: i32): void {
    while (this.count > 0 && this.size > limit) {
      const e = this.entry(this.count - 1);
      this.size -= e.size;
      this.count--;
      // an entry the encoder still has but we dropped (capped table) is now unknown to us
    }
  }

  private insert(id: i32, nameLen: i32, val: usize, valLen: i32): void {
    const size = nameLen + valLen + 32;
    if (size > this.maxSize) {
      // RFC 7541 4.4: an entry larger than the table empties it. With an unknown maximum (capped
      // at MAX_TABLE) the encoder may still hold older entries.
      this.count = 0;
      this.size = 0;
      this.unknownTail = !this.maxKnown;
      return;
    }
    this.evictTo(this.maxSize - size);
    if (this.count == this.ring.length) this.grow();
    const cap = this.ring.length;
    let e = unchecked(this.ring[this.head]);
    if (e == null) {
      e = new Entry();
      unchecked((this.ring[this.head] = e));
    }
    e.id = id;
    e.size = size;
    e.nameLen = nameLen;
    if (id > 0 && id <= H_KEEP_MAX) e.setValue(val, valLen);
    else e.valLen = 0;
    this.head = (this.head + 1) & (cap - 1);
    this.count++;
    this.size += size;
    // No room left for any entry we have not seen: the table is fully known again.
    if (this.unknownTail && this.maxKnown && this.size > this.maxSize - 32) this.unknownTail = false;
  }

  private grow(): void {
    const old = this.ring;
    const cap = old.length;
    const next = new StaticArray<Entry | null>(cap * 2);
    // copy oldest..newest to 0..count-1
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head - this.count + i + cap) & (cap - 1);
      unchecked((next[i] = old[slot]));
    }
    this.ring = next;
    this.head = this.count;
  }

  private ensureScratch(n: i32): void {
    if (n <= this.scratchCap) return;
    if (this.scratch != 0) heap.free(this.scratch);
    let cap = this.scratchCap < 256 ? 256 : this.scratchCap;
    while (cap < n) cap <<= 1;
    this.scratch = heap.alloc(<usize>cap);
    this.scratchCap = cap;
  }

  // decoding cursor (valid during decode())
  private p: usize = 0;
  private end: usize = 0;
  // a decoded string: pointer (into the block or the scratch buffer) and length; -1 = too long
  private sPtr: usize = 0;
  private sLen: i32 = 0;

  /** Reads an integer with an n-bit prefix (RFC 7541 5.1); -1 on truncation or overflow. */
  private int(n: i32): i32 {
    if (this.p >= this.end) return -1;
    const mask: i32 = (1 << n) - 1;
    let v: i32 = <i32>load<u8>(this.p) & mask;
    this.p++;
    if (v < mask) return v;
    let shift: i32 = 0;
    while (this.p < this.end) {
      const b = <i32>load<u8>(this.p);
      this.p++;
      if (shift > 21) return -1; // beyond 2^28: not a sane length or index
      v += (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) == 0) return v;
    }
    return -1;
  }

  /** Reads a string literal (5.2); `want` = its value is needed (else only skipped). */
  private str(want: bool): bool {
    if (this.p >= this.end) return false;
    const huff = (load<u8>(this.p) & 0x80) != 0;
    const len = this.int(7);
    if (len < 0 || <usize>len > this.end - this.p) return false;
    const src = this.p;
    this.p += <usize>len;
    if (!want) {
      this.sLen = 0;
      return true;
    }
    if (!huff) {
      this.sPtr = src;
      this.sLen = len;
      return true;
    }
    if (len > MAX_STRING) {
      this.sLen = -1;
      return true;
    }
    // at most 8 symbols per 5 bytes (shortest code: 5 bits)
    this.ensureScratch(((len * 8) / 5) + 1);
    const out = this.scratch;
    let o: usize = 0;
    let state: u32 = 0;
    let accept = true;
    for (let i = 0; i < len; i++) {
      const b = <u32>load<u8>(src + <usize>i);
      let t = load<u32>(HUFF_TABLE + (((<usize>state << 4) | <usize>(b >> 4)) << 2));
      if (t & HUFF_FAIL) return false;
      if (t & HUFF_EMIT) {
        store<u8>(out + o, <u8>(t >> 16));
        o++;
      }
      state = t & 0xff;
      t = load<u32>(HUFF_TABLE + (((<usize>state << 4) | <usize>(b & 15)) << 2));
      if (t & HUFF_FAIL) return false;
      if (t & HUFF_EMIT) {
        store<u8>(out + o, <u8>(t >> 16));
        o++;
      }
      state = t & 0xff;
      accept = (t & HUFF_ACCEPT) != 0;
    }
    if (!accept) this.errors++; // bad padding: keep the symbols (lenient), count it
    this.sPtr = out;
    this.sLen = <i32>o;
    return true;
  }

  /** Looks up index (1-based, static then dynamic); returns the id or H_UNKNOWN. Sets the value. */
  private lookup(idx: i32, needValue: bool): i32 {
    if (idx <= STATIC_COUNT) {
      const id = <i32>load<u8>(S_ID + <usize>idx);
      if (needValue) {
        if (idx >= 2 && idx <= 14) {
          this.sPtr = staticValuePtr(idx);
          this.sLen = <i32>load<u8>(S_VOFF + <usize>idx + 1) - <i32>load<u8>(S_VOFF + <usize>idx);
        } else {
          this.sPtr = 0;
          this.sLen = 0;
        }
      }
      return id;
    }
    const d = idx - STATIC_COUNT - 1;
    if (d >= this.count) {
      if (!this.unknownTail) this.errors++;
      this.unknownRefs++;
      return H_UNKNOWN;
    }
    const e = this.entry(d);
    if (needValue) {
      this.sPtr = e.val;
      this.sLen = e.valLen;
    }
    return e.id;
  }

  private nameLenOf(idx: i32): i32 {
    if (idx <= STATIC_COUNT) return <i32>load<u8>(S_NAMELEN + <usize>idx);
    return -1; // dynamic: callers use the entry's size arithmetic instead
  }

  /**
   * Decodes one complete header block. Returns HPACK_OK, or HPACK_ERR when the block is malformed
   * (the table is then forgotten: later references become unknown rather than wrong).
   */
  decode(ptr: usize, len: i32, sink: HeaderSink): i32 {
    this.p = ptr;
    this.end = ptr + <usize>len;
    while (this.p < this.end) {
      const b = <u32>load<u8>(this.p);
      if (b & 0x80) {
        const idx = this.int(7);
        if (idx <= 0) return this.fail();
        const id = this.lookup(idx, true);
        if (id == H_UNKNOWN) sink.unknownField();
        else if (id > 0) sink.field(id, this.sPtr, this.sLen);
        continue;
      }
      if ((b & 0xe0) == 0x20) {
        const sz = this.int(5);
        if (sz < 0) return this.fail();
        this.sizeUpdates++;
        this.setMaxSize(sz);
        continue;
      }
      const indexing = (b & 0xc0) == 0x40;
      const idx = this.int(indexing ? 6 : 4);
      if (idx < 0) return this.fail();
      let id: i32;
      let nameLen: i32 = 0;
      if (idx == 0) {
        if (!this.str(true)) return this.fail();
        if (this.sLen < 0) {
          id = H_OTHER;
          nameLen = MAX_STRING;
        } else {
          id = nameId(this.sPtr, this.sLen);
          nameLen = this.sLen;
        }
      } else {
        if (idx > STATIC_COUNT) {
          const d = idx - STATIC_COUNT - 1;
          if (d < this.count) {
            const e = this.entry(d);
            id = e.id;
            nameLen = e.nameLen;
          } else {
            id = H_UNKNOWN;
            nameLen = -1;
            if (!this.unknownTail) this.errors++;
            this.unknownRefs++;
          }
        } else {
          id = this.lookup(idx, false);
          nameLen = this.nameLenOf(idx);
        }
      }
      const keep = id > 0 && id <= H_KEEP_MAX;
      // a value is decoded only when kept or when its (decoded) length sizes a table entry
      if (!this.str(keep || indexing)) return this.fail();
      if (this.sLen < 0) {
        // value too long to decode: treat as an unknown field, its size as unknown
        sink.unknownField();
        if (indexing) this.insertUnknown(nameLen < 0 ? MAX_STRING : nameLen + MAX_STRING);
        continue;
      }
      if (id == H_UNKNOWN) sink.unknownField();
      else if (keep) sink.field(id, this.sPtr, this.sLen);
      if (indexing) {
        if (nameLen < 0) this.insertUnknown(this.sLen);
        else this.insert(id, nameLen, this.sPtr, this.sLen);
      }
    }
    return HPACK_OK;
  }

  /**
   * An entry whose name (or value) we could not read. It still occupies one index, so it goes in
   * as H_UNKNOWN with its smallest possible size (evicting late is harmless: the encoder never
   * references what it evicted; evicting early would only turn references into unknowns).
   */
  private insertUnknown(minSize: i32): void {
    this.insert(H_UNKNOWN, 0, 0, minSize);
  }

  private setMaxSize(sz: i32): void {
    if (sz > MAX_TABLE) {
      // honour at most MAX_TABLE bytes; entries beyond it become unknown
      this.maxSize = MAX_TABLE;
      this.maxKnown = false;
      this.evictTo(MAX_TABLE);
      this.unknownTail = true;
      return;
    }
    this.maxSize = sz;
    this.maxKnown = true;
    this.evictTo(sz);
    if (sz == 0 || this.size > sz - 32) this.unknownTail = false; // nothing unseen can remain
  }

  private fail(): i32 {
    this.errors++;
    this.forget();
    return HPACK_ERR;
  }

  /** Dynamic-table entry count and byte size (for tests). */
  get tableCount(): i32 {
    return this.count;
  }
  get tableSize(): i32 {
    return this.size;
  }
}
