#!/usr/bin/env python3
"""LoRA training memory (issue 22's second target): `difftx train` with `adapter: lora`, r 16 on every
Linear of a Llama-3.2-1B-shaped model converted with default flags, sequence_len 2048,
micro_batch_size 1, gradient_checkpointing, frozen matrices in bf16 (the bf16 key): peak RSS from
wait4 against the 6 GB target and a memory model, and training tokens/s beside a full fine-tune of
the SmolLM2-360M-shaped model (memory_bench.py's, with recomputation), interleaved on one machine.
Writes bench/RESULTS-lora.md.

Usage: bench/lora_memory_bench.py --build build --shared ../shared [--work out/bench-lora] [--seq 2048]
       [--steps 3] [--rounds 1] [--out bench/RESULTS-lora.md]"""
import argparse
import datetime
import json
import os
import math
import statistics
import struct
import subprocess

from data_parallel_bench import parameter_count
from memory_bench import SMOLLM2_360M, run_wait4, trace_floats_per_token
from machine import cpu_description
from report_file import write_lines
from train_yaml import write_train_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1024 * 1024

# Llama-3.2-1B's config.json (meta-llama/Llama-3.2-1B): the shape only; the weights are random.
LLAMA_32_1B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "initializer_range": 0.02, "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
    "mlp_bias": False, "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
}
LORA = "adapter: lora\nlora_r: 16\nlora_alpha: 32\nlora_dropout: 0.05\nlora_target_linear: true\n"


def tensor_shapes(model_dir, file_name=None):
    """name -> shape from the safetensors headers of a directory (or of one file in it)."""
    out = {}
    for name in [file_name] if file_name else sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            with open(os.path.join(model_dir, name), "rb") as f:
                header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
            out.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return out


