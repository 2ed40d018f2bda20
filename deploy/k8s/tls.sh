#!/usr/bin/env bash
# Makes the certificates of deploy/k8s's TLS: one CA, a certificate the three NATS servers share
# (the names clients dial, nats, and routes dial, nats-N.nats-headless; for server and client
# authentication, since routes verify each other) and InfluxDB's (influxdb), each name short and
# qualified in NAMESPACE. Each Secret gets the CA beside its certificate.
#
# usage: deploy/k8s/tls.sh [NAMESPACE] [DIR]      (defaults: wirescope, ./wirescope-tls)
# then:  kubectl -n NAMESPACE create secret generic wirescope-nats-tls --from-file=DIR/nats/ca.crt --from-file=DIR/nats/tls.crt --from-file=DIR/nats/tls.key
#        kubectl -n NAMESPACE create secret generic wirescope-influx-tls --from-file=DIR/influxdb/ca.crt --from-file=DIR/influxdb/tls.crt --from-file=DIR/influxdb/tls.key
#
# DIR keeps ca.key: keep it out of the cluster. Certificates last 825 days, the CA 10 years. An
# existing DIR is never overwritten.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
ns=${1:-wirescope}
dir=${2:-wirescope-tls}
if [[ ! "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
  echo "tls.sh: '$ns' is not a Kubernetes namespace name" >&2
  exit 2
fi
if [[ -e "$dir/ca.key" || -e "$dir/nats" || -e "$dir/influxdb" ]]; then
  echo "tls.sh: $dir already holds certificates; remove it (or name another DIR) to make new ones" >&2
  exit 1
fi
command -v openssl >/dev/null || { echo "tls.sh: needs openssl (Debian: apt-get install -y openssl)" >&2; exit 1; }

mkdir -p "$dir"
chmod 700 "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=wirescope CA ($ns)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
chmod 600 "$dir/ca.key"

# cert NAME USAGES HOST...: DIR/NAME/{ca.crt,tls.crt,tls.key} for each HOST in the namespace
cert() {
  local name=$1 usages=$2 out="$dir/$1" names=() h suffix
  shift 2
  for h in "$@"; do
    for suffix in "" ".$ns" ".$ns.svc" ".$ns.svc.cluster.local"; do names+=("DNS:$h$suffix"); done
  done
  mkdir -p "$out"
  openssl req "${ec[@]}" -subj "/CN=$1.$ns.svc" -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=critical,CA:FALSE\n' "$(IFS=,; echo "${names[*]}")" "$usages" >"$out/tls.ext"
  openssl x509 -req -in "$out/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
    -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
  rm -f "$out/tls.csr" "$out/tls.ext" "$dir/ca.srl"
  cp "$dir/ca.crt" "$out/ca.crt"
  chmod 600 "$out/tls.key"
  echo "made $out: $(IFS=,; echo "${names[*]}")"
}
cert nats serverAuth,clientAuth nats "*.nats-headless"
cert influxdb serverAuth influxdb

for s in nats:wirescope-nats-tls influxdb:wirescope-influx-tls; do
  echo "kubectl -n $ns create secret generic ${s#*:} --from-file=$dir/${s%%:*}/ca.crt --from-file=$dir/${s%%:*}/tls.crt --from-file=$dir/${s%%:*}/tls.key"
done
