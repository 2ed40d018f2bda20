#!/usr/bin/env bash
# The probe's node share, side by side: CPU of `wirescope probe` and of the nats-server it
# publishes to, per record, and bytes published per record, for one or more checkouts under the
# same load. Root; nats-server, h2load built; free ports only (no lock needed).
#
#   services/probe/bench/node-share.sh RATE SECONDS BODY_BYTES CHECKOUT... [-- probe flags]
#
# Load: a node:http server answering BODY_BYTES (chunked, as pipeline-cost.sh's server does),
# `h2load --h1 -c 16 --rps RATE/16 -D SECONDS`, client and server both traced (two records per
# request). A subscriber takes every message as the parsers would. The probe traces only the server's port (--allow-port), so other processes on a shared
# machine do not count. Counts from /proc/<pid>/stat and nats-server's /varz (in_msgs, in_bytes).
# SHAPE=newconn: one request per connection (Connection: close), RATE new connections a second,
# as the pipeline bench's newconn shape. Each checkout's probe starts with that checkout's
# PROBE_NODE_FLAGS (services/probe/src/options.ts; none before they existed), as `wirescope up`
# starts it. PROBE_NODE_ARGS: more node flags of the probe only (e.g. "--cpu-prof
# --cpu-prof-dir=/tmp/prof"). WARM (seconds, default 10): the same load before the measured
# seconds, so that a row counts the steady state, not V8 compiling the hot path (and recompiling
# it when a rare branch is first taken: the low half of the nanosecond clock wraps every 4.3 s).
set -u
rate=$1; secs=$2; body=$3; shift 3
cos=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do cos+=("$1"); shift; done; [ "${1:-}" = "--" ] && shift
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
tmp=$(mktemp -d)
cat > $tmp/srv.cjs <<'JS'
const http = require('http');
const body = Buffer.alloc(Number(process.env.BODY), 'x');
http.createServer((q, r) => { r.writeHead(200, {'content-type': 'text/plain'}); r.end(body); }).listen(Number(process.env.PORT), '127.0.0.1');
JS
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)
load() { # $1 seconds of the shape's load
  if [ "${SHAPE:-keepalive}" = newconn ]; then
    # h2load opens rate/100 connections every 10 ms, one request each
    h2load --h1 -c $((rate * $1)) -n $((rate * $1)) -r $(((rate + 99) / 100)) --rate-period=10ms -H 'Connection: close' \
      http://127.0.0.1:$hp/x
  else
    h2load --h1 -c 16 --rps $((rate / 16)) -D $1 http://127.0.0.1:$hp/x
  fi
}
for co in "${cos[@]}"; do
  np=$(port); hp=$(port); mp=$(port)
  flags=$(cd "$co" && node --input-type=module -e "const m = await import('./services/probe/dist/options.js'); console.log((m.PROBE_NODE_FLAGS ?? []).join(' '))")
  nats-server -a 127.0.0.1 -p $np -m $mp > $tmp/nats.log 2>&1 & nats=$!
  PORT=$hp BODY=$body node $tmp/srv.cjs & srv=$!
  (cd "$co" && exec node $flags ${PROBE_NODE_ARGS:-} bin/wirescope.js probe --nats-url nats://127.0.0.1:$np --grpc-port 0 --lock-file $tmp/lock \
     --log-level error --allow-port $hp "$@") > $tmp/probe.log 2>&1 & probe=$!
  # a subscriber takes every message, as the parsers would (nats-server's delivery work counts)
  (cd "$co" && exec node --input-type=module -e "import { connect } from 'nats'; const nc = await connect({ servers: 'nats://127.0.0.1:$np' }); nc.subscribe('wirescope.raw.>', { callback: () => {} });") > /dev/null 2>&1 & sub=$!
  sleep 5
  [ "${WARM:-10}" -gt 0 ] && { load ${WARM:-10} > /dev/null 2>&1; sleep 1; }
  p0=$(ticks $probe); n0=$(ticks $nats); v0=$(curl -s 127.0.0.1:$mp/varz)
  load $secs > $tmp/h2load.txt 2>&1
  sleep 1
  p1=$(ticks $probe); n1=$(ticks $nats); v1=$(curl -s 127.0.0.1:$mp/varz)
  req=$(awk '/^requests:/{print $8}' $tmp/h2load.txt)
  kill -INT $probe; wait $probe 2>/dev/null; kill $srv $sub $nats; wait $srv $sub $nats 2>/dev/null
  python3 - "$co" "$hz" "$p0" "$p1" "$n0" "$n1" "${req:-0}" "$v0" "$v1" "$(cut -d' ' -f1 /proc/loadavg)" "$flags" <<'PY'
import sys, json
co, hz = sys.argv[1], float(sys.argv[2]); p0, p1, n0, n1, req = map(int, sys.argv[3:8])
v0, v1 = json.loads(sys.argv[8]), json.loads(sys.argv[9]); recs = max(1, 2 * req)
msgs, byts = v1["in_msgs"] - v0["in_msgs"], v1["in_bytes"] - v0["in_bytes"]
print(f"node-share {co} (node flags: {sys.argv[11] or 'none'}): {req} requests; cpu us/record: probe {(p1-p0)/hz*1e6/recs:.2f}, nats-server {(n1-n0)/hz*1e6/recs:.2f}; "
      f"published {byts/recs:.0f} B/record in {msgs} messages; load average {sys.argv[10]}")
PY
done
rm -rf $tmp
