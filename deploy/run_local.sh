#!/usr/bin/env bash
# The main job: installs what is missing, builds (Release), then trains MobileNet-V1 on
# Fashion-MNIST with a local cluster: parameter servers (mobilenet-ps) and workers
# (mobilenet-worker) on 127.0.0.1, on free ports. Shows the chief's progress and ends with
# the final test accuracy, the checkpoint folder and the ONNX model.
#   deploy/run_local.sh [--preset=default|long|none] [--num_ps N] [--num_workers M] [--no_tls]
#                       [--no_metrics] [--dry_run] [flags...]
# --dry_run prints the flags each kind of process would get, and exits.
# Defaults: 2 parameter servers, 2 workers. Flags go to the workers (see mobilenet-worker
# --help), e.g. --epochs=2; the model, optimizer, schedule and seed flags go to the
# parameter servers as well (they hold the weights and apply the updates), and
# mobilenet-ps's own flags (--staleness_policy, --max_staleness, --dc_lambda,
# --checkpoint_every_secs, --keep_checkpoints) only to them. Synchronous training
# (--sync_replicas [--replicas_to_aggregate=N|all] [--worker_liveness_secs=S]) goes to
# both, e.g. --sync_replicas --num_workers=3 --replicas_to_aggregate=2 (one backup).
# Another data set: --data_dir=DIR [--data_format=image_folder|cifar|idx] go to the
# workers; give --channels=3 for colour images and --classes=N when it has N != 10 classes
# (both go to the parameter servers too, which hold a model of that shape).
# Every process talks mutual TLS: deploy/make_certs.sh makes the cluster's CA and one
# certificate per process in the run folder's certs/, and each process proves who it is
# with its own (--no_tls: plaintext, possible only because everything is on loopback).
# Every process serves Prometheus metrics on its own loopback port (--metrics_address;
# the script prints the URLs: `curl http://127.0.0.1:PORT/metrics`), unless --no_metrics.
# Output goes to runs/<date-time>/ (override with RUN_DIR=...): one log per process,
# certs/, checkpoints/ (one series per parameter server) and model.onnx.
# Ctrl-C (or any process failing) stops every process this script started.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# A preset is a documented set of flags put first (flags given after it win); without
# --preset, the default one (docs/training_recipe.md has the experiments behind them):
#   default: the best accuracy found for about 8 minutes on 2 cores: the shallow model at
#            48x48, 17 epochs, momentum with a cosine learning rate and weight decay 5e-4,
#            the weight average (exported);
#   long:    the best accuracy in about 40 minutes on 2 cores;
#   none:    the binaries' own defaults (alpha 0.5, 56x56, 12 epochs, exponential decay).
preset_flags() {
  case "$1" in
    default) echo --shallow --resolution=48 --epochs=17 --optimizer=momentum --learning_rate=0.1 \
      --lr_decay=cosine --weight_decay=5e-4 --weight_ema_decay=0.999 --eval_every_epochs=3 ;;
    long) echo --resolution=56 --epochs=40 --optimizer=momentum --learning_rate=0.1 \
      --lr_decay=cosine --weight_decay=5e-4 --weight_ema_decay=0.999 --eval_every_epochs=4 ;;
    none) echo ;;
    *) echo "run_local.sh: unknown --preset '$1' (known: default, long, none)" >&2; return 2 ;;
  esac
}
preset=default
args=()
for arg in "$@"; do
  if [[ "$arg" == --preset=* ]]; then
    preset="${arg#--preset=}"
  else
    args+=("$arg")
  fi
done
flags=$(preset_flags "$preset") || exit 2
read -r -a expanded <<<"$flags"
args=(${expanded[@]+"${expanded[@]}"} ${args[@]+"${args[@]}"})
set -- ${args[@]+"${args[@]}"}

