#!/usr/bin/env bash
# Builds the CPU kernels and their tests without -march=native (DIFFTX_NATIVE=OFF: the x86-64
# baseline a distribution package targets) and runs the kernel tests there. The code paths for CPUs
# without AVX-512 or AVX512_BF16 must compile and compute what the tests expect; CI's other builds
# are native on an AVX512_BF16 machine and compile none of them (a buffer size declared only in
# the AVX512_BF16 part broke every other build from 40dba11 to 2026-12-06).
# Usage: scripts/check_portable.sh [BUILD_DIR]   (default build-portable)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-"$root/build-portable"}
BUILD_TARGETS="test_kernels" bash "$root/scripts/build.sh" "$build_dir" -DDIFFTX_NATIVE=OFF -DDIFFTX_CUDA=OFF \
  -DDIFFTX_BUILD_BENCH=OFF
"$build_dir/tests/test_kernels" --gtest_brief=1
