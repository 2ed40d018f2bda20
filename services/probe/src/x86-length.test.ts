import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { instructionLength, returnOffsets, instructionStarts, stackCheckBranch, callsTo, X86DecodeError } from "./x86-length.js";

// [hex bytes, length, what objdump shows]: vectors taken from objdump -d of Go binaries and libc,
// covering each length rule (prefixes, REX.W imm64, ModRM/SIB/displacements, immediates, 0F maps, VEX, EVEX)
const VECTORS: [string, number, string][] = [
  ["c3", 1, "ret"],
  ["f3c3", 2, "repz ret"],
  ["c20800", 3, "ret $0x8"],
  ["493b6610", 4, "cmp 0x10(%r14),%rsp"],
  ["0f86c2030000", 6, "jbe rel32"],
  ["4883ec68", 4, "sub $0x68,%rsp"],
  ["48896c2460", 5, "mov %rbp,0x60(%rsp)"],
  ["49c7c500000000", 7, "mov $0x0,%r13"],
  ["48898c2480000000", 8, "mov %rcx,0x80(%rsp)"],
  ["c644241f00", 5, "movb $0x0,0x1f(%rsp)"],
  ["48c744242000000000", 9, "movq $0x0,0x20(%rsp)"],
  ["440f117c2438", 6, "movups %xmm15,0x38(%rsp)"],
  ["488b1586ad3400", 7, "mov 0x34ad86(%rip),%rdx"],
  ["0f1f00", 3, "nopl (%rax)"],
  ["0f1f840000000000", 8, "nopl 0x0(%rax,%rax,1)"],
  ["6690", 2, "xchg %ax,%ax"],
  ["e8bb070000", 5, "call rel32"],
  ["f00fb1be58010000", 8, "lock cmpxchg %edi,0x158(%rsi)"],
  ["48b8efcdab8967452301", 10, "movabs $0x0123456789abcdef,%rax"],
  ["b8c3000000", 5, "mov $0xc3,%eax (a c3 byte that is no return)"],
  ["66b8c300", 4, "mov $0xc3,%ax"],
  ["f7c100010000", 6, "test $0x100,%ecx"],
  ["f6c101", 3, "test $0x1,%cl"],
  ["f7d8", 2, "neg %eax"],
  ["8b042500100000", 7, "mov 0x1000,%eax (SIB, no base: disp32)"],
  ["8b4c2408", 4, "mov 0x8(%rsp),%ecx"],
  ["8b8c2400010000", 7, "mov 0x100(%rsp),%ecx"],
  ["a1efcdab8967452301", 9, "movabs 0x0123456789abcdef,%eax"],
  ["66410f3a0fc108", 7, "palignr $0x8,%xmm9,%xmm0"],
  ["660f3800c1", 5, "pshufb %xmm1,%xmm0"],
  ["660f70c01b", 5, "pshufd $0x1b,%xmm0,%xmm0"],
  ["c5f877", 3, "vzeroupper"],
  ["c5fe6f06", 4, "vmovdqu (%rsi),%ymm0"],
  ["c4e37d39c001", 6, "vextracti128 $0x1,%ymm0,%xmm0"],
  ["c4e27d0004d0", 6, "vpshufb (%rax,%rdx,8),%ymm0,%ymm0"],
  ["62f1fe486f06", 6, "vmovdqu64 (%rsi),%zmm0"],
  ["62f17c48100424", 7, "vmovups (%rsp),%zmm0"],
  ["62f37d4839c101", 7, "EVEX map 0F3A with imm8"],
  ["cc", 1, "int3"],
  ["0f05", 2, "syscall"],
  ["0fa2", 2, "cpuid"],
  ["0fc8", 2, "bswap %eax"],
  ["0fbae001", 4, "bt $0x1,%eax"],
  ["eb05", 2, "jmp rel8"],
  ["e9c3000000", 5, "jmp rel32 (c3 in the displacement)"],
  ["c8100000", 4, "enter $0x10,$0x0"],
];

describe("instructionLength", () => {
  it("decodes objdump's lengths", () => {
    for (const [hex, len, what] of VECTORS) {
      assert.equal(instructionLength(Buffer.from(hex, "hex"), 0), len, `${hex}: ${what}`);
    }
  });
  it("refuses cut and invalid instructions with an error, never reads past the end", () => {
    for (const hex of ["48", "0f", "488b", "8b04", "48b8efcdab89", "e8bb07", "c5f8", "62f17c", "66", "0f04", "06", "d4"]) {
      assert.throws(() => instructionLength(Buffer.from(hex, "hex"), 0), X86DecodeError, hex);
    }
  });
});

describe("returnOffsets", () => {
  it("finds RETs at instruction boundaries only", () => {
    // mov $0xc3,%eax; test; jne rel8; ret; jmp rel32 (c3 inside); repz ret; ret $8
    const code = Buffer.from("b8c3000000" + "4885c0" + "7501" + "c3" + "e9c3000000" + "f3c3" + "c20800", "hex");
    assert.deepEqual(returnOffsets(code), [10, 16, 18]);
    assert.deepEqual(instructionStarts(code), [0, 5, 8, 10, 11, 16, 18]);
  });
  it("takes linear time: a long function is walked once", () => {
    const n = 100_000;
    const code = Buffer.concat([Buffer.from("4883ec68".repeat(n), "hex"), Buffer.from("c3", "hex")]);
    assert.deepEqual(returnOffsets(code), [4 * n]);
    assert.equal(instructionStarts(code).length, n + 1);
  });
});

describe("stackCheckBranch and callsTo", () => {
  it("finds the jbe of a Go prologue (small and big frames), and nothing in other prologues", () => {
    assert.equal(stackCheckBranch(Buffer.from("493b6610" + "0f86c2030000" + "4883ec68", "hex")), 4);
    assert.equal(stackCheckBranch(Buffer.from("493b6610" + "7605" + "c3", "hex")), 4);
    assert.equal(stackCheckBranch(Buffer.from("4c8da42400ffffff" + "4d3b6610" + "0f8600010000", "hex")), 12);
    assert.equal(stackCheckBranch(Buffer.from("55" + "4889e5" + "7605", "hex")), undefined, "push %rbp: not Go's prologue");
    assert.equal(stackCheckBranch(Buffer.from("7605c3", "hex")), undefined, "a jbe first reads no stack check");
    assert.equal(stackCheckBranch(Buffer.from("4889c1" + "493b6610" + "7605", "hex")), undefined, "a register moved before the check");
  });
  it("finds the calls of one target by their rel32", () => {
    // at 0x1000: call 0x2000; nop; call 0x3000; call 0x2000 (rel32 counted from the next instruction)
    const call = (at: number, to: number) => { const b = Buffer.alloc(5); b[0] = 0xe8; b.writeInt32LE(to - (at + 5), 1); return b; };
    const code = Buffer.concat([call(0x1000, 0x2000), Buffer.from([0x90]), call(0x1006, 0x3000), call(0x100b, 0x2000)]);
    assert.deepEqual(callsTo(code, 0x1000n, 0x2000n), [0, 11]);
    assert.deepEqual(callsTo(code, 0x1000n, 0x3000n), [6]);
  });
});
