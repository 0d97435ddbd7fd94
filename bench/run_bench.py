"""Runs difftx and PyTorch side by side on this machine and writes bench/RESULTS.md.

Called by scripts/bench.sh (which builds difftx, installs torch and makes the models). Every number
in the report comes from this one run: the machine's limits (sgemm, triad, a read-only stream), the
attention kernels (bench/attention_bench vs bench/torch_bench.py kernel), and end to end for the SmolLM2-135M-shaped
model in base form and converted with default flags: prefill, decode, training, each with the
process's peak RSS (from wait4), and each row's ratio.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time

from machine import cpu_description
from report_file import write_lines
from train_yaml import write_train_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 1024 * 1024


def run_child(cmd, env=None, may_fail=False):
    """Runs cmd; returns (stdout, its peak RSS in bytes from wait4, wall seconds, stderr); exits on
    failure unless may_fail (then stdout is None). The pipes are read to the end first, then the
    child is reaped with wait4 (communicate() would reap it without its rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    err_chunks = []
    t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))
    t_err.start()
    out = proc.stdout.read()
    t_err.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    err = "".join(err_chunks)
    if proc.returncode != 0:
        if may_fail:
            return None, usage.ru_maxrss * 1024, seconds, err
        sys.exit(f"run_bench.py: {' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return out, usage.ru_maxrss * 1024, seconds, err


def openblas_kernels(text):
    """The kernel set OpenBLAS chose, from forward_bench's `openblas` line (its config string ends with
    the core name before MAX_THREADS), e.g. Haswell, Cooperlake, or Prescott when it did not know the CPU."""
    for line in text.splitlines():
        if line.startswith("openblas"):
            words = line.split()
            for i, w in enumerate(words):
                if w.startswith("MAX_THREADS") and i > 0:
                    return words[i - 1]
    return "unknown"


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in:\n{text}")


def fmt_ratio(x):
    return f"{x:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="difftx build directory")
    ap.add_argument("--models", required=True, help="directory holding base/ and diff/ (and room for outputs)")
    ap.add_argument("--shared", required=True, help="the shared folder (corpora, tokenizer fixtures)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the script itself")
    ap.add_argument("--config", default="examples/smollm2-135m/config.json", help="the config the models came from")
    a = ap.parse_args()

    # glibc malloc keeps freed memory for reuse instead of returning it to the kernel: on this
    # virtual machine a page fault costs ~7 us, so an eager op that gets a fresh 37 MB tensor
    # spends ~60 ms faulting its pages in (measured: `s + 1.0` on 9x1024x1024 floats, 64 ms vs
    # 0.8 ms). The same setting for both programs; it helps PyTorch far more (bench/NOTES.md).
    default_malloc_env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               MALLOC_MMAP_THRESHOLD_="1000000000", MALLOC_TRIM_THRESHOLD_="100000000000",
               MALLOC_TOP_PAD_="1000000000")
    difftx = os.path.join(a.build, "difftx")
    fwd = os.path.join(a.build, "bench", "forward_bench")
    attn = os.path.join(a.build, "bench", "attention_bench")
    torch_bench = [sys.executable, os.path.join(HERE, "torch_bench.py"), "--threads", str(a.threads)]
    seq = (128, 256) if a.quick else (512, 2048)
    kernel_T = (256,) if a.quick else (256, 1024, 4096)
    new_tokens = 16 if a.quick else 128
    train_steps = {1: 3, 4: 2} if a.quick else {1: 5, 4: 3}
    train_seq = 128 if a.quick else 512
    log = []

    def note(line):
        print(line, flush=True)
        log.append(line)

    # ---------------------------------------------------------------- machine
    cpu = cpu_description()
    torch_version = subprocess.run(torch_bench[:1] + ["-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    note(f"machine: {cpu}, {os.cpu_count()} cores; threads {a.threads}; difftx {rev}{' (modified)' if dirty else ''}; "
         f"torch {torch_version}; Python {platform.python_version()}")

    # ---------------------------------------------------------------- end to end: prefill + decode
    e2e = {}
    # The machine's limits first, in a process of their own (the triad's 768 MB would otherwise be
    # counted in a model's peak RSS).
    out, _, _, _ = run_child([fwd, os.path.join(a.models, "base"), "--seq-len", "16", "--decode", "0", "--repeats", "1",
                              "--json"], env)
    r = last_json(out)
    limits = {"sgemm": r["sgemm_gflops"], "gemm": r["gemm_gflops"], "triad": r["triad_gbps"], "read": r["read_gbps"],
              "text": out, "kernels": openblas_kernels(out)}
    bf16_line = next((l for l in out.splitlines() if l.startswith("onednn bf16")), "")
    limits["gemm_bf16"] = float(bf16_line.split()[2]) if bf16_line else 0.0
    note(f"limits: oneDNN f32 {limits['gemm']:.1f} GFLOP/s, bf16 {limits['gemm_bf16']:.1f}; OpenBLAS sgemm "
         f"{limits['sgemm']:.1f} GFLOP/s ({limits['kernels']} kernels), triad {limits['triad']:.1f} GB/s, "
         f"read-only {limits['read']:.1f} GB/s")
    # The dense layers' products on the model's shapes: OpenBLAS against oneDNN f32 and bf16.
    gemm_table, _, _, _ = run_child([os.path.join(a.build, "bench", "gemm_bench"), os.path.join(a.models, "base"),
                                     "--tokens", ",".join(str(t) for t in seq), "--repeats", "3" if a.quick else "5"], env)
    note("gemm_bench: done")
    for model in ("base", "diff"):
        mdir = os.path.join(a.models, model)
        for T in seq:
            args = [fwd, mdir, "--seq-len", str(T), "--decode", str(new_tokens if T == seq[0] else 0),
                    "--repeats", "2", "--json", "--no-limits"]
            out, rss, _, _ = run_child(args, env)
            r = last_json(out)
            e2e[(model, "prefill", T)] = {"difftx": r["prefill_tokens_per_s"], "difftx_rss": rss,
                                          "gflop": r["prefill_gflops"] * T / r["prefill_tokens_per_s"],
                                          "weight_bytes": r["weight_bytes"]}
            if r["decode_tokens"]:
                e2e[(model, "decode", T)] = {"difftx": r["decode_tokens_per_s"], "difftx_rss": rss,
                                             "weight_bytes": r["weight_bytes"]}
            decode = f", decode {r['decode_tokens_per_s']:.1f} tok/s" if r["decode_tokens"] else ""
            note(f"difftx {model} T={T}: prefill {r['prefill_tokens_per_s']:.1f} tok/s{decode}, peak RSS {rss / MB:.0f} MB")
            out, rss, _, _ = run_child(torch_bench + ["prefill", mdir, str(T)], env)
            t = last_json(out)
            e2e[(model, "prefill", T)].update(torch=t["tokens_per_s"], torch_rss=rss)
            note(f"torch  {model} T={T}: prefill {t['tokens_per_s']:.1f} tok/s, peak RSS {rss / MB:.0f} MB")
        if limits["gemm_bf16"] > 0:  # bf16 products (--compute-dtype bf16), difftx only
            for T in seq:
                out, rss, _, _ = run_child([fwd, mdir, "--seq-len", str(T), "--decode", "0", "--repeats", "2", "--json",
                                            "--no-limits", "--compute-dtype", "bf16"], env)
                r = last_json(out)
                e2e[(model, "prefill_bf16", T)] = {"difftx": r["prefill_tokens_per_s"], "difftx_rss": rss,
                                                   "gflop": r["prefill_gflops"] * T / r["prefill_tokens_per_s"],
                                                   "max_logit_diff": r["max_logit_diff"], "max_logit": r["max_logit"]}
                note(f"difftx {model} T={T} bf16 products: prefill {r['prefill_tokens_per_s']:.1f} tok/s, max |logit "
                     f"difference| {r['max_logit_diff']:.3g} (max |logit| {r['max_logit']:.3g}), peak RSS {rss / MB:.0f} MB")
        out, rss, _, _ = run_child(torch_bench + ["decode", mdir, str(seq[0]), str(new_tokens)], env)
        t = last_json(out)
        e2e[(model, "decode", seq[0])].update(torch=t["tokens_per_s"], torch_rss=rss)
        note(f"torch  {model}: decode {t['tokens_per_s']:.1f} tok/s after {seq[0]}, peak RSS {rss / MB:.0f} MB")
        # The same decode with the matrices kept in bf16 (difftx only: --weight-dtype bf16).
        out, rss, _, _ = run_child([fwd, mdir, "--seq-len", str(seq[0]), "--decode", str(new_tokens), "--repeats", "1",
                                    "--json", "--no-limits", "--weight-dtype", "bf16"], env)
        r = last_json(out)
        e2e[(model, "decode_bf16", seq[0])] = {"difftx": r["decode_tokens_per_s"], "difftx_rss": rss,
                                               "weight_bytes": r["weight_bytes"], "max_logit_diff": r["max_logit_diff"],
                                               "max_logit": r["max_logit"]}
        note(f"difftx {model} bf16 matrices: decode {r['decode_tokens_per_s']:.1f} tok/s after {seq[0]}, max |logit "
             f"difference| {r['max_logit_diff']:.3g} (max |logit| {r['max_logit']:.3g}), peak RSS {rss / MB:.0f} MB")

    # ---------------------------------------------------------------- end to end: training
    tok = os.path.join(a.shared, "fixtures", "tokenizers", "mistral")
    text = os.path.join(a.shared, "corpora", "war-and-peace.txt")
    for model in ("base", "diff"):
        mdir = os.path.join(a.models, model)
        for mb, steps in train_steps.items():
            out_dir = os.path.join(a.models, f"train-{model}-{mb}")
            yml = os.path.join(a.models, f"train-{model}-{mb}.yml")
            write_train_yaml(yml, mdir, tok, text, out_dir, train_seq, mb, 1, steps, model == "diff")
            _, rss, _, _ = run_child([difftx, "train", yml, "--overwrite"], env)
            rows = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if l.strip()]
            steady = [r["tokens_per_second"] for r in rows if "tokens_per_second" in r and r["step"] > 1]
            tps = sum(steady) / len(steady)
            targs = torch_bench + ["train", mdir, str(train_seq), str(mb), str(steps)]
            out, trss, _, _ = run_child(targs, env, may_fail=True)
            malloc_note = ""
            if out is None:  # killed: with freed memory kept, large steps can exhaust the 24 GB
                out, trss, _, _ = run_child(targs, default_malloc_env)
                malloc_note = " (default malloc: out of memory with freed memory kept)"
            t = last_json(out)
            e2e[(model, "train", mb)] = {"difftx": tps, "difftx_rss": rss, "torch": t["tokens_per_s"], "torch_rss": trss,
                                         "note": malloc_note}
            note(f"train {model} mb={mb}: difftx {tps:.1f} tok/s RSS {rss / MB:.0f} MB; torch {t['tokens_per_s']:.1f} "
                 f"tok/s RSS {trss / MB:.0f} MB{malloc_note}")
            if model == "diff" and limits["gemm_bf16"] > 0:  # axolotl's bf16: true, against the same float32 PyTorch
                with open(yml, "a") as f:
                    f.write("bf16: true\n")
                _, rss16, _, _ = run_child([difftx, "train", yml, "--overwrite"], env)
                rows = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if l.strip()]
                steady = [r["tokens_per_second"] for r in rows if "tokens_per_second" in r and r["step"] > 1]
                tps16 = sum(steady) / len(steady)
                e2e[(model, "train_bf16", mb)] = {"difftx": tps16, "difftx_rss": rss16, "torch": t["tokens_per_s"],
                                                  "torch_rss": trss, "note": malloc_note}
                note(f"train {model} mb={mb} bf16: true: difftx {tps16:.1f} tok/s RSS {rss16 / MB:.0f} MB")

    # ---------------------------------------------------------------- kernels
    kernels = {}
    # The best of 3 repetitions, as PyTorch's side keeps its best repeat: at T=4096 one repetition is
    # a single call of up to a second, and this machine's speed moves between seconds.
    gb_args = [attn, "--benchmark_format=json", f"--benchmark_filter=/({'|'.join(str(t) for t in kernel_T)})/real_time$",
               "--benchmark_min_time=0.2", "--benchmark_repetitions=3"]
    out, _, _, _ = run_child(gb_args, env)
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue  # the mean, median and stddev rows of the repetitions
        # names: KIND_PHASE (float32 tiles) or KIND_PHASE_bf16 (the bf16 compute mode's tiles)
        _, name, T = b["name"].split("/")[:3]
        products = "f32"
        if name.endswith("_bf16"):
            name, products = name[: -len("_bf16")], "bf16"
        kind, phase = name.rsplit("_", 1)
        key = (kind, phase, int(T), products)
        if key not in kernels or b["real_time"] < kernels[key]["difftx_ms"]:
            kernels[key] = {"difftx_ms": b["real_time"], "gflops": b["GFLOP/s"]}
    # float32 rows first: a bf16 row is compared with the same PyTorch (float32) run as its float32 row
    for (kind, phase, T, products), k in sorted(kernels.items(), key=lambda x: (x[0][3] != "f32", x[0][1], x[0][0], x[0][2])):
        label = kind + ("-bwd" if phase == "fwdbwd" else "") + ("-bf16" if products == "bf16" else "")
        out, _, _, _ = run_child([attn, "--peak-memory", label, str(T)], env)
        k["difftx_extra"] = last_json(out)["extra_bytes"]
        if products == "f32" or (kind, phase, T, "f32") not in kernels:
            targs = ["kernel", kind, str(T), "--repeats", "2" if T >= 4096 else "3"] + (["--backward"] if phase == "fwdbwd" else [])
            out, _, _, _ = run_child(torch_bench + targs, env)
            t = last_json(out)
            k["torch_ms"] = t["seconds"] * 1e3
            k["torch_extra"] = t["extra_bytes"]
        else:
            k["torch_ms"] = kernels[(kind, phase, T, "f32")]["torch_ms"]
            k["torch_extra"] = kernels[(kind, phase, T, "f32")]["torch_extra"]
        note(f"kernel {kind} {phase}{' bf16 tiles' if products == 'bf16' else ''} T={T}: difftx {k['difftx_ms']:.2f} ms "
             f"({k['gflops']:.1f} GFLOP/s, extra {k['difftx_extra'] / MB:.1f} MB); torch {k['torch_ms']:.2f} ms "
             f"(extra {k['torch_extra'] / MB:.1f} MB)")

    write_report(a, limits, e2e, kernels, log, seq, kernel_T, train_seq, new_tokens, gemm_table)


