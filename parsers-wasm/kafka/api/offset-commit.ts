// OffsetCommit (api key 8), v0-v9.
//   request:  group_id generation_id(v1+) member_id(v1+) group_instance_id(v7+)
//             retention_time_ms(v2-4) topics[ name, partitions[ partition_index committed_offset
//             committed_leader_epoch(v6+) commit_timestamp(v1) committed_metadata ] ]
//   response: throttle_time_ms(v3+) topics[ name, partitions[ partition_index error_code ] ]
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { walkTopics, NAME, RESPONSE_NAME, indexAndError } from "./topics";

function requestPartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition_index
  r.i64(); // committed_offset
  if (v >= 6) r.i32(); // committed_leader_epoch
  if (v == 1) r.i64(); // commit_timestamp
  r.skipStr(flex); // committed_metadata
}

export function offsetCommitRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const group = r.str(flex);
  if (r.ok) t.groupId = group;
  if (v >= 1) {
    r.i32(); // generation_id_or_member_epoch
    r.skipStr(flex); // member_id
  }
  if (v >= 7) r.skipStr(flex); // group_instance_id
  if (v >= 2 && v <= 4) r.i64(); // retention_time_ms
  walkTopics(r, v, flex, t, NAME, requestPartition);
}

export function offsetCommitResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 3) r.i32(); // throttle_time_ms
  walkTopics(r, v, flex, t, RESPONSE_NAME, indexAndError);
}
