#!/usr/bin/env python3
"""Draws the "Which conversion?" figure (README) from bench/conversion/which_conversion.sh's output.

Left: validation loss against fine-tuning step for each conversion (step 0 from the run's
step0.json, later steps from its metrics.jsonl `eval_loss`), the base model as a dashed line.
Right: mean KL divergence from the base (kl-{0,50,100,200}.json `kld_mean`), log scale.
Usage: /usr/bin/python3 scripts/plot_conversion_curves.py OUT_DIR FIGURE.png  (needs python3-matplotlib)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = [("seed-default", "seed default"), ("mirror-weights", "--mirror-weights"),
        ("zero-init", "--zero-init --no-sublayer-norm"), ("identity", "--init identity"),
        ("diff-v1", "--format diff-v1"), ("diff-v2", "--format diff-v2"),
        ("diff-v2-identity", "--format diff-v2 --init identity")]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def style(ax, ylabel, title):
    ax.set_yscale("log")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, figure = sys.argv[1], sys.argv[2]
    base = load_json(os.path.join(out, "base.json"))["eval_loss"]
    fig, (ax_loss, ax_kl) = plt.subplots(1, 2, figsize=(13, 5))
    for run, label in RUNS:
        d = os.path.join(out, run)
        if not os.path.isdir(d):
            continue
        steps, losses = [0], [load_json(os.path.join(d, "step0.json"))["eval_loss"]]
        with open(os.path.join(d, "metrics.jsonl")) as f:
            for line in f:
                row = json.loads(line)
                if "eval_loss" in row:
                    steps.append(row["step"])
                    losses.append(row["eval_loss"])
        ax_loss.plot(steps, losses, marker="o", markersize=3, label=label)
        kl_steps = [s for s in (0, 50, 100, 200) if os.path.exists(os.path.join(d, f"kl-{s}.json"))]
        kls = [max(load_json(os.path.join(d, f"kl-{s}.json"))["kld_mean"], 1e-6) for s in kl_steps]
        ax_kl.plot(kl_steps, kls, marker="o", markersize=4, label=label)
    ax_loss.axhline(base, color="black", linestyle="--", linewidth=1, label=f"base model ({base:.3f})")
    style(ax_loss, "validation loss (nats/token, log scale)", "Held-out War and Peace, embedded 12M model")
    style(ax_kl, "mean KL divergence from the base (nats; 0 drawn at 1e-6)", "How far each model is from the base")
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    print(f"wrote {figure}")


if __name__ == "__main__":
    main()