def converted(difftx, work, name, config, env):
    """work/<name>/diff: the config's shape with random weights (BF16 files), converted with default flags."""
    base, diff = os.path.join(work, name, "base"), os.path.join(work, name, "diff")
    if not os.path.isfile(os.path.join(diff, "config.json")):
        os.makedirs(os.path.join(work, name), exist_ok=True)
        cfg = os.path.join(work, name, "config.json")
        with open(cfg, "w") as f:
            json.dump(config, f, indent=2)
        subprocess.run([difftx, "init", "--config", cfg, "--out", base, "--seed", "1", "--dtype", "bf16", "--overwrite"],
                       check=True, env=env)
        yml = os.path.join(work, name, "convert.yml")
        with open(yml, "w") as f:
            f.write(f"base_model: {base}\noutput_dir: {diff}\n")
        subprocess.run([difftx, "convert-diff-transformer", yml, "--overwrite"], check=True, env=env)
    return diff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench-lora"))
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-lora.md"))
    a = ap.parse_args()
    difftx = os.path.join(a.build, "difftx")
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    big = converted(difftx, a.work, "llama-3.2-1b", LLAMA_32_1B, env)
    small = converted(difftx, a.work, "smollm2-360m", SMOLLM2_360M, env)
    tok = os.path.join(a.shared, "fixtures", "tokenizers", "mistral")
    text = os.path.join(a.shared, "corpora", "war-and-peace.txt")

    def config(name, model, extra):
        return write_train_yaml(os.path.join(a.work, f"{name}.yml"), model, tok, text, os.path.join(a.work, name),
                                a.seq, 1, 1, a.steps, True, "save_steps: 100000\ngradient_checkpointing: true\n" + extra)

    runs = {"lora-1b": config("lora-1b", big, LORA + "bf16: true\n"), "full-360m": config("full-360m", small, "")}
    peak = {k: [] for k in runs}
    tps = {k: [] for k in runs}
    for rnd in range(a.rounds):
        for name, yml in runs.items():
            peak[name].append(run_wait4([difftx, "train", yml, "--overwrite"], env))
            rows = [json.loads(l) for l in open(os.path.join(a.work, name, "metrics.jsonl")) if l.strip()]
            tps[name].append(statistics.mean(r["tokens_per_second"] for r in rows if r["step"] > 1))
            print(f"round {rnd + 1} {name}: peak RSS {peak[name][-1] / MIB:.0f} MiB, {tps[name][-1]:.1f} tok/s "
                  f"(steps 2..{a.steps})", flush=True)

    with open(os.path.join(big, "config.json")) as f:
        c = json.load(f)
    P = parameter_count(big)
    trained = sum(math.prod(v) for v in tensor_shapes(os.path.join(a.work, "lora-1b"), "adapter_model.safetensors").values())
    L, N = c["num_hidden_layers"], a.seq
    full, inputs = trace_floats_per_token(c)
    # bf16 matrices (rank 2), float32 vectors
    weights = sum(math.prod(v) * (2 if len(v) == 2 else 4) for v in tensor_shapes(big).values())
    state = 16 * trained  # float32 adapters and whole-trained tensors, gradients, AdamW m and v
    trace = 4 * (inputs * L + full) * N
    m = {k: statistics.median(v) for k, v in peak.items()}
    t = {k: statistics.median(v) for k, v in tps.items()}
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = cpu_description()
    cmd = f"bench/lora_memory_bench.py --build {a.build} --shared ... --seq {a.seq} --steps {a.steps} --rounds {a.rounds}"
    P_small = parameter_count(small)
    lines = [
        "# LoRA training memory: a 1.2B differential model on one 24 GB box\n",
        f"Made by `{cmd}` on {datetime.date.today().isoformat()}, difftx {rev}, {cpu}, {os.cpu_count()} cores. "
        "Regenerate it rather than editing it.\n",
        f"LoRA row: Llama-3.2-1B's shape with random weights, converted with default flags (llama-differential, "
        f"double heads; {P / 1e6:.1f} M parameters), `adapter: lora`, r 16, lora_alpha 32, lora_dropout 0.05, every "
        f"Linear of the decoder layers, the differential parameters trained whole ({trained / 1e6:.2f} M trained "
        f"parameters), `gradient_checkpointing: true`, `bf16: true` (frozen matrices kept in bf16, bf16 products "
        f"where the CPU has them), sequence_len {N}, micro_batch_size 1. Full row: the SmolLM2-360M-shaped model "
        f"({P_small / 1e6:.1f} M parameters) fully fine-tuned in float32 with recomputation, the same data and "
        f"sequence length. {a.steps} steps each, peak RSS from wait4, tokens/s of steps 2..{a.steps}, median of "
        f"{a.rounds} round(s), the two runs interleaved.\n",
        "Memory model of the LoRA row: frozen weights (2 bytes per matrix element, 4 per vector element) + 16 bytes "
        "per trained parameter (float32 values, gradients, AdamW m and v) + the recomputation trace "
        f"({inputs} floats per token per layer, plus one layer's {full}); on top, one layer's forward buffers and "
        "backward temporaries, the lm_head chunks and the fixed part (code, tokenized corpus).\n",
        "| run | peak RSS | weights | trained state | trace (model) | rest | tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| LoRA r 16, 1.2B, bf16 frozen | {m['lora-1b'] / MIB:,.0f} MiB | {weights / MIB:,.0f} MiB | "
        f"{state / MIB:,.0f} MiB | {trace / MIB:,.0f} MiB | {(m['lora-1b'] - weights - state - trace) / MIB:,.0f} MiB | "
        f"{t['lora-1b']:.1f} |",
        f"| full fine-tune, 360M, float32 | {m['full-360m'] / MIB:,.0f} MiB | - | {16 * P_small / MIB:,.0f} MiB (16 P) | "
        f"- | - | {t['full-360m']:.1f} |",
        "",
        f"Target: the LoRA row runs here with peak RSS <= 6 GB (6e9 bytes, {6e9 / MIB:,.0f} MiB): "
        f"**{'met' if m['lora-1b'] <= 6e9 else 'missed'}** ({m['lora-1b'] / 1e9:.2f} GB). Its tokens/s are "
        f"{t['lora-1b'] / t['full-360m']:.2f} x the 360M full fine-tune's.",
    ]
    write_lines(a.out, lines)


if __name__ == "__main__":
    main()
