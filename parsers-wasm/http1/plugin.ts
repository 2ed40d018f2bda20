// HTTP/1.x plugin entry: the ABI exports and the connection state (parsers-wasm/common).
export * from "../common/abi";
import { register, Connection, ByteQueue } from "../common/index";
import { H1Parser } from "./frame";
import { detectHttp1 } from "./sniff";

class Http1Connection extends Connection {
  p: H1Parser = new H1Parser();

  onData(dir: i32, q: ByteQueue, tsNs: i64): i32 {
    return this.p.onData(dir, q);
  }
  onGap(dir: i32, len: i32, tsNs: i64): i32 {
    return this.p.onGap(dir, len, tsNs);
  }
  onClose(tsNs: i64): i32 {
    return this.p.onClose(tsNs);
  }
  syncCounters(): void {
    const p = this.p;
    this.errors = p.desyncs;
    this.drops = p.orphans;
    this.droppedBytes = p.droppedBytes;
  }
  onFree(): void {
    this.p.free();
  }
}

register(detectHttp1, (): Connection => new Http1Connection());
