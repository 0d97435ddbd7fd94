#!/usr/bin/env bash
# README's first command: install what is missing, build difftx, then run the axolotl
# diff-transformer workflow on the embedded model examples/models/wp-llama-12m (a 12.3M-parameter
# Llama trained by difftx on War and Peace with the Mistral tokenizer; its card says how):
#   1. convert-diff-transformer --zero-init --no-sublayer-norm --debug: generations match;
#   2. convert-diff-transformer --debug with default flags: no match, as expected;
#   3. evaluate the base and the converted model, generate a sample (before fine-tuning);
#   4. fine-tune it on the book's training split with the plugin's warm-up and monitoring;
#   5. evaluate and generate again (after), draw the fine-tune's curves (finetuned/metrics.png)
#      and print a summary table.
# All outputs go under one directory (default out/quickstart). About 4 minutes on 2 cores after
# the build (8 with --compare-base).
#
# Usage: scripts/quickstart.sh [--model DIR] [--out DIR] [--steps N] [--short] [--compare-base] [--no-build]
#   --model DIR      run the workflow on another Llama-family model directory (with tokenizer files)
#   --steps N        fine-tuning steps (default 200)
#   --short          a tiny run for CI: 12 steps of 2 x 128 tokens, small evaluation slices (overrides --steps)
#   --compare-base   also fine-tune the base (standard attention) model the same way and compare
#   --no-build       use the difftx binary in $DIFFTX (default build/difftx) as it is
# Environment: DIFFTX (the binary), DIFFTX_SHARED (the folder holding corpora/, default ../shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/quickstart" steps=200 short=0 compare=0 build=1
model="$root/examples/models/wp-llama-12m"
need() { (($# >= 2)) || { echo "quickstart: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
  case "$1" in
    --model) need "$@"; model=$(realpath -m "$2"); shift 2 ;;
    --out) need "$@"; out=$(realpath -m "$2"); shift 2 ;;
    --steps) need "$@"; steps=$2; shift 2 ;;
    --short) short=1; shift ;;
    --compare-base) compare=1; shift ;;
    --no-build) build=0; shift ;;
    *) echo "quickstart: unknown option $1 (see the header of scripts/quickstart.sh)" >&2; exit 2 ;;
  esac
