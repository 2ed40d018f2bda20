// Statement normalisation for PostgreSQL: the shared rule (common/sql.ts normalizeSql: literals
// become '?', whitespace collapsed, comments dropped) applied to the stretches of text between
// the two constructs where PostgreSQL's lexicon differs from MySQL's:
//
//   "Quoted Identifier"   an identifier in PostgreSQL (MySQL would read a string): kept verbatim
//   $$body$$, $tag$...$tag$   a dollar-quoted string literal: becomes '?'
//
//   SELECT "u"."name" FROM "users" WHERE id = $1 AND note = $$x$$   →
//   SELECT "u"."name" FROM "users" WHERE id = $1 AND note = ?
//
// $1, $2 (parameters) are identifier-like runs for the shared rule and are kept. Single-quoted
// strings and comments are skipped while looking for the two constructs, so a '"' inside a
// string does not split the text.
import { Rec, normalizeSql, isSpace, eqIgnoreCase } from "../../common/index";

@inline function identByte(b: u32): bool {
  return b - 0x61 < 26 || b - 0x41 < 26 || b - 0x30 < 10 || b == 0x5f || b == 0x24 || b >= 0x80;
}

/** A space is owed before the next piece (the text had whitespace at a stretch boundary). */
let owedSpace = false;

function stretch(p: usize, a: i32, b: i32): void {
  if (a >= b) return;
  let content = false;
  for (let i = a; i < b; i++) {
    if (!isSpace(<u32>load<u8>(p + <usize>i))) {
      content = true;
      break;
    }
  }
  const wrote = Rec.pieceLen() > 0;
  if (!content) {
    owedSpace = owedSpace || wrote;
    return;
  }
  if (wrote && (owedSpace || isSpace(<u32>load<u8>(p + <usize>a)))) Rec.putByte(0x20);
  normalizeSql(p + <usize>a, b - a);
  owedSpace = isSpace(<u32>load<u8>(p + <usize>b - 1));
}

function piece(): void {
  if (owedSpace && Rec.pieceLen() > 0) Rec.putByte(0x20);
  owedSpace = false;
}

/** Writes the normalised form of `n` bytes of PostgreSQL text at `p` into the open piecewise string. */
export function normalizePg(p: usize, n: i32): void {
  owedSpace = false;
  let from = 0;
  let i = 0;
  while (i < n) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == 0x27) {
      // '...' ('' doubles a quote; a backslash escapes in E'' strings: treated as the shared rule does)
      i++;
      while (i < n) {
        const d = <u32>load<u8>(p + <usize>i);
        if (d == 0x5c) i += 2;
        else if (d == 0x27) {
          if (i + 1 < n && load<u8>(p + <usize>i + 1) == 0x27) i += 2;
          else {
            i++;
            break;
          }
        } else i++;
      }
      continue;
    }
    if (c == 0x2d && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2d) {
      while (i < n && load<u8>(p + <usize>i) != 0x0a) i++;
      continue;
    }
    if (c == 0x2f && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2a) {
      i += 2;
      while (i + 1 < n && !(load<u8>(p + <usize>i) == 0x2a && load<u8>(p + <usize>i + 1) == 0x2f)) i++;
      i += 2;
      continue;
    }
    if (c == 0x22) {
      // "identifier" ("" doubles a quote): kept as written
      let j = i + 1;
      while (j < n) {
        if (load<u8>(p + <usize>j) == 0x22) {
          if (j + 1 < n && load<u8>(p + <usize>j + 1) == 0x22) j += 2;
          else break;
        } else j++;
      }
      j = j + 1 > n ? n : j + 1;
      stretch(p, from, i);
      piece();
      Rec.putRaw(p + <usize>i, j - i);
      from = i = j;
      continue;
    }
    if (c == 0x24 && (i == 0 || !identByte(<u32>load<u8>(p + <usize>i - 1)))) {
      // $tag$ opens a dollar-quoted string; $1 is a parameter
      let k = i + 1;
      if (k < n && <u32>load<u8>(p + <usize>k) - 0x30 >= 10) {
        while (k < n && k - i <= 64 && load<u8>(p + <usize>k) != 0x24 && identByte(<u32>load<u8>(p + <usize>k))) k++;
        // tags are identifiers (at most 63 bytes): the closing search below stays linear
        if (k < n && k - i <= 64 && load<u8>(p + <usize>k) == 0x24) {
          const tag = k + 1 - i; // "$tag$" length
          let j = k + 1;
          let close = n;
          while (j + tag <= n) {
            if (load<u8>(p + <usize>j) == 0x24 && memory.compare(p + <usize>j, p + <usize>i, <usize>tag) == 0) {
              close = j + tag;
              break;
            }
            j++;
          }
          stretch(p, from, i);
          piece();
          Rec.putByte(0x3f);
          from = i = close;
          continue;
        }
      }
      i++;
      continue;
    }
    i++;
  }
  if (i > n) i = n;
  stretch(p, from, n);
}

/**
 * The statement's first keyword (db.operation.name), the rule the MySQL decoder uses: leading
 * whitespace, '(' and comments skipped, letters only (at most 32). Returns its offset in the low
 * 24 bits and its length in the high 8 (length 0: none).
 */
export function firstKeyword(p: usize, n: i32): i32 {
  let i = 0;
  while (i < n) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x28) i++;
    else if (c == 0x2f && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2a) {
      i += 2;
      while (i + 1 < n && !(load<u8>(p + <usize>i) == 0x2a && load<u8>(p + <usize>i + 1) == 0x2f)) i++;
      i += 2;
    } else if (c == 0x2d && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2d) {
      while (i < n && load<u8>(p + <usize>i) != 0x0a) i++;
    } else break;
  }
  if (i > n) i = n;
  let j = i;
  while (j < n && j - i < 32 && (<u32>load<u8>(p + <usize>j) | 0x20) - 0x61 < 26) j++;
  return ((j - i) << 24) | i;
}

/** Commands whose CommandComplete tag always starts with the statement's own keyword. */
const SAME_TAG = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE"];

/**
 * True when a CommandComplete tag cannot be the answer to `text`: its statement starts with one
 * of SAME_TAG and the tag with another word ("UPDATE 1" for an INSERT). Catches an answer to a
 * request lost in a gap arriving where the next request waits.
 */
export function tagContradicts(text: ArrayBuffer, tag: usize, tagLen: i32): bool {
  const p = changetype<usize>(text);
  const k = firstKeyword(p, text.byteLength);
  const at = p + <usize>(k & 0xffffff);
  const len = k >>> 24;
  for (let s = 0; s < SAME_TAG.length; s++) {
    const word = unchecked(SAME_TAG[s]);
    if (len != word.length || !eqIgnoreCase(at, len, word)) continue;
    // the tag's first word must be that keyword
    return !(tagLen >= len && eqIgnoreCase(tag, len, word) && (tagLen == len || load<u8>(tag + <usize>len) == 0x20));
  }
  return false;
}
