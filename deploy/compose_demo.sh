#!/usr/bin/env bash
# The docker-compose demo: starts the Docker engine when none runs (installing Debian's
# docker.io and docker-compose when missing), builds the base image when missing
# (deploy/docker/build_base_image.sh), the trainer image (deploy/Dockerfile) and the
# Prometheus image (deploy/prometheus/Dockerfile), brings up deploy/docker-compose.yml (2
# parameter servers, 2 workers, one container each, on mutual TLS with the certificates
# deploy/make_certs.sh makes for them, and a Prometheus scraping them), prints Prometheus'
# URL, follows the chief's progress with the cluster's status table every minute, and ends
# with the test accuracy reached. The cluster's containers stay (stopped), Prometheus keeps
# running (to look at the run) and so does the engine; the script says how to remove them.
#   deploy/compose_demo.sh [--short] [--epochs N] [--resolution N] [--target_accuracy P]
#                          [--resume] [--project NAME]
#   --short              a short job (2 epochs at 32x32, a few minutes) instead of the
#                        default job (12 epochs at 56x56)
#   --epochs N, --resolution N   the job's epochs (per worker, of its half of the data) and
#                        input resolution
#   --target_accuracy P  stop the cluster as soon as the chief's evaluation reaches P percent
#                        (checkpoints are kept: `up -d` resumes); default: train to the end
#   --resume             keep the checkpoints of the previous run (default: start afresh)
#   --project NAME       the compose project name (default: mobilenet)
# Host ports of the two PS: PS0_PORT, PS1_PORT (default 22220, 22221, on 127.0.0.1); of
# Prometheus' UI and API: PROMETHEUS_PORT (default 9090, on 127.0.0.1).
# Certificates: MOBILENET_CERTS_DIR (default: runs/compose-certs of the repository), made
# or completed by deploy/make_certs.sh for the compose file's PS and workers, kept between
# runs; the monitor's certificate there lets mobilenet-ctl on this machine watch.
# Ctrl-C stops following; the cluster keeps training.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "compose_demo.sh: $*" >&2; exit 1; }

epochs=12
resolution=56
target=""
resume=0
project=mobilenet
while [ $# -gt 0 ]; do
  case "$1" in
    --short) epochs=2; resolution=32; shift ;;
    --epochs) epochs="${2:?--epochs needs a number}"; shift 2 ;;
    --epochs=*) epochs="${1#*=}"; shift ;;
    --resolution) resolution="${2:?--resolution needs a number}"; shift 2 ;;
    --resolution=*) resolution="${1#*=}"; shift ;;
    --target_accuracy) target="${2:?--target_accuracy needs a percentage}"; shift 2 ;;
    --target_accuracy=*) target="${1#*=}"; shift ;;
    --resume) resume=1; shift ;;
    --project) project="${2:?--project needs a name}"; shift 2 ;;
    --project=*) project="${1#*=}"; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$epochs" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--epochs takes a number, got '$epochs'"
[[ "$resolution" =~ ^[0-9]+$ ]] || die "--resolution takes a whole number, got '$resolution'"
[ -z "$target" ] || [[ "$target" =~ ^[0-9]+([.][0-9]+)?$ ]] ||
  die "--target_accuracy takes a percentage such as 85, got '$target'"

export EPOCHS=$epochs RESOLUTION=$resolution
export PS0_PORT=${PS0_PORT:-22220} PS1_PORT=${PS1_PORT:-22221}
export PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
threads=$(( $(nproc) / 2 ))
export WORKER_THREADS=${WORKER_THREADS:-$(( threads < 1 ? 1 : threads ))}
export MOBILENET_IMAGE=${MOBILENET_IMAGE:-mobilenet-v1-trainer:latest}
# The compose file reads it too (its default is the same folder, relative to the file).
export MOBILENET_CERTS_DIR=${MOBILENET_CERTS_DIR:-$root/runs/compose-certs}

