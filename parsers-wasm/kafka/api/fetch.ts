// Fetch (api key 1), v0-v17. Topics by name (v0-12) or id (v13+); partition error codes.
//   request:  replica_id(v0-14) max_wait_ms min_bytes max_bytes(v3+) isolation_level(v4+)
//             session_id session_epoch(v7+) topics[ topic | topic_id, partitions[ partition
//             current_leader_epoch(v9+) fetch_offset last_fetched_epoch(v12+) log_start_offset(v5+)
//             partition_max_bytes ] ] ...
//   response: throttle_time_ms(v1+) error_code session_id(v7+) responses[ topic | topic_id,
//             partitions[ partition_index error_code high_watermark last_stable_offset(v4+)
//             log_start_offset(v5+) aborted_transactions[](v4+) preferred_read_replica(v11+)
//             records ] ]
// Responses can be megabytes of records; the body here may be only a prefix (MAX_BODY_PREFIX):
// the topics and partition error codes past it are read by the walk of the whole message
// (records.ts), as the bytes stream by.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { walkTopics, NAME, RESPONSE_NAME, TOPIC_ID } from "./topics";

function requestPartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition
  if (v >= 9) r.i32(); // current_leader_epoch
  r.i64(); // fetch_offset
  if (v >= 12) r.i32(); // last_fetched_epoch
  if (v >= 5) r.i64(); // log_start_offset
  r.i32(); // partition_max_bytes
}

function responsePartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // partition_index
  const code = r.i16();
  if (r.ok) t.error(code);
  r.i64(); // high_watermark
  if (v >= 4) r.i64(); // last_stable_offset
  if (v >= 5) r.i64(); // log_start_offset
  if (v >= 4) {
    const aborted = r.arrayLen(flex);
    for (let a = 0; a < aborted && r.ok; a++) {
      r.i64(); // producer_id
      r.i64(); // first_offset
      r.tags(flex);
    }
  }
  if (v >= 11) r.i32(); // preferred_read_replica
  r.skipBytes(flex); // records: counted by the walk of the whole message (records.ts)
}

export function fetchRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v <= 14) r.i32(); // replica_id
  r.i32(); // max_wait_ms
  r.i32(); // min_bytes
  if (v >= 3) r.i32(); // max_bytes
  if (v >= 4) r.i8(); // isolation_level
  if (v >= 7) {
    r.i32(); // session_id
    r.i32(); // session_epoch
  }
  walkTopics(r, v, flex, t, v >= 13 ? TOPIC_ID : NAME, requestPartition);
  // forgotten_topics_data, rack_id and tags follow; nothing in them names a new topic.
}

export function fetchResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 1) r.i32(); // throttle_time_ms
  if (v >= 7) {
    const code = r.i16();
    if (r.ok) t.error(code);
    r.i32(); // session_id
  }
  walkTopics(r, v, flex, t, v >= 13 ? TOPIC_ID : RESPONSE_NAME, responsePartition);
}
