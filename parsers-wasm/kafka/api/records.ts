// Counting the records of a RECORDS field (Produce requests, Fetch responses) from the batch
// headers alone: the count and the codec are outside the compressed part, so every codec (gzip,
// snappy, lz4, zstd) is counted without decompressing anything.
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
// A batch that does not fit in what is left of the field is the partial batch a broker may end a
// Fetch response with (clients drop it): it is not counted. A field cut by the buffered-prefix
// limit, a magic byte we do not know or a negative count leaves the field uncounted.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

const BATCH_HEADER: i32 = 61;
/** offset + message_size + crc + magic + attributes */
const LEGACY_ENTRY_MIN: i32 = 18;

/** Reads a RECORDS / COMPACT_RECORDS field and counts its records into `t`. */
export function countRecordsField(r: Reader, flex: bool, t: KafkaTxn): void {
  t.recordFields++;
  const n = r.bytesLen(flex);
  if (n <= 0) return; // null or empty: no records
  if (!r.has(n)) {
    t.recordsUncounted = true; // the field runs past the buffered prefix
    return;
  }
  countRecords(r.pos, n, t);
  r.pos += <usize>n;
}

function countRecords(p: usize, n: i32, t: KafkaTxn): void {
  let o: i32 = 0;
  while (n - o >= 17) {
    const size = <i32>bswap<u32>(load<u32>(p + <usize>o + 8));
    const end = <i64>o + 12 + <i64>size;
    if (size < 0 || end > <i64>n) return; // a partial batch at the end: clients drop it
    const magic = <i32>load<i8>(p + <usize>o + 16);
    if (magic == 2) {
      if (size + 12 < BATCH_HEADER) {
        t.recordsUncounted = true;
        return;
      }
      const attributes = <i32>bswap<u16>(load<u16>(p + <usize>o + 21));
      const count = <i32>bswap<u32>(load<u32>(p + <usize>o + 57));
      if (count < 0) {
        t.recordsUncounted = true;
        return;
      }
      t.codecs |= 1 << (attributes & 7);
      if ((attributes & 0x20) == 0) t.records += count;
    } else if (magic == 0 || magic == 1) {
      if (size + 12 < LEGACY_ENTRY_MIN) {
        t.recordsUncounted = true;
        return;
      }
      const codec = <i32>load<u8>(p + <usize>o + 17) & 7;
      t.codecs |= 1 << codec;
      if (codec == 0) t.records++;
      else t.recordsUncounted = true;
    } else {
      t.recordsUncounted = true;
      return;
    }
    o = <i32>end;
  }
}

const CODEC_NAMES: string[] = ["none", "gzip", "snappy", "lz4", "zstd", "codec5", "codec6", "codec7"];

/** Name of codec bit `i` of KafkaTxn.codecs. */
export function codecName(i: i32): string {
  return CODEC_NAMES[i & 7];
}
