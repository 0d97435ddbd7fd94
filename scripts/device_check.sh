#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (DEVELOPERS.md, "Devices"): the CUDA tests, then
# the GPU benchmark (bench/cuda/), writing a log, a JSON of results and bench/RESULTS-cuda.md's
# table under $OUT. It only runs: scripts/device_bundle.sh builds the binaries here and packs them
# with the shared libraries they load into .devbundle/bundle.tar.xz, which the run carries.
#
# On the GPU machine (about 5 minutes on an H200):
#   bash scripts/device_check.sh
# Dry run of every step on a machine without a GPU (CPU device, a tiny model, no transformers):
#   bash scripts/device_check.sh --dry-run
# Options: --skip-tests, --skip-bench, --no-compile (no torch.compile row), --no-profile (no ncu
# kernel times).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dry=0 tests=1 bench=1 compile=1 profile=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --skip-tests) tests=0 ;;
    --skip-bench) bench=0 ;;
    --no-compile) compile=0 ;;
    --no-profile) profile=0 ;;
    *) echo "device_check: unknown option $arg" >&2; exit 2 ;;
  esac
done
# $OUT receives the log, raw.tar (every stage's JSON and text, re-packed after each stage, so a
# run stopped by its time limit keeps what it measured), RESULTS-cuda.md and device_check.json:
# few files, as the device tool returns at most 8.
OUT=${OUT:-"$root/out/device-check"}
raw=$(mktemp -d /tmp/difftx-check.XXXXXX)
mkdir -p "$OUT"
log="$OUT/device_check.log"
: >"$log"
exec > >(tee -a "$log") 2>&1
start=$(date +%s)
say() { echo "== [$(( $(date +%s) - start ))s] $*" >&2; }
status_file="$raw/stages.txt"
: >"$status_file"
stage() {  # stage NAME TIMEOUT_S COMMAND...: runs it, records its exit code
  local name=$1 limit=$2
  shift 2
  say "$name"
  timeout "$limit" "$@"
  local rc=$?
  echo "$name $rc" >>"$status_file"
  [[ $rc -eq 0 ]] || say "$name: exit $rc"
  tar -cf "$OUT/raw.tar" -C "$raw" .
  return $rc
}

# The bundle: bin/ (difftx, test_backend, test_cli, infer_bench), lib/ (their shared libraries
# except glibc, libstdc++ and CUDA's), REVISION.
bundle=/tmp/difftx-bundle
if [[ -f .devbundle/bundle.tar.xz ]]; then
  rm -rf "$bundle" && mkdir -p "$bundle" && tar -xJf .devbundle/bundle.tar.xz -C "$bundle"
elif ((dry)); then
  mkdir -p "$bundle/bin" && for b in build/difftx build/tests/test_backend build/tests/test_cli build/bench/infer_bench; do
    cp "$b" "$bundle/bin/"; done
  git rev-parse --short HEAD >"$bundle/REVISION" 2>/dev/null || echo unknown >"$bundle/REVISION"
else
  echo "device_check: .devbundle/bundle.tar.xz not found (make it with scripts/device_bundle.sh)" >&2
  exit 2
fi
bin="$bundle/bin"
# cuBLASLt: the toolkit's, else the one PyTorch's wheels carry; the driver's libcuda from the
# existing library path (kept) or its usual folders.
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
         /usr/local/nvidia/lib; do
  [[ -d $d ]] && cuda_libs="$cuda_libs:$d"
done
lt=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.13' 2>/dev/null | head -1)
export DIFFTX_LD_LIBRARY_PATH="$bundle/lib$cuda_libs${lt:+:$(dirname "$lt")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DIFFTX_SOURCE_DIR="$root" DIFFTX_BINARY="$bin/difftx"
revision=$(cat "$bundle/REVISION")

say "environment (difftx $revision)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>/dev/null ||
  echo "no nvidia-smi"
nproc
LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" ldd "$bin/difftx" | grep -E "not found" || true
echo "cuBLASLt (loaded by difftx at its first CUDA use): ${lt:-not found by find; LD_LIBRARY_PATH and ld.so.cache decide}"
device=cuda
((dry)) && device=cpu

