// Member offsets of named structs, read from DWARF (versions 2 to 5) .debug_info/.debug_abbrev:
// the one thing the Go TLS probes need of a binary's debug information (where tls.Conn keeps its
// net.Conn, where netFD keeps its fd). Every DIE is walked, attributes other than the name and
// member location are skipped by their form. Malformed input throws DwarfError.
//
//   unit: unit_length (4, or 0xffffffff + 8) version (2) [v5: unit_type (1) address_size (1)]
//         abbrev_offset (4|8) [v2-4: address_size (1)] [v5 type/skeleton units: more header]
//   DIE:  abbrev code (uleb; 0 = end of siblings) + attribute values in the abbrev's order
//   DW_TAG_structure_type "crypto/tls.Conn" ─children─▶ DW_TAG_member "conn" DW_AT_data_member_location 0

export class DwarfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DwarfError";
  }
}

const TAG_STRUCT = 0x13;
const TAG_MEMBER = 0x0d;
const AT_NAME = 0x03;
const AT_MEMBER_LOCATION = 0x38;
const FORM_IMPLICIT_CONST = 0x21;
const FORM_INDIRECT = 0x16;

interface Abbrev {
  tag: number;
  children: boolean;
  attrs: [number, number, bigint][]; // attribute, form, implicit constant
}

class Reader {
  constructor(readonly b: Buffer, public o = 0) {}
  need(n: number): void {
    if (this.o + n > this.b.length) throw new DwarfError(`read past the end of the section at ${this.o}`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.o++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16LE(this.o);
    this.o += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.o);
    this.o += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.b.readBigUInt64LE(this.o);
    this.o += 8;
    return v;
  }
  uleb(): bigint {
    let r = 0n, shift = 0n;
    for (;;) {
      const x = this.u8();
      r |= BigInt(x & 0x7f) << shift;
      if (!(x & 0x80)) return r;
      shift += 7n;
      if (shift > 70n) throw new DwarfError("LEB128 too long");
    }
  }
  ulebN(): number {
    return Number(this.uleb());
  }
  sleb(): bigint {
    let r = 0n, shift = 0n, x;
    do {
      x = this.u8();
      r |= BigInt(x & 0x7f) << shift;
      shift += 7n;
      if (shift > 70n) throw new DwarfError("LEB128 too long");
    } while (x & 0x80);
    return x & 0x40 ? r - (1n << shift) : r;
  }
  skip(n: number): void {
    this.need(n);
    this.o += n;
  }
  cstr(): string {
    const end = this.b.indexOf(0, this.o);
    if (end < 0) throw new DwarfError("unterminated string");
    const s = this.b.toString("utf8", this.o, end);
    this.o = end + 1;
    return s;
  }
}

function parseAbbrevs(abbrev: Buffer, off: number): Map<number, Abbrev> {
  const r = new Reader(abbrev, off);
  const out = new Map<number, Abbrev>();
  for (;;) {
    const code = r.ulebN();
    if (code === 0) return out;
    const tag = r.ulebN();
    const children = r.u8() === 1;
    const attrs: [number, number, bigint][] = [];
    for (;;) {
      const at = r.ulebN(), form = r.ulebN();
      if (at === 0 && form === 0) break;
      attrs.push([at, form, form === FORM_IMPLICIT_CONST ? r.sleb() : 0n]);
    }
    out.set(code, { tag, children, attrs });
  }
}

interface Unit {
  version: number;
  offsetSize: number;
  addrSize: number;
}

