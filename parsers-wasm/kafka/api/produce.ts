// Produce (api key 0), v0-v13. Topic names (v0-12) or topic ids (v13+), acks, per-partition errors.
//   request:  [transactional_id v3+] acks:int16 timeout_ms:int32
//             topic_data[ name | topic_id(v13+), partition_data[ index:int32 records:bytes ] ]
//   response: responses[ name | topic_id, partition_responses[ index error_code base_offset
//             log_append_time_ms(v2+) log_start_offset(v5+) record_errors[](v8+) error_message(v8+) ] ]
//             throttle_time_ms(v1+)
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { walkTopics, NAME, RESPONSE_NAME, TOPIC_ID } from "./topics";

function requestPartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // index
  r.skipBytes(flex); // records: counted by the walk of the whole message (records.ts)
}

function responsePartition(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // index
  const code = r.i16();
  if (r.ok) t.error(code);
  r.i64(); // base_offset
  if (v >= 2) r.i64(); // log_append_time_ms
  if (v >= 5) r.i64(); // log_start_offset
  if (v >= 8) {
    const errs = r.arrayLen(flex);
    for (let e = 0; e < errs && r.ok; e++) {
      r.i32(); // batch_index
      r.skipStr(flex); // batch_index_error_message
      r.tags(flex);
    }
    r.skipStr(flex); // error_message
  }
}

export function produceRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 3) r.skipStr(flex); // transactional_id
  const acks = r.i16();
  r.i32(); // timeout_ms
  if (r.ok && acks == 0) t.noResponse = true;
  walkTopics(r, v, flex, t, v >= 13 ? TOPIC_ID : NAME, requestPartition);
  r.tags(flex);
}

export function produceResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  walkTopics(r, v, flex, t, v >= 13 ? TOPIC_ID : RESPONSE_NAME, responsePartition);
  if (v >= 1) r.i32(); // throttle_time_ms
  r.tags(flex);
}
