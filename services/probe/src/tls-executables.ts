// TLS code linked into executables (Go crypto/tls): each executable file is inspected once and
// handed to a table of per-library handlers; the first that recognizes it attaches its uprobes
// (on the file: every process running it, now or later, is covered).
//
//   start ── /proc/*/exe, once ───────────────────────────────┐
//   sched_process_exec of a file not in exec_known (kernel) ──┴─▶ stat /proc/<pid>/exe (or, the
//        process already gone, the path execve got, same inode): a file not seen yet?
//        ─▶ ElfFile ─▶ handlers[i].attach(elf, path) ─▶ links | unsupported (logged once) | not mine
//        ─▶ (dev, ino) into exec_known: the kernel stops announcing the file
//
// No timer rescans /proc. A short-lived process (a client that runs for 10 ms) is often gone before
// its announcement is read: its file is then found by the path execve was given, checked by inode.
// When neither works (a relative path, a container's file) it is counted (gone) and not recorded,
// so the next process starting the file announces it again.
import fs from "node:fs";
import { ElfFile, ElfError } from "./elf.js";
import { LIB_KEY } from "./gen/layout.js";
import type { UprobeSpec } from "./native.js";

/** What a handler may do to the probe. */
export interface AttachPorts {
  attachUprobes(path: string, probes: UprobeSpec[]): number;
  setMapEntry(map: string, key: Buffer, value: Buffer): void;
}

/** The verdict of one handler on one executable. */
export type HandlerVerdict = { links: number } | { unsupported: string } | null;

/** One TLS implementation found inside executables (a row of the attach table). */
export interface ExecutableHandler {
  /** Counter prefix and log name, e.g. "go". */
  readonly name: string;
  /**
   * null: not this handler's; { unsupported }: present but cannot be traced (logged once per file);
   * { links }: attached. `path` names the file for the probe (/proc/self/fd/N of `elf`'s descriptor).
   * @throws when attaching failed (counted as attach_failed, logged once)
   */
  attach(elf: ElfFile, path: string, ports: AttachPorts): HandlerVerdict;
}

export interface TlsExecutablesStats {
  inspected: number;
  gone: number;
  unreadable: number;
  repeats: number;
  /** By handler name: attached, unsupported, attach_failed. */
  byHandler: Record<string, { attached: number; unsupported: number; attach_failed: number }>;
}

/** Files remembered in user space (the kernel map exec_known has the same bound). */
const MAX_FILES = 16384;

/** A kernel dev_t (major << 20 | minor) from a stat() st_dev (glibc's encoding). */
export function kernelDev(stDev: number): number {
  const major = Math.floor(stDev / 256) & 0xfff;
  const minor = (stDev & 0xff) | (Math.floor(stDev / 4096) & 0xfff00);
  return ((major << 20) | minor) >>> 0;
}

export function libKey(dev: number, ino: number): Buffer {
  const b = Buffer.alloc(LIB_KEY.size);
  b.writeBigUInt64LE(BigInt(ino), LIB_KEY.ino);
  b.writeUInt32LE(dev >>> 0, LIB_KEY.dev);
  return b;
}

export class TlsExecutables {
  /** "st_dev:st_ino" → what was found (handler name, or "" for nothing). */
  readonly files = new Map<string, { path: string; handler: string; error?: string }>();
  readonly stats: TlsExecutablesStats = { inspected: 0, gone: 0, unreadable: 0, repeats: 0, byHandler: {} };

  constructor(
    private readonly ports: AttachPorts,
    private readonly handlers: ExecutableHandler[],
    private readonly onError: (path: string, error: string) => void = () => {},
    private readonly procRoot = "/proc",
  ) {
    for (const h of handlers) this.stats.byHandler[h.name] = { attached: 0, unsupported: 0, attach_failed: 0 };
  }

