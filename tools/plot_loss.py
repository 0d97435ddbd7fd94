#!/usr/bin/env python3
"""Render a training run's loss curve (metrics.jsonl written by `difftx train`) as a PNG.

Plots the logged training loss (mean over each logging window) and the evaluation loss against
the optimizer step, with perplexity on a second axis. Needs matplotlib (scripts/deps.sh --plot).
Usage: tools/plot_loss.py METRICS.jsonl OUT.png [--title TEXT]
"""
import argparse
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("png")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    train, evals = [], []
    with open(a.metrics, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                train.append((r["step"], r["loss"]))
            if "eval_loss" in r:
                evals.append((r["step"], r["eval_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(*zip(*train), label="train loss (per logging window)", linewidth=1)
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss", markersize=3)
        best = min(evals, key=lambda e: e[1])
        ax.annotate(f"{best[1]:.3f} (ppl {math.exp(best[1]):.1f})", best, textcoords="offset points",
                    xytext=(-40, 12), fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_ylim(bottom=max(0.0, min(v for _, v in train + evals) - 0.5),
                top=min(11.0, max(v for _, v in train + evals) + 0.2))
    ax.grid(alpha=0.3)
    ax.legend()
    if a.title:
        ax.set_title(a.title)
    fig.tight_layout()
    tmp = a.png + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, a.png)


if __name__ == "__main__":
    main()
