// What counts as a secret, in one place: the probe masks process command lines with it, the
// parser masks header attributes with its header list, and configuration URLs are shown through
// it. (The WASM plugins keep their own copy of the query-parameter names, in AssemblyScript:
// parsers-wasm/http1/url.ts; every name there is a secret name here too, see redact.test.ts.)
//
// A command line is redacted word by word, knowing the usual ways secrets are passed:
//
//   --password=x  --db-token x  PGPASSWORD=x           flag or variable named like a secret
//   -pSECRET (mysql)  -a x (redis-cli)  -p x (sshpass)  short flags that carry one
//   -H 'Authorization: Bearer x'  -b 'sid=x'  -u u:x   curl/wget headers, cookies, user:password
//   scheme://user:x@host/?token=x&password=x            URL user info and query parameters
//   sh -c '…'                                           the script's own words, the same way
//
// Masking too much is acceptable (a path after --key is hidden), missing a secret is not.

/** What replaces a secret value. */
export const MASK = "[REDACTED]";

/** Request headers whose values are masked by default (the parser adds --redact-header names). */
export const DEFAULT_REDACTED_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

// Parts of a name that make it a secret wherever they appear (PGPASSWORD, x-amz-security-token)...
const SECRET_PART = /password|passwd|passphrase|secret|token|api-?_?key|credential|private-?_?key|access-?_?key|signature|authorization|cookie|session/;
// ...and whole segments (split at - _ .) that do (MYSQL_PWD, --auth, ?sig=, ?key=).
const SECRET_SEGMENTS = new Set(["pwd", "pw", "pass", "auth", "key", "sig", "sid", "code", "bearer"]);
// Names that point at a secret rather than hold it (--password-file /run/s, --token-ttl 60).
const NOT_A_VALUE = /[-_.](?:file|path|dir|stdin|env|length|len|ttl|timeout|expiry|expires|size|type|name)$/;

/** True when a flag, variable, parameter or header of this name carries a secret value. */
export function isSecretName(name: string): boolean {
  const n = name.replace(/^-+/, "").toLowerCase();
  if (!n || NOT_A_VALUE.test(n)) return false;
  return SECRET_PART.test(n) || n.split(/[-_.]/).some((s) => SECRET_SEGMENTS.has(s));
}

// user info ends at the authority's last "@" (a password may contain one)
// (each pattern starts only where its first part can begin a word, so a pass over text is linear)
const URL_USERINFO = /(?<![\w+.-])([a-z][\w+.-]*:\/\/)([^\s/,'"]*)@/gi;
// name=value inside text: query parameters, DSN words (password=x host=h), assignments in scripts
const KEY_VALUE = /(^|[^\w.-])([\w.-]+)=("[^"]*"|'[^']*'|[^\s&;'"]*)/g;
// "name": value inside JSON (curl -d '{"password":"x"}')
const JSON_MEMBER = /"([\w.-]+)"(\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)/g;
// "Name: value" inside text (a header in a script, or curl's -HName:value)
const HEADER_IN_TEXT = /(^-H|^|[^\w/-])([A-Za-z][\w-]*)[ \t]*:[ \t]*([^'"\r\n]+)/g;

/**
 * Masks passwords in URL user info (user:x@ → user:[REDACTED]@, a lone token@ → [REDACTED]@)
 * and values of secret-named query parameters, anywhere in `text` (a comma-separated list of
 * URLs too).
 */
export function redactUrl(text: string): string {
  return text
    .replace(URL_USERINFO, (_, scheme: string, cred: string) => `${scheme}${cred.includes(":") ? `${cred.slice(0, cred.indexOf(":"))}:${MASK}` : MASK}@`)
    .replace(KEY_VALUE, (m, pre: string, name: string) => (isSecretName(name) ? `${pre}${name}=${MASK}` : m));
}

/** Every rule that applies to free text: URLs and name=value pairs (redactUrl), JSON members, secret headers. */
export function redactText(text: string): string {
  let s = redactUrl(text);
  s = s.replace(JSON_MEMBER, (m, name: string, colon: string) => (isSecretName(name) ? `"${name}"${colon}"${MASK}"` : m));
  s = s.replace(HEADER_IN_TEXT, (m, pre: string, name: string) => (isSecretName(name) ? `${pre}${name}: ${MASK}` : m));
  return s;
}

/** "Name: value" with a secret header name → "Name: [REDACTED]"; anything else unchanged. */
function redactHeader(h: string): string {
  const m = /^\s*([A-Za-z][\w-]*)\s*:/.exec(h);
  return m && isSecretName(m[1]) ? `${m[1]}: ${MASK}` : redactText(h);
}

// Programs whose short flags take a secret as the next word (or, for -p, attached).
const NEXT_IS_SECRET: Record<string, Set<string>> = {
  curl: new Set(["--oauth2-bearer", "--cookie", "-b", "--aws-sigv4", "--proxy-pass", "--pass", "--tlspassword", "--netrc-file"]),
  "redis-cli": new Set(["-a", "--pass", "--askpass"]),
  sshpass: new Set(["-p"]),
};
// Flags whose next word is user:password (only the password is masked).
const USER_PASS_FLAGS: Record<string, Set<string>> = {
  curl: new Set(["-u", "--user", "-U", "--proxy-user"]),
  wget: new Set(["--user"]),
};
const HEADER_FLAGS = new Set(["-H", "--header", "--proxy-header"]);
const SHELL_OPERATORS = new Set(["&&", "||", ";", "|", "&", "(", ")", "!"]);
const WRAPPERS = new Set(["env", "sudo", "exec", "nohup", "time", "nice", "ionice", "setsid", "stdbuf", "timeout", "xargs", "command", "builtin"]);
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=/s;
const FLAG_VALUE = /^(--?[\w.-]+)=(.*)$/s;
const FLAG = /^--?[\w.-]+$/;

function programOf(word: string): string {
  return word.slice(word.lastIndexOf("/") + 1).toLowerCase();
}

/** argv with every secret value masked (see the header comment for the rules). */
export function redactArgv(argv: readonly string[], depth = 0): string[] {
  const out: string[] = [];
  let prog = "";
  let expectProgram = true;
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i];
    if (SHELL_OPERATORS.has(w)) {
      out.push(w);
      expectProgram = true;
      continue;
    }
    if (expectProgram && !ASSIGNMENT.test(w) && !w.startsWith("-")) {
      prog = programOf(w);
      expectProgram = WRAPPERS.has(prog);
    }
    const next = argv[i + 1];
    if (next !== undefined) {
      if (HEADER_FLAGS.has(w) || (prog === "curl" && /^-[a-zA-Z]+H$/.test(w))) {
        out.push(w, redactHeader(next));
        i++;
        continue;
      }
      if (USER_PASS_FLAGS[prog]?.has(w)) {
        out.push(w, next.includes(":") ? `${next.slice(0, next.indexOf(":"))}:${MASK}` : next);
        i++;
        continue;
      }
      if (NEXT_IS_SECRET[prog]?.has(w) || (FLAG.test(w) && isSecretName(w))) {
        out.push(w, MASK);
        i++;
        continue;
      }
    }
    out.push(redactWord(w, prog, depth));
  }
  return out;
}