if ((tests)); then
  # The CUDA tests (test_backend: every op against the CPU, whole models) and the --device CLI test.
  stage "tests: test_backend" 180 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/test_backend" \
    --gtest_output=json:"$raw/test_backend.json" --gtest_brief=1
  # The kernels prepared without a GPU and opt-in until measured (bench/cuda/NOTES.md): the GEMV's
  # pipelined loop and attention_rows' batched tile copy. The ops that take them against the CPU,
  # and whole models (decoding against the full forward, generation, perplexity).
  stage "tests: test_backend, prepared kernels" 150 env DIFFTX_CUDA_GEMV=pipelined \
    DIFFTX_CUDA_ATTENTION=batched-loads LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/test_backend" \
    --gtest_filter='*BackendOps.*Linear*:*BackendOps.*Attention*:*CudaGolden.*:CudaModel.*' \
    --gtest_output=json:"$raw/test_backend_prepared.json" --gtest_brief=1
  stage "tests: DeviceCli" 120 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/test_cli" \
    --gtest_filter='DeviceCli.*' --gtest_output=json:"$raw/test_cli.json" --gtest_brief=1
fi

# TensorBoard event files (use_tensorboard: true) loaded by TensorBoard itself where the machine's
# Python has it: a 4-step run of the tiny example model on README.md's text.
tb=/tmp/difftx-tensorboard
rm -rf "$tb" && mkdir -p "$tb"
env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" init --config examples/tiny-mistral/config.json \
  --out "$tb/tiny" --seed 1 >/dev/null &&
  cp examples/models/wp-llama-12m/tokenizer.json examples/models/wp-llama-12m/tokenizer_config.json "$tb/tiny/" &&
  cp README.md "$tb/text.txt" &&
  printf '%s\n' "base_model: $tb/tiny" "datasets:" "  - path: $tb/text.txt" "    type: completion" \
    "sequence_len: 64" "micro_batch_size: 2" "max_steps: 4" "val_set_size: 0.05" "eval_steps: 2" \
    "logging_steps: 1" "use_tensorboard: true" "output_dir: $tb/run" >"$tb/train.yml"
stage "tensorboard: a run with use_tensorboard" 60 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" \
  train "$tb/train.yml"
stage "tensorboard: read by TensorBoard" 60 python3 tools/reference/check_tensorboard.py "$tb/run" |
  tee "$raw/tensorboard.txt"

