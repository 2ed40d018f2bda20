// CreateTopics (api key 19) and DeleteTopics (api key 20): the topics an admin client touches.
//   CreateTopics request:  topics[ name num_partitions replication_factor assignments[] configs[] ] ...
//   CreateTopics response: throttle_time_ms(v2+) topics[ name topic_id(v7+) error_code
//                          error_message(v1+) ... ]
//   DeleteTopics request:  topic_names[](v0-5) | topics[ name topic_id ](v6+)
//   DeleteTopics response: throttle_time_ms(v1+) responses[ name topic_id(v6+) error_code
//                          error_message(v5+) ]
// Only the fields before the first topic's error are needed; the per-topic tails of
// CreateTopics responses (configs) are walked only as far as the first topic.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function createTopicsRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    t.addTopic(r.str(flex));
    r.i32(); // num_partitions
    r.i16(); // replication_factor
    const assignments = r.arrayLen(flex);
    for (let a = 0; a < assignments && r.ok; a++) {
      r.i32(); // partition_index
      r.skip(r.arrayLen(flex) * 4); // broker_ids
      r.tags(flex);
    }
    const configs = r.arrayLen(flex);
    for (let c = 0; c < configs && r.ok; c++) {
      r.skipStr(flex); // name
      r.skipStr(flex); // value
      r.tags(flex);
    }
    r.tags(flex);
  }
}

export function createTopicsResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 2) r.i32(); // throttle_time_ms
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    t.addTopic(r.str(flex));
    if (v >= 7) r.skip(16); // topic_id
    const code = r.i16();
    if (r.ok) t.error(code);
    if (v >= 1) r.skipStr(flex); // error_message
    if (v >= 5) {
      // topic_config_error_code is a tag; num_partitions, replication_factor, configs[] follow
      r.i32();
      r.i16();
      const configs = r.arrayLen(flex);
      for (let c = 0; c < configs && r.ok; c++) {
        r.skipStr(flex); // name
        r.skipStr(flex); // value
        r.i8(); // read_only
        r.i8(); // config_source
        r.i8(); // is_sensitive
        r.tags(flex);
      }
    }
    r.tags(flex);
  }
}

export function deleteTopicsRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    if (v >= 6) {
      const name = r.nullableStr(flex);
      if (name !== null) t.addTopic(name);
      r.skip(16); // topic_id
      r.tags(flex);
    } else {
      t.addTopic(r.str(flex));
    }
  }
}

export function deleteTopicsResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 1) r.i32(); // throttle_time_ms
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    const name = r.nullableStr(flex);
    if (name !== null) t.addTopic(name);
    if (v >= 6) r.skip(16); // topic_id
    const code = r.i16();
    if (r.ok) t.error(code);
    if (v >= 5) r.skipStr(flex); // error_message
    r.tags(flex);
  }
}
