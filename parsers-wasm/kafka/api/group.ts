// Consumer group membership: JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14).
// All requests start with group_id; all responses carry one error code after an optional
// throttle_time_ms (JoinGroup v2+, the others v1+). LeaveGroup v3+ adds per-member errors.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function groupRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const group = r.str(flex);
  if (r.ok) t.groupId = group;
}

export function groupResponse(r: Reader, key: i32, v: i32, flex: bool, t: KafkaTxn): void {
  if (key == 11 ? v >= 2 : v >= 1) r.i32(); // throttle_time_ms
  const code = r.i16();
  if (r.ok) t.error(code);
  if (key == 13 && v >= 3) {
    const members = r.arrayLen(flex);
    for (let i = 0; i < members && r.ok; i++) {
      r.skipStr(flex); // member_id
      r.skipStr(flex); // group_instance_id
      const mcode = r.i16();
      if (r.ok) t.error(mcode);
      r.tags(flex);
    }
  }
}
