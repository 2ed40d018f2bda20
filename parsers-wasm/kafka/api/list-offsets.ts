// ListOffsets (api key 2), v0-v10.
//   request:  replica_id isolation_level(v2+) topics[ name, partitions[ partition_index
//             current_leader_epoch(v4+) timestamp max_num_offsets(v0) ] ]
//   response: throttle_time_ms(v2+) topics[ name, partitions[ partition_index error_code
//             old_style_offsets[](v0) timestamp(v1+) offset(v1+) leader_epoch(v4+) ] ]
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function listOffsetsRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // replica_id
  if (v >= 2) r.i8(); // isolation_level
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    t.addTopic(r.str(flex));
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
      r.i32(); // partition_index
      if (v >= 4) r.i32(); // current_leader_epoch
      r.i64(); // timestamp
      if (v == 0) r.i32(); // max_num_offsets
      r.tags(flex);
    }
    r.tags(flex);
  }
}

export function listOffsetsResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 2) r.i32(); // throttle_time_ms
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    t.responseTopic(r, flex);
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
      r.i32(); // partition_index
      const code = r.i16();
      if (r.ok) t.error(code);
      if (v == 0) {
        const n = r.arrayLen(flex);
        r.skip(n * 8);
      } else {
        r.i64(); // timestamp
        r.i64(); // offset
        if (v >= 4) r.i32(); // leader_epoch
      }
      r.tags(flex);
    }
    r.tags(flex);
  }
}
