// InitProducerId (api key 22), v0-v5: throttle_time_ms error_code producer_id producer_epoch.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function initProducerIdResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  r.i32(); // throttle_time_ms
  const code = r.i16();
  if (r.ok) t.error(code);
}
