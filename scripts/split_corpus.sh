#!/usr/bin/env bash
# Turns a plain-text book into completion datasets for `difftx train` (JSONL, {"text": ...}).
#
# Paragraphs are the blank-line separated blocks of the file; their hard line wraps are joined
# with single spaces (each line trimmed). The last VAL_FRACTION of the paragraphs (by bytes, cut
# at a paragraph boundary) is held out: OUT_DIR/validation.jsonl, plus validation.txt with the
# same text for `difftx eval`; the rest is OUT_DIR/train.jsonl. Nothing is shuffled. Consecutive
# paragraphs are grouped into records of at most RECORD_BYTES bytes, joined by a blank line, so a
# record is a stretch of the book seen as one document (axolotl splits a completion longer than
# sequence_len into sequence_len pieces).
#
# Usage: scripts/split_corpus.sh CORPUS.txt OUT_DIR [VAL_FRACTION=0.05] [RECORD_BYTES=4000]
# Needs only awk; files are written next to their destination and renamed.
set -euo pipefail
if (($# < 2)); then
  echo "usage: scripts/split_corpus.sh CORPUS.txt OUT_DIR [VAL_FRACTION=0.05] [RECORD_BYTES=4000]" >&2
  exit 2
fi
corpus=$1 out=$2 frac=${3:-0.05} limit=${4:-4000}
[[ -f "$corpus" ]] || { echo "split_corpus: $corpus: not a file" >&2; exit 2; }
awk -v f="$frac" 'BEGIN { exit !(f > 0 && f < 1) }' || { echo "split_corpus: VAL_FRACTION must be in (0, 1)" >&2; exit 2; }
mkdir -p "$out"
: > "$out/train.jsonl.tmp"; : > "$out/validation.jsonl.tmp"; : > "$out/validation.txt.tmp"
LC_ALL=C awk -v frac="$frac" -v limit="$limit" -v train="$out/train.jsonl.tmp" -v val="$out/validation.jsonl.tmp" \
  -v valtxt="$out/validation.txt.tmp" '
function trim(s) { sub(/^[ \t\r\f\v]+/, "", s); sub(/[ \t\r\f\v]+$/, "", s); return s }
function esc(s,   out, i, c) {
  gsub(/\\/, "\\\\\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
  if (s !~ /[\001-\010\013-\037]/) return s
  out = ""  # other control characters as \u00XX, as JSON requires
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    out = out ((c in ctl) ? sprintf("\\u%04x", ctl[c]) : c)
  }
  return out
}
BEGIN { for (i = 1; i < 32; i++) if (i != 9 && i != 10) ctl[sprintf("%c", i)] = i }
# Pass 1 (NR == FNR): collect paragraphs.
NR == FNR {
  line = trim($0)
  if (line != "") { cur = (cur == "" ? line : cur " " line) }
  else if (cur != "") { para[++n] = cur; total += length(cur); cur = "" }
  next
}
END {
  if (cur != "") { para[++n] = cur; total += length(cur) }
  cut = n + 1; seen = 0
  for (i = 1; i <= n; i++) { if (seen >= total * (1 - frac)) { cut = i; break } seen += length(para[i]) }
  emit(1, cut - 1, train, 0); emit(cut, n, val, 1)
  printf "%d paragraphs, %d bytes: train %d paragraphs in %d records, validation %d paragraphs in %d records (from paragraph %d)\n", \
    n, total, cut - 1, recs[0], n - cut + 1, recs[1], cut
}
function emit(a, b, file, which,   i, rec, size, first) {
  rec = ""; size = 0; first = 1; recs[which] = 0
  for (i = a; i <= b; i++) {
    if (rec != "" && size + length(para[i]) + 2 > limit) { put(rec, file, which); rec = ""; size = 0 }
    rec = (rec == "" ? para[i] : rec "\n\n" para[i]); size += length(para[i]) + 2
  }
  if (rec != "") put(rec, file, which)
}
function put(rec, file, which) {
  recs[which]++
  printf "{\"text\": \"%s\"}\n", esc2(rec) > file
  if (which) printf "%s%s", (recs[1] > 1 ? "\n\n" : ""), rec > valtxt
}
function esc2(s) { s = esc(s); gsub(/\n/, "\\n", s); return s }
' "$corpus" /dev/null
printf '\n' >> "$out/validation.txt.tmp"
for f in train.jsonl validation.jsonl validation.txt; do mv "$out/$f.tmp" "$out/$f"; done
