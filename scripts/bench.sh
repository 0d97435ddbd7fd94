#!/usr/bin/env bash
# The benchmark suite: difftx beside PyTorch (eager, Debian's torch) and the machine's limits, in
# one run, written to bench/RESULTS.md (see bench/run_bench.py for what is measured), then
# data-parallel training over MPI, written to bench/RESULTS-mpi.md (bench/data_parallel_bench.py), then
# training memory with and without gradient_checkpointing, bench/RESULTS-memory.md (bench/memory_bench.py), then
# LoRA training of a 1.2B model against its memory target, bench/RESULTS-lora.md (bench/lora_memory_bench.py),
# and `difftx serve` under load, bench/RESULTS-serve.md (bench/serve_bench.py).
#
# Usage: scripts/bench.sh [--quick] [--threads N]
#   --quick      small sizes (a few minutes), to check the suite itself; RESULTS.md is then
#                written to out/bench/RESULTS-quick.md instead
#   --threads N  threads for both difftx and PyTorch (default: all cores)
# Environment: DIFFTX_SHARED (default ../shared: corpora and tokenizer fixtures).
# Run it on an otherwise idle machine: threads that wait for a busy core distort every number.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
threads=$(nproc)
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --threads)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --threads needs a positive integer" >&2; exit 2; }
      threads=$2
      shift ;;
    *) echo "bench.sh: unknown option $1 (use --quick, --threads N)" >&2; exit 2 ;;
  esac
  shift
done
shared=${DIFFTX_SHARED:-"$root/../shared"}
[[ -f "$shared/corpora/war-and-peace.txt" ]] || { echo "bench.sh: $shared/corpora/war-and-peace.txt not found (set DIFFTX_SHARED)" >&2; exit 2; }

bash scripts/deps.sh --reference
BUILD_TARGETS="difftx forward_bench attention_bench gemm_bench" bash scripts/build.sh "$root/build"

models="$root/out/bench"
mkdir -p "$models"
config=examples/smollm2-135m/config.json
out=bench/RESULTS.md
if ((quick)); then
  config=examples/tiny-mistral/config.json
  models="$root/out/bench-quick"
  out="$models/RESULTS-quick.md"
  mkdir -p "$models"
fi
# The models: random init (float32) and its default conversion; made again only when missing.
if [[ ! -f "$models/base/config.json" ]]; then
  build/difftx init --config "$config" --out "$models/base" --seed 1 --dtype f32 --overwrite
fi
if [[ ! -f "$models/diff/config.json" ]]; then
  printf 'base_model: %s\noutput_dir: %s\n' "$models/base" "$models/diff" > "$models/convert.yml"
  build/difftx convert-diff-transformer "$models/convert.yml" --overwrite
fi

args=(--build "$root/build" --models "$models" --shared "$shared" --threads "$threads" --out "$out" --config "$config")
((quick)) && args+=(--quick)
/usr/bin/python3 bench/run_bench.py "${args[@]}"
# Data-parallel training: one process against mpirun ranks on the converted model (RESULTS-mpi.md).
dp_args=(--build "$root/build" --models "$models" --shared "$shared")
((quick)) && dp_args+=(--steps 5 --skip 2 --rounds 1 --seq 128 --out "$models/RESULTS-mpi-quick.md")
/usr/bin/python3 bench/data_parallel_bench.py "${dp_args[@]}"
# `difftx serve` under 1, 4 and 16 concurrent streaming clients (RESULTS-serve.md). The Python clients
# share the two cores with the server: OpenMP threads that sleep when idle instead of spinning.
serve_args=(--build "$root/build" --model "$models/diff" --tokenizer "$shared/fixtures/tokenizers/mistral")
((quick)) && serve_args+=(--requests 1 --max-tokens 16 --out "$models/RESULTS-serve-quick.md")
OMP_WAIT_POLICY=passive /usr/bin/python3 bench/serve_bench.py "${serve_args[@]}"
# Training memory with and without activation recomputation, SmolLM2-360M shape (RESULTS-memory.md).
mem_args=(--build "$root/build" --shared "$shared")
((quick)) && mem_args+=(--seq 256 --steps 2 --work "$models/memory" --out "$models/RESULTS-memory-quick.md")
/usr/bin/python3 bench/memory_bench.py "${mem_args[@]}"
# LoRA training of a Llama-3.2-1B-shaped model with bf16 frozen matrices against the 6 GB target (RESULTS-lora.md).
lora_args=(--build "$root/build" --shared "$shared")
((quick)) && lora_args+=(--seq 256 --steps 2 --work "$models/lora" --out "$models/RESULTS-lora-quick.md")
/usr/bin/python3 bench/lora_memory_bench.py "${lora_args[@]}"
