#!/usr/bin/env bash
# Configures and builds the project (Release) into build/ (or $BUILD_DIR); binaries land in
# build/bin/. The compiler's output goes to build/build.log and is shown only on failure.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${BUILD_DIR:-$root/build}"
mkdir -p "$build"
log="$build/build.log"
echo "Building (Release) in $build ..."
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j"$(nproc)"; } >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "build failed; full log: $log" >&2
  exit 1
fi
