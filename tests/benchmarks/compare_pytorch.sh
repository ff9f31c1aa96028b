#!/usr/bin/env bash
# Runs tests/benchmarks/compare_pytorch.py for the two configurations of the issue:
#   1.0 MobileNet-224: 224x224x3, 1000 classes, batch 32, 2 threads
#   1.0 MobileNet-28:  28x28x1, 10 classes, batch 64, 2 threads
# Usage: tests/benchmarks/compare_pytorch.sh [path/to/mobilenet-bench] [extra flags...]
# (default binary: build/bin/mobilenet-bench; extra flags, e.g. --iterations 5, go to both.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench="$root/build/bin/mobilenet-bench"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  bench="$1"
  shift
fi
compare=("/usr/bin/python3" "$root/tests/benchmarks/compare_pytorch.py" --bench "$bench")

"${compare[@]}" --alpha 1.0 --resolution 224 --channels 3 --classes 1000 --batch 32 \
  --threads 2 "$@"
echo
"${compare[@]}" --alpha 1.0 --resolution 28 --channels 1 --classes 10 --batch 64 \
  --threads 2 "$@"
