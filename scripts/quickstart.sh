#!/usr/bin/env bash
# README's first command: install what is missing, build, run the main job.
#
# difftx does not ship a trained model yet (that is the embedded-model issue), so the main job runs
# on randomly initialised models (their text is noise; the workflow and the numbers are real):
#   1. the foundation on the real SmolLM2-135M shape: create, inspect, measure prefill/decode speed;
#   2. the seed's workflow on a small Mistral-shaped model with the real Mistral tokenizer:
#      convert-diff-transformer with --zero-init --no-sublayer-norm --debug (generations match),
#      the same with default flags (no match, as expected), generate, eval.
# Outputs go under out/quickstart/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/quickstart"
smol="$out/smollm2-135m-random"
tiny="$out/tiny-mistral-random"
difftx="$root/build/difftx"

step() { printf '\n== %s\n' "$*"; }

step "1/8 install missing packages and build (Release, -O3 -march=native)"
bash scripts/build.sh

step "2/8 create a random SmolLM2-135M-shaped Llama checkpoint (BF16, like transformers' from_config)"
mkdir -p "$out"
"$difftx" init --config examples/smollm2-135m/config.json --out "$smol" --dtype bf16 --seed 0 --overwrite
"$difftx" inspect "$smol"

step "3/8 speed: prefill of 512 tokens and 32 decode steps, beside sgemm and memory bandwidth"
./build/bench/forward_bench "$smol" --seq-len 512 --decode 32 --repeats 2

step "4/8 a small Mistral-shaped model with the real Mistral tokenizer (../shared/fixtures)"
"$difftx" init --config examples/tiny-mistral/config.json --out "$tiny" --seed 1 --overwrite
cp ../shared/fixtures/tokenizers/mistral/tokenizer.json ../shared/fixtures/tokenizers/mistral/tokenizer_config.json "$tiny/"
printf 'base_model: %s\noutput_dir: %s\n' "$tiny" "$out/tiny-diff" > "$out/convert.yml"

step "5/8 convert-diff-transformer --zero-init --no-sublayer-norm --debug: the converted model computes the base model"
"$difftx" convert-diff-transformer "$out/convert.yml" --zero-init --no-sublayer-norm --debug \
  --output-dir "$out/tiny-diff-zero" --overwrite

step "6/8 convert-diff-transformer --debug with default flags: a real differential model (no match expected)"
"$difftx" convert-diff-transformer "$out/convert.yml" --debug --overwrite

step "7/8 generate with the converted model (streamed)"
"$difftx" generate "$out/tiny-diff" --prompt "It was a bright cold day in April" --max-new-tokens 24

step "8/8 eval: perplexity of the converted model on real English text (random weights: about the vocabulary size or worse)"
"$difftx" eval "$out/tiny-diff" --text ../shared/corpora/dasher-english-gb.txt --context 256 --stride 128 --max-tokens 8192

printf '\nDone. Outputs in %s:\n' "$out"
printf '  %s\n' "$smol (random SmolLM2-135M shape)" "$tiny (random Mistral shape + tokenizer)" \
  "$out/tiny-diff (llama-differential, default flags) and its axolotl_config.yml" \
  "$out/tiny-diff-zero (llama-differential, zero-init, no sublayer norm)"
printf 'Not yet here: a trained embedded model and training (see README "Status").\n'
