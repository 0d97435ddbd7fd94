#!/usr/bin/env python3
"""Training memory with and without activation recomputation (issue 22, `gradient_checkpointing`):
peak RSS (from wait4) of `difftx train` on a SmolLM2-360M-shaped model converted with default flags,
sequence_len 2048, micro_batch_size 1, against the memory model of bench/NOTES.md, and training
tokens/s of both runs, interleaved on one machine. Writes bench/RESULTS-memory.md.

Usage: bench/memory_bench.py --build build --shared ../shared [--work out/bench-memory] [--seq 2048]
       [--steps 3] [--rounds 1] [--out bench/RESULTS-memory.md]"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

from data_parallel_bench import parameter_count
from machine import cpu_description
from report_file import write_lines
from train_yaml import write_train_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1024 * 1024

# SmolLM2-360M's config.json (HuggingFaceTB/SmolLM2-360M): the shape only; the weights are random.
SMOLLM2_360M = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 960, "intermediate_size": 2560,
    "num_hidden_layers": 32, "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64,
    "vocab_size": 49152, "max_position_embeddings": 8192, "rope_theta": 100000, "rms_norm_eps": 1e-05,
    "initializer_range": 0.02, "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
    "mlp_bias": False, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16",
}


def run_wait4(cmd, env):
    """Runs cmd (output discarded); returns its peak RSS in bytes (wait4's ru_maxrss)."""
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvpe(cmd[0], cmd, env)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"memory_bench.py: {' '.join(cmd)} failed ({os.waitstatus_to_exitcode(status)})")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def trace_floats_per_token(c):
    """The memory model of src/model/trace.h for the default conversion (llama-differential,
    double heads: QH = 2H, KH = 2KV, Hd = H differential heads of value width d): floats per token
    per layer kept for the backward, and the inputs alone (x_in) with recomputation."""
    D, H, KV, d, I = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], \
        c["intermediate_size"]
    QH, KH, Hd, w = 2 * H, 2 * KV, H, d
    full = 4 * D + (QH + KH + KV + H) * d + 2 * I + 2 * Hd * w + 2 * (2 * Hd)  # + m, l of both maps
    return full, D


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench-memory"))
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-memory.md"))
    a = ap.parse_args()
    difftx = os.path.join(a.build, "difftx")
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY="passive")  # default malloc: the memory model's setting
    base, diff = os.path.join(a.work, "base"), os.path.join(a.work, "diff")
    if not os.path.isfile(os.path.join(diff, "config.json")):
        cfg = os.path.join(a.work, "smollm2-360m.json")
        with open(cfg, "w") as f:
            json.dump(SMOLLM2_360M, f, indent=2)
        subprocess.run([difftx, "init", "--config", cfg, "--out", base, "--seed", "1", "--dtype", "f32", "--overwrite"],
                       check=True, env=env)
        with open(os.path.join(a.work, "convert.yml"), "w") as f:
            f.write(f"base_model: {base}\noutput_dir: {diff}\n")
        subprocess.run([difftx, "convert-diff-transformer", os.path.join(a.work, "convert.yml"), "--overwrite"],
                       check=True, env=env)
    tok = os.path.join(a.shared, "fixtures", "tokenizers", "mistral")
    text = os.path.join(a.shared, "corpora", "war-and-peace.txt")

    def config(name, extra):
        yml = os.path.join(a.work, f"{name}.yml")
        return write_train_yaml(yml, diff, tok, text, os.path.join(a.work, name), a.seq, 1, 1, a.steps, True,
                                "save_steps: 100000\n" + extra)

    runs = {"kept": config("kept", ""), "recomputed": config("recomputed", "gradient_checkpointing: true\n")}
    peak = {k: [] for k in runs}
    tps = {k: [] for k in runs}
    for rnd in range(a.rounds):  # interleaved: the machine's drift hits both alike
        for name, yml in runs.items():
            peak[name].append(run_wait4([difftx, "train", yml, "--overwrite"], env))
            rows = [json.loads(l) for l in open(os.path.join(a.work, name, "metrics.jsonl")) if l.strip()]
            tps[name].append(statistics.mean(r["tokens_per_second"] for r in rows if r["step"] > 1))
            print(f"round {rnd + 1} {name}: peak RSS {peak[name][-1] / MIB:.0f} MiB, {tps[name][-1]:.1f} tok/s "
                  f"(steps 2..{a.steps})", flush=True)

    with open(os.path.join(diff, "config.json")) as f:
        c = json.load(f)
    P = parameter_count(diff)
    L, N = c["num_hidden_layers"], a.seq
    full, inputs = trace_floats_per_token(c)
    state = 16 * P  # float32 weights, gradients, AdamW m and v
    kept_trace = 4 * full * L * N
    recomputed_trace = 4 * (inputs * L + full) * N  # every layer's input + the layer in hand
    m = {k: statistics.median(v) for k, v in peak.items()}
    t = {k: statistics.median(v) for k, v in tps.items()}
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = cpu_description()
    cmd = f"bench/memory_bench.py --build {a.build} --shared ... --seq {a.seq} --steps {a.steps} --rounds {a.rounds}"
    lines = [
        "# Training memory: activation recomputation (gradient_checkpointing)\n",
        f"Made by `{cmd}` on {datetime.date.today().isoformat()}, difftx {rev}, {cpu}, {os.cpu_count()} cores. "
        "Regenerate it rather than editing it.\n",
        f"Model: SmolLM2-360M's shape with random float32 weights, converted with default flags "
        f"(llama-differential, double heads; {P / 1e6:.1f} M parameters), full fine-tune, sequence_len {N}, "
        f"micro_batch_size 1, {a.steps} steps, peak RSS from wait4 (default malloc), tokens/s of steps 2..{a.steps}, "
        f"median of {a.rounds} round(s).\n",
        "Memory model (bench/NOTES.md): 16 P bytes of state (float32 weights, gradients, AdamW m and v) + the trace: "
        f"{full} floats per token per layer kept for the backward ({4 * full / 1024:.1f} KiB), or with recomputation "
        f"each layer's input ({inputs} floats, {4 * inputs / 1024:.2f} KiB per token per layer) plus one layer's "
        "activations at a time; on top, one layer's backward temporaries and the fixed part (loss chunk, code, "
        "tokenized corpus).\n",
        "| run | peak RSS | 16 P | trace (model) | rest (measured - 16P - trace) | peak / 16P | tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, trace in (("kept", kept_trace), ("recomputed", recomputed_trace)):
        label = "activations kept" if name == "kept" else "gradient_checkpointing: true"
        lines.append(f"| {label} | {m[name] / MIB:,.0f} MiB | {state / MIB:,.0f} MiB | {trace / MIB:,.0f} MiB | "
                     f"{(m[name] - state - trace) / MIB:,.0f} MiB | {m[name] / state:.3f} | {t[name]:.1f} |")
    ok = m["recomputed"] <= 1.25 * state
    lines += ["",
              f"Target: with recomputation, peak RSS <= weights + gradients + AdamW state + 25% "
              f"({1.25 * state / MIB:,.0f} MiB): **{'met' if ok else 'missed'}** ({m['recomputed'] / state:.3f} x 16P). "
              f"Recomputation costs {100 * (1 - t['recomputed'] / t['kept']):.1f}% of the tokens/s "
              f"({t['recomputed']:.1f} vs {t['kept']:.1f}) and saves {(m['kept'] - m['recomputed']) / MIB:,.0f} MiB "
              f"(model: {(kept_trace - recomputed_trace) / MIB:,.0f} MiB)."]
    write_lines(a.out, lines)


if __name__ == "__main__":
    main()
