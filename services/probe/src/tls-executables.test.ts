import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TlsExecutables, kernelDev, libKey, type AttachPorts, type ExecutableHandler } from "./tls-executables.js";
import type { ElfFile } from "./elf.js";
import type { UprobeSpec } from "./native.js";

/** Records what the core asks of the probe. */
class Ports implements AttachPorts {
  readonly attached: { path: string; probes: UprobeSpec[] }[] = [];
  readonly known: Buffer[] = [];
  attachUprobes(path: string, probes: UprobeSpec[]): number {
    this.attached.push({ path, probes });
    return probes.length;
  }
  setMapEntry(map: string, key: Buffer): void {
    if (map === "exec_known") this.known.push(key);
  }
}

/** A handler that claims files whose ELF has a section named `marker`; counts its inspections. */
function handler(name: string, verdict: "attach" | "unsupported" | "throw"): ExecutableHandler & { seen: number } {
  return {
    name,
    seen: 0,
    attach(elf: ElfFile, p: string, ports: AttachPorts) {
      this.seen++;
      if (!elf.section(".text")) return null;
      if (verdict === "unsupported") return { unsupported: "stripped" };
      if (verdict === "throw") throw new Error("uprobe refused");
      return { links: ports.attachUprobes(p, [{ program: "x", offset: 1, cookie: 0 }]) };
    },
  };
}

/** A /proc-shaped directory: <root>/<pid>/exe links to `target`. */
function procTree(pids: Record<number, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tls-exec-proc-"));
  for (const [pid, target] of Object.entries(pids)) {
    fs.mkdirSync(path.join(root, pid));
    fs.symlinkSync(target, path.join(root, pid, "exe"));
  }
  return root;
}

describe("kernelDev", () => {
  it("turns stat's st_dev into the kernel's major << 20 | minor", () => {
    assert.equal(kernelDev((8 << 8) | 1), (8 << 20) | 1); // sda1
    assert.equal(kernelDev(0x2a), 0x2a); // overlay 0:42
    assert.equal(kernelDev(0x34 | (259 << 8) | (0x1200 << 12)), ((259 << 20) | 0x1234) >>> 0); // minor above 255
    assert.deepEqual(libKey(5, 7), Buffer.from([7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]));
  });
});

describe("TlsExecutables", () => {
  const elfFile = process.execPath; // a real ELF executable: this node
  const notElf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tls-exec-")), "script");
  fs.writeFileSync(notElf, "#!/bin/sh\n");

  it("inspects each file once, at start and on exec; marks it known in the kernel whatever the verdict", () => {
    const root = procTree({ 10: elfFile, 11: elfFile, 12: notElf });
    const ports = new Ports();
    const h = handler("go", "attach");
    const x = new TlsExecutables(ports, [h], () => {}, root);
    x.scanAll();
    assert.equal(h.seen, 1, "two processes of one file: one inspection");
    assert.equal(ports.attached.length, 1);
    assert.equal(x.stats.byHandler.go!.attached, 1);
    assert.equal(x.stats.unreadable, 1, "a file that is not ELF is counted");
    const st = fs.statSync(elfFile);
    x.onExec(11, 0x1234, st.ino, elfFile);
    assert.equal(h.seen, 1, "announced again (another dev spelling): not inspected twice");
    assert.equal(x.stats.repeats, 1);
    assert.ok(ports.known.some((k) => k.equals(libKey(0x1234, st.ino))), "the announced (dev, ino) is marked known");
    assert.ok(ports.known.some((k) => k.equals(libKey(kernelDev(st.dev), st.ino))), "the scanned file too");
  });

  it("finds the file of a process already gone by the path execve got (same inode only); else counts it gone", () => {
    const root = procTree({});
    const ports = new Ports();
    const h = handler("go", "attach");
    const x = new TlsExecutables(ports, [h], () => {}, root);
    const st = fs.statSync(elfFile);
    x.onExec(99, 1, st.ino + 1, elfFile);
    assert.equal(x.stats.gone, 1, "another inode at that path: not this file");
    x.onExec(99, 1, st.ino, "relative/path");
    assert.equal(x.stats.gone, 2, "a relative path cannot be resolved without the process");
    assert.equal(ports.known.length, 0, "a gone file is not marked known: the next exec announces it again");
    x.onExec(99, 1, st.ino, elfFile);
    assert.equal(ports.attached.length, 1);
    assert.match(ports.attached[0]!.path, /^\/proc\/self\/fd\/\d+$/, "attached through the probe's own descriptor");
  });

  it("an unsupported or failing file is logged once and counted once", () => {
    const root = procTree({ 20: elfFile });
    for (const verdict of ["unsupported", "throw"] as const) {
      const logged: string[] = [];
      const ports = new Ports();
      const x = new TlsExecutables(ports, [handler("go", verdict)], (p, e) => logged.push(`${p}: ${e}`), root);
      x.scanAll();
      const st = fs.statSync(elfFile);
      x.onExec(20, 1, st.ino, elfFile);
      x.onExec(20, 1, st.ino, elfFile);
      assert.equal(logged.length, 1, verdict);
      const c = x.stats.byHandler.go!;
      assert.deepEqual([c.attached, c.unsupported, c.attach_failed], verdict === "throw" ? [0, 0, 1] : [0, 1, 0]);
    }
  });

  it("the first handler that recognizes a file wins; the others are not asked", () => {
    const root = procTree({ 30: elfFile });
    const a = handler("a", "attach"), b = handler("b", "attach");
    const x = new TlsExecutables(new Ports(), [a, b], () => {}, root);
    x.scanAll();
    assert.deepEqual([a.seen, b.seen], [1, 0]);
  });
});
