#!/usr/bin/env bash
# Makes the credentials of one training cluster with Debian's openssl:
#   DIR/ca.crt, DIR/ca.key                the cluster's CA
#   DIR/ps-<i>.crt, DIR/ps-<i>.key        one per parameter server (DNS name ps-<i>)
#   DIR/worker-<i>.crt, .key              one per worker (worker-0 is the chief)
#   DIR/monitor.crt, .key                 for tools (mobilenet-ctl status/eval/export)
#   DIR/tokens/<name>.token               bearer tokens, one per caller, and
#   DIR/tokens/server.tokens              every caller's, for the parameter servers
# A certificate's DNS name (subject alternative name) says who holds it; the servers
# grant rights by it (see the README's "Security"). Keys and tokens are mode 0600.
#
# Idempotent: what exists and is still valid for a month is kept, what is missing (a
# larger cluster) or about to expire is made; run it again with the same folder to grow
# the cluster or renew. --rotate makes every certificate and token anew (keeping the CA):
# the processes re-read certificates within seconds, tokens the servers re-read too.
#
#   deploy/make_certs.sh DIR NUM_PS NUM_WORKERS [--days N] [--rotate]
set -euo pipefail

usage() { echo "usage: $0 DIR NUM_PS NUM_WORKERS [--days N] [--rotate]" >&2; exit 2; }
[ $# -ge 3 ] || usage
dir=$1 num_ps=$2 num_workers=$3
shift 3
days=365
rotate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --days) days=${2:?}; shift 2 ;;
    --days=*) days=${1#--days=}; shift ;;
    --rotate) rotate=1; shift ;;
    *) usage ;;
  esac
done
[[ "$num_ps" =~ ^[1-9][0-9]*$ && "$num_workers" =~ ^[1-9][0-9]*$ && "$days" =~ ^[1-9][0-9]*$ ]] ||
  usage
command -v openssl >/dev/null || { echo "$0: openssl is missing (apt-get install openssl)" >&2; exit 1; }

umask 077
mkdir -p "$dir/tokens"
chmod 0755 "$dir" "$dir/tokens"
renew_within=$((30 * 24 * 3600))  # seconds: a certificate expiring sooner is made again

# valid CERT: signed by the CA and good for at least another month.
valid() {
  [ -s "$1" ] && [ -s "${1%.crt}.key" ] &&
    openssl verify -CAfile "$dir/ca.crt" "$1" >/dev/null 2>&1 &&
    openssl x509 -in "$1" -noout -checkend "$renew_within" >/dev/null 2>&1
}

if [ ! -s "$dir/ca.key" ] || ! openssl x509 -in "$dir/ca.crt" -noout -checkend "$renew_within" \
    >/dev/null 2>&1; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -days $((days * 2)) -subj "/CN=mobilenet-ps cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt" 2>/dev/null
  chmod 0644 "$dir/ca.crt"
  rotate=1  # a new CA: every certificate must be signed again
  echo "made the CA: $dir/ca.crt"
fi

# issue NAME: a key and a certificate whose DNS name and common name are NAME.
issue() {
  local name=$1 crt="$dir/$1.crt" key="$dir/$1.key"
  if [ "$rotate" = 0 ] && valid "$crt"; then return; fi
  local ext
  ext=$(mktemp)
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' \
    "$name" >"$ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key.new" 2>/dev/null
  openssl req -new -key "$key.new" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$ext" -out "$crt.new" 2>/dev/null
  rm -f "$ext" "$dir/$name.csr"
  chmod 0644 "$crt.new"
  # Each file is replaced whole (rename), so a process re-reading it sees old or new.
  mv -f "$key.new" "$key"
  mv -f "$crt.new" "$crt"
  echo "made $crt"
}

# token NAME: the caller's token file, kept unless rotating.
token() {
  local file="$dir/tokens/$1.token"
  if [ "$rotate" = 0 ] && [ -s "$file" ]; then return; fi
  printf '%s %s\n' "$1" "$(openssl rand -hex 32)" >"$file.new"
  mv -f "$file.new" "$file"
}

names=(monitor)
for ((i = 0; i < num_ps; i++)); do names+=("ps-$i"); done
for ((i = 0; i < num_workers; i++)); do names+=("worker-$i"); done
for name in "${names[@]}"; do
  issue "$name"
  token "$name"
done
# The servers accept every caller's token: the table of all of them.
cat "$dir"/tokens/*.token >"$dir/tokens/server.tokens.new"
mv -f "$dir/tokens/server.tokens.new" "$dir/tokens/server.tokens"
rm -f "$dir/ca.srl"
echo "credentials for $num_ps parameter servers and $num_workers workers in $dir"
