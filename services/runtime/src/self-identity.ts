// What the kernel knows this process by, for the probe's "never trace the pipeline" rule. Inside a
// pod the pid is the container's, meaningless in the host's pid namespace where the kernel
// programs run; the cgroup v2 id is the same everywhere (bpf_get_current_cgroup_id() returns it,
// and it is the inode number of the cgroup's directory). The pid namespace tells the probe which
// of the two to use.
import fs from "node:fs";

export interface SelfIdentity {
  /** cgroup v2 id, decimal; "" when unknown (no cgroup v2 mount, cgroup v1 only). */
  cgroupId: string;
  /** inode of /proc/self/ns/pid, decimal; "" when unknown. */
  pidNs: string;
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** The cgroup v2 path in a /proc/<pid>/cgroup text ("0::/path"), or undefined. */
export function cgroupV2Path(text: string): string | undefined {
  for (const line of text.split("\n")) if (line.startsWith("0::")) return line.slice(3).trim() || undefined;
  return undefined;
}

/** Reads this process's cgroup v2 id and pid namespace (best effort: unknown parts are ""). */
export function selfIdentity(procRoot = "/proc", cgroupRoot = "/sys/fs/cgroup"): SelfIdentity {
  let cgroupId = "";
  let pidNs = "";
  try {
    const rel = cgroupV2Path(fs.readFileSync(`${procRoot}/self/cgroup`, "utf8"));
    // A path with ".." is outside our view of the hierarchy; the root cgroup (id 1 on the host)
    // holds everything not in a container and must never be denied.
    if (rel && !rel.includes("..") && fs.statfsSync(cgroupRoot).type === CGROUP2_SUPER_MAGIC) {
      const ino = fs.statSync(`${cgroupRoot}${rel === "/" ? "" : rel}`, { bigint: true }).ino;
      if (ino > 1n) cgroupId = ino.toString();
    }
  } catch {
    // no /proc or no cgroup2 mount: the probe falls back to the pid
  }
  try {
    pidNs = fs.statSync(`${procRoot}/self/ns/pid`, { bigint: true }).ino.toString();
  } catch {
    // no namespaces visible
  }
  return { cgroupId, pidNs };
}
