// OffsetFetch (api key 9), v0-v9.
//   request v0-7:  group_id topics[ name partition_indexes[] ] (null = all, v2+) require_stable(v7)
//   request v8+:   groups[ group_id member_id(v9+) member_epoch(v9+) topics[ name
//                  partition_indexes[] ] ] require_stable
//   response v0-7: throttle_time_ms(v3+) topics[ name, partitions[ partition_index
//                  committed_offset committed_leader_epoch(v5+) metadata error_code ] ]
//                  error_code(v2+)
//   response v8+:  throttle_time_ms groups[ group_id topics[ name, partitions[ partition_index
//                  committed_offset committed_leader_epoch metadata error_code ] ] error_code ]
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { walkTopics, RESPONSE_NAME } from "./topics";

function requestTopics(r: Reader, flex: bool, t: KafkaTxn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    t.addTopic(r.str(flex));
    r.skip(r.arrayLen(flex) * 4); // partition_indexes
    r.tags(flex);
  }
}

export function offsetFetchRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v <= 7) {
    const group = r.str(flex);
    if (r.ok) t.groupId = group;
    requestTopics(r, flex, t);
    return;
  }
  const groups = r.arrayLen(flex);
  for (let g = 0; g < groups && r.ok; g++) {
    const group = r.str(flex);
    if (r.ok && g == 0) t.groupId = group;
    if (v >= 9) {
      r.skipStr(flex); // member_id
      r.i32(); // member_epoch
    }
    requestTopics(r, flex, t);
    r.tags(flex);
  }
}

function responsePartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition_index
  r.i64(); // committed_offset
  if (v >= 5) r.i32(); // committed_leader_epoch
  r.skipStr(flex); // metadata
  const code = r.i16();
  if (r.ok) t.error(code);
}

function responseTopics(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  walkTopics(r, v, flex, t, RESPONSE_NAME, responsePartition);
}

export function offsetFetchResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 3) r.i32(); // throttle_time_ms
  if (v <= 7) {
    responseTopics(r, v, flex, t);
    if (v >= 2) {
      const code = r.i16();
      if (r.ok) t.error(code);
    }
    return;
  }
  const groups = r.arrayLen(flex);
  for (let g = 0; g < groups && r.ok; g++) {
    r.skipStr(flex); // group_id
    responseTopics(r, v, flex, t);
    const code = r.i16();
    if (r.ok) t.error(code);
    r.tags(flex);
  }
}
