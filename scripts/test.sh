#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through CTest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: a separate ASan+UBSan build in build-sanitize/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ "${1:-}" == "--sanitize" ]]; then
  build_dir="$root/build-sanitize"
  # The CPU code under the sanitizers (the CUDA backend is built and tested in the plain build).
  bash scripts/build.sh "$build_dir" -DDIFFTX_SANITIZE=ON -DDIFFTX_BUILD_BENCH=OFF -DDIFFTX_CUDA=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Leaks inside third-party libraries that keep process-lifetime caches (fontconfig, Open MPI).
  export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp"
else
  build_dir="$root/build"
  bash scripts/build.sh "$build_dir"
fi
ctest --test-dir "$build_dir" -j "$(nproc)" --output-on-failure --timeout 900
