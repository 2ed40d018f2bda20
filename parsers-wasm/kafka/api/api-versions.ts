// ApiVersions (api key 18), v0-v4.
//   request v3+: client_software_name client_software_version (compact strings)
//   response:    error_code api_keys[ api_key min_version max_version ] throttle_time_ms(v1+)
// The response header is always v0 (see responseHeaderVersion). A broker that does not support
// the requested version answers in the v0 layout with UNSUPPORTED_VERSION (35): the error code
// comes first in every layout, so it is read before deciding how to walk the rest.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";

export function apiVersionsRequest(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  if (v >= 3) {
    r.skipStr(flex); // client_software_name
    r.skipStr(flex); // client_software_version
  }
}

export function apiVersionsResponse(r: Reader, v: i32, flex: bool, t: KafkaTxn): void {
  const code = r.i16();
  if (r.ok) t.error(code);
  if (code == 35) flex = false; // answered in the v0 layout
  const n = r.arrayLen(flex);
  for (let i = 0; i < n && r.ok; i++) {
    r.i16(); // api_key
    r.i16(); // min_version
    r.i16(); // max_version
    r.tags(flex);
  }
  if (r.ok) t.apiVersionsCount = n;
}
