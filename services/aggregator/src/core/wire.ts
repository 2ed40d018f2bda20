// Protobuf reading for the lean decoder (decode.ts): the cursor of @wirescope/wire
// (wire/reader.ts, shared with record-json and the parser), plus what only the aggregator needs:
// times split into microseconds exactly, and attributes checked at decode and built when read.
import { AttributeValueTag, RecordAttributesEntryTag, StringListTag } from "@wirescope/wire";
import { buf, float64, hi, len, lo, pos, seek, setCursor, skip, skipLen, string, varint, varint64 } from "@wirescope/wire/reader";
import type { AttributeView } from "./record-view.js";

export { WireError as DecodeError } from "@wirescope/wire/reader";

/** ⌊v / 1000⌋ and v mod 1000 of the last varint64 (uint64), exactly, into `q1000` / `r1000`. */
export let q1000 = 0;
export let r1000 = 0;
export function divMod1000(): void {
  if (hi < 0x20_0000) {
    // Below 2^53: exact as a double.
    const v = hi * 0x1_0000_0000 + lo;
    q1000 = Math.floor(v / 1000);
    r1000 = v - q1000 * 1000;
  } else if (hi < 0x4000_0000) {
    // hi·2^32 + lo = 1000·(hi·4294967) + (hi·296 + lo): every term below 2^53.
    const r = hi * 296 + lo;
    const rq = Math.floor(r / 1000);
    q1000 = hi * 4294967 + rq;
    r1000 = r - rq * 1000;
  } else {
    const v = (BigInt(hi) << 32n) | BigInt(lo);
    q1000 = Number(v / 1000n);
    r1000 = Number(v % 1000n);
  }
}

// Attributes (map<string, AttributeValue> entries): checked when the record is decoded, built
// when read (the aggregator reads them for a record whose operation or resource is new).

/**
 * Walks one map entry [pos, end) as `readAttributeEntry` reads it, building nothing: the same
 * DecodeErrors. Returns true for `tls` = true (the parser's mark of a TLS connection's records),
 * so that flag is known without building the attributes.
 */
export function checkAttributeEntry(end: number): boolean {
  let keyTls = false;
  let yes = false;
  while (pos < end) {
    const t = varint(end);
    if (t === RecordAttributesEntryTag.key) {
      const n = len(end);
      keyTls = n === 3 && buf[pos] === 0x74 && buf[pos + 1] === 0x6c && buf[pos + 2] === 0x73; // "tls"
      seek(pos + n);
    } else if (t === RecordAttributesEntryTag.value) {
      const n = len(end);
      yes = checkAttributeValue(pos + n);
    } else skip(t & 7, end);
  }
  return keyTls && yes;
}

/** Checks one AttributeValue; true when it is the boolean true. */
function checkAttributeValue(end: number): boolean {
  let yes = false;
  while (pos < end) {
    const tag = varint(end);
    switch (tag) {
      case AttributeValueTag.stringValue: skipLen(end); yes = false; break;
      case AttributeValueTag.intValue: varint64(end); yes = false; break;
      case AttributeValueTag.boolValue: yes = varint(end) !== 0; break;
      case AttributeValueTag.doubleValue: float64(end); yes = false; break;
      case AttributeValueTag.stringList: {
        const n = len(end);
        const e = pos + n;
        while (pos < e) {
          const t = varint(e);
          if (t === StringListTag.values) skipLen(e);
          else skip(t & 7, e);
        }
        break;
      }
      default: skip(tag & 7, end);
    }
  }
  return yes;
}

function readAttributeValue(end: number): AttributeView {
  let value: AttributeView["value"] = { case: undefined };
  while (pos < end) {
    const tag = varint(end);
    switch (tag) {
      case AttributeValueTag.stringValue: value = { case: "stringValue", value: string(end) }; break;
      case AttributeValueTag.intValue: varint64(end); value = { case: "intValue", value: BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)) }; break;
      case AttributeValueTag.boolValue: value = { case: "boolValue", value: varint(end) !== 0 }; break;
      case AttributeValueTag.doubleValue: value = { case: "doubleValue", value: float64(end) }; break;
      case AttributeValueTag.stringList: {
        const n = len(end);
        const e = pos + n;
        const values: string[] = [];
        while (pos < e) {
          const t = varint(e);
          if (t === StringListTag.values) values.push(string(e));
          else skip(t & 7, e);
        }
        value = { case: "stringList", value: { values } };
        break;
      }
      default: skip(tag & 7, end);
    }
  }
  return { value };
}

/** The attribute map of the entries at `at` (start, end pairs) in `b`, checked before by `checkAttributeEntry`. */
export function readAttributeMap(b: Uint8Array, at: readonly number[]): { [key: string]: AttributeView } {
  const out: { [key: string]: AttributeView } = {};
  for (let i = 0; i < at.length; i += 2) {
    setCursor(b, at[i]!);
    const end = at[i + 1]!;
    let key = "";
    let val: AttributeView = { value: { case: undefined } };
    while (pos < end) {
      const t = varint(end);
      if (t === RecordAttributesEntryTag.key) key = string(end);
      else if (t === RecordAttributesEntryTag.value) {
        const n = len(end);
        val = readAttributeValue(pos + n);
      } else skip(t & 7, end);
    }
    out[key] = val;
  }
  return out;
}