if ((bench)); then
  work=/tmp/difftx-models
  rm -rf "$work" && mkdir -p "$work"
  config=bench/cuda/llama-3.2-1b-shape.json prefill=2048 prompt=512 decode=128 batches=1,16 repeats=5
  if ((dry)); then
    config=examples/tiny-mistral/config.json prefill=64 prompt=16 decode=8 batches=1,4 repeats=3
  fi
  stage "bench: init the base model" 240 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" init \
    --config "$config" --out "$work/base" --dtype bf16 --seed 1
  cp examples/models/wp-llama-12m/tokenizer.json examples/models/wp-llama-12m/tokenizer_config.json "$work/base/"
  printf 'base_model: %s\noutput_dir: %s\n' "$work/base" "$work/llama-differential" >"$work/convert.yml"
  stage "bench: convert (llama-differential)" 180 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" \
    convert-diff-transformer "$work/convert.yml"
  stage "bench: convert (diffllama)" 180 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" \
    convert-diff-transformer "$work/convert.yml" --format diffllama --output-dir "$work/diffllama"
  for m in base diffllama llama-differential; do
    stage "bench: difftx $m" 180 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/infer_bench" "$work/$m" \
      --device "$device" --prefill $prefill --prompt $prompt --decode $decode --batch $batches --repeats $repeats \
      >"$raw/difftx-$m.json"
  done
  # The decoding products through difftx's GEMV instead of cuBLASLt (the choice in cuda_backend.cpp).
  stage "bench: difftx base, decoding GEMV" 120 env DIFFTX_CUDA_DECODE_GEMV=1 LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" \
    "$bin/infer_bench" "$work/base" --device "$device" --prefill 16 --prompt $prompt --decode $decode \
    --batch $batches --repeats $repeats >"$raw/difftx-base-gemv.json"
  # The prepared kernels, alone and together (report.py: "Decoding of the base model by product path").
  for variant in "gemv-pipelined:DIFFTX_CUDA_DECODE_GEMV=1 DIFFTX_CUDA_GEMV=pipelined" \
                 "attention-batched:DIFFTX_CUDA_ATTENTION=batched-loads" \
                 "gemv-pipelined-attention-batched:DIFFTX_CUDA_DECODE_GEMV=1 DIFFTX_CUDA_GEMV=pipelined DIFFTX_CUDA_ATTENTION=batched-loads"; do
    name=${variant%%:*}
    read -r -a settings <<<"${variant#*:}"
    stage "bench: difftx base, $name" 120 env "${settings[@]}" LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" \
      "$bin/infer_bench" "$work/base" --device "$device" --prefill 16 --prompt $prompt --decode $decode \
      --batch $batches --repeats $repeats >"$raw/difftx-base-$name.json"
  done
  stage "bench: difftx generate (diffllama)" 60 env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/difftx" generate \
    "$work/diffllama" --device "$device" --prompt "The quick brown fox" --max-new-tokens 64
  if ((dry)); then
    say "bench: transformers skipped (dry run)"
  else
    flags=(--prefill $prefill --prompt $prompt --decode $decode --batch $batches --repeats $repeats)
    # torch.compile (minutes of compilation) for the base model only, to keep the run inside its budget.
    compile_flag=()
    ((compile)) && compile_flag=(--compile)
    stage "bench: transformers base" 240 python3 bench/cuda/hf_bench.py "$work/base" --bandwidth "${flags[@]}" \
      "${compile_flag[@]}" --out "$raw/hf-base.json"
    stage "bench: transformers diffllama" 150 python3 bench/cuda/hf_bench.py "$work/diffllama" "${flags[@]}" \
      --out "$raw/hf-diffllama.json"
  fi
  if ((profile && !dry)) && command -v ncu >/dev/null; then
    # Where the time goes: every kernel's duration (Nsight Compute, clocks left alone) over short
    # runs without warm-up: decoding (3 steps after a 512-token prompt) of the base model, and a
    # 2048-token prefill of the diffllama model.
    stage "profile: ncu decode (base)" 100 ncu --clock-control none --print-summary per-kernel \
      --metrics gpu__time_duration.sum env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/infer_bench" "$work/base" \
      --prefill 16 --prompt 512 --decode 3 --batch 1 --repeats 1 --no-warmup >"$raw/ncu-decode-base.txt"
    stage "profile: ncu prefill (diffllama)" 100 ncu --clock-control none --print-summary per-kernel \
      --metrics gpu__time_duration.sum env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/infer_bench" \
      "$work/diffllama" --prefill 2048 --prompt 8 --decode 1 --batch 1 --repeats 1 --no-warmup \
      >"$raw/ncu-prefill-diffllama.txt"
    # The tensor-core attention kernel in detail (throughput, occupancy, why warps stall): 3 launches.
    stage "profile: ncu flash kernel (diffllama)" 100 ncu --clock-control none -k regex:flash -c 3 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
      env LD_LIBRARY_PATH="$DIFFTX_LD_LIBRARY_PATH" "$bin/infer_bench" "$work/diffllama" --prefill 2048 --prompt 8 \
      --decode 1 --batch 1 --repeats 1 --no-warmup >"$raw/ncu-flash-diffllama.txt"
  fi
  stage "bench: report" 30 python3 bench/cuda/report.py "$raw" "$OUT/RESULTS-cuda.md" "bash scripts/device_check.sh" \
    "$revision"
fi

# One JSON of the run: each stage's exit code and each test binary's counts.
python3 - "$raw" "$OUT" "$revision" <<'EOF'
import json, os, sys
out, dest, revision = sys.argv[1], sys.argv[2], sys.argv[3]
result = {"revision": revision, "stages": {}, "tests": {}}
for line in open(os.path.join(out, "stages.txt")):
    name, rc = line.rsplit(" ", 1)
    result["stages"][name] = int(rc)
for name in ("test_backend", "test_backend_prepared", "test_cli"):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        continue
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for suite in json.load(open(path)).get("testsuites", []):
        for t in suite.get("testsuite", []):
            if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                counts["skipped"] += 1
            elif t.get("failures"):
                counts["failed"] += 1
            else:
                counts["passed"] += 1
    result["tests"][name] = counts
json.dump(result, open(os.path.join(dest, "device_check.json"), "w"), indent=2)
print(json.dumps(result, indent=2))
EOF
tar -cf "$OUT/raw.tar" -C "$raw" .
say "done"
failed=$(awk '$NF != 0' "$status_file" | wc -l)
exit $(( failed > 0 ? 1 : 0 ))
