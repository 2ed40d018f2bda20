/** FNV-1a 32-bit over a string's UTF-16 code units with a chosen offset basis. */
export function fnv1a(s: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => (i < 16 ? "0" : "") + i.toString(16));
const hex8 = (n: number) => HEX2[(n >>> 24) & 255]! + HEX2[(n >>> 16) & 255]! + HEX2[(n >>> 8) & 255]! + HEX2[n & 255]!;

/** Deterministic 64-bit id as 16 hex chars (two independent FNV-1a lanes), never all zeros. */
export function id64(s: string): string {
  const a = fnv1a(s);
  const b = fnv1a(s, 0x050c5d1f) ^ Math.imul(a, 0x9e3779b1);
  const out = hex8(a) + hex8(b);
  return out === "0000000000000000" ? "0000000000000001" : out;
}

/**
 * Deterministic 128-bit id as 32 hex chars: `id64(s) + id64(s + "\u0001")`, computed in one pass
 * (FNV-1a is a stream: s + "\u0001" continues the state of s) into one flat string.
 */
export function id128(s: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  const a2 = Math.imul(a ^ 1, 0x01000193) >>> 0;
  const b2 = (Math.imul(b ^ 1, 0x01000193) ^ Math.imul(a2, 0x9e3779b1)) >>> 0;
  b = (b ^ Math.imul(a, 0x9e3779b1)) >>> 0;
  // id64's rule: never all zeros.
  return hex16(a, a === 0 && b === 0 ? 1 : b) + hex16(a2, a2 === 0 && b2 === 0 ? 1 : b2);
}

/**
 * The four 32-bit words of `id128(hex16(a, b))` (as its 32 hex digits print them) into `out`,
 * without making either string: span links derive trace ids from span ids held as two words, and
 * most of those trace ids are never written (the span is sampled out).
 */
export function id128Words(a: number, b: number, out: Uint32Array): void {
  let x = 0x811c9dc5;
  let y = 0x050c5d1f;
  for (let i = 28; i >= 0; i -= 4) {
    const c = HEXC[(a >>> i) & 15]!;
    x = Math.imul(x ^ c, 0x01000193) >>> 0;
    y = Math.imul(y ^ c, 0x01000193) >>> 0;
  }
  for (let i = 28; i >= 0; i -= 4) {
    const c = HEXC[(b >>> i) & 15]!;
    x = Math.imul(x ^ c, 0x01000193) >>> 0;
    y = Math.imul(y ^ c, 0x01000193) >>> 0;
  }
  const x2 = Math.imul(x ^ 1, 0x01000193) >>> 0;
  const y2 = (Math.imul(y ^ 1, 0x01000193) ^ Math.imul(x2, 0x9e3779b1)) >>> 0;
  y = (y ^ Math.imul(x, 0x9e3779b1)) >>> 0;
  out[0] = x;
  out[1] = x === 0 && y === 0 ? 1 : y;
  out[2] = x2;
  out[3] = x2 === 0 && y2 === 0 ? 1 : y2;
}

/** The two words of 16 lowercase hex digits (as `hex16` writes them) into out[at], out[at + 1]. */
export function hexWords(h: string, out: Uint32Array, at: number): void {
  let a = 0;
  let b = 0;
  for (let i = 0; i < 8; i++) a = a * 16 + hexDigit(h.charCodeAt(i));
  for (let i = 8; i < 16; i++) b = b * 16 + hexDigit(h.charCodeAt(i));
  out[at] = a;
  out[at + 1] = b;
}

const hexDigit = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : 0);

/** Uniform value in [0, 1) from a hex id (its first 8 hex digits, as parseInt(h.slice(0, 8), 16) reads them). */
export function unitFromHex(h: string): number {
  return wordFromHex(h) / 0x1_0000_0000;
}

/** The first 8 hex digits of a hex id as an integer below 2^32 (as parseInt(h.slice(0, 8), 16)
 *  reads them, 0 when none): `unitFromHex` × 2^32. */
export function wordFromHex(h: string): number {
  let n = 0;
  let i = 0;
  for (; i < 8 && i < h.length; i++) {
    const c = h.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) break;
    n = n * 16 + d;
  }
  return n;
}

export function bytesToHex(b: Uint8Array | undefined): string {
  if (!b || b.length === 0) return "";
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX2[b[i]!]!;
  return s;
}

/** Mixes a finite number into an FNV-1a lane (its integer and fractional parts, 32 bits each). */
function mixNum(h: number, n: number): number {
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n - hi * 0x1_0000_0000;
  // Low word, then high word (16 bits at a time).
  const l = lo >>> 0;
  const u = hi >>> 0;
  h = Math.imul(h ^ (l & 0xffff), 0x01000193) >>> 0;
  h = Math.imul(h ^ (l >>> 16), 0x01000193) >>> 0;
  h = Math.imul(h ^ (u & 0xffff), 0x01000193) >>> 0;
  h = Math.imul(h ^ (u >>> 16), 0x01000193) >>> 0;
  return h;
}

function mixStr(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return Math.imul(h ^ 0x7c, 0x01000193) >>> 0;
}

/** Deterministic 64-bit id (16 hex) from strings and numbers, without building a key string. */
export function id64Of(strs: readonly string[], nums: readonly number[]): string {
  id64Words(strs, nums, ID_WORDS);
  const a = ID_WORDS[0]!;
  const b = ID_WORDS[1]!;
  if (a === 0 && b === 0) return "0000000000000001";
  return hex16(a, b);
}

/** Scratch for `id64Words` callers. */
export const ID_WORDS = new Uint32Array(2);

/** The two 32-bit words of `id64Of` (before its all-zeros rule), written to `out`. */
export function id64Words(strs: readonly string[], nums: readonly number[], out: Uint32Array): void {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (const s of strs) {
    a = mixStr(a, s);
    b = mixStr(b, s);
  }
  for (const n of nums) {
    a = mixNum(a, n);
    b = mixNum(b, n);
  }
  b = (b ^ Math.imul(a, 0x9e3779b1)) >>> 0;
  out[0] = a;
  out[1] = b;
}

const HEXC: number[] = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));
const nib = (n: number, shift: number) => HEXC[(n >>> shift) & 15]!;

/** Two uint32 as 16 hex chars in one flat string (no intermediate concatenations kept alive). */
export function hex16(a: number, b: number): string {
  return String.fromCharCode(
    nib(a, 28), nib(a, 24), nib(a, 20), nib(a, 16), nib(a, 12), nib(a, 8), nib(a, 4), nib(a, 0),
    nib(b, 28), nib(b, 24), nib(b, 20), nib(b, 16), nib(b, 12), nib(b, 8), nib(b, 4), nib(b, 0),
  );
}

/** FNV-1a (31 bits, a small integer) over the parts of a connection 4-tuple: a Map key, not an id. */
export function tupleHash(clientAddress: string, clientPort: number, serverAddress: string, serverPort: number): number {
  let h = mixStr(0x811c9dc5, clientAddress);
  h = Math.imul(h ^ clientPort, 0x01000193) >>> 0;
  h = mixStr(h, serverAddress);
  h = Math.imul(h ^ serverPort, 0x01000193) >>> 0;
  return h >>> 1;
}
