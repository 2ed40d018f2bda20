// HTTP/1.x detection from the first bytes of either direction.
//
//   client: METHOD SP request-target SP "HTTP/1." DIGIT CRLF
//   server: "HTTP/1." DIGIT SP 3DIGIT SP reason CRLF
//
// A request that asks for "Upgrade: h2c" scores below the HTTP/2 plugin's claim, so that plugin
// (which decodes the upgrade and the HTTP/2 that follows) wins; the HTTP/2 preface scores 0.

import { isTchar, startsWithIgnoreCase, eqAscii } from "../common/index";

const METHODS: string[] = [
  "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
  "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH", "PURGE",
];

/** 2 = a known method, 1 = a prefix of one (more bytes needed), 0 = none. */
export function methodKnown(p: usize, n: i32): i32 {
  let best = 0;
  for (let k = 0; k < METHODS.length; k++) {
    const m = unchecked(METHODS[k]);
    const ml = m.length;
    if (n >= ml) {
      if (eqAscii(p, ml, m) && (n == ml || load<u8>(p + <usize>ml) == 0x20)) return 2;
    } else if (eqAscii(p, n, m.substring(0, n))) best = 1;
  }
  return best;
}

/** Plausible start of a request at p: 2 yes, 1 maybe (need more bytes), 0 no. */
export function requestStart(p: usize, n: i32): i32 {
  let i = 0;
  while (i < n && i < 20 && isTchar(<u32>load<u8>(p + <usize>i))) i++;
  if (i == n) return i <= 20 ? 1 : 0;
  if (i == 0 || load<u8>(p + <usize>i) != 0x20) return 0;
  // method must be upper-case letters (extension methods included)
  for (let k = 0; k < i; k++) {
    const c = <u32>load<u8>(p + <usize>k);
    if (c - 0x41 >= 26 && c != 0x2d && c != 0x5f) return 0;
  }
  return 2;
}

/**
 * A whole request line at p: 2 yes (known METHOD SP target SP HTTP/1.d line end), 1 maybe (a
 * plausible prefix: more bytes needed), 0 no. Stricter than requestStart: resynchronising
 * in the middle of a stream must not take a body line, or the tail of a request line, for a
 * request.
 */
export function requestLine(p: usize, n: i32): i32 {
  // a known method only: a request line that lost its first bytes still looks like one with an
  // extension method ("ET /a HTTP/1.1")
  const m = methodKnown(p, n);
  if (m != 2) return m;
  // methodKnown() saw the method whole: followed by SP, or by the end of the bytes ("GET" alone,
  // a chunk that ends after the method: the rest of the line is still to come)
  let i = 0;
  while (i < n && load<u8>(p + <usize>i) != 0x20) i++;
  if (i == n) return 1;
  i++;
  const t = i;
  while (i < n && i < t + MAX_RESYNC_LINE) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == 0x20 || c == 0x0a || c == 0x0d) break;
    if (c < 0x21 || c > 0x7e) return 0;
    i++;
  }
  if (i == n) return i - t < MAX_RESYNC_LINE ? 1 : 0;
  if (i == t || load<u8>(p + <usize>i) != 0x20) return 0;
  i++;
  // "HTTP/1.d" then CR or LF
  for (let k = 0; k < 7; k++) {
    if (i + k >= n) return 1;
    if (<u32>load<u8>(p + <usize>(i + k)) != <u32>HTTP1_PREFIX.charCodeAt(k)) return 0;
  }
  if (i + 8 >= n) return 1;
  if (<u32>load<u8>(p + <usize>(i + 7)) - 0x30 >= 10) return 0;
  const e = load<u8>(p + <usize>(i + 8));
  return e == 0x0d || e == 0x0a ? 2 : 0;
}

/** Longest request target accepted while resynchronising (a longer one waits for the next). */
const MAX_RESYNC_LINE: i32 = 8192;

const HTTP1_PREFIX = "HTTP/1.";

/** Plausible start of a response: 2 yes, 1 maybe, 0 no. */
export function responseStart(p: usize, n: i32): i32 {
  // "HTTP/1." compared byte by byte: this runs for every response, so no substring allocation
  const m = n < 7 ? n : 7;
  for (let i = 0; i < m; i++) if (<u32>load<u8>(p + <usize>i) != <u32>HTTP1_PREFIX.charCodeAt(i)) return 0;
  if (n < 12) return 1;
  const d = <u32>load<u8>(p + 7) - 0x30;
  if (d >= 10 || load<u8>(p + 8) != 0x20) return 0;
  for (let k = 9; k < 12; k++) if (<u32>load<u8>(p + <usize>k) - 0x30 >= 10) return 0;
  return 2;
}

/** True when the header section in p[0..n) carries "Upgrade: h2c" (case-insensitive). */
export function asksH2c(p: usize, n: i32): bool {
  for (let i = 0; i + 12 < n; i++) {
    if (load<u8>(p + <usize>i) != 0x0a) continue;
    if (startsWithIgnoreCase(p + <usize>i + 1, n - i - 1, "upgrade:")) {
      let j = i + 9;
      while (j < n && (load<u8>(p + <usize>j) == 0x20 || load<u8>(p + <usize>j) == 0x09)) j++;
      if (startsWithIgnoreCase(p + <usize>j, n - j, "h2c")) return true;
    }
  }
  return false;
}

/** Confidence (0..100) that the first bytes of direction `dir` are HTTP/1.x. */
export function detectHttp1(dir: i32, p: usize, n: i32): i32 {
  if (dir == 1) {
    const r = responseStart(p, n);
    return r == 2 ? 90 : r == 1 ? (n >= 5 ? 40 : 10) : 0;
  }
  if (n >= 3 && eqAscii(p, 3, "PRI")) return 0; // HTTP/2 preface
  const m = methodKnown(p, n);
  if (m == 0) return 0;
  if (m == 1) return 20;
  // find the end of the request line
  let eol = -1;
  for (let i = 0; i < n; i++) {
    if (load<u8>(p + <usize>i) == 0x0a) {
      eol = i;
      break;
    }
  }
  if (eol < 0) return 60;
  const lineEnd = eol > 0 && load<u8>(p + <usize>eol - 1) == 0x0d ? eol - 1 : eol;
  if (lineEnd < 10 || !eqAscii(p + <usize>lineEnd - 8, 7, "HTTP/1.")) return 0;
  if (asksH2c(p, n)) return 70;
  // Until the header section is complete, an "Upgrade: h2c" (the HTTP/2 plugin's) may still
  // come: stay below a claim, unless the headers are already long (the window is finite).
  if (!headerComplete(p, n)) return n >= 2048 ? 60 : 45;
  return 90;
}

/** True when p[0..n) holds a blank line (the end of a header section). */
export function headerComplete(p: usize, n: i32): bool {
  for (let i = 1; i < n; i++) {
    if (load<u8>(p + <usize>i) != 0x0a) continue;
    if (load<u8>(p + <usize>i - 1) == 0x0a) return true;
    if (i >= 3 && load<u8>(p + <usize>i - 1) == 0x0d && load<u8>(p + <usize>i - 2) == 0x0a) return true;
  }
  return false;
}
