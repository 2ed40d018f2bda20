// SQL normalisation for Record.resource and redacted db.query.text: literals become '?', runs of
// whitespace one space, comments dropped, identifiers (incl. `quoted`) kept. Written straight
// into the string opened with Rec.resourceBegin()/Rec.attrBegin() — no allocation.
//
//   SELECT * FROM t WHERE id = 42 AND name = 'bob'   →   SELECT * FROM t WHERE id = ? AND name = ?
//
// Lenient: an unterminated literal or comment simply runs to the end of the text.

import { Rec } from "./record";

@inline function isIdentByte(b: u32): bool {
  return b - 0x61 < 26 || b - 0x41 < 26 || b - 0x30 < 10 || b == 0x5f || b == 0x24 || b >= 0x80;
}

/** Writes the normalised form of `n` bytes of SQL text at `p` into the open piecewise string. */
export function normalizeSql(p: usize, n: i32): void {
  let i = 0;
  let pendingSpace = false;
  let wrote = false;
  while (i < n) {
    const b = <u32>load<u8>(p + <usize>i);
    // whitespace
    if (b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d || b == 0x0c) {
      pendingSpace = wrote;
      i++;
      continue;
    }
    // comments: -- ..., # ..., /* ... */ (but keep optimizer hints /*+ ... */ out as well)
    if ((b == 0x2d && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2d) || b == 0x23) {
      while (i < n && load<u8>(p + <usize>i) != 0x0a) i++;
      pendingSpace = wrote;
      continue;
    }
    if (b == 0x2f && i + 1 < n && load<u8>(p + <usize>i + 1) == 0x2a) {
      i += 2;
      while (i + 1 < n && !(load<u8>(p + <usize>i) == 0x2a && load<u8>(p + <usize>i + 1) == 0x2f)) i++;
      i = i + 2 > n ? n : i + 2;
      pendingSpace = wrote;
      continue;
    }
    if (pendingSpace) {
      Rec.putByte(0x20);
      pendingSpace = false;
    }
    wrote = true;
    // string literals '...' and "..." (MySQL treats "..." as a string unless ANSI_QUOTES)
    if (b == 0x27 || b == 0x22) {
      i++;
      while (i < n) {
        const c = <u32>load<u8>(p + <usize>i);
        if (c == 0x5c) {
          i += 2;
          continue;
        }
        if (c == b) {
          if (i + 1 < n && <u32>load<u8>(p + <usize>i + 1) == b) {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
      if (i > n) i = n;
      Rec.putByte(0x3f);
      continue;
    }
    // quoted identifiers kept verbatim
    if (b == 0x60) {
      let j = i + 1;
      while (j < n && load<u8>(p + <usize>j) != 0x60) j++;
      j = j + 1 > n ? n : j + 1;
      Rec.putRaw(p + <usize>i, j - i);
      i = j;
      continue;
    }
    // numbers (incl. 0x.., 1.5e3, .5) not glued to an identifier; x'..' / b'..' literals
    const prevIdent = i > 0 && isIdentByte(<u32>load<u8>(p + <usize>i - 1));
    if (!prevIdent && (b - 0x30 < 10 || (b == 0x2e && i + 1 < n && <u32>load<u8>(p + <usize>i + 1) - 0x30 < 10))) {
      i++;
      while (i < n) {
        const c = <u32>load<u8>(p + <usize>i);
        if (isIdentByte(c) || c == 0x2e) {
          i++;
          continue;
        }
        // exponent sign: 1e+5
        if ((c == 0x2b || c == 0x2d) && (load<u8>(p + <usize>i - 1) | 0x20) == 0x65) {
          i++;
          continue;
        }
        break;
      }
      Rec.putByte(0x3f);
      continue;
    }
    if (!prevIdent && (b | 0x20) == 0x78 || !prevIdent && (b | 0x20) == 0x62) {
      if (i + 1 < n && load<u8>(p + <usize>i + 1) == 0x27) {
        i += 2;
        while (i < n && load<u8>(p + <usize>i) != 0x27) i++;
        i = i + 1 > n ? n : i + 1;
        Rec.putByte(0x3f);
        continue;
      }
    }
    // identifiers / keywords: copy the whole run
    if (isIdentByte(b)) {
      let j = i + 1;
      while (j < n && isIdentByte(<u32>load<u8>(p + <usize>j))) j++;
      Rec.putRaw(p + <usize>i, j - i);
      i = j;
      continue;
    }
    Rec.putRaw(p + <usize>i, 1);
    i++;
  }
}