def decode_shares(r, dtype, triad, read):
    """Decode tokens/s as a share of the weight-streaming bounds (bandwidth / weight bytes per token)."""
    by_triad, by_read = triad * 1e9 / r["weight_bytes"], read * 1e9 / r["weight_bytes"]
    return (f"{100 * r['difftx'] / by_triad:.0f}% of the {dtype} bound {by_triad:.0f} (triad); "
            f"{100 * r['difftx'] / by_read:.0f}% of {by_read:.0f} (read-only)")


def write_report(a, limits, e2e, kernels, log, seq, kernel_T, train_seq, new_tokens, gemm_table):
    sgemm, triad, read = limits["gemm"], limits["triad"], limits["read"]
    L = []
    L.append("# Benchmark results\n")
    L.append(f"Made by `scripts/bench.sh` on {datetime.date.today().isoformat()}; every number below comes from that one "
             "run, difftx and PyTorch alternating on the same machine. Regenerate it rather than editing it.\n")
    L.append(f"- {log[0]}")
    L.append(f"- machine limits (same run): oneDNN matmul {sgemm:.1f} GFLOP/s in float32 and {limits['gemm_bf16']:.1f} in "
             f"bf16 (2048^3, all threads; the library difftx's dense layers use), OpenBLAS sgemm {limits['sgemm']:.1f} "
             f"GFLOP/s ({limits['kernels']} kernels; see bench/NOTES.md on the kernels OpenBLAS picks), "
             f"triad {triad:.1f} GB/s, read-only {read:.1f} GB/s (four runs in step per thread, as decoding reads its weights; the "
             "bounds below divide by the triad, as the issue asks, and the read-only share is given beside)")
    L.append("- PyTorch: eager, float32, `bench/torch_bench.py` (the tools/reference implementation of each layout, "
             "switched from float64 to float32; decode with a key/value cache of concatenated tensors)")
    L.append("- both run with glibc malloc told to keep freed memory (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, "
             "`MALLOC_TOP_PAD_`): page faults are expensive on this virtual machine and without it every eager "
             "PyTorch op on a large tensor is 10-80x slower (bench/NOTES.md)")
    L.append(f"- models: `difftx init --config {a.config} --dtype f32` (random weights) and the same converted with "
             "default flags (llama-differential, double mode, subln)\n")
    L.append("## End to end\n")
    L.append("| model | measure | difftx | PyTorch | ratio | difftx share of machine | difftx peak RSS | PyTorch peak RSS |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in ("base", "diff"):
        name = "base (Llama)" if model == "base" else "converted (diff)"
        for T in seq:
            r = e2e[(model, "prefill", T)]
            share = r["gflop"] / (T / r["difftx"]) / sgemm
            L.append(f"| {name} | prefill T={T} tokens/s | {r['difftx']:.1f} | {r['torch']:.1f} | "
                     f"{fmt_ratio(r['difftx'] / r['torch'])} | {100 * share:.0f}% of oneDNN f32 | {r['difftx_rss'] / MB:.0f} MB | "
                     f"{r['torch_rss'] / MB:.0f} MB |")
            if (model, "prefill_bf16", T) in e2e:
                b = e2e[(model, "prefill_bf16", T)]
                share = b["gflop"] / (T / b["difftx"]) / limits["gemm_bf16"]
                L.append(f"| {name} | prefill T={T} tokens/s, bf16 products (`--compute-dtype bf16`; max logit difference "
                         f"{b['max_logit_diff']:.3g} of max {b['max_logit']:.3g}) | {b['difftx']:.1f} | {r['torch']:.1f} (f32) | "
                         f"{fmt_ratio(b['difftx'] / r['torch'])} | {100 * share:.0f}% of oneDNN bf16 | "
                         f"{b['difftx_rss'] / MB:.0f} MB | |")
        r = e2e[(model, "decode", seq[0])]
        L.append(f"| {name} | decode tokens/s ({new_tokens} after {seq[0]}) | {r['difftx']:.1f} | {r['torch']:.1f} | "
                 f"{fmt_ratio(r['difftx'] / r['torch'])} | {decode_shares(r, 'float32', triad, read)} | "
                 f"{r['difftx_rss'] / MB:.0f} MB | {r['torch_rss'] / MB:.0f} MB |")
        r = e2e[(model, "decode_bf16", seq[0])]
        L.append(f"| {name} | decode tokens/s, matrices in bf16 (`--weight-dtype bf16`; max logit difference "
                 f"{r['max_logit_diff']:.3g} of max {r['max_logit']:.3g}) | {r['difftx']:.1f} | | | "
                 f"{decode_shares(r, 'bf16', triad, read)} | {r['difftx_rss'] / MB:.0f} MB | |")
        for mb in sorted(k[2] for k in e2e if k[0] == model and k[1] == "train"):
            r = e2e[(model, "train", mb)]
            L.append(f"| {name} | training tokens/s (seq {train_seq}, micro_batch_size {mb}) | {r['difftx']:.1f} | "
                     f"{r['torch']:.1f}{r['note']} | {fmt_ratio(r['difftx'] / r['torch'])} | | {r['difftx_rss'] / MB:.0f} MB | "
                     f"{r['torch_rss'] / MB:.0f} MB ({r['difftx_rss'] / r['torch_rss']:.2f}x) |")
            if (model, "train_bf16", mb) in e2e:
                r = e2e[(model, "train_bf16", mb)]
                L.append(f"| {name} | training tokens/s, `bf16: true` (seq {train_seq}, micro_batch_size {mb}) | "
                         f"{r['difftx']:.1f} | {r['torch']:.1f} (f32){r['note']} | {fmt_ratio(r['difftx'] / r['torch'])} | | "
                         f"{r['difftx_rss'] / MB:.0f} MB | {r['torch_rss'] / MB:.0f} MB |")
    L.append("")
    L.append("## GEMM paths\n")
    L.append("The dense layers' products on the base model's shapes (`bench/gemm_bench`), GFLOP/s, median of repeats taking "
             "turns; ratio: against OpenBLAS. bf16: weights in bf16 as kept for inference, the activations rounded per "
             "call.\n")
    L.extend(l for l in gemm_table.splitlines())
    L.append("")
    L.append("## Attention kernels\n")
    L.append("Batch 1, causal, head_dim 64. standard: 9 heads / 3 kv heads; double: 9 diff-heads (18 q, 6 k, 3 v heads); "
             "split: 5 diff-heads of width 128 (10 heads / 2 kv heads: split mode needs even counts). difftx: the fused "
             "kernels (`bench/attention_bench`, Google Benchmark, real time, best of 3 repetitions); PyTorch: the "
             "reference's two-softmax version (every score matrix materialised; best of 2 repeats at T=4096, 3 below). GFLOP/s counts the score and value products (see "
             "bench/NOTES.md). Extra memory: growth of the peak RSS over the RSS with inputs allocated, one process "
             "per case.\n")
    L.append("| kernel | T | difftx ms | difftx GFLOP/s | PyTorch ms | speed-up | difftx extra | PyTorch extra | memory ratio |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (kind, phase, T, products), k in sorted(kernels.items(),
                                                key=lambda x: (x[0][3] != "f32", x[0][1] != "fwd", x[0][0], x[0][2])):
        label = f"{kind} {'forward' if phase == 'fwd' else 'forward+backward'}"
        if products == "bf16":
            label += " (bf16 tiles; PyTorch float32)"
        mem_ratio = (k["torch_extra"] / k["difftx_extra"]) if k["difftx_extra"] > 0 else float("inf")
        L.append(f"| {label} | {T} | {k['difftx_ms']:.2f} | {k['gflops']:.1f} | {k['torch_ms']:.2f} | "
                 f"{fmt_ratio(k['torch_ms'] / k['difftx_ms'])} | {k['difftx_extra'] / MB:.1f} MB | "
                 f"{k['torch_extra'] / MB:.1f} MB | 1/{mem_ratio:.0f} |")
    L.append("")
    L.append("## Targets of issue 8\n")
    L.append("| target | measured | met |")
    L.append("| --- | --- | --- |")

    def row(text, value, ok):
        L.append(f"| {text} | {value} | {'yes' if ok else 'no'} |")

    for T in seq:
        r = e2e[("base", "prefill", T)]
        row(f"prefill base T={T} >= 3.5x PyTorch", fmt_ratio(r["difftx"] / r["torch"]), r["difftx"] / r["torch"] >= 3.5)
    for T in seq:
        r = e2e[("diff", "prefill", T)]
        row(f"prefill diff T={T} >= 3x PyTorch", fmt_ratio(r["difftx"] / r["torch"]), r["difftx"] / r["torch"] >= 3)
    if ("diff", "train", 1) in e2e:
        r = e2e[("diff", "train", 1)]
        row(f"training diff seq {train_seq} >= 3x PyTorch", fmt_ratio(r["difftx"] / r["torch"]), r["difftx"] / r["torch"] >= 3)
        row("training diff peak RSS <= half of PyTorch's", f"{r['difftx_rss'] / r['torch_rss']:.2f}",
            r["difftx_rss"] <= 0.5 * r["torch_rss"])
    big = max(kernel_T)
    if ("double", "fwd", big, "f32") in kernels:
        k = kernels[("double", "fwd", big, "f32")]
        row(f"fused diff forward T={big} >= 5x PyTorch", fmt_ratio(k["torch_ms"] / k["difftx_ms"]),
            k["torch_ms"] / k["difftx_ms"] >= 5)
        row(f"fused diff forward T={big} extra memory <= 1/10 of PyTorch's",
            f"{k['difftx_extra'] / MB:.1f} vs {k['torch_extra'] / MB:.1f} MB", k["difftx_extra"] * 10 <= k["torch_extra"])
        k = kernels[("double", "fwdbwd", big, "f32")]
        row(f"fused diff forward+backward T={big} >= 3x PyTorch", fmt_ratio(k["torch_ms"] / k["difftx_ms"]),
            k["torch_ms"] / k["difftx_ms"] >= 3)
    r = e2e[("base", "prefill", seq[0])]
    share = r["gflop"] / (seq[0] / r["difftx"]) / sgemm
    row("GEMM-bound phases >= 75% of the f32 GEMM peak (oneDNN; base prefill)", f"{100 * share:.0f}%", share >= 0.75)
    r = e2e[("base", "decode", seq[0])]
    bound = triad * 1e9 / r["weight_bytes"]
    row("decode >= 80% of the float32 bandwidth bound (triad)",
        f"{100 * r['difftx'] / bound:.0f}% ({r['difftx']:.1f} of {bound:.1f}; "
        f"{100 * r['difftx'] * r['weight_bytes'] / (read * 1e9):.0f}% of the read-only bound)", r["difftx"] >= 0.8 * bound)
    r = e2e[("base", "decode_bf16", seq[0])]
    row("decode with BF16 weights >= 120 tokens/s", f"{r['difftx']:.1f} tokens/s; max logit difference from float32 "
        f"weights {r['max_logit_diff']:.3g} (max |logit| {r['max_logit']:.3g}; 0 for a BF16 checkpoint)", r["difftx"] >= 120)
    L.append("")
    L.append("## Targets of issue 25 (PyTorch rows; the llama.cpp rows are in bench/RESULTS-llamacpp.md)\n")
    L.append("| target | measured | met |")
    L.append("| --- | --- | --- |")
    for mb in (1, 4):
        if ("diff", "train", mb) in e2e:
            r = e2e[("diff", "train", mb)]
            row(f"training diff seq {train_seq} mb {mb} f32 >= 2.5x PyTorch f32", fmt_ratio(r["difftx"] / r["torch"]),
                r["difftx"] / r["torch"] >= 2.5)
        if ("diff", "train_bf16", mb) in e2e:
            r = e2e[("diff", "train_bf16", mb)]
            row(f"training diff seq {train_seq} mb {mb} bf16 >= 4x PyTorch f32", fmt_ratio(r["difftx"] / r["torch"]),
                r["difftx"] / r["torch"] >= 4)
    L.append("")
    L.append("## Log of the run\n")
    L.append("```")
    L.extend(log)
    L.append("```")
    L.append("")
    L.append("forward_bench's machine-limit lines:\n")
    L.append("```")
    L.extend(l for l in limits["text"].splitlines() if not l.startswith("{"))
    L.append("```")
    write_lines(a.out, L)


if __name__ == "__main__":
    main()
