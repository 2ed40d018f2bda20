// InfluxDB before 1.8 has no /api/v2/write. The official client only speaks that path, so this
// transport wraps the client's own Node transport and maps each write:
//   POST /api/v2/write?org=o&bucket=db&precision=us  ->  POST /write?db=db&precision=u
// (1.x spells microseconds "u"; "us" is refused with HTTP 400). Everything else passes through.
import type { Transport, SendOptions, CommunicationObserver, ChunkCombiner, ResponseStartedFn } from "@influxdata/influxdb-client";

const PRECISION_V1: Record<string, string> = { ns: "ns", us: "u", ms: "ms", s: "s" };

/** Maps a v2 write path to the 1.x /write path; other paths are returned unchanged. */
export function mapWritePath(path: string, retentionPolicy?: string): string {
  if (!path.startsWith("/api/v2/write")) return path;
  const q = new URLSearchParams(path.slice(path.indexOf("?") + 1));
  let bucket = q.get("bucket") ?? "";
  let rp = retentionPolicy ?? "";
  // 1.8-style "db/rp" bucket names.
  const slash = bucket.indexOf("/");
  if (slash >= 0) {
    rp = rp || bucket.slice(slash + 1);
    bucket = bucket.slice(0, slash);
  }
  const out = new URLSearchParams({ db: bucket });
  if (rp) out.set("rp", rp);
  const p = q.get("precision");
  if (p) out.set("precision", PRECISION_V1[p] ?? p);
  const c = q.get("consistency");
  if (c) out.set("consistency", c);
  return `/write?${out.toString()}`;
}

export class V1WriteTransport implements Transport {
  readonly chunkCombiner: ChunkCombiner;

  constructor(
    private readonly inner: Transport,
    private readonly headers: Record<string, string>,
    private readonly retentionPolicy?: string,
  ) {
    this.chunkCombiner = inner.chunkCombiner;
  }

  private opts(o: SendOptions): SendOptions {
    return { ...o, headers: { ...o.headers, ...this.headers } };
  }

  send(path: string, body: string, options: SendOptions, callbacks?: Partial<CommunicationObserver<Uint8Array>>): void {
    this.inner.send(mapWritePath(path, this.retentionPolicy), body, this.opts(options), callbacks);
  }

  request(path: string, body: unknown, options: SendOptions, responseStarted?: ResponseStartedFn): Promise<unknown> {
    return this.inner.request(mapWritePath(path, this.retentionPolicy), body, this.opts(options), responseStarted);
  }

  iterate(path: string, body: unknown, options: SendOptions): AsyncIterableIterator<Uint8Array> {
    return this.inner.iterate(mapWritePath(path, this.retentionPolicy), body, this.opts(options));
  }
}
