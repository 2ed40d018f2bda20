// The whole read path in one loop: capture file → frames → TCP segments → reassembled streams.
import type { CaptureReaderOptions, CaptureReaderStats } from "./reader.js";
import { CaptureReader } from "./reader.js";
import { Verdict, decodeTcp, newTcpSegment, verdictNames } from "./packet.js";
import type { ReassemblerOptions, ReassemblerStats, StreamSink } from "./reassembly.js";
import { TcpReassembler } from "./reassembly.js";

export type SkipCounts = Record<Exclude<(typeof verdictNames)[number], "ok">, number>;

export interface CaptureStreamStats {
  reader: CaptureReaderStats;
  /** Frames that carried no TCP segment we could use, by reason. */
  skipped: SkipCounts;
  reassembly: ReassemblerStats;
}

/**
 * Drives a {@link CaptureReader} through {@link decodeTcp} into a {@link TcpReassembler}. Call
 * {@link step} until it returns false (so a caller can report progress or yield between steps),
 * or {@link run} once.
 */
export class CaptureStreams {
  readonly reassembler: TcpReassembler;
  private readonly seg = newTcpSegment();
  private readonly skipped: SkipCounts = { not_ip: 0, not_tcp: 0, ip_fragment: 0, malformed: 0, truncated_header: 0, unsupported_link: 0 };
  private finished = false;

  constructor(
    readonly reader: CaptureReader,
    sink: StreamSink,
    opts: Partial<ReassemblerOptions> = {},
  ) {
    this.reassembler = new TcpReassembler(sink, opts);
  }

  /** Opens a capture file for streaming into `sink`. Throws a CaptureError when it is not a capture. */
  static open(path: string, sink: StreamSink, opts: Partial<ReassemblerOptions & CaptureReaderOptions> = {}): CaptureStreams {
    return new CaptureStreams(CaptureReader.open(path, opts), sink, opts);
  }

  /** Processes up to maxPackets frames; false once the capture is done (connections closed). */
  step(maxPackets = 4096): boolean {
    if (this.finished) return false;
    const r = this.reader;
    const seg = this.seg;
    const ra = this.reassembler;
    for (let i = 0; i < maxPackets; i++) {
      const pkt = r.next();
      if (!pkt) {
        ra.finish();
        r.close();
        this.finished = true;
        return false;
      }
      const v = decodeTcp(pkt, seg);
      if (v === Verdict.OK) ra.push(seg, pkt.tsSec, pkt.tsNsec);
      else this.skipped[verdictNames[v] as keyof SkipCounts]++;
    }
    return true;
  }

  run(): CaptureStreamStats {
    while (this.step(1 << 16));
    return this.stats;
  }

  get stats(): CaptureStreamStats {
    return { reader: this.reader.stats, skipped: { ...this.skipped }, reassembly: this.reassembler.stats };
  }
}
