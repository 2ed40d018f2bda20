// One thread of `wirescope decode --jobs N`: decodes its shard of the connections and sends the
// lines to the main thread, which writes them. Flow control: at most MAX_INFLIGHT characters (bytes)
// unacknowledged; the main thread answers each chunk with its length once written.
import { parentPort, workerData } from "node:worker_threads";
import { UsageError } from "../command.js";
import { decodeShard, type Shard, type WorkerMessage } from "./decode.js";

const MAX_INFLIGHT = 8 << 20; // characters or bytes

const port = parentPort!;
const data = workerData as { args: Parameters<typeof decodeShard>[0] & { protos: [number, string][] }; shard: Shard };
const args = { ...data.args, protos: new Map(data.args.protos) };
let inflight = 0;
let waiting: (() => void) | undefined;
port.on("message", (n: number) => {
  inflight -= n;
  if (waiting && inflight < MAX_INFLIGHT) {
    const w = waiting;
    waiting = undefined;
    w();
  }
});
const send = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
try {
  const res = await decodeShard(
    args,
    data.shard,
    {
      write(s) {
        inflight += s.length;
        // bytes move to the main thread (no copy); text is copied
        send({ t: "out", s }, typeof s === "string" ? [] : [s.buffer as ArrayBuffer]);
        return inflight < MAX_INFLIGHT;
      },
      drain: () => new Promise<void>((resolve) => (waiting = resolve)),
    },
    (line) => send({ t: "err", line }),
  );
  send({ t: "done", records: res.records, counters: res.counters, warnings: res.warnings });
} catch (e) {
  send({ t: "fail", message: (e as Error).message, usage: e instanceof UsageError });
}
port.close();
