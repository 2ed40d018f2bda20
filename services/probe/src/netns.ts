// A node as a network namespace: the probe started with `--netns /var/run/netns/NAME` (or
// `--netns-inode N`) traces only the processes and sockets of that namespace. The kernel programs
// compare inode numbers (struct net's ns.inum, what stat() of /proc/<pid>/ns/net gives), so the
// namespace is named here by its inode.
import fs from "node:fs";
import { ConfigError } from "@wirescope/runtime";

/**
 * Inode of the network namespace file at `file` (a bind mount made by `ip netns add`, or
 * /proc/<pid>/ns/net). @throws ConfigError when it is missing or not a namespace file.
 */
export function netnsInodeOf(file: string, procRoot = "/proc"): number {
  let st: fs.Stats;
  let own: fs.Stats;
  try {
    st = fs.statSync(file);
    own = fs.statSync(`${procRoot}/self/ns/net`);
  } catch (e) {
    throw new ConfigError("bad_value", `--netns: cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  // every namespace file lives on the one nsfs device; a plain file left behind by a deleted
  // namespace (the bind mount gone) is on another
  if (st.dev !== own.dev) throw new ConfigError("bad_value", `--netns: ${file} is not a network namespace (no nsfs mount there: was it deleted?)`);
  return st.ino;
}

/** Inode of the network namespace of process `pid` (undefined when it is gone or unreadable). */
export function netnsOfPid(pid: number | "self", procRoot = "/proc"): number | undefined {
  try {
    return fs.statSync(`${procRoot}/${pid}/ns/net`).ino;
  } catch {
    return undefined;
  }
}

/**
 * A /proc/<pid> directory of some process in namespace `ino`, whose net/tcp lists that
 * namespace's sockets (the probe itself lives in another). The last one found is checked first;
 * a scan of /proc happens only when it has gone. Undefined when no process lives there: then no
 * socket can listen there either.
 */
export class NetnsProcRoot {
  private pid: number | undefined;
  /** Scans of /proc made (each reads every process's namespace link once). */
  scans = 0;

  constructor(private readonly ino: number, private readonly procRoot = "/proc") {}

  current(): string | undefined {
    if (this.pid !== undefined && netnsOfPid(this.pid, this.procRoot) === this.ino) return `${this.procRoot}/${this.pid}`;
    this.pid = undefined;
    this.scans++;
    let names: string[];
    try {
      names = fs.readdirSync(this.procRoot);
    } catch {
      return undefined;
    }
    for (const n of names) {
      if (!/^\d+$/.test(n)) continue;
      if (netnsOfPid(Number(n), this.procRoot) === this.ino) {
        this.pid = Number(n);
        return `${this.procRoot}/${n}`;
      }
    }
    return undefined;
  }
}
