// Which TLS library files carry the probe's uprobes. A uprobe is set on a file (inode), so one
// attach covers every process that maps it, now or later: libraries are keyed by (dev, inode),
// attached once, and never detached before the probe stops (the links die with it).
//
//   start ── /proc/*/maps, once ─────────────────────────────┐
//   sys_enter_mmap of a TLS_FILES name PROT_EXEC (kernel) ────┴─▶ (dev, ino) new? ─▶ path from
//        (announced until attached: tls_libs_known)                /proc/<pid>/maps ─▶ attachTls
//
// No timer rescans /proc: a process started later announces its library when it maps it
// (ld.so at exec, or dlopen as python's ssl module does). Which file is which library is one
// table, WS_TLS_FILES in bpf/wirescope.h (generated into TLS_FILES): the kernel matches names
// with it, user space the lines of /proc/<pid>/maps. A library of that table the probe cannot
// read (NSS, wolfSSL, ...) is said once per file (onError) and never announced again.
import fs from "node:fs";
import nodePath from "node:path";
import { TLS_FILES, WS_TLS_NONE } from "./gen/layout.js";

/** One executable mapping of a TLS library file in a process. */
export interface TlsMapping {
  /** The kernel's dev_t of the file's filesystem: major << 20 | minor. */
  dev: number;
  ino: number;
  /** The path as the process sees it (resolve through /proc/<pid>/root). */
  path: string;
  /** enum ws_tls_lib; WS_TLS_NONE for a library the probe cannot read. */
  lib: number;
  /** The library's name ("OpenSSL", "NSS"). */
  library: string;
}

// 7f1c2a3b4000-7f1c2a3d9000 r-xp 00021000 fe:01 1310912    /usr/lib/x86_64-linux-gnu/libssl.so.3
const MAPS_LINE = /^[0-9a-f]+-[0-9a-f]+ ..x. [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) (\d+) +(\/.*)$/;

/** The TLS_FILES row a file's name starts with. */
export function tlsFileOf(path: string): { lib: number; library: string } | undefined {
  const base = nodePath.basename(path);
  const row = TLS_FILES.find(([start]) => base.startsWith(start));
  return row && { lib: row[1], library: row[2] };
}

/** The executable TLS library mappings in the text of a /proc/<pid>/maps file (deduplicated). */
export function tlsMappings(maps: string): TlsMapping[] {
  const out: TlsMapping[] = [];
  const seen = new Set<string>();
  for (const line of maps.split("\n")) {
    if (!line.includes(".so")) continue;
    const m = MAPS_LINE.exec(line);
    if (!m || m[4]!.endsWith(" (deleted)")) continue;
    const f = tlsFileOf(m[4]!);
    if (!f) continue;
    const dev = ((parseInt(m[1]!, 16) << 20) | parseInt(m[2]!, 16)) >>> 0;
    const ino = Number(m[3]);
    const key = `${dev}:${ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ dev, ino, path: m[4]!, ...f });
  }
  return out;
}

/** What TlsLibraries does to the probe. */
export interface TlsLibraryPorts {
  /** Uprobes of library `lib` on the file; returns the links. @throws when refused */
  attach(path: string, dev: number, ino: number, lib: number): number;
  /** The file was looked at and not attached: no more announcements of it. */
  markKnown(dev: number, ino: number): void;
}

export interface TlsLibrariesStats {
  /** Library files with uprobes. */
  attached: number;
  /** Library files whose attach failed (reported once each in `failures`). */
  failed: number;
  /** Announcements of a file already handled (a failed one mapped again). */
  repeats: number;
  /** Announcements whose process was gone (or had no such mapping) before its maps were read. */
  gone: number;
  /** TLS library files present that the probe cannot read (reported once each in `onError`). */
  unsupported: number;
}

/**
 * Attaches the uprobes of each TLS library file once. `procRoot` is /proc (tests point it elsewhere).
 */
export class TlsLibraries {
  /** "dev:ino" → path attached, or the error that refused it. */
  readonly files = new Map<string, { path: string; links: number; error?: string }>();
  readonly stats: TlsLibrariesStats = { attached: 0, failed: 0, repeats: 0, gone: 0, unsupported: 0 };

  constructor(
    private readonly ports: TlsLibraryPorts,
    private readonly onError: (path: string, error: string) => void = () => {},
    private readonly procRoot = "/proc",
  ) {}

  /** Every running process's libraries, once (at start). Returns the files attached by this scan. */
  scanAll(): number {
    let n = 0;
    for (const pid of fs.readdirSync(this.procRoot)) {
      if (!/^\d+$/.test(pid)) continue;
      for (const m of this.mappingsOf(Number(pid))) if (this.offer(Number(pid), m)) n++;
    }
    return n;
  }

  /** A library mapping the kernel announced (dev, ino): its path is read from the process's maps. */
  onMapped(tgid: number, dev: number, ino: number): void {
    if (this.files.has(`${dev}:${ino}`)) {
      this.stats.repeats++;
      return;
    }
    const maps = this.mappingsOf(tgid);
    // the dev of an overlay file can differ between the kernel's inode and maps: the inode decides
    const m = maps.find((x) => x.ino === ino && x.dev === dev) ?? maps.find((x) => x.ino === ino);
    if (!m) {
      this.stats.gone++;
      return;
    }
    this.offer(tgid, { ...m, dev });
  }

  private mappingsOf(pid: number): TlsMapping[] {
    try {
      return tlsMappings(fs.readFileSync(`${this.procRoot}/${pid}/maps`, "utf8"));
    } catch {
      return []; // exited, or a kernel thread
    }
  }

  /** Attaches a file not seen before; true when it got uprobes. */
  private offer(pid: number, m: TlsMapping): boolean {
    const key = `${m.dev}:${m.ino}`;
    if (this.files.has(key)) return false;
    if (m.lib === WS_TLS_NONE) {
      const error = `${m.library}: TLS library present, its plaintext is not read by this probe`;
      this.files.set(key, { path: m.path, links: 0, error });
      this.stats.unsupported++;
      this.ports.markKnown(m.dev, m.ino);
      this.onError(m.path, error);
      return false;
    }
    // through the process's root, so a container's library is found from the host
    const path = `${this.procRoot}/${pid}/root${m.path}`;
    try {
      const links = this.ports.attach(path, m.dev, m.ino, m.lib);
      this.files.set(key, { path: m.path, links });
      this.stats.attached++;
      return true;
    } catch (e) {
      if (!fs.existsSync(`${this.procRoot}/${pid}`)) {
        // the process exited between reading its maps and the attach: not the file's fault, the
        // next process mapping it offers it again
        this.stats.gone++;
        return false;
      }
      const error = (e as Error).message;
      this.files.set(key, { path: m.path, links: 0, error });
      this.stats.failed++;
      this.onError(m.path, error);
      return false;
    }
  }
}
