#!/usr/bin/env bash
# README's first command: install what is missing, build, run the main job.
#
# difftx does not ship a trained model yet (that is the embedded-model issue), so the main job runs
# on randomly initialised models (their text is noise; the workflow and the numbers are real):
#   1. the foundation on the real SmolLM2-135M shape: create, inspect, measure prefill/decode speed;
#   2. the seed's workflow on a small Mistral-shaped model with the real Mistral tokenizer:
#      convert-diff-transformer with --zero-init --no-sublayer-norm --debug (generations match),
#      the same with default flags (no match, as expected), generate, a short fine-tune with the
#      plugin's warm-up and monitoring, eval and generate before and after.
# Outputs go under out/quickstart/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/quickstart"
smol="$out/smollm2-135m-random"
tiny="$out/tiny-mistral-random"
difftx="$root/build/difftx"

step() { printf '\n== %s\n' "$*"; }

step "1/10 install missing packages and build (Release, -O3 -march=native)"
bash scripts/build.sh

step "2/10 create a random SmolLM2-135M-shaped Llama checkpoint (BF16, like transformers' from_config)"
mkdir -p "$out"
"$difftx" init --config examples/smollm2-135m/config.json --out "$smol" --dtype bf16 --seed 0 --overwrite
"$difftx" inspect "$smol"

step "3/10 speed: prefill of 512 tokens and 32 decode steps, beside sgemm and memory bandwidth"
./build/bench/forward_bench "$smol" --seq-len 512 --decode 32 --repeats 2

step "4/10 a small Mistral-shaped model with the real Mistral tokenizer (../shared/fixtures)"
"$difftx" init --config examples/tiny-mistral/config.json --out "$tiny" --seed 1 --overwrite
cp ../shared/fixtures/tokenizers/mistral/tokenizer.json ../shared/fixtures/tokenizers/mistral/tokenizer_config.json "$tiny/"
printf 'base_model: %s\noutput_dir: %s\n' "$tiny" "$out/tiny-diff" > "$out/convert.yml"

step "5/10 convert-diff-transformer --zero-init --no-sublayer-norm --debug: the converted model computes the base model"
"$difftx" convert-diff-transformer "$out/convert.yml" --zero-init --no-sublayer-norm --debug \
  --output-dir "$out/tiny-diff-zero" --overwrite

step "6/10 convert-diff-transformer --debug with default flags: a real differential model (no match expected)"
"$difftx" convert-diff-transformer "$out/convert.yml" --debug --overwrite

step "7/10 generate with the converted model (streamed)"
"$difftx" generate "$out/tiny-diff" --prompt "It was a bright cold day in April" --max-new-tokens 24

step "8/10 fine-tune it: 30 steps on real English text, with the plugin's warm-up and monitoring"
printf '%s\n' "base_model: $out/tiny-diff" "datasets:" "  - path: ../shared/corpora/dasher-english-gb.txt" \
  "    type: completion" "val_set_size: 0.02" "sequence_len: 128" "sample_packing: true" "micro_batch_size: 4" \
  "gradient_accumulation_steps: 2" "max_steps: 30" "learning_rate: 0.002" "warmup_steps: 3" "logging_steps: 5" \
  "eval_steps: 15" "save_steps: 15" "output_dir: $out/tiny-trained" "diff_attention: true" \
  "diff_attn_log_every: 15" "diff_attn_num_monitor_layers: 2" "diff_attn_warmup_steps: 10" > "$out/train.yml"
"$difftx" train "$out/train.yml" --overwrite

step "9/10 evaluate and generate with the fine-tuned model"
"$difftx" eval "$out/tiny-trained" --text ../shared/corpora/dasher-english-gb.txt --context 128 --stride 64 --max-tokens 4096
"$difftx" generate "$out/tiny-trained" --prompt "It was a bright cold day in April" --max-new-tokens 24

step "10/10 the same perplexity for the converted model before fine-tuning"
"$difftx" eval "$out/tiny-diff" --text ../shared/corpora/dasher-english-gb.txt --context 128 --stride 64 --max-tokens 4096

printf '\nDone. Outputs in %s:\n' "$out"
printf '  %s\n' "$smol (random SmolLM2-135M shape)" "$tiny (random Mistral shape + tokenizer)" \
  "$out/tiny-diff (llama-differential, default flags) and its axolotl_config.yml" \
  "$out/tiny-diff-zero (llama-differential, zero-init, no sublayer norm)" \
  "$out/tiny-trained (fine-tuned; metrics.jsonl, checkpoints)"
printf 'Not yet here: a trained embedded model (see README "Status").\n'