function redactWord(w: string, prog: string, depth: number): string {
  const fv = FLAG_VALUE.exec(w);
  if (fv) {
    if (isSecretName(fv[1])) return `${fv[1]}=${MASK}`;
    if (HEADER_FLAGS.has(fv[1])) return `${fv[1]}=${redactHeader(fv[2])}`;
  }
  const as = ASSIGNMENT.exec(w);
  if (as && isSecretName(as[1])) return `${as[1]}=${MASK}`;
  // -pSECRET (mysql, mariadb and friends): never a port when it is not a number
  if (/^-p(?!\d+$)./s.test(w)) return `-p${MASK}`;
  if (prog === "curl" && /^-H./s.test(w)) return `-H${redactHeader(w.slice(2))}`;
  // a header given as one word, e.g. httpie's Authorization:'Bearer x'
  if (/^[A-Za-z][\w-]*:(?!\/\/)/.test(w) && isSecretName(w.slice(0, w.indexOf(":")))) return redactHeader(w);
  // an inline script (sh -c '…'): its words follow the same rules
  if (/\s/.test(w) && depth < 3) {
    const words = shellWords(w);
    if (words) {
      const red = redactArgv(words, depth + 1);
      // rebuilt (quoted anew) only when a word changed, so that clean text stays as it was
      if (red.some((x, k) => x !== words[k])) return redactText(red.map(quote).join(" "));
    }
  }
  return redactText(w);
}

/** Joins argv with spaces, every secret value masked. */
export function redactCommandLine(argv: readonly string[]): string {
  return redactArgv(argv).join(" ");
}

/** Splits a shell command into words ('…', "…", \x handled; operators are words); undefined when quotes do not close. */
export function shellWords(s: string): string[] | undefined {
  const words: string[] = [];
  let cur = "";
  let has = false;
  const flush = () => {
    if (has) words.push(cur);
    cur = "";
    has = false;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) return undefined;
      cur += s.slice(i + 1, j);
      has = true;
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === "\\" && j + 1 < s.length) j++;
        cur += s[j];
      }
      if (j >= s.length) return undefined;
      has = true;
      i = j;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      flush();
    } else if (c === ";" || c === "|" || c === "&" || c === "(" || c === ")") {
      flush();
      const two = s.slice(i, i + 2);
      const op = two === "&&" || two === "||" ? two : c;
      words.push(op);
      i += op.length - 1;
    } else {
      cur += c;
      has = true;
    }
  }
  flush();
  return words;
}

function quote(w: string): string {
  if (w === "") return "''";
  if (SHELL_OPERATORS.has(w) || /^[\w@%+=:,./[\]-]+$/.test(w)) return w;
  return `'${w.replace(/'/g, `'\\''`)}'`;
}
