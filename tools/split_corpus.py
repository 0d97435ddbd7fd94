#!/usr/bin/env python3
"""Turn a plain-text book into completion datasets for `difftx train` (JSONL, {"text": ...}).

Paragraphs are the blank-line separated blocks of the file; their hard line wraps are joined
with spaces. The last `--val-fraction` of the paragraphs (by characters, cut at a paragraph
boundary) is the held-out validation file (validation.jsonl, and validation.txt with the same
text for `difftx eval`), the rest the training file (train.jsonl); neither is shuffled.
Consecutive paragraphs are grouped into records of at most `--record-chars` characters, joined by
a blank line, so that each record is a stretch of the book the model sees as one document (axolotl
splits a completion longer than sequence_len into sequence_len pieces).

Standard library only: this prepares data, it computes nothing difftx checks.
"""
import argparse
import json
import os
import sys


def paragraphs(text):
    out, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def records(paras, limit):
    out, cur, size = [], [], 0
    for p in paras:
        if cur and size + len(p) + 2 > limit:
            out.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(p)
        size += len(p) + 2
    if cur:
        out.append("\n\n".join(cur))
    return out


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("out_dir")
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--record-chars", type=int, default=4000)
    a = ap.parse_args()
    if not 0 < a.val_fraction < 1:
        sys.exit("--val-fraction must be in (0, 1)")
    with open(a.corpus, encoding="utf-8") as f:
        paras = paragraphs(f.read())
    total = sum(len(p) for p in paras)
    cut, seen = len(paras), 0
    for i, p in enumerate(paras):
        if seen >= total * (1 - a.val_fraction):
            cut = i
            break
        seen += len(p)
    os.makedirs(a.out_dir, exist_ok=True)
    train, val = records(paras[:cut], a.record_chars), records(paras[cut:], a.record_chars)
    write_jsonl(os.path.join(a.out_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(a.out_dir, "validation.jsonl"), val)
    tmp = os.path.join(a.out_dir, "validation.txt.tmp")  # the same text for `difftx eval`
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\n".join(val) + "\n")
    os.replace(tmp, os.path.join(a.out_dir, "validation.txt"))
    print(f"{len(paras)} paragraphs, {total} characters: train {cut} paragraphs in {len(train)} records, "
          f"validation {len(paras) - cut} paragraphs in {len(val)} records (from paragraph {cut + 1})")


if __name__ == "__main__":
    main()
