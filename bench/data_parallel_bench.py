#!/usr/bin/env python3
"""Data-parallel training over MPI (issue 19): training tokens/s of one process with all threads
against mpirun ranks with one share of the cores each, the same global batch (one process
accumulates what the ranks split), interleaved in rounds on one machine; the communication time
per step; and a scaling model on paper from the bytes each step moves. Writes bench/RESULTS-mpi.md.

Usage: bench/data_parallel_bench.py --build build --models out/bench --shared ../shared [--ranks 2]
       [--rounds 2] [--steps 6] [--out bench/RESULTS-mpi.md]
(scripts/bench.sh runs it after run_bench.py, on the models that made.)"""
import argparse
import datetime
import json
import os
import statistics
import struct
import subprocess
import sys

from machine import cpu_description
from report_file import write_lines
from train_yaml import write_train_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"data_parallel_bench.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def parameter_count(model_dir):
    """Sum of the tensors' elements, from the safetensors headers."""
    n = 0
    for name in os.listdir(model_dir):
        if name.endswith(".safetensors"):
            with open(os.path.join(model_dir, name), "rb") as f:
                size = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(size))
            for k, v in header.items():
                if k != "__metadata__":
                    count = 1
                    for d in v["shape"]:
                        count *= d
                    n += count
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--models", required=True, help="holds diff/ (scripts/bench.sh makes it)")
    ap.add_argument("--shared", required=True)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=3, help="first steps left out of tokens/s (pages, primitives)")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-mpi.md"))
    a = ap.parse_args()
    cores = os.cpu_count()
    W = a.ranks
    difftx = os.path.join(a.build, "difftx")
    mdir = os.path.join(a.models, "diff")
    # As in run_bench.py: glibc malloc keeps freed memory, so that steps do not fault fresh pages
    # in (expensive on this virtual machine); both sides alike (mpirun passes it to its ranks).
    env = dict(os.environ, OMP_WAIT_POLICY="passive", MALLOC_MMAP_THRESHOLD_="1000000000",
               MALLOC_TRIM_THRESHOLD_="100000000000", MALLOC_TOP_PAD_="1000000000")
    env.pop("OMP_NUM_THREADS", None)
    tok = os.path.join(a.shared, "fixtures", "tokenizers", "mistral")
    text = os.path.join(a.shared, "corpora", "war-and-peace.txt")

    def config(name, ga, extra=""):
        yml = os.path.join(a.models, f"dp-{name}.yml")
        return write_train_yaml(yml, mdir, tok, text, os.path.join(a.models, "dp-" + name), a.seq, 1, ga, a.steps, True,
                                "save_steps: 100000\n" + extra)

    def measure(cmd, name):
        p = run(cmd, env)
        summary = json.loads(p.stdout)
        rows = [json.loads(l) for l in open(os.path.join(a.models, "dp-" + name, "metrics.jsonl")) if l.strip()]
        steady = [r["tokens_per_second"] for r in rows if r["step"] > a.skip]
        late = [r for r in rows if r["step"] > a.skip]
        window = sum(r.get("window_seconds", 0.0) for r in late)
        return {"tps": statistics.mean(steady), "train_s": window, "rss": summary.get("rss_bytes", []),
                "comm_s": sum(r.get("communication_seconds", 0.0) for r in late),
                "waited_s": sum(r.get("communication_waited_seconds", 0.0) for r in late)}

    one_cmd = [difftx, "--threads", str(cores), "train", config("one", W), "--overwrite", "--json"]
    ranks_cmd = ["mpirun", "--oversubscribe", "-np", str(W), difftx, "--threads", str(max(1, cores // W)), "train",
                 config("ranks", 1), "--overwrite", "--json"]
    if os.geteuid() == 0:
        ranks_cmd.insert(1, "--allow-run-as-root")
    ones, ranks = [], []
    for rnd in range(a.rounds):  # interleaved: the machine's drift hits both sides alike
        ones.append(measure(one_cmd, "one"))
        ranks.append(measure(ranks_cmd, "ranks"))
        print(f"round {rnd + 1}: 1 process x {cores} threads {ones[-1]['tps']:.1f} tok/s; {W} ranks x "
              f"{max(1, cores // W)} thread(s) {ranks[-1]['tps']:.1f} tok/s, communication {ranks[-1]['comm_s']:.2f} s "
              f"of {ranks[-1]['train_s']:.2f} s ({ranks[-1]['waited_s']:.2f} s waited)", flush=True)
    # ZeRO-1 once: the AdamW moments sharded over the ranks (memory per rank after the last step).
    zero_json = os.path.join(a.models, "dp-zero1.json")
    with open(zero_json, "w") as f:
        f.write('{"zero_optimization": {"stage": 1}}\n')
    zero_cmd = ranks_cmd[:ranks_cmd.index("train") + 1] + [config("zero", 1, f"deepspeed: {zero_json}\n"), "--overwrite",
                                                           "--json"]
    zero = measure(zero_cmd, "zero")
    print(f"ZeRO-1: {zero['tps']:.1f} tok/s, resident memory per rank {[round(x / 1e6) for x in zero['rss']]} MB "
          f"(without: {[round(x / 1e6) for x in ranks[-1]['rss']]} MB)", flush=True)
    one_tps = statistics.median(r["tps"] for r in ones)
    ranks_tps = statistics.median(r["tps"] for r in ranks)
    comm_share = statistics.median(r["comm_s"] / r["train_s"] for r in ranks)  # steps after --skip
    waited_share = statistics.median(r["waited_s"] / r["train_s"] for r in ranks)
    step_s = statistics.median(r["train_s"] for r in ranks) / (a.steps - a.skip)

    P = parameter_count(mdir)
    grad_bytes = 4 * P
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = cpu_description()
    L = ["# Data-parallel training over MPI\n",
         f"Made by `bench/data_parallel_bench.py` (a row of `scripts/bench.sh`) on {datetime.date.today().isoformat()}, "
         f"difftx {rev}, {cpu}, {cores} cores, Open MPI on one machine (shared memory). Regenerate it rather than "
         "editing it.\n",
         f"Model: the SmolLM2-135M-shaped model converted with default flags ({P / 1e6:.1f} M parameters), float32, "
         f"seq {a.seq}, micro_batch_size 1, the same global batch of {W} micro-batches per step on both sides "
         f"(one process: gradient_accumulation_steps {W}; {W} ranks: 1 each), {a.steps} steps, tokens/s of steps {a.skip + 1}..{a.steps} "
         f"(metrics.jsonl; the first steps fault their memory in and make oneDNN's primitives), median of {a.rounds} interleaved rounds.\n",
         "| run | training tokens/s | ratio |", "| --- | --- | --- |",
         f"| 1 process x {cores} threads | {one_tps:.1f} | 1.00x |",
         f"| {W} ranks x {max(1, cores // W)} thread{'s' if cores // W > 1 else ''} (`mpirun -np {W}`) | {ranks_tps:.1f} | "
         f"{ranks_tps / one_tps:.2f}x |", "",
         f"Target: {W} ranks >= 0.95x of one process: **{'met' if ranks_tps >= 0.95 * one_tps else 'missed'}** "
         f"({ranks_tps / one_tps:.2f}x).\n",
         f"Communication per step (rank 0, steps {a.skip + 1}..{a.steps}, from metrics.jsonl's communication_seconds): "
         f"{100 * comm_share:.1f}% of the step time inside the sums (MPI calls and the "
         f"ordered adds), of which {100 * waited_share:.1f}% of the step time was spent waiting (for the other rank, "
         f"whose packed rows may hold more tokens, or for the transfers left after the backward pass). Bytes per step: the gradient is {grad_bytes / 1e6:.0f} MB; each rank sends and receives "
         f"2 (W - 1) / W of it = {2 * (W - 1) / W * grad_bytes / 1e6:.0f} MB per step at W = {W}.\n",
         "## ZeRO-1 (`deepspeed:` a stage-1 config)\n",
         f"The same {W}-rank run with the AdamW moments sharded: {zero['tps']:.1f} tokens/s. Resident memory per rank "
         "after the last step (before the final save; `train --json`'s rss_bytes):\n",
         "| rank | without ZeRO-1 | ZeRO-1 | difference |", "| --- | --- | --- | --- |"]
    for r, (plain_rss, zero_rss) in enumerate(zip(ranks[-1]["rss"], zero["rss"])):
        L.append(f"| {r} | {plain_rss / 1e6:.0f} MB | {zero_rss / 1e6:.0f} MB | {(plain_rss - zero_rss) / 1e6:.0f} MB |")
    L += ["",
         f"The moments are 8 bytes per parameter ({8 * P / 1e6:.0f} MB); sharded over {W} ranks each keeps "
         f"{8 * P / W / 1e6:.0f} MB. Rank 0 also receives the whole moments for every checkpoint it writes (freed "
         "after the save, though malloc may keep the pages).\n",
         "## Scaling model (on paper)\n",
         "Per step each rank moves V = 2 (W - 1) / W x 4 P bytes each way (reduce-scatter + all-gather: the volume of a "
         "ring all-reduce, which is what the ordered all-to-all + all-gather costs), so the time on a network of "
         "bandwidth B per machine is t_comm = V / B + 2 (W - 1) a per bucket (a: the per-message latency, microseconds: "
         "negligible next to V / B for buckets of megabytes, so left out below). The per-layer buckets start while the "
         "backward pass goes on, so at most the backward time t_b (about 2/3 of a step) hides it: the step takes "
         "t_step = t_c + max(0, t_comm - t_b), efficiency t_c / t_step, throughput W x (tokens per step per rank) / t_step.\n",
         f"t_c below is one 2-core machine of this kind at seq {a.seq}, micro_batch_size 1 per rank: measured for 135M "
         f"(1 process, {one_tps:.0f} tokens/s, {a.seq * 1.0 / one_tps:.2f} s per micro-batch), and for 1B (1.24 B "
         "parameters, Llama-3.2-1B shape) scaled by the parameter count (training FLOPs ~ 6 P per token).\n",
         "| model | machines W | network B | V per step | t_comm | t_c | efficiency |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, params in (("135M", P), ("1B", 1.24e9)):
        t_c = a.seq / one_tps * params / P
        for machines in (8, 64):
            for label, bw in (("10 Gbit/s", 1.25e9), ("100 Gbit/s", 12.5e9)):
                v = 2 * (machines - 1) / machines * 4 * params
                t_comm = v / bw
                t_step = t_c + max(0.0, t_comm - 2.0 / 3.0 * t_c)
                L.append(f"| {name} | {machines} | {label} | {v / 1e9:.2f} GB | {t_comm:.2f} s | {t_c:.2f} s | "
                         f"{100 * t_c / t_step:.0f}% |")
    L.append("")
    L.append("A 2-core machine computes slowly, which hides communication easily; a faster machine (a GPU, or many "
             "cores) shrinks t_c by its speed-up and the same formula then needs gradient accumulation (t_c grows with "
             "gradient_accumulation_steps, t_comm does not) or a faster network.\n")
    L.append("## Log\n")
    L.append("```")
    for i, (o, r) in enumerate(zip(ones, ranks)):
        L.append(f"round {i + 1}: 1 process {o['tps']:.1f} tok/s; {W} ranks "
                 f"{r['tps']:.1f} tok/s ({r['train_s']:.2f} s of steps {a.skip + 1}..{a.steps}, {r['comm_s']:.2f} s in sums, "
                 f"{r['waited_s']:.2f} s waited)")
    L.append(f"step time ({W} ranks, median): {step_s:.2f} s")
    L.append("```")
    write_lines(a.out, L)


if __name__ == "__main__":
    main()
