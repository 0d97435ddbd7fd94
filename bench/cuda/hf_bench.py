"""transformers' side of the GPU benchmark (bench/cuda/infer_bench.cpp is difftx's): the same
model directory loaded with AutoModelForCausalLM in bfloat16 with attn_implementation="sdpa" (eager
where the architecture has no sdpa path), under torch.inference_mode; prefill of T tokens into a
DynamicCache with the last position's logits, greedy decoding of N tokens after a P-token prompt at
each batch size, and with --compile the prefill again through torch.compile. Also measures the
GPU's copy bandwidth (bytes read + written per second of a large device-to-device copy).

Usage: python3 hf_bench.py MODEL_DIR [--prefill 2048] [--prompt 512] [--decode 128] [--batch 1,16]
                           [--repeats 5] [--compile] [--bandwidth] [--out FILE]
Writes one JSON object to FILE (rewritten after each measurement, so that a run stopped by a time
limit keeps what it measured) or prints it.
"""
import argparse
import json
import statistics
import sys
import time

import torch


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def copy_bandwidth(gib=4):
    n = gib * (1 << 30) // 4
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    times = [timed(lambda: y.copy_(x)) for _ in range(10)]
    return 2 * x.numel() * 4 / statistics.median(times)


def call(model, ids, cache, last_only):
    kwargs = {"past_key_values": cache, "use_cache": True}
    if last_only:
        kwargs["logits_to_keep"] = 1
    try:
        return model(ids, **kwargs)
    except TypeError:  # an architecture without logits_to_keep
        kwargs.pop("logits_to_keep", None)
        return model(ids, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bandwidth", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    def save():
        if a.out:
            with open(a.out, "w") as f:
                json.dump(out, f, indent=2)

    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache

    out = {"model": a.model, "torch": torch.__version__, "transformers": transformers.__version__,
           "gpu": torch.cuda.get_device_name(0)}
    if a.bandwidth:
        out["copy_bandwidth_bytes_per_second"] = copy_bandwidth()
        save()
    t0 = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa")
        out["attn_implementation"] = "sdpa"
    except (ValueError, ImportError) as e:  # no sdpa path for this architecture
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="eager")
        out["attn_implementation"] = "eager (sdpa refused: %s)" % str(e).splitlines()[0][:120]
    model = model.cuda().eval()
    out["architecture"] = type(model).__name__
    out["load_seconds"] = time.perf_counter() - t0
    save()
    V = model.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(0)

    with torch.inference_mode():
        ids = torch.randint(0, V, (1, a.prefill), device="cuda", generator=g)

        def prefill(m):
            return lambda: call(m, ids, DynamicCache(), True).logits[:, -1].argmax(-1)

        for _ in range(2):
            prefill(model)()
        times = [timed(prefill(model)) for _ in range(a.repeats)]
        s = statistics.median(times)
        out["prefill"] = {"tokens": a.prefill, "seconds": s, "tokens_per_second": a.prefill / s}
        save()

        out["decode"] = []
        for B in [int(x) for x in a.batch.split(",")]:
            def run(steps):
                cache = DynamicCache()
                prompt = torch.randint(0, V, (B, a.prompt), device="cuda", generator=g)
                nxt = call(model, prompt, cache, True).logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(steps):
                    nxt = call(model, nxt, cache, False).logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                return time.perf_counter() - t

            run(8)
            d = statistics.median([run(a.decode) for _ in range(max(1, a.repeats // 2))])
            out["decode"].append({"batch": B, "prompt": a.prompt, "steps": a.decode, "seconds": d,
                                  "tokens_per_second": B * a.decode / d, "ms_per_step": 1e3 * d / a.decode})
            save()

        if a.compile:
            try:
                compiled = torch.compile(model)
                t = time.perf_counter()
                for _ in range(2):
                    prefill(compiled)()
                out["compile_seconds"] = time.perf_counter() - t
                save()
                times = [timed(prefill(compiled)) for _ in range(a.repeats)]
                s = statistics.median(times)
                out["prefill_compiled"] = {"tokens": a.prefill, "seconds": s, "tokens_per_second": a.prefill / s}
            except Exception as e:  # "where it works"
                out["prefill_compiled"] = {"error": str(e).splitlines()[0][:200]}
    out["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    save()
    if not a.out:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
