// tshark's Kafka dissector as the oracle of the Kafka tests: `tshark -T json` (which decompresses
// every codec) read into one entry per Kafka PDU, with its record batches.
import { execFile } from "node:child_process";

type Json = { [k: string]: unknown };
export interface Batch {
  size: number;
  codec: number;
  control: boolean;
  /** records tshark decompressed and dissected (undefined: none shown) */
  dissected: number | undefined;
}
export interface Pdu {
  frame: number;
  toBroker: boolean;
  clientPort: number;
  corr: number;
  key: number;
  version: number | undefined;
  clientId: string | undefined;
  topics: string[];
  errors: number[];
  batches: Batch[];
  expert: string[];
}

/** Every value under `key` anywhere in `o` (arrays of repeated keys flattened). */
function collect(o: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(o)) for (const x of o) collect(x, key, out);
  else if (o && typeof o === "object") {
    for (const [k, v] of Object.entries(o as Json)) {
      if (k === key) out.push(...[v].flat());
      else collect(v, key, out);
    }
  }
  return out;
}

/** The objects of `o` that are record batches (they carry kafka.batch_size). */
function batches(o: unknown, out: Batch[] = []): Batch[] {
  if (Array.isArray(o)) for (const x of o) batches(x, out);
  else if (o && typeof o === "object") {
    const j = o as Json;
    if ("kafka.batch_size" in j) {
      const recs = j.Record;
      out.push({
        size: Number(j["kafka.batch_size"]),
        codec: Number(j["kafka.batch_codec"]),
        control: j["kafka.batch_control_batch"] === "1",
        dissected: recs === undefined ? undefined : Array.isArray(recs) ? recs.length : 1,
      });
    } else for (const v of Object.values(j)) batches(v, out);
  }
  return out;
}

/** tshark's dissection of a capture of the Kafka broker on `port`, one entry per Kafka PDU. */
export async function kafkaPdus(pcap: string, port: number): Promise<Pdu[]> {
  const args = ["-r", pcap, "-d", `tcp.port==${port},kafka`, "-Y", "kafka", "-T", "json", "--no-duplicate-keys"];
  const text = await new Promise<string>((resolve, reject) =>
    execFile("tshark", args, { maxBuffer: 512 << 20, timeout: 120_000 }, (err, stdout) => (err ? reject(new Error(`tshark failed: ${err.message}`)) : resolve(stdout))),
  );
  const pdus: Pdu[] = [];
  for (const f of JSON.parse(text) as { _source: { layers: Json } }[]) {
    const l = f._source.layers;
    const frame = Number((l.frame as Json)["frame.number"]);
    const tcp = l.tcp as Json;
    const toBroker = Number(tcp["tcp.dstport"]) === port;
    const clientPort = Number(toBroker ? tcp["tcp.srcport"] : tcp["tcp.dstport"]);
    // expert notes sit beside the field they are about, inside the PDU
    for (const k of [l.kafka].flat() as Json[]) {
      const str = (name: string) => (k[name] === undefined ? undefined : String([k[name]].flat()[0]));
      pdus.push({
        frame,
        toBroker,
        clientPort,
        corr: Number(str("kafka.correlation_id")),
        key: Number(str("kafka.api_key")),
        version: str("kafka.api_version") === undefined ? undefined : Number(str("kafka.api_version")),
        clientId: str("kafka.client_id"),
        topics: [...new Set(collect(k, "kafka.topic_name").map(String))],
        errors: collect(k, "kafka.error").map(Number),
        batches: batches(k),
        expert: collect(k, "_ws.expert.message").map(String),
      });
    }
  }
  return pdus;
}
