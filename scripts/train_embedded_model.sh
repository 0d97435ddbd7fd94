#!/usr/bin/env bash
# Reproduces the embedded model examples/models/wp-llama-12m with one command:
#   1. split ../shared/corpora/war-and-peace.txt: the last 5% held out (scripts/split_corpus.sh);
#   2. difftx init a 12.3M-parameter Llama (examples/wp-llama-12m/config.json, BF16, seed 42);
#   3. difftx train examples/train-wp-llama-12m.yml (about an hour on 2 cores);
#   4. copy the final BF16 model, its tokenizer files and metrics.jsonl into examples/models/,
#      render the loss curve (tools/plot_loss.py, needs python3-matplotlib) and print three greedy
#      samples. The model card (examples/models/wp-llama-12m/README.md) is written by hand from
#      what this prints.
# Work files go under out/wp-llama-12m/. Usage: scripts/train_embedded_model.sh [--publish-only]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
name=wp-llama-12m
work="out/$name"
dest="examples/models/$name"
difftx="$root/build/difftx"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

shared=${DIFFTX_SHARED:-"$root/../shared"}
case "${1:-}" in
  "" | --publish-only) ;;
  *) echo "train_embedded_model: unknown option $1 (only --publish-only)" >&2; exit 2 ;;
esac
if [[ "${1:-}" != "--publish-only" ]]; then
  bash scripts/build.sh
  bash scripts/split_corpus.sh "$shared/corpora/war-and-peace.txt" "$work/data"
  "$difftx" init --config "examples/$name/config.json" --out "$work/init" --dtype bf16 --seed 42 --overwrite
  start=$(date +%s)
  "$difftx" train "examples/train-$name.yml" --overwrite 2>&1 | tee "$work/train.log"
  echo "training wall time: $(( $(date +%s) - start )) s"
fi

# Publish: stage next to the destination, then swap it in (the card README.md is kept).
stage="$dest.staging"
rm -rf "$stage"
mkdir -p "$stage"
for f in model.safetensors config.json tokenizer.json tokenizer_config.json metrics.jsonl; do
  cp "$work/train/$f" "$stage/"
done
[[ -f "$dest/README.md" ]] && cp "$dest/README.md" "$stage/"
py=/usr/bin/python3  # Debian's, where scripts/deps.sh installs matplotlib
if bash scripts/deps.sh --plot >/dev/null && "$py" -c 'import matplotlib' 2>/dev/null; then
  "$py" tools/plot_loss.py "$stage/metrics.jsonl" "$stage/loss.png" --title "$name on War and Peace"
elif [[ -f "$dest/loss.png" ]]; then
  cp "$dest/loss.png" "$stage/"
fi
rm -rf "$dest.old"
[[ -d "$dest" ]] && mv "$dest" "$dest.old"
mv "$stage" "$dest"
rm -rf "$dest.old"
"$difftx" inspect "$dest"
for prompt in "Prince Andrew" "The French army" "Natasha looked at"; do
  echo "--- greedy sample: $prompt"
  "$difftx" generate "$dest" --prompt "$prompt" --max-new-tokens 60
done
echo "--- validation perplexity (sliding window, context 256, stride 128)"
"$difftx" eval "$dest" --text "$work/data/validation.txt" --context 256 --stride 128
