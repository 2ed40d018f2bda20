import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { redactCommandLine, redactUrl, redactText, isSecretName, shellWords, DEFAULT_REDACTED_HEADERS, MASK } from "./redact.js";

const R = MASK;

describe("redactCommandLine", () => {
  // [argv, expected]: every secret below is spelled S3CR3T... so a leak is easy to see.
  const cases: [string[], string][] = [
    [["mysql", "-uroot", "-pS3CR3T", "db"], `mysql -uroot -p${R} db`],
    [["mariadb", "--password=S3CR3T", "-h", "db"], `mariadb --password=${R} -h db`],
    [["app", "--password=hunter2", "--db-token", "S3CR3T", "--port", "80"], `app --password=${R} --db-token ${R} --port 80`],
    [["psql", "postgres://bob:S3CR3T@host/db"], `psql postgres://bob:${R}@host/db`],
    [["psql", "host=db user=bob password=S3CR3T dbname=x"], `psql host=db user=bob password=${R} dbname=x`],
    [["git", "clone", "https://S3CR3T@github.com/o/r"], `git clone https://${R}@github.com/o/r`],
    [["curl", "-H", "Authorization: Bearer S3CR3T", "http://h/"], `curl -H Authorization: ${R} http://h/`],
    [["curl", "--header", "Cookie: sid=S3CR3T", "-H", "Accept: */*", "http://h/"], `curl --header Cookie: ${R} -H Accept: */* http://h/`],
    [["curl", "-HX-Api-Key: S3CR3T", "--header=Proxy-Authorization: Basic S3CR3T", "http://h/"], `curl -HX-Api-Key: ${R} --header=Proxy-Authorization: ${R} http://h/`],
    [["curl", "-u", "bob:S3CR3T", "-b", "sid=S3CR3T", "--oauth2-bearer", "S3CR3T", "http://h/"], `curl -u bob:${R} -b ${R} --oauth2-bearer ${R} http://h/`],
    [["curl", "http://h/login?user=bob&password=S3CR3T&next=/"], `curl http://h/login?user=bob&password=${R}&next=/`],
    [["curl", "https://h/cb?code=S3CR3T&state=1&access_token=S3CR3T"], `curl https://h/cb?code=${R}&state=1&access_token=${R}`],
    [["curl", "-d", '{"user":"bob","password":"S3CR3T"}', "http://h/"], `curl -d {"user":"bob","password":"${R}"} http://h/`],
    [["env", "PGPASSWORD=S3CR3T", "MYSQL_PWD=S3CR3T", "AWS_SECRET_ACCESS_KEY=S3CR3T", "HOME=/root", "psql"], `env PGPASSWORD=${R} MYSQL_PWD=${R} AWS_SECRET_ACCESS_KEY=${R} HOME=/root psql`],
    [["redis-cli", "-a", "S3CR3T", "-p", "6379"], `redis-cli -a ${R} -p 6379`],
    [["sshpass", "-p", "S3CR3T", "ssh", "host"], `sshpass -p ${R} ssh host`],
    [["http", "GET", "h/", "Authorization:Bearer S3CR3T"], `http GET h/ Authorization: ${R}`],
    [["sh", "-c", "cd /app && PGPASSWORD=S3CR3T psql -h db; curl -sH 'Authorization: Bearer S3CR3T' -u u:S3CR3T http://h/"], `sh -c cd /app && PGPASSWORD=${R} psql -h db ; curl -sH 'Authorization: ${R}' -u u:${R} http://h/`],
    [["bash", "-c", "mysql -pS3CR3T -e 'select 1'"], `bash -c mysql -p${R} -e 'select 1'`],
    // a value with spaces after a secret name: all of it is masked, not only its first word
    [["app", "--password=two words", "TOKEN=a b"], `app --password=${R} TOKEN=${R}`],
    // what stays: ports, paths to secret files, plain words
    [["node", "server.js", "--port", "8080", "-p8080", "--password-file", "/run/secrets/db"], "node server.js --port 8080 -p8080 --password-file /run/secrets/db"],
    [["nginx:", "master", "process", "nginx", "-g", "daemon off;"], "nginx: master process nginx -g daemon off;"],
    [["python3", "-m", "http.server", "8000"], "python3 -m http.server 8000"],
  ];
  for (const [argv, want] of cases) {
    it(argv.join(" ").slice(0, 70), () => {
      const got = redactCommandLine(argv);
      assert.equal(got, want);
      assert.ok(!/S3CR3T|hunter2/.test(got), `leak in ${got}`);
    });
  }

  it("a script with unbalanced quotes still gets the text rules", () => {
    const got = redactCommandLine(["sh", "-c", "echo 'oops; PGPASSWORD=S3CR3T psql"]);
    assert.ok(!got.includes("S3CR3T"), got);
  });

  it("stays linear on long words that nearly match (no pattern rescans a word from each of its characters)", async () => {
    // Quadratic matching would take minutes here, linear takes milliseconds. The calls run in a
    // worker stopped after 20 s: a synchronous call is never cut short by a test's timeout (the
    // test would just pass late).
    const mod = JSON.stringify(new URL("./redact.js", import.meta.url).href);
    const w = new Worker(
      `import(${mod}).then(({ redactCommandLine }) => {
        const long = "a".repeat(1 << 20);
        const argv = ["app", long, long + ":", "x=" + long, '"' + long, "-H" + long];
        const many = ["app"];
        for (let i = 0; i < 2000; i++) many.push("--token-" + i + "=S3CR3T", "x" + i);
        const got = redactCommandLine(many);
        require("node:worker_threads").parentPort.postMessage({
          long: [redactCommandLine(argv).length, argv.join(" ").length],
          many: [got.split(" ").length, many.length],
          leaked: got.includes("S3CR3T"),
        });
      })`,
      { eval: true },
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        new Promise<{ long: number[]; many: number[]; leaked: boolean }>((resolve, reject) => w.once("message", resolve).once("error", reject)),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("redaction took over 20 s: not linear")), 20_000))),
      ]);
      assert.equal(r.long[0], r.long[1]);
      assert.equal(r.many[0], r.many[1]);
      assert.ok(!r.leaked);
    } finally {
      clearTimeout(timer);
      await w.terminate();
    }
  });
});

