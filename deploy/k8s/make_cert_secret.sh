#!/usr/bin/env bash
# Makes the two Secrets that carry the cluster's TLS certificates and prints them as YAML
# for `kubectl apply`:
#   mobilenet-tls-ps      ca.crt, ps-<i>.crt and .key of every parameter server, and
#                         monitor.crt and .key (for mobilenet-ctl run in a PS pod)
#   mobilenet-tls-worker  ca.crt, worker-<i>.crt and .key of every worker
# The StatefulSet mounts the first, the Job the second (read-only, at /etc/mobilenet/tls);
# each pod picks its own files by its task index. Neither holds the CA's key or the
# bearer tokens, and no pod holds another role's keys.
#
#   deploy/k8s/make_cert_secret.sh DIR [--rotate] [--days N] | kubectl apply -f -
#                                                        (add -n NAMESPACE to apply)
#
# DIR is a folder of deploy/make_certs.sh, which this script runs first for the size in
# cluster-size.yaml (beside it): what exists and is still valid is kept, what is missing
# (a larger cluster) or about to expire is made; --rotate and --days go to it. DIR holds
# the CA's key: keep it out of the repository and safe; it makes every later certificate.
#
# Rotation without a restart: run it again with --rotate and apply. The kubelet updates
# the mounted files in place (within a minute or so; the Secrets are mounted whole, not
# by subPath) and the processes re-read them within 5 s.
#
# Why not a kustomize secretGenerator: it names a Secret by a hash of its content, so
# every rotation would change the pod templates; the StatefulSet would restart every PS
# and a Job's template cannot change at all. It would also need the keys inside
# deploy/k8s.
set -euo pipefail

usage() {
  echo "usage: $0 DIR [--rotate] [--days N]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
dir=$1
shift
make_certs_options=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rotate) make_certs_options+=(--rotate); shift ;;
    --days) make_certs_options+=(--days "${2:?--days needs a number}"); shift 2 ;;
    --days=*) make_certs_options+=("$1"); shift ;;
    *) usage ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The size, from cluster-size.yaml as set_cluster_size.sh writes it.
num_ps=$(awk '$1 == "replicas:" { print $2; exit }' "$here/cluster-size.yaml")
num_workers=$(awk '$1 == "completions:" { print $2; exit }' "$here/cluster-size.yaml")
[[ "$num_ps" =~ ^[1-9][0-9]*$ && "$num_workers" =~ ^[1-9][0-9]*$ ]] || {
  echo "$0: no replicas/completions in $here/cluster-size.yaml (run set_cluster_size.sh)" >&2
  exit 1
}
# Elastic workers: a certificate for every slot a worker may join (MAX_WORKERS in
# kustomization.yaml's mobilenet-training literals), not only the Job's completions.
max_workers=$(awk -F= '$1 ~ /^ *- MAX_WORKERS$/ { print $2; exit }' "$here/kustomization.yaml")
if [[ "$max_workers" =~ ^[0-9]+$ ]] && ((max_workers > num_workers)); then
  num_workers=$max_workers
fi
# Its messages go to stderr: stdout is the YAML.
"$here/../make_certs.sh" "$dir" "$num_ps" "$num_workers" \
  ${make_certs_options[@]+"${make_certs_options[@]}"} >&2

ps_files=(ca.crt monitor.crt monitor.key)
for ((i = 0; i < num_ps; i++)); do ps_files+=("ps-$i.crt" "ps-$i.key"); done
worker_files=(ca.crt)
for ((i = 0; i < num_workers; i++)); do worker_files+=("worker-$i.crt" "worker-$i.key"); done
# Every file first: nothing is printed (and applied) unless all are there.
for file in "${ps_files[@]}" "${worker_files[@]}"; do
  [ -s "$dir/$file" ] || { echo "$0: $dir/$file is missing" >&2; exit 1; }
done

# secret NAME COMPONENT FILE...: a Secret with each FILE of DIR under its own name.
secret() {
  local name=$1 component=$2 file
  shift 2
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n' "$name"
  printf '  labels:\n    app.kubernetes.io/name: mobilenet-v1\n'
  printf '    app.kubernetes.io/component: %s\n' "$component"
  printf 'type: Opaque\ndata:\n'
  for file in "$@"; do
    printf '  %s: %s\n' "$file" "$(base64 -w 0 <"$dir/$file")"
  done
}

secret mobilenet-tls-ps parameter-server "${ps_files[@]}"
secret mobilenet-tls-worker worker "${worker_files[@]}"
echo "$0: Secrets mobilenet-tls-ps ($num_ps PS and the monitor) and mobilenet-tls-worker" \
     "($num_workers workers) from $dir" >&2
