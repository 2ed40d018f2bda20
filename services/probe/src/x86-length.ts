// Instruction boundaries of x86-64 machine code (64-bit mode), enough to find a function's RET
// instructions: a byte 0xc3 inside another instruction (an immediate, a displacement) is not a
// return, so the code is walked instruction by instruction from the function's start. Only lengths
// are decoded: legacy prefixes, REX, the one-byte map, 0F, 0F38 and 0F3A maps, VEX (c4/c5) and
// EVEX (62), ModRM, SIB, displacement and immediate sizes (Intel SDM vol. 2, appendix A).
//
//   [prefixes] [REX] opcode [ModRM [SIB] [disp]] [imm]
//
// The Go TLS attach code checks every boundary of the functions it probes against objdump in its
// integration test.

/** Bits of a one-byte-map opcode's entry in OP1. */
const M = 1; // has ModRM
const I8 = 2; // imm8
const IZ = 4; // imm16/32 by operand size
const I16 = 8; // imm16
const X = 16; // not valid in 64-bit mode (or a prefix handled before the table)

// one-byte map, 256 entries (prefixes and escapes are handled in code before the table)
const OP1 = new Uint8Array(256);
for (let i = 0; i < 0x40; i += 8) {
  OP1[i] = OP1[i + 1] = OP1[i + 2] = OP1[i + 3] = M; // ALU r/m forms
  OP1[i + 4] = I8; // ALU al, imm8
  OP1[i + 5] = IZ; // ALU eax, imm32
  OP1[i + 6] = OP1[i + 7] = X; // push/pop seg, daa/das/aaa/aas, prefixes: invalid or prefixes
}
OP1[0x63] = M; // movsxd
OP1[0x68] = IZ; // push imm
OP1[0x69] = M | IZ; // imul r, r/m, imm
OP1[0x6a] = I8;
OP1[0x6b] = M | I8;
for (let i = 0x70; i < 0x80; i++) OP1[i] = I8; // jcc rel8
OP1[0x80] = M | I8;
OP1[0x81] = M | IZ;
OP1[0x82] = X;
OP1[0x83] = M | I8;
for (let i = 0x84; i < 0x90; i++) OP1[i] = M;
OP1[0x9a] = X;
OP1[0xa8] = I8;
OP1[0xa9] = IZ;
for (let i = 0xb0; i < 0xb8; i++) OP1[i] = I8;
for (let i = 0xb8; i < 0xc0; i++) OP1[i] = IZ; // imm64 with REX.W: handled in code
OP1[0xc0] = OP1[0xc1] = M | I8;
OP1[0xc2] = I16; // ret imm16
OP1[0xc6] = M | I8;
OP1[0xc7] = M | IZ;
OP1[0xc8] = I16 | I8; // enter
OP1[0xca] = I16;
OP1[0xcd] = I8;
OP1[0xce] = X;
for (let i = 0xd0; i < 0xd4; i++) OP1[i] = M;
OP1[0xd4] = OP1[0xd5] = OP1[0xd6] = X;
for (let i = 0xd8; i < 0xe0; i++) OP1[i] = M; // x87
for (let i = 0xe0; i < 0xe8; i++) OP1[i] = I8; // loop, jcxz, in, out
OP1[0xe8] = OP1[0xe9] = IZ; // call/jmp rel32 (rel16 with 66 is not valid in 64-bit mode: Intel ignores 66)
OP1[0xea] = X;
OP1[0xeb] = I8;
OP1[0xf6] = OP1[0xf7] = M; // test has an immediate when ModRM.reg is 0 or 1: in code
OP1[0xfe] = OP1[0xff] = M;

// 0F map: 1 = has ModRM, 2 = also imm8, 0 = no ModRM, 4 = rel32 (jcc), 8 = invalid
const OP2 = new Uint8Array(256).fill(1);
for (const b of [0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa]) OP2[b] = 0;
for (let i = 0xc8; i < 0xd0; i++) OP2[i] = 0; // bswap
for (const b of [0x04, 0x36, 0x39, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x7a, 0x7b, 0xa6, 0xa7]) OP2[b] = 8;
for (const b of [0x0f, 0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6]) OP2[b] = 2; // 0f 0f: 3DNow! suffix byte
for (let i = 0x80; i < 0x90; i++) OP2[i] = 4;

export class X86DecodeError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = "X86DecodeError";
  }
}

/** Bytes taken by ModRM, SIB and displacement starting at `o` (the ModRM byte). */
function modrmLength(code: Uint8Array, o: number, end: number): number {
  if (o >= end) throw new X86DecodeError("ModRM past the end", o);
  const modrm = code[o]!;
  const mod = modrm >> 6, rm = modrm & 7;
  if (mod === 3) return 1;
  let n = 1;
  if (rm === 4) {
    if (o + 1 >= end) throw new X86DecodeError("SIB past the end", o);
    n++;
    if (mod === 0 && (code[o + 1]! & 7) === 5) n += 4;
  } else if (mod === 0 && rm === 5) n += 4; // RIP-relative
  if (mod === 1) n += 1;
  else if (mod === 2) n += 4;
  return n;
}

