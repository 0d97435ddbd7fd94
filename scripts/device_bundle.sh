#!/usr/bin/env bash
# Builds what scripts/device_check.sh runs on a GPU machine and packs it into
# .devbundle/bundle.tar.xz (git-ignored; the device tool carries it): bin/ with difftx,
# test_backend, test_cli and infer_bench (stripped), lib/ with the shared libraries they load,
# except glibc, libstdc++/libgcc_s (that machine's are newer) and CUDA's own (cuBLASLt is there),
# and REVISION. Built for x86-64-v3 (AVX2), not this machine's CPU, so it runs on the GPU machine's.
# Usage: scripts/device_bundle.sh [BUILD_DIR]   (default build-device)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-"$root/build-device"}
BUILD_TARGETS="difftx test_backend test_cli infer_bench" bash scripts/build.sh "$build" -DDIFFTX_CUDA=ON \
  -DDIFFTX_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for b in "$build/difftx" "$build/tests/test_backend" "$build/tests/test_cli" "$build/bench/infer_bench"; do
  cp "$b" "$stage/bin/"
  strip "$stage/bin/$(basename "$b")"
  ldd "$b" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|libcu*|libnv*) ;;
      *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
done
git describe --always --dirty >"$stage/REVISION"
mkdir -p .devbundle
tar -cJf .devbundle/bundle.tar.xz -C "$stage" .
echo "bundle: $(du -h .devbundle/bundle.tar.xz | cut -f1) ($(cat "$stage/REVISION")): $(ls "$stage/bin" | tr '\n' ' ')/ $(ls "$stage/lib" | tr '\n' ' ')"
