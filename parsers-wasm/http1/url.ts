// Request-target handling shared by the HTTP/1.1 and HTTP/2 decoders (RFC 9112 3.2, RFC 9113
// 8.3.1): split path and query, write `resource`, `url.path` and `url.query`.
//
//   origin-form     /where?q=now          path "/where", query "q=now"
//   absolute-form   http://h:80/where?q   path "/where" (proxies)
//   authority-form  host:443              CONNECT: no path; resource = the authority
//   asterisk-form   *                     OPTIONS *: path "*"
//
// Values of query parameters that commonly carry credentials always become "REDACTED"
// (OpenTelemetry's url.query guidance; credentials are redacted by default, with or without the
// host's redact flag), keys stay.

import { Rec, eqIgnoreCase } from "../common/index";

/** Offset where the path starts in an absolute-form target, 0 for others, -1 when there is no path. */
export function pathStart(p: usize, n: i32): i32 {
  if (n == 0) return -1;
  const c = load<u8>(p);
  if (c == 0x2f /* / */ || c == 0x2a /* * */) return 0;
  // absolute-form: scheme "://" authority [path]
  for (let i = 0; i + 2 < n; i++) {
    const b = load<u8>(p + <usize>i);
    if (b == 0x3a && load<u8>(p + <usize>i + 1) == 0x2f && load<u8>(p + <usize>i + 2) == 0x2f) {
      for (let j = i + 3; j < n; j++) {
        const d = load<u8>(p + <usize>j);
        if (d == 0x2f || d == 0x3f) return j;
      }
      return n; // "http://host" = path "/"
    }
    if (b == 0x2f || b == 0x3f) break;
  }
  return -1;
}

// Parameter names whose values commonly carry credentials, by length (checked per parameter
// only when redacting; the length switch keeps it cheap).
function secretKey(p: usize, n: i32): bool {
  switch (n) {
    case 3: return is(p, n, "pwd") || is(p, n, "key") || is(p, n, "sig");
    case 4: return is(p, n, "auth") || is(p, n, "code");
    case 5: return is(p, n, "token");
    case 6: return is(p, n, "secret") || is(p, n, "passwd") || is(p, n, "apikey");
    case 7: return is(p, n, "api_key") || is(p, n, "session");
    case 8: return is(p, n, "password") || is(p, n, "id_token");
    case 9: return is(p, n, "signature") || is(p, n, "sessionid");
    case 12: return is(p, n, "access_token");
    case 13: return is(p, n, "refresh_token") || is(p, n, "client_secret") || is(p, n, "authorization");
    case 14: return is(p, n, "awsaccesskeyid");
    case 15: return is(p, n, "x-amz-signature");
    case 16: return is(p, n, "x-amz-credential") || is(p, n, "x-goog-signature");
    case 20: return is(p, n, "x-amz-security-token");
  }
  return false;
}

@inline function is(p: usize, n: i32, s: string): bool {
  return eqIgnoreCase(p, n, s);
}

/** Writes url.query, masking credential values. */
function writeQuery(p: usize, n: i32): void {
  if (!hasSecret(p, n)) {
    Rec.attrRaw("url.query", p, n);
    return;
  }
  Rec.attrBegin("url.query");
  let i = 0;
  while (i <= n) {
    let j = i;
    while (j < n && load<u8>(p + <usize>j) != 0x26 /* & */) j++;
    // one parameter: p[i..j)
    let eq = i;
    while (eq < j && load<u8>(p + <usize>eq) != 0x3d /* = */) eq++;
    if (eq < j && secretKey(p + <usize>i, eq - i)) {
      Rec.putRaw(p + <usize>i, eq - i + 1);
      Rec.putStr("REDACTED");
    } else {
      Rec.putRaw(p + <usize>i, j - i);
    }
    if (j < n) Rec.putByte(0x26);
    i = j + 1;
  }
  Rec.attrEnd();
}

/** True when some parameter of the query p[0..n) has a credential-like name. */
function hasSecret(p: usize, n: i32): bool {
  let i = 0;
  while (i < n) {
    let j = i;
    while (j < n && load<u8>(p + <usize>j) != 0x26 && load<u8>(p + <usize>j) != 0x3d) j++;
    if (secretKey(p + <usize>i, j - i)) return true;
    while (j < n && load<u8>(p + <usize>j) != 0x26) j++;
    i = j + 1;
  }
  return false;
}

/**
 * Writes resource, url.path and url.query for a request target. `authority` (Host or :authority)
 * stands in as the resource of a CONNECT request.
 */
export function writeTarget(p: usize, n: i32): void {
  const s = pathStart(p, n);
  if (s < 0) {
    // authority-form (CONNECT) or garbage: the target itself is the resource, there is no path
    Rec.resourceRaw(p, n);
    return;
  }
  let q = s;
  while (q < n) {
    const c = load<u8>(p + <usize>q);
    if (c == 0x3f || c == 0x23) break;
    q++;
  }
  let frag = q;
  while (frag < n && load<u8>(p + <usize>frag) != 0x23) frag++;
  if (q == s) {
    Rec.resource("/");
    Rec.attrStr("url.path", "/");
  } else {
    Rec.resourceRaw(p + <usize>s, q - s);
    Rec.attrRaw("url.path", p + <usize>s, q - s);
  }
  if (q < frag && load<u8>(p + <usize>q) == 0x3f && frag - q - 1 > 0) writeQuery(p + <usize>q + 1, frag - q - 1);
}
