#!/usr/bin/env bash
# "Which conversion?" (README): converts the embedded model seven ways, fine-tunes each with the
# quickstart's recipe for 200 steps (validation loss every 25 steps, checkpoints every 50) and
# measures each one's KL divergence from the base model at steps 0, 50, 100 and 200 on the
# held-out text. One recipe for all, WITHOUT the quickstart's diff_attn_warmup_steps: the warm-up
# ramps lambda from 0, which would keep the default conversions' negative maps switched off for
# the first steps and take diff-v2's identity conversion away from the base (its doubled o_proj
# assumes lambda = 1/2). Usage, from the repository root after scripts/build.sh:
#   bash bench/conversion/which_conversion.sh [OUT_DIR (default out/which-conversion)]
# Writes OUT_DIR/table.md and OUT_DIR/<run>/{metrics.jsonl,step0.json,kl-*.json}; draw the curves
# with /usr/bin/python3 scripts/plot_conversion_curves.py OUT_DIR docs/images/which-conversion.png.
set -euo pipefail
out=${1:-out/which-conversion}
bin=${DIFFTX:-build/difftx}
model=examples/models/wp-llama-12m
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
[ -f "$out/data/validation.jsonl" ] || bash scripts/split_corpus.sh ../shared/corpora/war-and-peace.txt "$out/data" >/dev/null
jnum() { grep -o "\"$2\": *[-0-9.eE+naif]*" "$1" | head -1 | sed 's/.*: *//'; }
eval_config() {  # MODEL_DIR FILE: the held-out text as the test set
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $out/data/validation.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $out/data/validation.jsonl" "    type: completion" "sequence_len: 256" \
    "micro_batch_size: 4" "output_dir: $out/unused" > "$2"
}
train_config() {  # MODEL_DIR OUTPUT_DIR FILE: the quickstart's recipe, 200 steps, no warm-up
  printf '%s\n' "base_model: $1" "datasets:" "  - path: $out/data/train.jsonl" "    type: completion" \
    "test_datasets:" "  - path: $out/data/validation.jsonl" "    type: completion" "sequence_len: 256" \
    "sample_packing: true" "micro_batch_size: 4" "gradient_accumulation_steps: 1" "max_steps: 200" \
    "learning_rate: 0.0005" "lr_scheduler: cosine" "warmup_steps: 20" "weight_decay: 0.1" \
    "adam_beta2: 0.95" "max_grad_norm: 1.0" "logging_steps: 25" "eval_steps: 25" "save_steps: 50" \
    "seed: 42" "output_dir: $2" "diff_attention: true" "diff_attn_log_every: 25" \
    "diff_attn_num_monitor_layers: 2" > "$3"
}
kl() {  # MODEL_DIR OUT.json: KL divergence from the base on the held-out text
  "$bin" eval "$1" --text "$out/data/validation.txt" --kl-base "$model" --max-tokens 4096 --context 512 \
    --stride 256 --json > "$2"
}
printf 'base_model: %s\noutput_dir: %s/unused\n' "$model" "$out" > "$out/convert.yml"
eval_config "$model" "$out/eval-base.yml"
"$bin" evaluate "$out/eval-base.yml" --json > "$out/base.json"
runs=("seed-default|" "mirror-weights|--mirror-weights" "zero-init|--zero-init --no-sublayer-norm"
      "identity|--init identity" "diff-v1|--format diff-v1" "diff-v2|--format diff-v2"
      "diff-v2-identity|--format diff-v2 --init identity")
table="$out/table.md"
printf '| conversion | val loss 0 | 50 | 100 | 200 | KLD 0 | 50 | 100 | 200 |\n|---|---|---|---|---|---|---|---|---|\n' > "$table"
for run in "${runs[@]}"; do
  name=${run%%|*} flags=${run#*|}
  dir="$out/$name"
  mkdir -p "$dir"
  echo "== $name ($flags)"
  # shellcheck disable=SC2086
  "$bin" convert-diff-transformer "$out/convert.yml" $flags --output-dir "$dir/converted" --overwrite >/dev/null 2>&1
  eval_config "$dir/converted" "$dir/eval.yml"
  "$bin" evaluate "$dir/eval.yml" --json > "$dir/step0.json"
  kl "$dir/converted" "$dir/kl-0.json"
  train_config "$dir/converted" "$dir/trained" "$dir/train.yml"
  "$bin" train "$dir/train.yml" --overwrite --json > "$dir/train.json" 2> "$dir/train.log"
  cp "$dir/trained/metrics.jsonl" "$dir/metrics.jsonl"
  kl "$dir/trained/checkpoint-50" "$dir/kl-50.json"
  kl "$dir/trained/checkpoint-100" "$dir/kl-100.json"
  kl "$dir/trained" "$dir/kl-200.json"
  val() { grep "\"step\":$1," "$dir/metrics.jsonl" | grep -o '"eval_loss": *[-0-9.eE+]*' | sed 's/.*: *//'; }
  printf '| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n' "${flags:-(seed default)}" \
    "$(jnum "$dir/step0.json" eval_loss)" "$(val 50)" "$(val 100)" "$(val 200)" \
    "$(jnum "$dir/kl-0.json" kld_mean)" "$(jnum "$dir/kl-50.json" kld_mean)" "$(jnum "$dir/kl-100.json" kld_mean)" \
    "$(jnum "$dir/kl-200.json" kld_mean)" | tee -a "$table"
  rm -rf "$dir/trained/checkpoint-"* "$dir/converted"
done
echo "base model: validation loss $(jnum "$out/base.json" eval_loss)" | tee -a "$table"
