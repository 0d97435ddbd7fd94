#!/usr/bin/env bash
# Measures the o_proj pairing of --split-heads / --format diffllama conversions on the embedded
# model (README, convert-diff-transformer): validation loss of each conversion for seeds 0-4,
# paired o_proj (default) against --plain-o-proj (the seed's copy), and with --train, 100
# fine-tuning steps of each (seed 0). Usage, from the repository root after scripts/build.sh:
#   bash bench/conversion/o_proj_pairing.sh [--train] [OUT_DIR (default out/o-proj-pairing)]
set -euo pipefail
train=0
[ "${1:-}" = "--train" ] && { train=1; shift; }
out=${1:-out/o-proj-pairing}
bin=${DIFFTX:-build/difftx}
model=examples/models/wp-llama-12m
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
[ -f "$out/data/validation.jsonl" ] || bash scripts/split_corpus.sh ../shared/corpora/war-and-peace.txt "$out/data" >/dev/null
head -n 8 "$out/data/train.jsonl" > "$out/data/probe.jsonl"
jnum() { grep -o "\"$2\": *[-0-9.eE+naif]*" "$1" | head -1 | sed 's/.*: *//'; }
eval_config() {  # MODEL_DIR FILE: probe = 8 training records, validation = the held-out text
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $out/data/probe.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $out/data/validation.jsonl" "    type: completion" "sequence_len: 256" \
    "micro_batch_size: 4" "output_dir: $out/unused" > "$2"
}
train_config() {  # MODEL_DIR OUTPUT_DIR FILE: the quickstart's recipe, 100 steps
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $out/data/train.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $out/data/validation.jsonl" "    type: completion" "sequence_len: 256" \
    "sample_packing: true" "micro_batch_size: 4" "gradient_accumulation_steps: 1" "max_steps: 100" \
    "learning_rate: 0.0005" "lr_scheduler: cosine" "warmup_steps: 10" "weight_decay: 0.1" \
    "adam_beta2: 0.95" "max_grad_norm: 1.0" "logging_steps: 10" "eval_steps: 50" "save_steps: 100" \
    "save_total_limit: 1" "seed: 42" "output_dir: $2" "diff_attention: true" "diff_attn_warmup_steps: 50" > "$3"
}
printf 'base_model: %s\noutput_dir: %s/converted\n' "$model" "$out" > "$out/convert.yml"
eval_config "$model" "$out/eval.yml"
"$bin" evaluate "$out/eval.yml" --json > "$out/base.json"
echo "base model: probe $(jnum "$out/base.json" train_loss) val $(jnum "$out/base.json" eval_loss)"
for fmt in "--format diffllama" "--split-heads" ""; do
  for plain in "" "--plain-o-proj"; do
    [ -z "$fmt" ] && [ -n "$plain" ] && continue  # double mode: nothing is paired
    for seed in 0 1 2 3 4; do
      # shellcheck disable=SC2086
      "$bin" convert-diff-transformer "$out/convert.yml" $fmt $plain --seed $seed --output-dir "$out/converted" \
        --overwrite >/dev/null 2>&1
      eval_config "$out/converted" "$out/eval.yml"
      "$bin" evaluate "$out/eval.yml" --json > "$out/r.json"
      echo "[${fmt:-double}] ${plain:-paired} seed $seed: probe $(jnum "$out/r.json" train_loss) val $(jnum "$out/r.json" eval_loss)"
      if ((train)) && ((seed == 0)); then
        train_config "$out/converted" "$out/trained" "$out/train.yml"
        "$bin" train "$out/train.yml" --overwrite --json > "$out/train.json" 2>/dev/null
        echo "  after 100 steps: eval_loss at steps 50, 100: $(grep -o '"eval_loss": *[-0-9.eE+naif]*' "$out/trained/metrics.jsonl" | sed 's/.*: *//' | tr '\n' ' ')"
      fi
    done
  done
done
