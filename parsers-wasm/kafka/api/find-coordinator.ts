// FindCoordinator (api key 10), v0-v6.
//   request:  key(v0-3) key_type(v1+) coordinator_keys[](v4+)
//   response: throttle_time_ms(v1+) error_code(v0-3) error_message(v1-3) node_id host port (v0-3)
//             coordinators[ key node_id host port error_code error_message ](v4+)
// key_type 0 = consumer group: its key is the group id.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function findCoordinatorRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v <= 3) {
    const key = r.str(flex);
    const type = v >= 1 ? r.i8() : 0;
    if (r.ok && type == 0) t.groupId = key;
  } else {
    const type = r.i8();
    const n = r.arrayLen(flex);
    for (let i = 0; i < n && r.ok; i++) {
      const key = r.str(flex);
      if (r.ok && type == 0 && i == 0) t.groupId = key;
    }
  }
}

export function findCoordinatorResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 1) r.i32(); // throttle_time_ms
  if (v <= 3) {
    const code = r.i16();
    if (r.ok) t.error(code);
    return;
  }
  const n = r.arrayLen(flex);
  for (let i = 0; i < n && r.ok; i++) {
    r.skipStr(flex); // key
    r.i32(); // node_id
    r.skipStr(flex); // host
    r.i32(); // port
    const code = r.i16();
    if (r.ok) t.error(code);
    r.skipStr(flex); // error_message
    r.tags(flex);
  }
}
