// A loopback TCP relay that records the bytes of real client/server traffic, chunk by chunk,
// with timestamps, exactly as a socket-level probe would see them: the test points a real
// client at the relay, the relay forwards to the real server and keeps both directions.

import net from "node:net";

export interface CapturedChunk {
  /** 0 = client to server, 1 = server to client. */
  dir: 0 | 1;
  bytes: Uint8Array;
  tsNs: bigint;
}

export interface CapturedConnection {
  id: number;
  chunks: CapturedChunk[];
  closed: boolean;
}

export interface Relay {
  port: number;
  connections: CapturedConnection[];
  /** Stops listening and destroys open sockets. */
  close(): Promise<void>;
}

// Wall clock at start plus a monotonic clock: stamps never go backwards, as a probe's do (a
// reply is never stamped before its request).
const wallAtStart = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
const nowNs = () => wallAtStart + process.hrtime.bigint();

/** Starts a relay on 127.0.0.1 (free port) forwarding to 127.0.0.1:`targetPort`. */
export async function startRelay(targetPort: number, targetHost = "127.0.0.1"): Promise<Relay> {
  const connections: CapturedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const conn: CapturedConnection = { id: connections.length, chunks: [], closed: false };
    connections.push(conn);
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (b) => {
      conn.chunks.push({ dir: 0, bytes: Uint8Array.from(b), tsNs: nowNs() });
      upstream.write(b);
    });
    upstream.on("data", (b) => {
      conn.chunks.push({ dir: 1, bytes: Uint8Array.from(b), tsNs: nowNs() });
      client.write(b);
    });
    const done = () => {
      conn.closed = true;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", done);
    upstream.on("close", done);
    client.on("error", done);
    upstream.on("error", done);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
