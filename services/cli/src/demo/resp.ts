// A minimal Redis client for the demo: one connection, commands pipelined in order, replies
// matched first in, first out. Enough for GET and SET; the demo's point is the bytes on the wire.
import net from "node:net";

type Reply = string | number | null | Error;

export class RespClient {
  private readonly sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  constructor(port: number, host = "127.0.0.1") {
    this.sock = net.connect(port, host);
    this.sock.setNoDelay(true);
    this.sock.on("data", (d) => this.onData(d));
    const fail = (e: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.sock.on("error", fail);
    this.sock.on("close", () => fail(new Error("redis connection closed")));
  }

  command(...args: string[]): Promise<Reply> {
    let out = `*${args.length}\r\n`;
    for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(out);
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const r = parse(this.buf);
      if (!r) return;
      this.buf = this.buf.subarray(r.used);
      this.waiting.shift()?.resolve(r.value);
    }
  }
}

/** One simple reply (+, -, :, $) from the front of `b`, or undefined when incomplete. */
function parse(b: Buffer): { value: Reply; used: number } | undefined {
  const eol = b.indexOf("\r\n");
  if (eol < 0) return undefined;
  const line = b.toString("utf8", 1, eol);
  switch (b[0]) {
    case 0x2b: // +
      return { value: line, used: eol + 2 };
    case 0x2d: // -
      return { value: new Error(line), used: eol + 2 };
    case 0x3a: // :
      return { value: Number(line), used: eol + 2 };
    case 0x24: {
      // $
      const n = Number(line);
      if (n < 0) return { value: null, used: eol + 2 };
      if (b.length < eol + 2 + n + 2) return undefined;
      return { value: b.toString("utf8", eol + 2, eol + 2 + n), used: eol + 2 + n + 2 };
    }
    default:
      return { value: new Error(`unexpected reply ${line}`), used: eol + 2 };
  }
}
