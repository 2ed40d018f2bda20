// A TCP proxy between NATS clients and a real nats-server that reads the client's side of the
// protocol (CONNECT, PING, SUB, PUB/HPUB with their payloads) and can lose or hold part of it, for
// faults the server cannot be made to produce: a JetStream pull request that never arrives, or a
// client whose every command is held up while the server's side of the connection still flows.
// The server's side is passed through untouched.
import net from "node:net";

/** What happens to what a client sends. */
export type ProxyMode =
  | "pass"
  /** PUB/HPUB to `$JS.API.CONSUMER.MSG.NEXT.…` (pull requests) are dropped, the rest passes. */
  | "drop-pulls"
  /** Everything is kept back, in order, and sent on once the mode is "pass" again. */
  | "hold";

export interface NatsProxy {
  url: string;
  mode: ProxyMode;
  /** Pull requests dropped so far. */
  readonly droppedPulls: number;
  close(): Promise<void>;
}

const PULL_PREFIX = "$JS.API.CONSUMER.MSG.NEXT.";
const CRLF = Buffer.from("\r\n");

/** One client connection's commands, split off its byte stream (a command waits for its payload). */
class CommandSplitter {
  private buf: Buffer = Buffer.alloc(0);

  /** The complete commands in `chunk` and before it, each with its payload, and whether it is a pull. */
  push(chunk: Buffer): { bytes: Buffer; pull: boolean }[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: { bytes: Buffer; pull: boolean }[] = [];
    for (;;) {
      const eol = this.buf.indexOf(CRLF);
      if (eol < 0) break;
      const line = this.buf.subarray(0, eol).toString("latin1");
      const words = line.split(" ").filter(Boolean);
      const op = (words[0] ?? "").toUpperCase();
      let total = eol + 2;
      if (op === "PUB" || op === "HPUB") {
        const size = Number(words[words.length - 1]);
        if (!Number.isInteger(size) || size < 0) throw new Error(`nats-proxy: bad ${op} line: ${line.slice(0, 200)}`);
        total += size + 2;
      }
      if (this.buf.length < total) break;
      out.push({ bytes: this.buf.subarray(0, total), pull: (op === "PUB" || op === "HPUB") && (words[1] ?? "").startsWith(PULL_PREFIX) });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}

/** Listens on a free loopback port and forwards to `target` ("nats://host:port"). */
export async function startNatsProxy(target: string): Promise<NatsProxy> {
  const t = new URL(target);
  const sockets = new Set<net.Socket>();
  const held: { up: net.Socket; bytes: Buffer }[] = [];
  let mode: ProxyMode = "pass";
  let droppedPulls = 0;
  const server = net.createServer((client) => {
    const up = net.connect(Number(t.port), t.hostname);
    sockets.add(client).add(up);
    const split = new CommandSplitter();
    up.pipe(client);
    client.on("data", (chunk: Buffer) => {
      let cmds: { bytes: Buffer; pull: boolean }[];
      try {
        cmds = split.push(chunk);
      } catch {
        client.destroy();
        return;
      }
      for (const c of cmds) {
        if (mode === "drop-pulls" && c.pull) droppedPulls++;
        else if (mode === "hold") held.push({ up, bytes: Buffer.from(c.bytes) });
        else up.write(c.bytes);
      }
    });
    const end = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on("close", end).on("error", end);
    up.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `nats://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    set mode(m: ProxyMode) {
      mode = m;
      if (m !== "hold") for (const h of held.splice(0)) if (!h.up.destroyed) h.up.write(h.bytes);
    },
    get droppedPulls() {
      return droppedPulls;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
