#!/usr/bin/env bash
# Makes the certificates of NATS's TLS in deploy/k8s: a CA, and one certificate the three servers
# share, valid for the names clients dial (nats) and routes dial (nats-N.nats-headless), short and
# qualified, in NAMESPACE; for server and client authentication, since routes verify each other.
#
# usage: deploy/k8s/nats-tls.sh [NAMESPACE] [DIR]      (defaults: wirescope, ./wirescope-nats-tls)
# then:  kubectl -n NAMESPACE create secret generic wirescope-nats-tls --from-file=DIR/ca.crt --from-file=DIR/tls.crt --from-file=DIR/tls.key
#
# DIR keeps ca.key, which signs the next certificate (825 days; the CA 10 years): keep it out of
# the cluster. An existing DIR is never overwritten.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
ns=${1:-wirescope}
dir=${2:-wirescope-nats-tls}
if [[ ! "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
  echo "nats-tls.sh: '$ns' is not a Kubernetes namespace name" >&2
  exit 2
fi
if [[ -e "$dir/tls.crt" || -e "$dir/ca.key" ]]; then
  echo "nats-tls.sh: $dir already holds certificates; remove it (or name another DIR) to make new ones" >&2
  exit 1
fi
command -v openssl >/dev/null || { echo "nats-tls.sh: needs openssl (Debian: apt-get install -y openssl)" >&2; exit 1; }

mkdir -p "$dir"
chmod 700 "$dir"
names=()
for n in nats "*.nats-headless"; do
  for suffix in "" ".$ns" ".$ns.svc" ".$ns.svc.cluster.local"; do names+=("DNS:$n$suffix"); done
done
san=$(IFS=,; echo "${names[*]}")
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=wirescope NATS CA ($ns)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req "${ec[@]}" -subj "/CN=nats.$ns.svc" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' "$san" >"$dir/tls.ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
  -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
rm -f "$dir/tls.csr" "$dir/tls.ext" "$dir/ca.srl"
chmod 600 "$dir/ca.key" "$dir/tls.key"

echo "made $dir/ca.crt, $dir/tls.crt and $dir/tls.key for namespace $ns ($san)"
echo "kubectl -n $ns create secret generic wirescope-nats-tls --from-file=$dir/ca.crt --from-file=$dir/tls.crt --from-file=$dir/tls.key"