describe("isSecretName", () => {
  it("knows flags, variables, parameters and headers that hold secrets", () => {
    for (const n of ["--password", "PGPASSWORD", "MYSQL_PWD", "db-token", "X-Api-Key", "authorization", "Cookie", "set-cookie", "access_token", "client_secret", "x-amz-security-token", "sig", "key", "--auth"]) {
      assert.ok(isSecretName(n), n);
    }
    for (const n of ["--port", "--password-file", "token_ttl", "HOME", "user", "accept", "host", "--author"]) assert.ok(!isSecretName(n), n);
  });

  it("covers every default header the parser masks", () => {
    for (const h of DEFAULT_REDACTED_HEADERS) assert.ok(isSecretName(h), h);
  });

  it("covers every query parameter name the HTTP plugins mask (parsers-wasm/http1/url.ts)", () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../parsers-wasm/http1/url.ts");
    const text = fs.readFileSync(src, "utf8");
    const body = text.slice(text.indexOf("function secretKey"), text.indexOf("@inline function is("));
    const names = [...body.matchAll(/is\(p, n, "([^"]+)"\)/g)].map((m) => m[1]);
    assert.ok(names.length > 20, `found ${names.length} names`);
    for (const n of names) assert.ok(isSecretName(n), n);
  });
});

describe("redactUrl and redactText", () => {
  it("masks user info and secret parameters, keeps the rest", () => {
    assert.equal(redactUrl("nats://u:pw@h:1,nats://tok@h2:2"), `nats://u:${R}@h:1,nats://${R}@h2:2`);
    assert.equal(redactUrl("http://h:8086/query?db=x&token=abc"), `http://h:8086/query?db=x&token=${R}`);
    assert.equal(redactUrl("http://u:p@ss@h/x"), `http://u:${R}@h/x`);
    assert.equal(redactUrl("http://h/?page=2"), "http://h/?page=2");
  });
  it("masks headers and JSON members in free text", () => {
    assert.equal(redactText("Authorization: Bearer abc"), `Authorization: ${R}`);
    assert.equal(redactText('{"api_key": "abc", "n": 1}'), `{"api_key": "${R}", "n": 1}`);
    assert.equal(redactText("Accept: text/html"), "Accept: text/html");
  });
});

describe("shellWords", () => {
  it("splits like sh: quotes, escapes, operators", () => {
    assert.deepEqual(shellWords(`a 'b c' "d \\"e\\"" f\\ g&&h|i;j`), ["a", "b c", 'd "e"', "f g", "&&", "h", "|", "i", ";", "j"]);
    assert.equal(shellWords("a 'b"), undefined);
  });
});
