#!/usr/bin/env bash
# README's first command: install what is missing, build, run the main job.
#
# difftx does not ship a trained model yet (that is the embedded-model issue), so for now the main
# job is the foundation on the real SmolLM2-135M shape: create a randomly initialised checkpoint,
# inspect it, run a forward pass, and measure prefill/decode speed beside the machine's limits.
# Outputs go under out/quickstart/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/quickstart"
model="$out/smollm2-135m-random"

step() { printf '\n== %s\n' "$*"; }

step "1/5 install missing packages and build (Release, -O3 -march=native)"
bash scripts/build.sh

step "2/5 create a random SmolLM2-135M-shaped Llama checkpoint (BF16, like transformers' from_config)"
mkdir -p "$out"
./build/difftx init --config examples/smollm2-135m/config.json --out "$model" --dtype bf16 --seed 0 --overwrite

step "3/5 inspect it"
./build/difftx inspect "$model"

step "4/5 forward pass: top-3 next-token logits per position (random weights: the ids mean nothing yet)"
./build/difftx forward "$model" --ids 1,9,42,7,300,5 --top 3

step "5/5 speed: prefill of 512 tokens and 32 decode steps, beside sgemm and memory bandwidth"
./build/bench/forward_bench "$model" --seq-len 512 --decode 32 --repeats 2

printf '\nDone. The model is in %s (config.json + model.safetensors, loadable by transformers).\n' "$model"
printf 'Not yet here: a trained embedded model, tokenizer, differential attention, training (see README "Status").\n'