# 1. The engine, the base image, the image.
"$root/deploy/docker/engine.sh" start
if command -v docker-compose >/dev/null; then
  compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  die "no docker-compose command (install it: deploy/install_deps.sh --docker)"
fi
compose_file="$root/deploy/docker-compose.yml"
compose() { "${compose_cmd[@]}" -f "$compose_file" -p "$project" "$@"; }
"$root/deploy/docker/build_base_image.sh"
echo "Building $MOBILENET_IMAGE (deploy/Dockerfile; the first build compiles for several minutes) ..."
build_log=$(mktemp "${TMPDIR:-/tmp}/mobilenet-image-build.XXXXXX.log")
start=$(date +%s)
if ! docker build -f "$root/deploy/Dockerfile" -t "$MOBILENET_IMAGE" "$root" >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  die "the image build failed (above: the end of its log; full log: $build_log)"
fi
rm -f "$build_log"
echo "Image $MOBILENET_IMAGE built in $(( $(date +%s) - start )) s."
# Prometheus: Debian's package on the same base image (the compose file's `build:`).
if ! compose build prometheus >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  die "the Prometheus image build failed (above: the end of its log; full log: $build_log)"
fi
rm -f "$build_log"

# 2. The certificates, for every PS and worker service of the compose file (idempotent:
# the existing ones are kept, missing or expiring ones made).
services=$(compose config --services) || die "deploy/docker-compose.yml does not parse (above)"
num_ps=$(grep -cE '^ps[0-9]+$' <<<"$services" || true)
num_workers=$(grep -cE '^worker[0-9]+$' <<<"$services" || true)
"$root/deploy/make_certs.sh" "$MOBILENET_CERTS_DIR" "$num_ps" "$num_workers" >/dev/null ||
  die "deploy/make_certs.sh $MOBILENET_CERTS_DIR $num_ps $num_workers failed"
echo "Certificates of $num_ps PS, $num_workers workers and the monitor in $MOBILENET_CERTS_DIR."

# 3. The cluster.
if [ "$resume" -eq 0 ]; then
  compose down -v --remove-orphans >/dev/null 2>&1 || true
fi
for port in "$PS0_PORT" "$PS1_PORT" "$PROMETHEUS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
     ! compose ps -q 2>/dev/null | grep -q .; then
    die "127.0.0.1:$port is taken; choose other host ports with PS0_PORT=... PS1_PORT=..." \
        "PROMETHEUS_PORT=..."
  fi
done
echo "Starting the cluster (project $project): $EPOCHS epoch(s) at ${RESOLUTION}x$RESOLUTION," \
     "$WORKER_THREADS thread(s) per worker ..."
compose up -d
start=$(date +%s)
chief=$(compose ps -q worker0)
[ -n "$chief" ] || die "no worker0 container after 'up'"
prometheus_url="http://127.0.0.1:$PROMETHEUS_PORT"
echo "Prometheus: $prometheus_url  (targets: $prometheus_url/classic/targets," \
     "alerts: $prometheus_url/classic/alerts; on this machine only)"

