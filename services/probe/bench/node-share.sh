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
# as the pipeline bench's newconn shape. SHAPE=perconn: PER_CONN (default 10) requests on each
# connection, RATE/PER_CONN new connections a second, as the pipeline bench's per-conn shape
# (PER_CONN at least RATE × SECONDS: one connection at RATE req/s). Each checkout's probe starts with that checkout's
# PROBE_NODE_FLAGS (services/probe/src/options.ts; none before they existed), as `wirescope up`
# starts it. PROBE_NODE_ARGS: more node flags of the probe only (e.g. "--cpu-prof
# --cpu-prof-dir=/tmp/prof"). WARM (seconds, default 10): the same load before the measured
# seconds, so that a row counts the steady state, not V8 compiling the hot path (and recompiling
# it when a rare branch is first taken: the low half of the nanosecond clock wraps every 4.3 s).
# PAIRED=1: every checkout's probe at once, each with its own nats-server and subscriber, tracing
# the same server under the same load: on a shared machine whose load moves a row by +-50 % from
# one minute to the next, the checkouts then see the same minutes (each traced call then pays for
# every probe, so compare the rows of one run with each other, not with unpaired ones).
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
  elif [ "${SHAPE:-keepalive}" = perconn ]; then
    local r=${PER_CONN:-10} n=$((rate * $1))
    if [ $r -ge $n ]; then h2load --h1 -c 1 --rps $rate -n $n http://127.0.0.1:$hp/x
    else h2load --h1 -c $((n / r)) -n $n -r $(((rate / r + 99) / 100)) --rate-period=10ms http://127.0.0.1:$hp/x; fi
  else
    h2load --h1 -c 16 --rps $((rate / 16)) -D $1 http://127.0.0.1:$hp/x
  fi
}
# run(checkout...): the checkouts' probes on one server under one load (all at once when given
# several: PAIRED=1), each publishing to its own nats-server with its own subscriber
run() {
  local i n=$#; local -a co=("$@") np mp flags nats probe sub p0 n0 v0
  hp=$(port)
  PORT=$hp BODY=$body node $tmp/srv.cjs & local srv=$!
  for ((i = 0; i < n; i++)); do
    np[i]=$(port); mp[i]=$(port)
    flags[i]=$(cd "${co[i]}" && node --input-type=module -e "const m = await import('./services/probe/dist/options.js'); console.log((m.PROBE_NODE_FLAGS ?? []).join(' '))")
    nats-server -a 127.0.0.1 -p ${np[i]} -m ${mp[i]} > $tmp/nats-$i.log 2>&1 & nats[i]=$!
    (cd "${co[i]}" && exec node ${flags[i]} ${PROBE_NODE_ARGS:-} bin/wirescope.js probe --nats-url nats://127.0.0.1:${np[i]} --grpc-port 0 --lock-file $tmp/lock-$i \
       --log-level error --allow-port $hp "${probe_args[@]}") > $tmp/probe-$i.log 2>&1 & probe[i]=$!
    # a subscriber takes every message, as the parsers would (nats-server's delivery work counts)
    (cd "${co[i]}" && exec node --input-type=module -e "const { connect } = await import('@nats-io/transport-node').catch(() => import('nats')); const nc = await connect({ servers: 'nats://127.0.0.1:${np[i]}' }); nc.subscribe('wirescope.raw.>', { callback: () => {} });") > /dev/null 2>&1 & sub[i]=$!
  done
  sleep 5
  [ "${WARM:-10}" -gt 0 ] && { load ${WARM:-10} > /dev/null 2>&1; sleep 1; }
  for ((i = 0; i < n; i++)); do p0[i]=$(ticks ${probe[i]}); n0[i]=$(ticks ${nats[i]}); v0[i]=$(curl -s 127.0.0.1:${mp[i]}/varz); done
  load $secs > $tmp/h2load.txt 2>&1
  sleep 1
  local req=$(awk '/^requests:/{print $8}' $tmp/h2load.txt) la=$(cut -d' ' -f1 /proc/loadavg)
  for ((i = 0; i < n; i++)); do
    local p1=$(ticks ${probe[i]}) n1=$(ticks ${nats[i]}) v1=$(curl -s 127.0.0.1:${mp[i]}/varz)
    python3 - "${co[i]}" "$hz" "${p0[i]}" "$p1" "${n0[i]}" "$n1" "${req:-0}" "${v0[i]}" "$v1" "$la" "${flags[i]}" "$n" <<'PY'
import sys, json
co, hz = sys.argv[1], float(sys.argv[2]); p0, p1, n0, n1, req = map(int, sys.argv[3:8])
v0, v1 = json.loads(sys.argv[8]), json.loads(sys.argv[9]); recs = max(1, 2 * req)
msgs, byts = v1["in_msgs"] - v0["in_msgs"], v1["in_bytes"] - v0["in_bytes"]
paired = f", paired with {int(sys.argv[12]) - 1} other" if sys.argv[12] != "1" else ""
print(f"node-share {co} (node flags: {sys.argv[11] or 'none'}{paired}): {req} requests; cpu us/record: probe {(p1-p0)/hz*1e6/recs:.2f}, nats-server {(n1-n0)/hz*1e6/recs:.2f}; "
      f"published {byts/recs:.0f} B/record in {msgs} messages; load average {sys.argv[10]}")
PY
  done
  # (a process that already exited is no error: kill says nothing of it)
  for ((i = 0; i < n; i++)); do kill -INT ${probe[i]} 2>/dev/null; wait ${probe[i]} 2>/dev/null; kill ${sub[i]} ${nats[i]} 2>/dev/null; wait ${sub[i]} ${nats[i]} 2>/dev/null; done
  kill $srv 2>/dev/null; wait $srv 2>/dev/null
}
probe_args=("$@")
if [ "${PAIRED:-0}" = 1 ]; then run "${cos[@]}"; else for co in "${cos[@]}"; do run "$co"; done; fi
rm -rf $tmp