num_ps=2
num_workers=2
worker_args=()
ps_args=()
threads_given=0
epochs=""
cosine_epochs_given=0
tls=1
metrics=1
dry_run=0
data_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) dry_run=1; shift ;;
    --num_ps) num_ps="${2:?--num_ps needs a number}"; shift 2 ;;
    --num_ps=*) num_ps="${1#*=}"; shift ;;
    --num_workers) num_workers="${2:?--num_workers needs a number}"; shift 2 ;;
    --num_workers=*) num_workers="${1#*=}"; shift ;;
    # Both: the model (every process computes the sharding plan from it), the seed, and
    # the weight average (the servers keep it, the chief evaluates it).
    --alpha=*|--resolution=*|--channels=*|--classes=*|--shallow|--shallow=*|--noshallow|\
    --seed=*|--weight_ema_decay=*)
      ps_args+=("$1"); worker_args+=("$1"); shift ;;
    # Synchronous training: the servers aggregate each step, the workers wait for it.
    --sync_replicas|--sync_replicas=*|--nosync_replicas|--replicas_to_aggregate=*|\
    --worker_liveness_secs=*)
      ps_args+=("$1"); worker_args+=("$1"); shift ;;
    # The schedule's shape: the servers apply it; a worker checks --lr_cosine_epochs against
    # its --epochs.
    --lr_decay=*|--lr_warmup_epochs=*)
      ps_args+=("$1"); worker_args+=("$1"); shift ;;
    --lr_cosine_epochs=*)
      cosine_epochs_given=1; ps_args+=("$1"); worker_args+=("$1"); shift ;;
    --epochs=*) epochs="${1#*=}"; worker_args+=("$1"); shift ;;
    --epochs) epochs="${2:?--epochs needs a number}"; worker_args+=("--epochs=$2"); shift 2 ;;
    # The parameter servers apply the updates; workers ignore these flags in a cluster.
    --optimizer=*|--learning_rate=*|--lr_decay_factor=*|--epochs_per_decay=*|--staircase|\
    --staircase=*|--nostaircase|--momentum=*|--rmsprop_decay=*|--rmsprop_epsilon=*|\
    --bn_moving_average_decay=*)
      ps_args+=("$1"); shift ;;
    --staleness_policy=*|--max_staleness=*|--dc_lambda=*|--dc_adaptive|--dc_adaptive=*|\
    --checkpoint_every_secs=*|--keep_checkpoints=*|--log_every_secs=*)
      ps_args+=("$1"); shift ;;
    --threads=*) threads_given=1; worker_args+=("$1"); shift ;;
    # The workers' data set; the evaluation hint at the end repeats it.
    --data_dir=*|--data_format=*) data_args+=("$1"); worker_args+=("$1"); shift ;;
    --no_tls) tls=0; shift ;;
    --no_metrics) metrics=0; shift ;;
    --checkpoint_dir=*|--export_onnx=*|--ps_hosts=*|--worker_hosts=*|--job_name=*|--task_index=*|\
    --tls_cert_file=*|--tls_key_file=*|--tls_ca_file=*|--auth_token_file=*|--insecure*|\
    --metrics_address=*)
      echo "run_local.sh: $1 is set by this script (see its header)" >&2; exit 2 ;;
    *) worker_args+=("$1"); shift ;;
  esac
done
# A cosine schedule lasts the run: --epochs=N alone moves its end to N as well.
if [ -n "$epochs" ] && [ "$cosine_epochs_given" -eq 0 ]; then
  ps_args+=(--lr_cosine_epochs="$epochs")
  worker_args+=(--lr_cosine_epochs="$epochs")
fi
for n in "$num_ps" "$num_workers"; do
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 64 ]; then
    echo "run_local.sh: --num_ps and --num_workers take a number in [1, 64], got '$n'" >&2
    exit 2
  fi
done
if [ "$dry_run" -eq 1 ]; then
  echo "parameter servers ($num_ps):" ${ps_args[@]+"${ps_args[@]}"}
  echo "workers ($num_workers):" ${worker_args[@]+"${worker_args[@]}"}
  exit 0
fi

"$root/deploy/install_deps.sh"
"$root/deploy/build.sh"
# The workers share this machine's cores unless told otherwise.
if [ "$threads_given" -eq 0 ]; then
  threads=$(( $(nproc) / num_workers ))
  worker_args=(--threads=$((threads < 1 ? 1 : threads)) ${worker_args[@]+"${worker_args[@]}"})
