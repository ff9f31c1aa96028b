#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds and runs with, and only those that are
# missing. Quiet (no output) when everything is already installed. Idempotent.
#   deploy/install_deps.sh           build + run dependencies
#   deploy/install_deps.sh --test    also what the test suite uses (numpy/onnx for the ONNX check,
#                                    yaml for the Kubernetes manifests check, grpcio for the
#                                    fuzz, hostile-client and security tests, cryptography
#                                    for an expired certificate, clang for the
#                                    thread-safety analysis, prometheus for promtool,
#                                    which checks the /metrics output, chromium to
#                                    render the training report)
#   deploy/install_deps.sh --bench   also PyTorch, for tests/benchmarks/compare_pytorch.sh
#   deploy/install_deps.sh --docker  also the Docker engine, docker-compose and what builds the
#                                    base image (deploy/compose_demo.sh, tests/compose_e2e_test.py)
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libopenblas-dev libgtest-dev libgmock-dev zlib1g-dev libonnx-dev libssl-dev
  prometheus-cpp-dev libturbojpeg0-dev libpng-dev
  openssl dataset-fashion-mnist
)
for arg in "$@"; do
  case "$arg" in
    --test) packages+=(python3 python3-numpy python3-onnx python3-yaml python3-grpcio
                       python3-protobuf python3-cryptography clang prometheus chromium) ;;
    --bench) packages+=(python3 python3-numpy python3-torch) ;;
    --docker) packages+=(docker.io docker-compose debootstrap iptables) ;;
    *) echo "install_deps.sh: unknown option '$arg' (expected --test, --bench or --docker)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  command -v sudo >/dev/null || { echo "install_deps.sh: missing packages (${missing[*]}) and not root" >&2; exit 1; }
else
  sudo=
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
