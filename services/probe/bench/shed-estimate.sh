#!/usr/bin/env bash
# Counts under shedding at saturation: how close the scaled requests in InfluxDB come to what was
# sent, when the local pipeline's CPU budget makes the probe shed connections.
#
#   services/probe/bench/shed-estimate.sh CHECKOUT SECONDS [RUNS] [-- up flags]
#
# (root; the checkout built; wrk, curl installed.) Each run starts `wirescope up --no-demo` from the
# checkout (default flags: --pipeline-cpu-budget 100m), a node:http server answering 512 bytes
# (as ../shared/tools/pipeline-cost.sh's) and `wrk -t1 -c16 -dSECONDS` against it: 16 keep-alive
# connections as fast as they go, both ends traced. 25 s after the load it reads InfluxDB (`red`,
# role=server, the server's series; role=client, resource /x: wrk's) and the probe's counters, and
#   prints one line per run: sent (wrk's count), the server side's `requests` (observed + counted
#   while shed, or 1 / observed fraction where not counted) and its error, the client side's and
#   its error, the requests observed (`observed_requests` of sampled points + `requests` of the
#   others), those the kernel counted on shed connections, and observed + shed - sent (0 when
#   everything is accounted for; wrk's count may end a few short).
# The stack lock (/tmp/wirescope-stack.lock) is taken, so it waits for other stacks of this checkout.
set -u
co=$1; secs=$2; runs=${3:-1}; shift $(( $# >= 3 ? 3 : $# ))
[ "${1:-}" = "--" ] && shift
flags=("$@"); [ ${#flags[@]} -eq 0 ] && flags=(--pipeline-cpu-budget 100m)
exec 9>/tmp/wirescope-stack.lock; flock 9
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
tmp=$(mktemp -d)
cat > $tmp/srv.cjs <<'JS'
const http = require('http');
const body = Buffer.alloc(512, 'x');
http.createServer((q, r) => { r.writeHead(200, {'content-type': 'text/plain'}); r.end(body); }).listen(18090, '127.0.0.1');
JS
cd "$co"
for run in $(seq 1 "$runs"); do
  rm -rf .wirescope-shed
  node $tmp/srv.cjs & srv=$!
  setsid node bin/wirescope.js up --no-build --no-install --no-demo --data-dir .wirescope-shed "${flags[@]}" > $tmp/up.log 2>&1 & up=$!
  for i in $(seq 1 90); do grep -qs "^ready" $tmp/up.log && break; sleep 1; done
  grep -q "^ready" $tmp/up.log || { tail -5 $tmp/up.log; kill -INT -- -$up; kill $srv; echo "shed-estimate: stack not ready"; exit 1; }
  sleep 3
  wrk -t1 -c16 -d${secs}s http://127.0.0.1:18090/x > $tmp/wrk.txt 2>&1
  sleep 25
  curl -s 'http://127.0.0.1:8086/query?db=wirescope' --data-urlencode "q=SELECT requests, observed_requests, sampled FROM red WHERE role='server' AND service=~/18090/ AND time > now()-10m" > $tmp/red.json
  # the client's series (wrk): requests it was answered, whatever the service it is named as
  curl -s 'http://127.0.0.1:8086/query?db=wirescope' --data-urlencode "q=SELECT requests FROM red WHERE role='client' AND resource='/x' AND time > now()-10m" > $tmp/red-client.json
  node bin/wirescope.js status --data-dir .wirescope-shed --json > $tmp/status.json 2>/dev/null
  kill -INT -- -$up 2>/dev/null; kill $srv; wait $srv 2>/dev/null; wait $up 2>/dev/null; sleep 2
  rm -rf .wirescope-shed
  python3 - "$run" $tmp/wrk.txt $tmp/red.json $tmp/status.json "$secs" $tmp/red-client.json <<'PY'
import json, re, sys
run, wrk, red, status, secs = sys.argv[1], open(sys.argv[2]).read(), json.load(open(sys.argv[3])), json.load(open(sys.argv[4])), float(sys.argv[5])
client = json.load(open(sys.argv[6]))
m = re.search(r"(\d+) requests in", wrk)
sent = int(m.group(1)) if m else 0
series = red["results"][0].get("series") or [{"values": []}]
est = sum(v[1] or 0 for v in series[0]["values"])
observed = sum((v[2] if v[3] else v[1]) or 0 for v in series[0]["values"])
probe = next((c.get("counters", {}) for c in status if c.get("component") == "probe"), {})
shed = sum(v for k, v in probe.items() if k.startswith("shed_requests_server."))
err = (est - sent) / sent * 100 if sent else float("nan")
cseries = client["results"][0].get("series") or [{"values": []}]
cest = sum(v[1] or 0 for v in cseries[0]["values"])
cerr = (cest - sent) / sent * 100 if sent else float("nan")
print(f"run {run}: sent {sent} ({sent / secs:.0f} req/s), estimate {est} ({err:+.1f} %), client side {cest} ({cerr:+.1f} %), observed {observed}, shed {shed}, observed + shed - sent {observed + shed - sent}, shed connections {probe.get('shed_connections.budget', 0)}")
PY
done
rm -rf $tmp