fi
bin="${BUILD_DIR:-$root/build}/bin"

run_dir="${RUN_DIR:-$root/runs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$run_dir"
checkpoint_dir="$run_dir/checkpoints"
onnx="$run_dir/model.onnx"
certs="$run_dir/certs"
# tls_flags NAME: the flags of the process whose certificate is NAME (ps-0, worker-1,
# monitor); none with --no_tls.
tls_flags() {
  [ "$tls" -eq 1 ] || return 0
  printf '%s\n' --tls_cert_file="$certs/$1.crt" --tls_key_file="$certs/$1.key" \
    --tls_ca_file="$certs/ca.crt"
}
if [ "$tls" -eq 1 ]; then
  "$root/deploy/make_certs.sh" "$certs" "$num_ps" "$num_workers" >/dev/null
fi

# Free loopback ports below the ephemeral range: nothing accepts a connection there now.
ports=()
is_taken() {
  local p
  for p in "${ports[@]}"; do [ "$p" -eq "$1" ] && return 0; done
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# One port per process, and one more per process for its metrics.
num_ports=$((num_ps + num_workers))
[ "$metrics" -eq 1 ] && num_ports=$((2 * num_ports))
while [ ${#ports[@]} -lt "$num_ports" ]; do
  port=$((20000 + RANDOM % 12000))
  is_taken "$port" || ports+=("$port")
done
join() { local IFS=,; echo "$*"; }
ps_hosts=$(join $(printf '127.0.0.1:%s ' "${ports[@]:0:num_ps}"))
worker_hosts=$(join $(printf '127.0.0.1:%s ' "${ports[@]:num_ps:num_workers}"))
# metrics_flags INDEX: the --metrics_address of process INDEX (PS first, then workers).
metrics_flags() {
  [ "$metrics" -eq 1 ] || return 0
  echo --metrics_address="127.0.0.1:${ports[$((num_ps + num_workers + $1))]}"
}

# Every process started here is stopped on exit, Ctrl-C or failure: SIGTERM first (a
# parameter server writes a final checkpoint), SIGKILL for what is still running after
# 15 s.
pids=()
names=()
tail_pid=""
stop_all() {
  trap - INT TERM EXIT
  [ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null || true
  local alive=() pid
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  if [ ${#alive[@]} -gt 0 ]; then
    echo "Stopping ${#alive[@]} process(es) ..." >&2
    kill -TERM "${alive[@]}" 2>/dev/null || true
    for _ in $(seq 150); do
      local any=0
      for pid in "${alive[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
      [ "$any" -eq 0 ] && break
      sleep 0.1
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
  fi
}
trap 'stop_all; echo "Interrupted. Logs and checkpoints: $run_dir" >&2; exit 130' INT TERM
trap 'stop_all' EXIT

start() {  # start NAME BINARY ARGS...: runs BINARY in the background, logging to NAME.log
  local name=$1 binary=$2
  shift 2
  "$bin/$binary" "$@" >"$run_dir/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

echo "Run folder: $run_dir"
echo "Cluster: $num_ps parameter server(s) at $ps_hosts; $num_workers worker(s) ($worker_hosts)"
if [ "$tls" -eq 1 ]; then
  echo "Transport: mutual TLS, certificates in $certs"
else
  echo "Transport: plaintext on loopback (--no_tls)"
fi
start_time=$(date +%s)
cluster=(--ps_hosts="$ps_hosts" --worker_hosts="$worker_hosts")
for ((i = 0; i < num_ps; i++)); do
  mapfile -t security < <(tls_flags "ps-$i")
  mapfile -t monitoring < <(metrics_flags "$i")
  start "ps-$i" mobilenet-ps "${cluster[@]}" --job_name=ps --task_index=$i \
    --checkpoint_dir="$checkpoint_dir" ${security[@]+"${security[@]}"} \
    ${monitoring[@]+"${monitoring[@]}"} ${ps_args[@]+"${ps_args[@]}"}
done
for ((i = 0; i < num_workers; i++)); do
  mapfile -t security < <(tls_flags "worker-$i")
  mapfile -t monitoring < <(metrics_flags $((num_ps + i)))
  start "worker-$i" mobilenet-worker "${cluster[@]}" --job_name=worker --task_index=$i \
    --export_onnx="$onnx" ${security[@]+"${security[@]}"} ${monitoring[@]+"${monitoring[@]}"} \
    ${worker_args[@]+"${worker_args[@]}"}
done
chief_pid=${pids[$num_ps]}
chief_log="$run_dir/worker-0.log"
echo "Logs: $run_dir/{ps-N,worker-N}.log; the chief (worker 0) follows."
mapfile -t monitor < <(tls_flags monitor)
echo "Cluster status at any time: $bin/mobilenet-ctl status --ps_hosts=$ps_hosts" \
  ${monitor[@]+"${monitor[@]}"}
if [ "$metrics" -eq 1 ]; then
  echo "Prometheus metrics (curl http://127.0.0.1:PORT/metrics):"
  for ((i = 0; i < num_ps + num_workers; i++)); do
    if [ "$i" -lt "$num_ps" ]; then name="ps-$i"; else name="worker-$((i - num_ps))"; fi
    echo "  $name http://$(metrics_flags "$i" | sed 's/^--metrics_address=//')/metrics"
  done
fi
tail -n +1 -f --pid="$chief_pid" "$chief_log" &
tail_pid=$!

# The run's training curves (mobilenet-ctl report): best effort, a failure only warns.
write_report() {
  if "$bin/mobilenet-ctl" report --run_dir="$run_dir" --out="$run_dir/report.html" \
      >/dev/null 2>"$run_dir/report.err"; then
    rm -f "$run_dir/report.err"
    echo "Training report: $run_dir/report.html"
  else
    echo "warning: no training report ($(tail -n 1 "$run_dir/report.err"))" >&2
  fi
}

# Wait for every process; the first one to fail stops the run.
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  done_pid=""
  set +e
  wait -n -p done_pid "${running[@]}"
  status=$?
  set -e
  [ -z "$done_pid" ] && break
  still=()
  for pid in "${running[@]}"; do [ "$pid" != "$done_pid" ] && still+=("$pid"); done
  running=(${still[@]+"${still[@]}"})
  name=""
  for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$done_pid" ] && name=${names[$i]}; done
  if [ "$status" -ne 0 ]; then
    kill "$tail_pid" 2>/dev/null || true
    tail_pid=""
    echo >&2
    echo "$name exited with status $status; stopping the cluster. Its log ($run_dir/$name.log):" >&2
    tail -n 20 "$run_dir/$name.log" >&2
    write_report || true
    exit "$status"
  fi
done
wait "$tail_pid" 2>/dev/null || true
tail_pid=""

elapsed=$(( $(date +%s) - start_time ))
accuracy=$(grep -o 'Test accuracy: .*' "$chief_log" | tail -n 1 | sed 's/^Test accuracy: //' || true)
average=$(grep -o '^Weight average: .*' "$chief_log" | tail -n 1 | sed 's/^Weight average: //' || true)
echo
printf 'Done in %dm%02ds.\n' $((elapsed / 60)) $((elapsed % 60))
if [ -n "$average" ]; then
  # With a weight average the chief exports the average (worker/model_export.h).
  echo "Final test accuracy of the weight average (the exported model): $average"
  echo "Final test accuracy of the raw weights: ${accuracy:-not reported (see $chief_log)}"
else
  echo "Final test accuracy: ${accuracy:-not reported (see $chief_log)}"
fi
echo "Checkpoints: $checkpoint_dir (evaluate: $bin/mobilenet-ctl eval --checkpoint=$checkpoint_dir${data_args[*]+ ${data_args[*]}})"
[ -f "$onnx" ] && echo "ONNX model: $onnx"
echo "Logs: $run_dir"
write_report || true
