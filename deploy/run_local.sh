#!/usr/bin/env bash
# The main job: installs what is missing, builds (Release) and trains MobileNet-V1 on
# Fashion-MNIST, ending with the test accuracy and where the checkpoint and the ONNX
# model were written. Extra arguments go to mobilenet-worker (see its --help), e.g.
#   deploy/run_local.sh --epochs=2
# Output goes to runs/<date-time>/ (override with RUN_DIR=...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/deploy/install_deps.sh"
"$root/deploy/build.sh"

run_dir="${RUN_DIR:-$root/runs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$run_dir"
echo "Run folder: $run_dir"
start=$(date +%s)
args=(--checkpoint_dir="$run_dir/checkpoints" --export_onnx="$run_dir/model.onnx" "$@")
set +e
if [ -t 1 ]; then
  # On a terminal the worker keeps one progress line updated in place.
  "$root/build/bin/mobilenet-worker" "${args[@]}"
  status=$?
else
  "$root/build/bin/mobilenet-worker" "${args[@]}" 2>&1 | tee "$run_dir/worker.log"
  status=${PIPESTATUS[0]}
fi
set -e
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ]; then
  echo "Training failed (exit $status)" >&2
  exit "$status"
fi
printf 'Done in %dm%02ds. Run folder: %s\n' $((elapsed / 60)) $((elapsed % 60)) "$run_dir"
