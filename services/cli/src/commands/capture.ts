// `wirescope capture`: like tcpdump, but per process. Runs its own instance of the BPF programs
// (whether or not `wirescope probe` runs) and writes what it sees as a pcapng that Wireshark and
// tshark open: one synthesized TCP stream per connection, process name/pid/container in packet
// comments, gaps left as gaps.
// The probe package is loaded only when the command runs: a broken addon must not break the CLI.
import type { FilterSpec } from "@wirescope/probe";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { UsageError, type Command } from "../command.js";

/** capture's flags: --help, the completions and the parser all read this table. */
export const CAPTURE_FLAGS: readonly FlagSpec[] = withEnv("capture", [
  { flag: "output", short: "o", value: "FILE.pcapng", description: "where the capture is written (required)" },
  { flag: "pid", repeatable: true, value: "N", description: "capture this process (repeatable)" },
  { flag: "port", repeatable: true, value: "N", description: "capture connections with this port (repeatable)" },
  { flag: "comm", repeatable: true, value: "NAME", description: "capture processes of this name, 1..15 bytes as in /proc/PID/comm (repeatable)" },
  { flag: "duration", value: "S", default: "until Ctrl-C", description: "stop after this many seconds" },
  { flag: "plaintext", description: "write TLS connections as the cleartext TCP they carry (read from the TLS library: OpenSSL, GnuTLS, Go, node), so tshark decodes them without keys" },
  { flag: "mount-tracefs", description: "mount tracefs on /sys/kernel/tracing when missing" },
  { flag: "chunk-bytes", value: "N", default: "16384", description: "payload cap per event (1..16384)" },
  { flag: "max-bytes-per-call", value: "N", default: "4 MiB", description: "bytes copied per syscall, the rest is a stated gap" },
]);

const USAGE = `usage: wirescope capture --output FILE.pcapng [options]

Captures the TCP traffic of the processes on this host with eBPF (root needed) and writes it as
pcapng: one TCP stream per connection with its real addresses and ports, the process name, pid and
container in packet comments. --pid, --port and --comm (each repeatable) select what is captured;
without them everything except this command itself is. Stops after --duration seconds or Ctrl-C.

TLS connections are written as they travel (ciphertext), like tcpdump. With --plaintext they are
written as the cleartext TCP connection they carry: the plaintext read from the TLS library in the
process (uprobes, no keys), in TCP segments with the real addresses and ports, the TLS handshake
left out; a connection whose plaintext cannot be read stays ciphertext (counted).

options:
${flagsHelp(CAPTURE_FLAGS)}`;

export interface CaptureArgs {
  output: string;
  durationS?: number;
  filter: FilterSpec;
  mountTracefs: boolean;
  plaintext: boolean;
  chunkBytes?: number;
  maxBytesPerCall?: number;
}

export function parseCaptureArgs(args: string[], env: NodeJS.ProcessEnv = process.env): CaptureArgs {
  const filter: FilterSpec = { allowPids: [], denyPids: [], allowPorts: [], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [] };
  const a: CaptureArgs = { output: "", filter, mountTracefs: false, plaintext: false };
  const num = (flag: string, v: string, max: number) => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || n <= 0 || n > max) throw new UsageError(`${flag}: expected a number in (0, ${max}], got "${v}"`);
    return n;
  };
  parseFlags(args, CAPTURE_FLAGS, { command: "capture", env }).each(({ flag: f, value: v }) => {
    switch (f) {
      case "--output": a.output = v; break;
      case "--pid": a.filter.allowPids.push(Math.trunc(num(f, v, 0x7fffffff))); break;
      case "--port": a.filter.allowPorts.push(Math.trunc(num(f, v, 65535))); break;
      case "--comm": {
        if (!v || Buffer.byteLength(v) > 15) throw new UsageError(`--comm: a process name of 1..15 bytes (as in /proc/PID/comm), got "${v}"`);
        a.filter.allowComms.push(v);
        break;
      }
      case "--duration": a.durationS = num(f, v, 7 * 86400); break;
      case "--mount-tracefs": a.mountTracefs = true; break;
      case "--plaintext": a.plaintext = true; break;
      case "--chunk-bytes": a.chunkBytes = Math.trunc(num(f, v, 16384)); break;
      case "--max-bytes-per-call": a.maxBytesPerCall = Math.trunc(num(f, v, 64 << 20)); break;
      default: throw new UsageError(`capture option ${f} is documented but not parsed`);
    }
  });
  if (!a.output) throw new UsageError("--output FILE.pcapng is required");
  return a;
}

