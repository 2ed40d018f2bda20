// Metadata (api key 3), v0-v13.
//   request:  topics[ topic_id(v10+) name ] (null = all topics, v1+)
//   response: throttle_time_ms(v3+) brokers[ node_id host port rack(v1+) ] cluster_id(v2+)
//             controller_id(v1+) topics[ error_code name topic_id(v10+) is_internal(v1+)
//             partitions[ error_code partition_index leader_id leader_epoch(v7+)
//             replica_nodes[] isr_nodes[] offline_replicas[](v5+) ] authorized_ops(v8+) ]
// Responses also teach the instance which topic id belongs to which name (v10+, see
// topic-ids.ts), used to name the topics of Fetch v13+ / Produce v13+ requests that carry only ids.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { TopicNames } from "../topic-ids";

/** The null topic id: what an error entry for an unknown topic carries. */
const ZERO_UUID = "00000000000000000000000000000000";

export function metadataRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    if (v >= 10) r.skip(16); // topic_id
    const name = r.nullableStr(flex);
    if (name !== null) t.addTopic(name);
    r.tags(flex);
  }
}

/** Topic names from the response are added only when the request named none (all topics). */
export function metadataResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn, ids: TopicNames): void {
  const named = t.topics.length > 0;
  if (v >= 3) r.i32(); // throttle_time_ms
  const brokers = r.arrayLen(flex);
  for (let i = 0; i < brokers && r.ok; i++) {
    r.i32(); // node_id
    r.skipStr(flex); // host
    r.i32(); // port
    if (v >= 1) r.skipStr(flex); // rack
    r.tags(flex);
  }
  if (v >= 2) r.skipStr(flex); // cluster_id
  if (v >= 1) r.i32(); // controller_id
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    const code = r.i16();
    if (r.ok) t.error(code);
    const name = r.nullableStr(flex);
    if (v >= 10) {
      const id = r.uuid();
      if (r.ok && name !== null && name.length > 0 && id != ZERO_UUID && ids.learn(id, name)) t.learnedId(id, name);
    }
    if (!named && name !== null) t.addTopic(name);
    if (v >= 1) r.i8(); // is_internal
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
      const pcode = r.i16();
      if (r.ok) t.error(pcode);
      r.i32(); // partition_index
      r.i32(); // leader_id
      if (v >= 7) r.i32(); // leader_epoch
      r.skip(r.arrayLen(flex) * 4); // replica_nodes
      r.skip(r.arrayLen(flex) * 4); // isr_nodes
      if (v >= 5) r.skip(r.arrayLen(flex) * 4); // offline_replicas
      r.tags(flex);
    }
    if (v >= 8) r.i32(); // topic_authorized_operations
    r.tags(flex);
  }
}