ctl_host="$root/build/bin/mobilenet-ctl"
# mobilenet-ctl with the monitor's certificate: in a container (the volume `tls`) and here.
tls_in=/etc/mobilenet/tls certs=$MOBILENET_CERTS_DIR
ctl_tls_in="--tls_cert_file=$tls_in/monitor.crt --tls_key_file=$tls_in/monitor.key"
ctl_tls_in+=" --tls_ca_file=$tls_in/ca.crt"
ctl_tls_host="--tls_cert_file=$certs/monitor.crt --tls_key_file=$certs/monitor.key"
ctl_tls_host+=" --tls_ca_file=$certs/ca.crt"
status_table() {
  echo "---- cluster status ($(date +%H:%M:%S)) ----"
  # shellcheck disable=SC2086  # the flags are words without blanks
  compose exec -T ps0 mobilenet-ctl status --ps_hosts=ps0:2222,ps1:2222 $ctl_tls_in 2>/dev/null ||
    echo "(the parameter servers do not answer)"
  echo "----"
}
how_to() {
  local c="${compose_cmd[*]} -f $compose_file -p $project"
  echo
  echo "The chief's log:     $c logs -f worker0"
  if [ -x "$ctl_host" ]; then
    echo "Status from here:    $ctl_host status --ps_hosts=127.0.0.1:$PS0_PORT,127.0.0.1:$PS1_PORT --watch $ctl_tls_host"
  else
    echo "Status:              $c exec ps0 mobilenet-ctl status --ps_hosts=ps0:2222,ps1:2222 --watch $ctl_tls_in"
  fi
  echo "Evaluate checkpoints: $c run --rm --no-deps ps0 mobilenet-ctl eval --checkpoint=/var/lib/mobilenet/checkpoints"
  echo "Prometheus:          $prometheus_url   (graph e.g. rate(mobilenet_ps_pushes_total[1m]))"
  [ "${1:-}" = finished ] || echo "Resume training:     $c up -d"
  echo "Remove the cluster:  $c down      (and its checkpoints and metrics: down -v)"
  echo "Renew certificates:  deploy/make_certs.sh $certs $num_ps $num_workers --rotate && $c up -d certs"
  echo "Stop the engine:     deploy/docker/engine.sh stop   (when this script started it)"
}

follow_pid=""
stop_following() { [ -n "$follow_pid" ] && kill "$follow_pid" 2>/dev/null || true; follow_pid=""; }
trap 'stop_following; echo; echo "Stopped following; the cluster keeps training."; how_to; exit 130' INT TERM
trap 'stop_following' EXIT
compose logs -f --no-color worker0 &
follow_pid=$!

# 4. Follow until the end (or the target accuracy), with the status table every minute.
best_accuracy() {  # the best test accuracy (percent) the chief printed so far, or ""
  docker logs "$chief" 2>&1 | grep -oiE 'test accuracy:? [0-9]+(\.[0-9]+)?%' |
    grep -oE '[0-9]+(\.[0-9]+)?' | sort -g | tail -n 1
}
reached=0
next_status=$(( $(date +%s) + 60 ))
while [ "$(docker inspect -f '{{.State.Status}}' "$chief")" != exited ]; do
  if [ -n "$target" ]; then
    best=$(best_accuracy)
    if [ -n "$best" ] && awk -v a="$best" -v t="$target" 'BEGIN { exit !(a >= t) }'; then
      reached=1
      break
    fi
  fi
  if [ "$(date +%s)" -ge "$next_status" ]; then
    status_table
    next_status=$(( $(date +%s) + 60 ))
  fi
  sleep 5
done
sleep 2
stop_following
elapsed=$(( $(date +%s) - start ))
echo
if [ "$reached" -eq 1 ]; then
  status_table
  echo "Target accuracy ${target}% reached (best: $(best_accuracy)%) after $((elapsed / 60))m$((elapsed % 60))s; stopping the cluster (the PS checkpoint; Prometheus keeps running) ..."
  # shellcheck disable=SC2046  # service names are words
  compose stop $(grep -E '^(ps|worker)[0-9]+$' <<<"$services")
else
  code=$(docker inspect -f '{{.State.ExitCode}}' "$chief")
  [ "$code" -eq 0 ] || { compose logs --no-color --tail=30 >&2; die "the chief exited with status $code (logs above)"; }
  final=$(docker logs "$chief" 2>&1 | grep '^Test accuracy' | tail -n 1 || true)
  printf 'Training done in %dm%02ds.\n' $((elapsed / 60)) $((elapsed % 60))
  echo "Final: ${final:-no test accuracy reported (see the log of worker0)}"
  average=$(docker logs "$chief" 2>&1 | grep '^Weight average' | tail -n 1 || true)
  [ -n "$average" ] && echo "Final: $average (the exported model)"
  [ -n "$target" ] && echo "(the target ${target}% was not reached)"
fi
how_to "$([ "$reached" -eq 1 ] || echo finished)"
