#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer + UndefinedBehaviorSanitizer,
# in build-fuzz/) and runs each for SECONDS (default 60) from seed corpora made of the real
# fixtures, then prints executions, coverage and findings per target. Exits non-zero when a target
# found a crash, leak, timeout or out-of-memory; the input is in build-fuzz/artifacts/TARGET/.
# Save such an input under fuzz/regressions/TARGET/ once fixed: tests/fuzz replays them all.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: safetensors config tokenizer yaml dataset)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer, got '$secs'" >&2; exit 2; }
targets=("$@")
((${#targets[@]})) || targets=(safetensors config tokenizer yaml dataset)
shared=${DIFFTX_SHARED:-"$root/../shared"}
build="$root/build-fuzz"

bash scripts/deps.sh --fuzz
CXX=clang++ CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIFFTX_FUZZ=ON -DDIFFTX_CUDA=OFF \
  -DDIFFTX_BUILD_TESTS=OFF -DDIFFTX_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" $(printf -- '--target fuzz_%s ' "${targets[@]}")

# Seed corpora (kept between runs, so coverage accumulates locally).
seed() {  # seed TARGET NAME PREFIX_BYTE_OR_EMPTY FILE [MAX_BYTES]
  local dir="$build/corpus/$1"
  mkdir -p "$dir"
  { [[ -n "$3" ]] && printf "\\x$3"; head -c "${5:-100000}" "$4"; } > "$dir/seed-$2"
}
for f in tests/golden/*/logits.safetensors; do seed safetensors "$(basename "$(dirname "$f")")" "" "$f"; done
seed safetensors model-f32 "" tests/golden/llama_mha/model.safetensors
for f in examples/*/config.json tests/golden/*/config.json; do seed config "$(echo "$f" | tr / _)" "" "$f"; done
for f in examples/*.yml; do seed yaml "$(basename "$f")" "" "$f"; done
seed tokenizer bytelevel 00 fuzz/seeds/tokenizer-bytelevel.json
seed tokenizer metaspace 00 fuzz/seeds/tokenizer-metaspace.json
seed tokenizer mistral-cases 01 "$shared/fixtures/tokenizers/mistral/cases.inp"
seed tokenizer llama3-cases 03 "$shared/fixtures/tokenizers/llama3/cases.inp"
seed tokenizer mistral-book 01 "$shared/corpora/war-and-peace.txt" 3000
seed tokenizer llama3-book 03 "$shared/corpora/war-and-peace.txt" 3000
head -n 2 "$shared/datasets/aime25-alpaca.jsonl" > "$build/alpaca.jsonl"
head -n 2 "$shared/datasets/aime25-chat.jsonl" > "$build/chat.jsonl"
printf '{"text": "It was a bright cold day."}\n{"text": "Well, Prince, so Genoa and Lucca"}\n' > "$build/text.jsonl"
seed dataset alpaca 00 "$build/alpaca.jsonl" 8000
seed dataset completion 01 "$build/text.jsonl"
seed dataset chat 02 "$build/chat.jsonl" 8000
printf '[{"instruction": "Add 2 and 3.", "input": "", "output": "5"}]' > "$build/alpaca.json"
seed dataset alpaca-json 03 "$build/alpaca.json"

status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$build/artifacts/$t"
  log="$build/fuzz-$t.log"
  printf '\n== fuzz_%s for %s s\n' "$t" "$secs"
  set +e
  DIFFTX_SHARED="$shared" "$build/fuzz/fuzz_$t" "$build/corpus/$t" -max_total_time="$secs" -max_len=65536 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" > "$log" 2>&1
  rc=$?
  set -e
  tail -n 4 "$log" | grep -v '^$' || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || echo "cov: ? ft: ?")
  corpus=$(find "$build/corpus/$t" -type f | wc -l)
  if ((rc != 0)); then
    status=1
    summary+=("$(printf '%-12s %10s execs  %-20s corpus %5s  FOUND (exit %d): %s' "$t" "$execs" "$cov" "$corpus" "$rc" "$(ls "$build/artifacts/$t" | head -3 | tr '\n' ' ')")")
    grep -m 3 -E 'ERROR|runtime error|Assertion|terminate' "$log" || true
  else
    summary+=("$(printf '%-12s %10s execs  %-20s corpus %5s  no findings' "$t" "$execs" "$cov" "$corpus")")
  fi
done
printf '\nfuzzing summary (%s s per target; cov = edges covered, ft = features):\n' "$secs"
printf '  %s\n' "${summary[@]}"
exit $status