/** Length in bytes of the instruction at `o`. @throws X86DecodeError on an invalid or cut instruction */
export function instructionLength(code: Uint8Array, o: number, end = code.length): number {
  const start = o;
  let opsize16 = false, addr32 = false, rexW = false;
  // legacy prefixes (at most 14 bytes in all)
  for (;;) {
    if (o >= end) throw new X86DecodeError("prefixes past the end", start);
    const b = code[o]!;
    if (b === 0x66) opsize16 = true;
    else if (b === 0x67) addr32 = true;
    else if (!(b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x26 || b === 0x64 || b === 0x65)) break;
    o++;
  }
  if (o < end && (code[o]! & 0xf0) === 0x40) {
    rexW = (code[o]! & 8) !== 0;
    o++;
  }
  if (o >= end) throw new X86DecodeError("opcode past the end", start);
  const op = code[o++]!;
  let len: number;
  if (op === 0xc4 || op === 0xc5 || op === 0x62) {
    // VEX (c5: 1 payload byte, map 0F; c4: 2, map in the low 5 bits) or EVEX (3 payload bytes)
    const payload = op === 0xc5 ? 1 : op === 0xc4 ? 2 : 3;
    if (o + payload >= end) throw new X86DecodeError("VEX/EVEX past the end", start);
    const map = op === 0xc5 ? 1 : op === 0xc4 ? code[o]! & 0x1f : code[o]! & 0x07;
    o += payload;
    const vop = code[o++]!;
    if (map === 1 && vop === 0x77) return o - start; // vzeroupper/vzeroall: no ModRM
    o += modrmLength(code, o, end);
    if (map === 3 || (map === 1 && (OP2[vop]! & 2))) o += 1;
    else if (map !== 1 && map !== 2) throw new X86DecodeError(`VEX/EVEX map ${map}`, start);
    len = o - start;
  } else if (op === 0x0f) {
    if (o >= end) throw new X86DecodeError("0F opcode past the end", start);
    const op2 = code[o++]!;
    if (op2 === 0x38) {
      o++; // opcode
      o += modrmLength(code, o, end);
    } else if (op2 === 0x3a) {
      o++;
      o += modrmLength(code, o, end) + 1;
    } else {
      const f = OP2[op2]!;
      if (f & 8) throw new X86DecodeError(`invalid opcode 0f ${op2.toString(16)}`, start);
      if (f & 4) o += 4;
      else if (f) o += modrmLength(code, o, end) + (f & 2 ? 1 : 0);
    }
    len = o - start;
  } else {
    const f = OP1[op]!;
    if (f & X) throw new X86DecodeError(`invalid opcode ${op.toString(16)} in 64-bit mode`, start);
    if (op >= 0xa0 && op <= 0xa3) o += addr32 ? 4 : 8; // mov moffs
    if (f & M) {
      if (o >= end) throw new X86DecodeError("ModRM past the end", start);
      const reg = (code[o]! >> 3) & 7;
      o += modrmLength(code, o, end);
      if (op === 0xf6 && reg <= 1) o += 1;
      if (op === 0xf7 && reg <= 1) o += opsize16 ? 2 : 4;
    }
    if (f & I16) o += 2;
    if (f & I8) o += 1;
    if (f & IZ) o += op >= 0xb8 && op <= 0xbf && rexW ? 8 : opsize16 ? 2 : 4;
    len = o - start;
  }
  if (start + len > end) throw new X86DecodeError("instruction past the end", start);
  if (len > 15) throw new X86DecodeError("instruction longer than 15 bytes", start);
  return len;
}

/** Offsets (from the start of `code`) of every RET (c3, c2 iw, with or without rep/bnd prefixes). */
export function returnOffsets(code: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = 0; o < code.length; ) {
    const n = instructionLength(code, o);
    let p = o;
    while (p < o + n - 1 && (code[p] === 0xf3 || code[p] === 0xf2)) p++;
    if (code[p] === 0xc3 || code[p] === 0xc2) out.push(o);
    o += n;
  }
  return out;
}

/** Every instruction's start offset (for checks against a disassembler). */
export function instructionStarts(code: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = 0; o < code.length; o += instructionLength(code, o)) out.push(o);
  return out;
}

/**
 * The offset of the conditional branch of a Go function's stack check, when the function starts
 * with one (`cmp 0x10(%r14),%rsp; jbe` or, for big frames, `lea -N(%rsp),%r12; cmp 0x10(%r14),%r12;
 * jbe`): it reads no argument register, and the kernel emulates a branch under a uprobe instead of
 * single-stepping it, which costs ~10 µs per hit in a VM. undefined when the prologue differs.
 */
export function stackCheckBranch(code: Uint8Array): number | undefined {
  let o = 0;
  for (let i = 0; i < 3 && o < code.length; i++) {
    const n = instructionLength(code, o);
    const b = code.subarray(o, o + n);
    const isJbe = (n === 2 && b[0] === 0x76) || (n === 6 && b[0] === 0x0f && b[1] === 0x86);
    if (isJbe) return i > 0 ? o : undefined;
    // cmp disp(%r14),%rsp|%r12 (REX.WB / REX.WRB 3b /r, base r14) or lea disp(%rsp),%r12
    const cmpR14 = (b[0] === 0x49 || b[0] === 0x4d) && b[1] === 0x3b && (b[2]! & 7) === 6 && (b[2]! >> 6) !== 3;
    const leaR12 = b[0] === 0x4c && b[1] === 0x8d && ((b[2]! >> 3) & 7) === 4 && (b[2]! & 7) === 4 && b[3] === 0x24;
    if (!cmpR14 && !leaR12) return undefined;
    o += n;
  }
  return undefined;
}

/** Offsets of the `call rel32` instructions of `code` (at link-time address `addr`) that call `target`. */
export function callsTo(code: Uint8Array, addr: bigint, target: bigint): number[] {
  const out: number[] = [];
  for (let o = 0; o < code.length; ) {
    const n = instructionLength(code, o);
    if (n === 5 && code[o] === 0xe8) {
      const rel = Buffer.from(code.buffer, code.byteOffset + o + 1, 4).readInt32LE(0);
      if (addr + BigInt(o + 5 + rel) === target) out.push(o);
    }
    o += n;
  }
  return out;
}
