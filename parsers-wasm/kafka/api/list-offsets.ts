// ListOffsets (api key 2), v0-v10.
//   request:  replica_id isolation_level(v2+) topics[ name, partitions[ partition_index
//             current_leader_epoch(v4+) timestamp max_num_offsets(v0) ] ]
//   response: throttle_time_ms(v2+) topics[ name, partitions[ partition_index error_code
//             old_style_offsets[](v0) timestamp(v1+) offset(v1+) leader_epoch(v4+) ] ]
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { walkTopics, NAME, RESPONSE_NAME, indexAndError } from "./topics";

function requestPartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition_index
  if (v >= 4) r.i32(); // current_leader_epoch
  r.i64(); // timestamp
  if (v == 0) r.i32(); // max_num_offsets
}

function responsePartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  indexAndError(r, v, flex, t);
  if (v == 0) {
    r.skip(r.arrayLen(flex) * 8); // old_style_offsets
  } else {
    r.i64(); // timestamp
    r.i64(); // offset
    if (v >= 4) r.i32(); // leader_epoch
  }
}

export function listOffsetsRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // replica_id
  if (v >= 2) r.i8(); // isolation_level
  walkTopics(r, v, flex, t, NAME, requestPartition);
}

export function listOffsetsResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 2) r.i32(); // throttle_time_ms
  walkTopics(r, v, flex, t, RESPONSE_NAME, responsePartition);
}
