"""Writes bench/RESULTS-cuda.md from one device_check.sh run: difftx's infer_bench JSON and
transformers' hf_bench JSON for each model, side by side, with the targets of the CUDA inference
issue (prefill >= 1.5x transformers on the differential models and >= 1.0x on the base model;
decode batch 1 >= 70% of the HBM bound and ahead of transformers).

Usage: python3 report.py RESULTS_DIR OUT.md "COMMAND" [DIFFTX_REVISION]
RESULTS_DIR holds difftx-{base,diffllama,llama-differential}.json and hf-{base,diffllama}.json, and
difftx-base-{gemv,gemv-pipelined,attention-batched,gemv-pipelined-attention-batched}.json (decoding
through difftx's GEMV and the prepared kernels) when the run made them.
"""
import datetime
import json
import os
import sys

MODELS = [("base", "base (Llama)", 1.0), ("diffllama", "converted, diffllama", 1.5),
          ("llama-differential", "converted, llama-differential (double, subln)", 1.5)]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(x, digits=1):
    return "" if x is None else f"{x:,.{digits}f}"


def main():
    rdir, out_path, command = sys.argv[1], sys.argv[2], sys.argv[3]
    revision = sys.argv[4] if len(sys.argv) > 4 else "?"
    hf_any = next((h for h in (load(os.path.join(rdir, f"hf-{m}.json")) for m, _, _ in MODELS) if h), None)
    bw = (hf_any or {}).get("copy_bandwidth_bytes_per_second")
    lines = ["# CUDA benchmark results", "",
             f"Made by `{command}` on {datetime.date.today().isoformat()}; every number below comes from that one run, "
             "difftx and transformers one after the other on the same GPU. Regenerate it rather than editing it.", ""]
    if hf_any:
        lines.append(f"- GPU: {hf_any.get('gpu')}; torch {hf_any.get('torch')}; transformers {hf_any.get('transformers')}; "
                     f"difftx {revision}")
    if bw:
        lines.append(f"- measured copy bandwidth (bytes read + written per second, 4 GiB device-to-device copy): "
                     f"{bw / 1e12:.2f} TB/s; the HBM bound of a decoding step is the bf16 weight bytes it reads over it")
    lines += ["- difftx: `bench/cuda/infer_bench` (bf16 weights and tensor-core products, float32 activations and "
              "KV cache, greedy ids chosen on the GPU); transformers: `bench/cuda/hf_bench.py` (bf16, sdpa, "
              "`torch.inference_mode`, DynamicCache, `logits_to_keep=1` for prefill); medians of the repeats",
              "- models: `difftx init --config bench/cuda/llama-3.2-1b-shape.json --dtype bf16` (random weights, "
              "Llama-3.2-1B's shape with vocab 32000) and its conversions by `difftx convert-diff-transformer`", "",
              "| model | measure | difftx | transformers | transformers + torch.compile | ratio | target | met |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, label, prefill_target in MODELS:
        d = load(os.path.join(rdir, f"difftx-{name}.json"))
        h = load(os.path.join(rdir, f"hf-{name}.json"))
        if d is None:
            lines.append(f"| {label} | (difftx run failed: see device_check.log) | | | | | | |")
            continue
        dp = d["prefill"]["tokens_per_second"]
        hp = h["prefill"]["tokens_per_second"] if h else None
        hc = (h or {}).get("prefill_compiled", {}).get("tokens_per_second")
        ratio = dp / hp if hp else None
        met = "" if ratio is None else ("yes" if ratio >= prefill_target else "no")
        lines.append(f"| {label} | prefill T={d['prefill']['tokens']} tokens/s | {fmt(dp)} | {fmt(hp)} | {fmt(hc)} | "
                     f"{fmt(ratio, 2) + 'x' if ratio else ''} | >= {prefill_target}x transformers | {met} |")
        for dd in d["decode"]:
            B = dd["batch"]
            hd = next((x for x in (h or {}).get("decode", []) if x["batch"] == B), None)
            ht = hd["tokens_per_second"] if hd else None
            ratio = dd["tokens_per_second"] / ht if ht else None
            target, met = "ahead of transformers", "" if ratio is None else ("yes" if ratio > 1 else "no")
            share = ""
            if B == 1 and bw:
                bound = bw / d["streamed_bytes_per_step"]
                pct = dd["tokens_per_second"] / bound
                share = f"; {100 * pct:.0f}% of the HBM bound {bound:,.0f}"
                target = ">= 70% of the HBM bound, ahead of transformers"
                met = "yes" if pct >= 0.7 and (ratio is None or ratio > 1) else "no"
            host = f", {dd['host_ms_per_step']:.2f} of them queueing on the host" if "host_ms_per_step" in dd else ""
            lines.append(f"| {label} | decode batch {B} tokens/s ({dd['steps']} after {dd['prompt']}; "
                         f"{dd['ms_per_step']:.2f} ms/step{host}{share}) | {fmt(dd['tokens_per_second'])} | {fmt(ht)} | | "
                         f"{fmt(ratio, 2) + 'x' if ratio else ''} | {target} | {met} |")
    # Decoding of the base model with every product through difftx's own GEMV instead of cuBLASLt
    # (DIFFTX_CUDA_DECODE_GEMV=1), and the kernels prepared without a GPU: the GEMV's pipelined loop
    # (DIFFTX_CUDA_GEMV=pipelined) and attention_rows' batched tile copy (DIFFTX_CUDA_ATTENTION=batched-loads).
    variants = [(label, load(os.path.join(rdir, f"difftx-base{suffix}.json")))
                for label, suffix in (("cuBLASLt (the default)", ""), ("GEMV, plain loop", "-gemv"),
                                      ("GEMV, pipelined loop", "-gemv-pipelined"),
                                      ("cuBLASLt, batched attention loads", "-attention-batched"),
                                      ("GEMV pipelined, batched attention loads", "-gemv-pipelined-attention-batched"))]
    if any(v for _, v in variants[1:]):
        lines += ["", "Decoding of the base model by product path (the same run; `DIFFTX_CUDA_DECODE_GEMV=1` puts every "
                  "decoding product on difftx's GEMV, `DIFFTX_CUDA_GEMV=pipelined` gives the GEMV its pipelined loop, "
                  "`DIFFTX_CUDA_ATTENTION=batched-loads` batches the decoding attention's tile loads):",
                  "", "| products | batch | tokens/s | ms/step | of it queueing on the host | share of the HBM bound |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for label, d in variants:
            if d is None:
                lines.append(f"| {label} | (run failed: see device_check.log) | | | | |")
                continue
            for dd in d["decode"]:
                share = ""
                if dd["batch"] == 1 and bw:
                    share = f"{100 * dd['tokens_per_second'] / (bw / d['streamed_bytes_per_step']):.0f}%"
                host = f"{dd['host_ms_per_step']:.2f}" if "host_ms_per_step" in dd else ""
                lines.append(f"| {label} | {dd['batch']} | {fmt(dd['tokens_per_second'])} | {dd['ms_per_step']:.2f} | "
                             f"{host} | {share} |")
    lines += ["", "transformers loads no llama-differential model (the seed's own modeling code is not in transformers), "
              "so that row has difftx alone; its layout does twice the attention work of the base model's. "
              "The torch.compile column is empty when the run had `--no-compile` (its compilation takes minutes of "
              "a 15-minute device budget). \"queueing on the host\": the part of a decoding step spent before "
              "difftx's forward call returned; near the whole step, the host's launches are the limit, not the GPU. "
              "bench/cuda/NOTES.md has the kernel times behind these numbers.", ""]
    with open(out_path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
