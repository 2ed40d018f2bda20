// Produce (api key 0), v0-v13. Topic names (v0-12) or topic ids (v13+), acks, per-partition errors.
//   request:  [transactional_id v3+] acks:int16 timeout_ms:int32
//             topic_data[ name | topic_id(v13+), partition_data[ index:int32 records:bytes ] ]
//   response: responses[ name | topic_id, partition_responses[ index error_code base_offset
//             log_append_time_ms(v2+) log_start_offset(v5+) record_errors[](v8+) error_message(v8+) ] ]
//             throttle_time_ms(v1+)
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function produceRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 3) r.skipStr(flex); // transactional_id
  const acks = r.i16();
  r.i32(); // timeout_ms
  if (r.ok && acks == 0) t.noResponse = true;
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    if (v >= 13) t.addTopicId(r.uuid());
    else t.addTopic(r.str(flex));
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
      r.i32(); // index
      r.skipBytes(flex); // records
      r.tags(flex);
    }
    r.tags(flex);
  }
  r.tags(flex);
}

export function produceResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const topics = r.arrayLen(flex);
  for (let i = 0; i < topics && r.ok; i++) {
    if (v >= 13) t.addTopicId(r.uuid());
    else t.responseTopic(r, flex);
    const parts = r.arrayLen(flex);
    for (let p = 0; p < parts && r.ok; p++) {
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
      r.tags(flex);
    }
    r.tags(flex);
  }
  if (v >= 1) r.i32(); // throttle_time_ms
  r.tags(flex);
}