  /** Every running process's executable, once (at start). */
  scanAll(): void {
    for (const pid of fs.readdirSync(this.procRoot)) {
      if (/^\d+$/.test(pid)) this.offer(Number(pid));
    }
  }

  /** The kernel announced an executable (dev, ino) started by `tgid` with execve(`filename`). */
  onExec(tgid: number, dev: number, ino: number, filename = ""): void {
    this.offer(tgid, { dev, ino, filename });
  }

  /** Where the probe can open the executable of `pid` (the announced inode, when announced). */
  private locate(pid: number, announced?: { ino: number; filename: string }): { exe: string; path: string; st: fs.Stats } | undefined {
    const proc = `${this.procRoot}/${pid}/exe`;
    const candidates = [proc];
    if (announced?.filename.startsWith("/")) candidates.push(`${this.procRoot}/${pid}/root${announced.filename}`, announced.filename);
    for (const exe of candidates) {
      let st: fs.Stats;
      try {
        st = fs.statSync(exe);
      } catch {
        continue;
      }
      if (announced && st.ino !== announced.ino) continue;
      let path = exe === proc ? exe : announced!.filename;
      if (exe === proc) {
        try {
          path = fs.readlinkSync(exe);
        } catch {
          // keep /proc/<pid>/exe for the log
        }
      }
      return { exe, path, st };
    }
    return undefined;
  }

  private offer(pid: number, announced?: { dev: number; ino: number; filename: string }): void {
    const located = this.locate(pid, announced);
    if (!located) {
      if (announced) this.stats.gone++; // exited, or a kernel thread (scan)
      return;
    }
    const { exe, path, st } = located;
    const key = `${st.dev}:${st.ino}`;
    const known = announced ?? { dev: kernelDev(st.dev), ino: st.ino };
    if (this.files.has(key)) {
      if (announced) this.stats.repeats++;
      this.markKnown(known.dev, known.ino);
      return;
    }
    let elf: ElfFile;
    try {
      elf = ElfFile.open(exe);
    } catch (e) {
      if (!(e instanceof ElfError)) {
        if (announced) this.stats.gone++;
        return; // the process is gone (or the file unreadable): nothing recorded, announced again
      }
      this.stats.unreadable++;
      this.remember(key, { path, handler: "" });
      this.markKnown(known.dev, known.ino);
      return;
    }
    this.stats.inspected++;
    let by = "";
    let error: string | undefined;
    try {
      for (const h of this.handlers) {
        let v: HandlerVerdict;
        try {
          // through the probe's own descriptor: valid even when the process is gone by now
          v = h.attach(elf, `/proc/self/fd/${elf.fd}`, this.ports);
        } catch (e) {
          error = (e as Error).message;
          this.stats.byHandler[h.name]!.attach_failed++;
          by = h.name;
          this.onError(path, error);
          break;
        }
        if (!v) continue;
        by = h.name;
        if ("unsupported" in v) {
          error = v.unsupported;
          this.stats.byHandler[h.name]!.unsupported++;
          this.onError(path, error);
        } else {
          this.stats.byHandler[h.name]!.attached++;
        }
        break;
      }
    } catch (e) {
      // a malformed file a handler could not read: counted, the file is not looked at again
      if (!(e instanceof ElfError)) throw e;
      this.stats.unreadable++;
    } finally {
      elf.close();
    }
    this.remember(key, { path, handler: by, error });
    this.markKnown(known.dev, known.ino);
  }

  private remember(key: string, v: { path: string; handler: string; error?: string }): void {
    if (this.files.size >= MAX_FILES) {
      // forget the oldest file with nothing attached (an attached one must never be attached twice)
      for (const [k, f] of this.files) {
        if (!f.handler) {
          this.files.delete(k);
          break;
        }
      }
    }
    this.files.set(key, v);
  }

  private markKnown(dev: number, ino: number): void {
    this.ports.setMapEntry("exec_known", libKey(dev, ino), Buffer.from([1]));
  }
}
