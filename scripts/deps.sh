#!/usr/bin/env bash
# Installs the Debian packages difftx needs to build and test, only those that are missing.
# Idempotent: runs `apt-get update` at most once, and not at all when nothing is missing.
# Usage: scripts/deps.sh [--reference] [--plot]
#   --reference adds python3-torch for tools/reference; --plot adds python3-matplotlib for
#   tools/plot_loss.py (the embedded model's loss curve); --fuzz adds clang and libFuzzer
#   (scripts/fuzz.sh).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libdnnl-dev                 # oneDNN matmul: the matrix products
  libopenmpi-dev openmpi-bin  # data-parallel training over MPI (mpirun)
  libopenblas-openmp-dev      # cblas_sgemm (attention tiles), OpenMP flavour
  nlohmann-json3-dev          # JSON
  libyaml-cpp-dev             # axolotl YAML
  libpcre2-dev                # tokenizer regexes
  libutf8proc-dev             # Unicode normalisation
  libcli11-dev                # command line
  libspdlog-dev libfmt-dev    # logging / formatting
  libgtest-dev libgmock-dev   # tests
  libbenchmark-dev            # micro-benchmarks
  libprotobuf-dev protobuf-compiler  # TensorBoard event files
  libcairo2-dev               # pictures: plots and attention maps (PNG)
  libpango1.0-dev             # their text, each character from a font that has it
  fonts-dejavu-core fonts-droid-fallback  # the labels' font, and one with CJK for the tests of that
  libcpp-httplib-dev          # difftx serve: HTTP
  curl                        # the server's tests talk to it with curl (and node's openai package when present)
)
for arg in "$@"; do
  case "$arg" in
    --reference) packages+=(python3-torch python3-numpy) ;;
    --plot) packages+=(python3-matplotlib) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev libomp-14-dev) ;;
    *) echo "deps: unknown option $arg (use --reference, --plot, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
