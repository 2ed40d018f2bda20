// Kernel CPU of the probe's fd-table walks (bpf/wirescope.bpf.c, "process lifecycle"): the exit
// walk (task_exit, at the group's last thread) and the exec walk (task_exec), per process, by the
// kernel's own BPF statistics (run_time_ns, run_cnt of each program; kernel.bpf_stats_enabled is
// set to 1 for the run and put back after). Workloads, N processes each, one after another:
//   small     exits at once (a table of 64 slots; started by this node process: its child
//             inherits node's table, ~200 fds, closed at exec)
//   shell     the same, N children of one sh (fork, exec: a table of 64 slots)
//   files     1,000 open files (/dev/null), then exit (1,024 slots)
//   sockets   500 loopback TCP connections (1,000 tracked sockets: a close event each), then exit
//   high      one fd at the hard RLIMIT_NOFILE - 1 (20,000 here: the table grows to 32,768 slots;
//             WS_MAX_EXIT_FDS, 65,536, bounds the walk), then exit
//   exec      1,000 open close-on-exec files, then exec /bin/true (which exits with the table)
// The programs run for every process of the host: other processes' exits and execs during the run
// are in the figures too (their count is printed: runs beyond N per workload).
// Usage (root, after `npm run build`): node services/probe/bench/fd-walk-cost.mjs [processes=1000]
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EbpfSource } from "../dist/ebpf-source.js";

const N = Number(process.argv[2] ?? 1000);
// a small C program, so that the workload's own exits and execs outnumber the host's
const C = `
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (!strcmp(argv[1], "files") || !strcmp(argv[1], "exec")) {
    int fl = argv[1][0] == 'e' ? O_CLOEXEC : 0;
    for (int i = 0; i < 1000; i++) open("/dev/null", O_RDONLY | fl);
    if (fl) execl("/bin/true", "true", (char *)0);
  } else if (!strcmp(argv[1], "sockets")) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t l = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    bind(ls, (struct sockaddr *)&a, l); listen(ls, 1024); getsockname(ls, (struct sockaddr *)&a, &l);
    for (int i = 0; i < 500; i++) { int c = socket(AF_INET, SOCK_STREAM, 0); connect(c, (struct sockaddr *)&a, l); accept(ls, 0, 0); }
  } else if (!strcmp(argv[1], "high")) {
    struct rlimit r; getrlimit(RLIMIT_NOFILE, &r); r.rlim_cur = r.rlim_max; setrlimit(RLIMIT_NOFILE, &r);
    dup2(0, (int)r.rlim_max - 1);
  }
  return 0;
}
`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fd-walk-"));
fs.writeFileSync(path.join(dir, "fds.c"), C);
const prog = path.join(dir, "fds");
execFileSync("cc", ["-O1", "-o", prog, path.join(dir, "fds.c")]);

/** run_time_ns and run_cnt of this process's programs named `names` (their fds' fdinfo; names by bpftool). */
const progIds = new Map();
function stats(names) {
  const out = {};
  for (const fd of fs.readdirSync("/proc/self/fdinfo")) {
    let info;
    try {
      info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    } catch {
      continue;
    }
    const id = /^prog_id:\s*(\d+)/m.exec(info)?.[1];
    if (!id || !/^run_cnt:/m.test(info)) continue; // a link's fd names its program too
    if (!progIds.has(id)) progIds.set(id, JSON.parse(execFileSync("bpftool", ["prog", "show", "id", id, "-j"], { encoding: "utf8" })).name);
    const name = progIds.get(id);
    if (!names.includes(name)) continue;
    out[name] = { ns: Number(/^run_time_ns:\s*(\d+)/m.exec(info)?.[1] ?? 0), cnt: Number(/^run_cnt:\s*(\d+)/m.exec(info)?.[1] ?? 0) };
  }
  for (const n of names) if (!out[n]) throw new Error(`program ${n} not among this process's fds`);
  return out;
}

const before = fs.readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8").trim();
fs.writeFileSync("/proc/sys/kernel/bpf_stats_enabled", "1");
const src = new EbpfSource({ tls: false });
const ac = new AbortController();
let events = 0;
const done = src.run((b) => void (events += b.conns.length), ac.signal);
try {
  const names = ["task_exit", "task_exec", "tls_exec"];
  console.log(`fd-table walks, ${N} processes per workload, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  console.log("workload  program    µs per process  (runs: ours + others)");
  for (const mode of (process.env.MODES ?? "small,shell,files,sockets,high,exec").split(",")) {
    const a = stats(names);
    if (mode === "shell") spawnSync("sh", ["-c", `i=0; while [ $i -lt ${N} ]; do ${prog} small; i=$((i+1)); done`], { stdio: "ignore" });
    for (let i = 0; mode !== "shell" && i < N; i++) {
      const r = spawnSync(prog, [mode], { stdio: ["ignore", "ignore", "inherit"] });
      if (r.status !== 0) throw new Error(`${mode}: exited ${r.status}`);
    }
    const b = stats(names);
    for (const n of names) {
      const ns = b[n].ns - a[n].ns, cnt = b[n].cnt - a[n].cnt;
      console.log(`${mode.padEnd(9)} ${n.padEnd(10)} ${(ns / N / 1000).toFixed(1).padStart(14)}  (${cnt} runs, ${(ns / Math.max(cnt, 1) / 1000).toFixed(2)} µs a run)`);
    }
  }
  console.log(`close events from the probe: ${events}`);
} finally {
  ac.abort();
  await done;
  fs.writeFileSync("/proc/sys/kernel/bpf_stats_enabled", before);
  fs.rmSync(dir, { recursive: true, force: true });
}