done
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "quickstart: --steps must be a positive integer" >&2; exit 2; }
difftx=${DIFFTX:-"$root/build/difftx"}
shared=${DIFFTX_SHARED:-"$root/../shared"}  # the corpora (CI keeps a read-only copy beside the clone)
data="$out/data"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}  # stay fast when something else shares the cores
t0=$(date +%s)
step() { printf '\n== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# A number from a JSON file written by difftx (first occurrence of "key": value).
jnum() { grep -o "\"$2\": *[-0-9.eE+naif]*" "$1" | head -1 | sed 's/.*: *//'; }

if ((build)); then
  step "install missing packages and build difftx (Release, -O3 -march=native)"
  BUILD_TARGETS=difftx bash scripts/build.sh
fi
mkdir -p "$out"

step "the embedded model"
"$difftx" inspect "$model"

step "data: War and Peace split into training text and the held-out last 5% (as the model was trained)"
bash scripts/split_corpus.sh "$shared/corpora/war-and-peace.txt" "$data"
seq_len=256 mb=4 probe=8 warm=$((steps / 2)) log_every=$((steps < 50 ? steps : 50)) eval_steps=$((steps < 100 ? steps : 100))
if ((short)); then
  steps=12 seq_len=128 mb=2 probe=2 warm=6 log_every=6 eval_steps=6
  head -n 4 "$data/train.jsonl" > "$data/train.part" && mv "$data/train.part" "$data/train.jsonl"
  head -n 1 "$data/validation.jsonl" > "$data/val.part" && mv "$data/val.part" "$data/validation.jsonl"
fi
# The same few training records are evaluated before and after fine-tuning ("probe" loss).
head -n "$probe" "$data/train.jsonl" > "$data/probe.jsonl"
eval_config() {  # eval_config MODEL_DIR FILE: an axolotl config for `difftx evaluate`
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $data/probe.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $data/validation.jsonl" "    type: completion" "sequence_len: $seq_len" \
    "micro_batch_size: $mb" "output_dir: $out/unused" > "$2"
}

step "1/5 convert-diff-transformer --zero-init --no-sublayer-norm --debug: the converted model still computes the base model"
printf 'base_model: %s\noutput_dir: %s\n' "$model" "$out/diff" > "$out/convert.yml"
"$difftx" convert-diff-transformer "$out/convert.yml" --zero-init --no-sublayer-norm --debug \
  --output-dir "$out/diff-zero" --overwrite | tee "$out/convert-zero.log"

step "2/5 convert-diff-transformer --debug with default flags: a real differential model"
"$difftx" convert-diff-transformer "$out/convert.yml" --debug --overwrite | tee "$out/convert-default.log"

step "3/5 before fine-tuning: evaluate the base and the converted model, and generate from the converted one"
eval_config "$model" "$out/eval-base.yml"
eval_config "$out/diff" "$out/eval-before.yml"
"$difftx" evaluate "$out/eval-base.yml" --json > "$out/eval-base.json"
"$difftx" evaluate "$out/eval-before.yml" --json > "$out/eval-before.json"
printf 'base model:      probe loss %.4f, validation loss %.4f\n' "$(jnum "$out/eval-base.json" train_loss)" \
  "$(jnum "$out/eval-base.json" eval_loss)"
printf 'converted model: probe loss %.4f, validation loss %.4f\n' "$(jnum "$out/eval-before.json" train_loss)" \
  "$(jnum "$out/eval-before.json" eval_loss)"
prompt="Prince Andrew looked at"
"$difftx" generate "$out/diff" --prompt "$prompt" --max-new-tokens 40 | tee "$out/sample-before.txt"

train_config() {  # train_config MODEL_DIR OUTPUT_DIR DIFFERENTIAL(0|1) FILE
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $data/train.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $data/validation.jsonl" "    type: completion" "sequence_len: $seq_len" \
    "sample_packing: true" "micro_batch_size: $mb" "gradient_accumulation_steps: 1" "max_steps: $steps" \
    "learning_rate: 0.0005" "lr_scheduler: cosine" "warmup_steps: $((steps / 10))" "weight_decay: 0.1" \
    "adam_beta2: 0.95" "max_grad_norm: 1.0" "logging_steps: $((short ? 1 : 10))" "eval_steps: $eval_steps" \
    "save_steps: $eval_steps" "save_total_limit: 1" "seed: 42" "output_dir: $2" > "$4"
  if (($3)); then
    printf '%s\n' "plugins:" "  - axolotl_diff_transformer.plugin.DifferentialTransformerPlugin" \
      "diff_attention: true" "diff_attn_warmup_steps: $warm" "diff_attn_log_every: $log_every" \
      "diff_attn_num_monitor_layers: 2" >> "$4"
  fi
}

step "4/5 fine-tune the converted model: $steps steps, negative component warmed up over $warm steps, lambdas monitored"
train_config "$out/diff" "$out/finetuned" 1 "$out/train.yml"
"$difftx" train "$out/train.yml" --overwrite --json > "$out/train.json"
cat "$out/train.json"

step "5/5 after fine-tuning: evaluate and generate"
eval_config "$out/finetuned" "$out/eval-after.yml"
"$difftx" evaluate "$out/eval-after.yml" --json > "$out/eval-after.json"
"$difftx" generate "$out/finetuned" --prompt "$prompt" --max-new-tokens 40 | tee "$out/sample-after.txt"

if ((compare)); then
  step "compare: fine-tune the base model (standard attention) with the same recipe"
  train_config "$model" "$out/base-finetuned" 0 "$out/train-base.yml"
  "$difftx" train "$out/train-base.yml" --overwrite --json > "$out/train-base.json"
  eval_config "$out/base-finetuned" "$out/eval-base-after.yml"
  "$difftx" evaluate "$out/eval-base-after.yml" --json > "$out/eval-base-after.json"
fi

# Pictures: the fine-tune's curves (loss, eval_loss, learning rate, gradient norm, lambdas), and
# with --compare-base both runs overlaid.
"$difftx" plot "$out/finetuned" -o "$out/finetuned/metrics.png" > /dev/null
plots="$out/finetuned/metrics.png"
if ((compare)); then
  "$difftx" plot "$out/finetuned" "$out/base-finetuned" -o "$out/compare.png" \
    --title "fine-tuning the converted (differential) model vs the base model" > /dev/null
  plots="$plots $out/compare.png"
fi

# Summary table.
ppl() { awk -v l="$1" 'BEGIN { printf "%.2f", exp(l) }'; }
f4() { awk -v x="$1" 'BEGIN { printf "%.4f", x }'; }
row() { printf '%-34s %10s %10s %12s\n' "$1" "$2" "$3" "$4"; }
last_monitor=$(grep '"layer_' "$out/finetuned/metrics.jsonl" | tail -1 || true)
{
  printf '\nSummary (%s)\n' "$out"
  row "model" "probe loss" "val loss" "val ppl"
  for pair in "embedded base model:eval-base" "converted, before fine-tuning:eval-before" \
    "converted, after $steps steps:eval-after"; do
    name=${pair%%:*} f="$out/${pair##*:}.json"
    v=$(jnum "$f" eval_loss)
    row "$name" "$(f4 "$(jnum "$f" train_loss)")" "$(f4 "$v")" "$(ppl "$v")"
  done
  if ((compare)); then
    v=$(jnum "$out/eval-base-after.json" eval_loss)
    row "base, after $steps steps" "$(f4 "$(jnum "$out/eval-base-after.json" train_loss)")" "$(f4 "$v")" "$(ppl "$v")"
  fi
  printf '\nlambda_full at step %s (lambda1 - lambda2 + lambda_init, per monitored layer):' \
    "$(echo "$last_monitor" | grep -o '"step":[0-9]*' | sed 's/.*://')"
  for key in $(echo "$last_monitor" | grep -o '"layer_[0-9]*/lambda_full"' | tr -d '"'); do
    printf ' %s %.4f' "${key%/lambda_full}" "$(echo "$last_monitor" | grep -o "\"$key\":[-0-9.eE+]*" | sed 's/.*://')"
  done
  printf '\nfine-tuning: %s steps, %.0f tokens/s (steps only), %.1f s of training\n' "$(jnum "$out/train.json" steps)" \
    "$(jnum "$out/train.json" tokens_per_second)" "$(jnum "$out/train.json" train_seconds)"
  printf 'wall time: %s s\n' "$(($(date +%s) - t0))"
  printf 'outputs: %s (diff-zero/, diff/, finetuned/ with metrics.jsonl, *.json reports, samples)\n' "$out"
  printf 'plot: %s\n' "$plots"
} | tee "$out/summary.txt"
