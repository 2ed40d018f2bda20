// The shape most Kafka bodies share: topics[ name | topic_id, partitions[ ... ] ], with tagged
// fields closing each entry in flexible versions. The per-partition fields differ by API and
// version; `partition` reads one partition entry (its trailing tags included by this walker).
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

/** Reads the fields of one partition entry (without its tagged fields). */
export type PartitionFn = (r: Reader, v: i32, flex: bool, t: KafkaTxn) => void;

export const NAME: i32 = 0; // topics named in a request
export const RESPONSE_NAME: i32 = 1; // topics repeated by a response (decoded only if the request named none)
export const TOPIC_ID: i32 = 2; // topics identified by a 16-byte UUID (Fetch/Produce v13+)

export function walkTopics(r: Reader, v: i32, flex: bool, t: KafkaTxn, naming: i32, partition: PartitionFn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    if (naming == TOPIC_ID) t.addTopicId(r.uuid());
    else if (naming == RESPONSE_NAME) t.responseTopic(r, flex);
    else t.addTopic(r.str(flex));
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
      partition(r, v, flex, t);
      r.tags(flex);
    }
    r.tags(flex);
  }
}

/** partition_index:int32 error_code:int16 — the whole entry of several responses. */
export function indexAndError(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition_index
  const code = r.i16();
  if (r.ok) t.error(code);
}
