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

/** Deterministic 128-bit id as 32 hex chars. */
export function id128(s: string): string {
  return id64(s) + id64(s + "\u0001");
}

/** Uniform value in [0, 1) from a hex id (its first 8 hex digits). */
export function unitFromHex(h: string): number {
  const n = parseInt(h.slice(0, 8), 16);
  return Number.isFinite(n) ? n / 0x1_0000_0000 : 0;
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
  for (const w of [lo >>> 0, hi >>> 0]) {
    h = Math.imul(h ^ (w & 0xffff), 0x01000193) >>> 0;
    h = Math.imul(h ^ (w >>> 16), 0x01000193) >>> 0;
  }
  return h;
}

function mixStr(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return Math.imul(h ^ 0x7c, 0x01000193) >>> 0;
}

/** Deterministic 64-bit id (16 hex) from strings and numbers, without building a key string. */
export function id64Of(strs: readonly string[], nums: readonly number[]): string {
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
  const out = hex8(a) + hex8(b);
  return out === "0000000000000000" ? "0000000000000001" : out;
}
