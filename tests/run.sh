#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through ctest:
# unit tests (label "unit") and end-to-end tests (label "e2e"). Extra arguments go to
# ctest, e.g. `tests/run.sh -L unit` for the fast ones only.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/deploy/install_deps.sh" --test
"$root/deploy/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 1200 -j2 "$@"