const command: Command = {
  name: "capture",
  flags: CAPTURE_FLAGS,
  summary: "capture per-process TCP traffic with eBPF into a pcapng file (like tcpdump, with process names)",
  usage: USAGE,
  async run(argv) {
    const args = parseCaptureArgs(argv);
    const { EbpfSource, ProcessCache, monoToWallClock } = await import("@wirescope/probe");
    const { PcapngCapture } = await import("@wirescope/probe/pcapng-capture");
    const { randomConnKeyBase } = await import("@wirescope/probe/service");
    const { PcapngWriter } = await import("@wirescope/capture");
    const processes = new ProcessCache();
    // its own BPF instance, no single-instance lock: it runs alongside the probe service
    const source = new EbpfSource({
      mountTracefs: args.mountTracefs,
      filter: args.filter,
      connKeyBase: randomConnKeyBase(),
      chunkBytes: args.chunkBytes,
      maxBytesPerCall: args.maxBytesPerCall,
      batchMs: 20,
      // the TLS uprobes replace a connection's ciphertext by its plaintext: only when asked for
      tls: args.plaintext,
      // a process that ran exec is named by its new program from then on
      onProcessExec: (pid, ts) => processes.exec(pid, ts),
    });
    const writer = PcapngWriter.toFile(args.output, { application: "wirescope capture" });
    const capture = new PcapngCapture(writer, processes, monoToWallClock(), { plaintext: args.plaintext });
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const timer = args.durationS ? setTimeout(stop, args.durationS * 1000) : undefined;
    process.stderr.write(`capturing to ${args.output}${args.durationS ? ` for ${args.durationS} s` : ""}; Ctrl-C to stop\n`);
    try {
      // the data programs are attached once the filter maps are filled (EbpfSource): every event is asked for
      await source.run((b) => capture.add(b), ac.signal);
    } finally {
      if (timer) clearTimeout(timer);
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      capture.finish();
      writer.end();
    }
    const s = source.stats();
    const cs = capture.stats;
    const drops = Object.entries(s.drops).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(" ");
    const tls = args.plaintext
      ? `; TLS: ${cs.tlsStreams} connections as plaintext (${cs.cipherBytesOmitted} handshake bytes left out), ` +
        `${cs.tlsUndecrypted} left as ciphertext, ${cs.tlsRestarted} restarted, ${s.tls?.no_fd ?? 0} calls without their connection`
      : "";
    process.stderr.write(
      `${cs.connections} connections, ${writer.packets} packets, ${cs.bytes} bytes, ` +
        `${cs.gapBytes} bytes in gaps${drops ? `, drops: ${drops}` : ", no drops"}${tls}\n`,
    );
    if (capture.http2Ports.size) {
      // Wireshark recognizes HTTP/2 without TLS only on ports it dissects as HTTP (the HTTP
      // dissector then finds the preface); HTTP/1.1 is found on any port
      const ports = [...capture.http2Ports].sort((x, y) => x - y);
      process.stderr.write(
        `HTTP/2 plaintext on server port${ports.length > 1 ? "s" : ""} ${ports.join(", ")}: Wireshark needs Decode As HTTP there ` +
          `(tshark -r ${args.output} ${ports.map((p) => `-d tcp.port==${p},http`).join(" ")})\n`,
      );
    }
    return 0;
  },
};

export default command;