/** Reads one attribute value: a number for constants, a string for names, undefined otherwise. */
function readForm(r: Reader, form: number, u: Unit, str: Buffer | undefined, implicit: bigint): bigint | string | undefined {
  const off = () => (u.offsetSize === 8 ? r.u64() : BigInt(r.u32()));
  switch (form) {
    case 0x01: r.skip(u.addrSize); return undefined; // addr
    case 0x03: r.skip(r.u16()); return undefined; // block2
    case 0x04: r.skip(r.u32()); return undefined; // block4
    case 0x05: return BigInt(r.u16()); // data2
    case 0x06: return BigInt(r.u32()); // data4
    case 0x07: return r.u64(); // data8
    case 0x08: return r.cstr(); // string
    case 0x09: case 0x18: { // block, exprloc: DW_OP_plus_uconst n is a member location
      const n = r.ulebN();
      const start = r.o;
      r.skip(n);
      if (n >= 2 && r.b[start] === 0x23) return new Reader(r.b.subarray(start + 1, start + n)).uleb();
      return undefined;
    }
    case 0x0a: r.skip(r.u8()); return undefined; // block1
    case 0x0b: return BigInt(r.u8()); // data1
    case 0x0c: r.skip(1); return undefined; // flag
    case 0x0d: return r.sleb(); // sdata
    case 0x0e: { // strp
      const o = Number(off());
      if (!str || o >= str.length) return undefined;
      const end = str.indexOf(0, o);
      return str.toString("utf8", o, end < 0 ? str.length : end);
    }
    case 0x0f: return r.uleb(); // udata
    case 0x10: r.skip(u.version <= 2 ? u.addrSize : u.offsetSize); return undefined; // ref_addr
    case 0x11: r.skip(1); return undefined; // ref1
    case 0x12: r.skip(2); return undefined; // ref2
    case 0x13: r.skip(4); return undefined; // ref4
    case 0x14: r.skip(8); return undefined; // ref8
    case 0x15: r.uleb(); return undefined; // ref_udata
    case FORM_INDIRECT: return readForm(r, r.ulebN(), u, str, implicit);
    case 0x17: off(); return undefined; // sec_offset
    case 0x19: return undefined; // flag_present
    case 0x1a: r.uleb(); return undefined; // strx (needs str_offsets: not used by the names we look for)
    case 0x1b: r.uleb(); return undefined; // addrx
    case 0x1c: r.skip(4); return undefined; // ref_sup4
    case 0x1d: off(); return undefined; // strp_sup
    case 0x1e: r.skip(16); return undefined; // data16
    case 0x1f: off(); return undefined; // line_strp
    case 0x20: r.skip(8); return undefined; // ref_sig8
    case FORM_IMPLICIT_CONST: return implicit;
    case 0x22: case 0x23: r.uleb(); return undefined; // loclistx, rnglistx
    case 0x24: r.skip(8); return undefined; // ref_sup8
    case 0x25: case 0x29: r.skip(1); return undefined; // strx1, addrx1
    case 0x26: case 0x2a: r.skip(2); return undefined; // strx2, addrx2
    case 0x27: case 0x2b: r.skip(3); return undefined; // strx3, addrx3
    case 0x28: case 0x2c: r.skip(4); return undefined; // strx4, addrx4
    default: throw new DwarfError(`unknown attribute form 0x${form.toString(16)} at ${r.o}`);
  }
}

/**
 * For each struct name in `wanted`, the byte offset of each of its members that has a constant
 * location. The first definition of a name wins (Go emits each type once). Stops reading as soon
 * as every wanted struct was seen.
 */
export function structMemberOffsets(info: Buffer, abbrev: Buffer, str: Buffer | undefined, wanted: Set<string>): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const abbrevCache = new Map<number, Map<number, Abbrev>>();
  let unitStart = 0;
  while (unitStart < info.length && out.size < wanted.size) {
    const r = new Reader(info, unitStart);
    let len = r.u32();
    let offsetSize = 4;
    if (len === 0xffffffff) {
      len = Number(r.u64());
      offsetSize = 8;
    } else if (len >= 0xfffffff0) throw new DwarfError(`reserved unit length 0x${len.toString(16)}`);
    const end = r.o + len;
    if (end > info.length) throw new DwarfError(`unit at ${unitStart} runs past the section`);
    const version = r.u16();
    if (version < 2 || version > 5) throw new DwarfError(`DWARF version ${version}`);
    let addrSize: number, abbrevOff: number;
    if (version === 5) {
      const unitType = r.u8();
      addrSize = r.u8();
      abbrevOff = Number(offsetSize === 8 ? r.u64() : r.u32());
      if (unitType === 0x02 || unitType === 0x06) r.skip(8 + offsetSize); // type units: signature, type offset
      else if (unitType === 0x04 || unitType === 0x05) r.skip(8); // skeleton, split compile: dwo_id
    } else {
      abbrevOff = Number(offsetSize === 8 ? r.u64() : r.u32());
      addrSize = r.u8();
    }
    let abbrevs = abbrevCache.get(abbrevOff);
    if (!abbrevs) abbrevCache.set(abbrevOff, (abbrevs = parseAbbrevs(abbrev, abbrevOff)));
    const u: Unit = { version, offsetSize, addrSize };
    let depth = 0;
    let inStruct: Map<string, number> | undefined;
    let structDepth = -1;
    while (r.o < end) {
      const code = r.ulebN();
      if (code === 0) {
        depth--;
        if (depth <= structDepth) (inStruct = undefined), (structDepth = -1);
        if (depth < 0) break;
        continue;
      }
      const a = abbrevs.get(code);
      if (!a) throw new DwarfError(`unknown abbreviation ${code} at ${r.o}`);
      let name: string | undefined;
      let loc: bigint | undefined;
      for (const [at, form, implicit] of a.attrs) {
        const v = readForm(r, form, u, str, implicit);
        if (at === AT_NAME && typeof v === "string") name = v;
        else if (at === AT_MEMBER_LOCATION && typeof v === "bigint") loc = v;
      }
      if (a.tag === TAG_STRUCT && name !== undefined && wanted.has(name) && !out.has(name) && a.children) {
        inStruct = new Map();
        out.set(name, inStruct);
        structDepth = depth;
      } else if (inStruct && a.tag === TAG_MEMBER && depth === structDepth + 1 && name !== undefined && loc !== undefined) {
        inStruct.set(name, Number(loc));
      }
      if (a.children) depth++;
    }
    unitStart = end;
  }
  return out;
}
