// Local TCP ports in LISTEN state: the kernel programs use them to infer the role of connections
// that were open before the probe started. Asked of the kernel through sock_diag (the addon), or
// read from /proc/net/tcp and /proc/net/tcp6 when that is not available: /proc lists every
// socket, TIME_WAIT included (60,000 of them after a minute of 1,000 new connections/s), which
// the kernel walks and JS parses every refresh.
import fs from "node:fs";
import { nativeListenPorts } from "./native.js";

const TCP_LISTEN = "0A";

/** Parses /proc/net/tcp{,6} text into the set of listening local ports. */
export function parseListenPorts(text: string): number[] {
  const out = new Set<number>();
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== TCP_LISTEN) continue;
    const port = parseInt(f[1].split(":")[1] ?? "", 16);
    if (Number.isInteger(port) && port > 0) out.add(port);
  }
  return [...out];
}

/** Listening ports of this network namespace (empty when /proc is unreadable). */
export function readListenPorts(procRoot = "/proc"): number[] {
  const ports = new Set<number>();
  for (const f of ["net/tcp", "net/tcp6"]) {
    try {
      for (const p of parseListenPorts(fs.readFileSync(`${procRoot}/${f}`, "utf8"))) ports.add(p);
    } catch {
      // no IPv6, or no /proc: nothing to infer from
    }
  }
  return [...ports];
}

/** Listening ports of this network namespace: sock_diag, /proc when that fails. */
export function listenPorts(): number[] {
  return nativeListenPorts() ?? readListenPorts();
}
