"""The PyTorch side of scripts/bench.sh: the same computations as difftx, in eager PyTorch (Debian's
torch), float32, built from the independent reference implementation in tools/reference (which
computes in float64 for the golden tests; here its dtype is switched to float32).

Each command prints one line of JSON. Run one command per process: scripts/bench.sh reads the
process's peak RSS from the kernel (wait4), and the kernel commands report their own peak extra
memory (growth of VmHWM over the RSS with inputs allocated).

  torch_bench.py kernel KIND T [--backward] [--repeats N]   KIND: standard, double, split
  torch_bench.py prefill MODEL_DIR T [--repeats N]
  torch_bench.py decode MODEL_DIR PROMPT_LEN NEW_TOKENS
  torch_bench.py train MODEL_DIR SEQ_LEN MICRO_BATCH STEPS

Kernel shapes match bench/attention_bench.cpp: standard 9 heads / 3 kv heads; double 9 diff-heads
(18 q, 6 k, 3 v heads); split 5 diff-heads of width 128 (10 heads / 2 kv heads); head_dim 64;
the two-softmax version is diff_ref's: every score matrix materialised, masked, softmaxed.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "reference"))
import diff_ref  # noqa: E402
import llama_ref  # noqa: E402

F32 = torch.float32
llama_ref.F64 = F32   # the references read their dtype from this module global at call time
diff_ref.F64 = F32
D = 64


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return -1


def read_safetensors(path):
    """Every tensor of a safetensors file as float32, read straight into its own tensor (no copy of
    the file is kept, so the process's peak RSS is the model's size, as a lean loader's would be;
    tools/reference/safetensors_io reads whole files for its strict checks)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            dtype = {"F32": torch.float32, "BF16": torch.int16, "F16": torch.float16}[info["dtype"]]
            t = torch.empty(info["shape"], dtype=dtype)
            f.seek(8 + n + begin)
            if f.readinto(memoryview(t.numpy()).cast("B")) != end - begin:
                raise ValueError(f"{path}: tensor {name} is cut short")
            out[name] = t.view(torch.bfloat16).float() if info["dtype"] == "BF16" else t.float()
    return out


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    for n in sorted(n for n in os.listdir(model_dir) if n.endswith(".safetensors")):
        w.update(read_safetensors(os.path.join(model_dir, n)))
    return cfg, w


# ---------------------------------------------------------------- kernels

def kernel_case(kind, T):
    """q [1, heads, T, d] tensors and a function computing the attention output from them."""
    g = torch.Generator().manual_seed(7)
    vis = torch.ones(T, T, dtype=torch.bool).tril()[None]

    def heads(n):
        return torch.randn(1, n, T, D, generator=g)

    if kind == "standard":
        q, k, v = heads(9), heads(3), heads(3)

        def run(q, k, v):
            return diff_ref.softmax_masked(q, k.repeat_interleave(3, dim=1), vis, D) @ v.repeat_interleave(3, dim=1)
        return (q, k, v), run, 9, D
    if kind == "double":
        q1, q2, k1, k2, v = heads(9), heads(9), heads(3), heads(3), heads(3)
        w = torch.ones(D)

        def run(q1, q2, k1, k2, v):
            vexp = v.repeat_interleave(3, dim=1)
            a1 = diff_ref.softmax_masked(q1, k1.repeat_interleave(3, dim=1), vis, D) @ vexp
            a2 = diff_ref.softmax_masked(q2, k2.repeat_interleave(3, dim=1), vis, D) @ vexp
            return llama_ref.rms_norm(a1 - 0.8 * a2, w, 1e-6)
        return (q1, q2, k1, k2, v), run, 18, D
    if kind == "split":
        q, k, v = heads(10), heads(2), heads(2)
        w = torch.ones(2 * D)

        def run(q, k, v):
            vexp = v.repeat_interleave(5, dim=1)                                  # 10 heads
            vcat = torch.cat([vexp[:, :5], vexp[:, 5:]], dim=-1)                   # [1, 5, T, 2d]
            a1 = diff_ref.softmax_masked(q[:, :5], k[:, :1].repeat_interleave(5, dim=1), vis, D) @ vcat
            a2 = diff_ref.softmax_masked(q[:, 5:], k[:, 1:].repeat_interleave(5, dim=1), vis, D) @ vcat
            return llama_ref.rms_norm(a1 - 0.8 * a2, w, 1e-6)
        return (q, k, v), run, 10, 2 * D
    raise SystemExit(f"torch_bench.py: unknown kernel kind {kind!r}")


def cmd_kernel(a):
    inputs, run, maps, width = kernel_case(a.kind, a.T)
    if a.backward:
        inputs = tuple(t.requires_grad_() for t in inputs)

    def once():
        if a.backward:
            out = run(*inputs)
            out.backward(torch.ones_like(out))
            for t in inputs:
                t.grad = None
        else:
            with torch.no_grad():
                run(*inputs)

    before = status_bytes("VmRSS:")
    once()
    extra = max(0, status_bytes("VmHWM:") - before)
    best = 1e30
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"kind": a.kind, "T": a.T, "backward": a.backward, "seconds": best, "extra_bytes": extra}))


# ---------------------------------------------------------------- end to end

def rope(cfg, positions):
    pos = positions[None]
    inv, factor = llama_ref.rope_frequencies(cfg, pos)
    angle = pos.to(F32)[..., None] * inv
    return torch.cos(angle) * factor, torch.sin(angle) * factor


def head_weight(cfg, w):
    return w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]


def prefill_logits(cfg, w, ids):
    """The reference forward, with the output head applied to the last position only (as difftx's
    prefill and transformers' generate do)."""
    T = ids.numel()
    eps = cfg["rms_norm_eps"]
    cos, sin = rope(cfg, torch.arange(T))
    vis = llama_ref.visible_keys(diff_ref.base_config(cfg), torch.ones(1, T, dtype=torch.long))
    x = w["model.embed_tokens.weight"][ids[None]]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        xn = rms_norm_of(cfg, w, p + "input_layernorm.weight", x)
        if diff_ref.layout(cfg):
            att = diff_ref.attention(cfg, w, p + "self_attn.", l, xn, cos, sin, vis)
        else:
            att = llama_ref.attention(cfg, w, p + "self_attn.", xn, cos, sin, vis)
        h = x + att
        x = h + llama_ref.mlp(w, p + "mlp.", rms_norm_of(cfg, w, p + "post_attention_layernorm.weight", h))
    return llama_ref.rms_norm(x[:, -1:], w["model.norm.weight"], eps) @ head_weight(cfg, w).T


def rms_norm_of(cfg, w, name, x):
    return llama_ref.rms_norm(x, w[name], cfg["rms_norm_eps"])


def cmd_prefill(a):
    cfg, w = load(a.model)
    ids = torch.randint(0, cfg["vocab_size"], (a.T,), generator=torch.Generator().manual_seed(1))
    best = 1e30
    with torch.no_grad():
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            prefill_logits(cfg, w, ids)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"T": a.T, "seconds": best, "tokens_per_s": a.T / best}))


class Cache:
    """Per-layer key and value caches [heads, S, d], grown by concatenation as eager code does."""

    def __init__(self, layers):
        self.k = [None] * layers
        self.v = [None] * layers

    def append(self, l, k, v):
        self.k[l] = k if self.k[l] is None else torch.cat([self.k[l], k], dim=1)
        self.v[l] = v if self.v[l] is None else torch.cat([self.v[l], v], dim=1)
        return self.k[l], self.v[l]


def attend(q, k, v, scale):
    """q [n, t, d] against k, v [n, S, d] where query t sits at S - t + i (causal)."""
    t, S = q.shape[1], k.shape[1]
    scores = (q @ k.transpose(1, 2)) * scale
    mask = torch.arange(S)[None, :] <= (S - t + torch.arange(t))[:, None]
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v


def cached_step(cfg, w, cache, ids, start):
    """Logits of the last of `ids` (positions start..), extending the cache: standard Llama or
    llama-differential (double or split mode, with or without subln)."""
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    G, t, eps = H // KV, ids.numel(), cfg["rms_norm_eps"]
    lay, mode = diff_ref.layout(cfg), diff_ref.mode(cfg)
    if lay not in (None, "llama-differential"):
        raise SystemExit(f"torch_bench.py decode: layout {lay} is not benchmarked")
    cos, sin = rope(cfg, torch.arange(start, start + t))
    x = w["model.embed_tokens.weight"][ids[None]]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        xn = rms_norm_of(cfg, w, f"model.layers.{l}.input_layernorm.weight", x)
        q = llama_ref.linear(xn, w[p + "q_proj.weight"], w.get(p + "q_proj.bias"))
        k = llama_ref.linear(xn, w[p + "k_proj.weight"], w.get(p + "k_proj.bias"))
        v = llama_ref.linear(xn, w[p + "v_proj.weight"], w.get(p + "v_proj.bias"))
        nq, nk = q.shape[-1] // d, k.shape[-1] // d
        q = llama_ref.apply_rope(q.view(1, t, nq, d).transpose(1, 2), cos, sin)[0]
        k = llama_ref.apply_rope(k.view(1, t, nk, d).transpose(1, 2), cos, sin)[0]
        K, V = cache.append(l, k, v.view(t, KV, d).transpose(0, 1))
        scale = 1.0 / math.sqrt(d)
        if lay is None:
            out = attend(q, K.repeat_interleave(G, 0), V.repeat_interleave(G, 0), scale)
        else:
            lam, _ = diff_ref.layer_lambda(cfg, w, p, l)
            if mode == "double":
                Vx = V.repeat_interleave(G, 0)
                a1 = attend(q[:H], K[:KV].repeat_interleave(G, 0), Vx, scale)
                a2 = attend(q[H:], K[KV:].repeat_interleave(G, 0), Vx, scale)
            else:
                Vx = V.repeat_interleave(G, 0)
                vcat = torch.cat([Vx[: H // 2], Vx[H // 2:]], dim=-1)
                a1 = attend(q[: H // 2], K[: KV // 2].repeat_interleave(G, 0), vcat, scale)
                a2 = attend(q[H // 2:], K[KV // 2:].repeat_interleave(G, 0), vcat, scale)
            out = a1 - lam * a2
            if diff_ref.sublayer_norm(cfg):
                out = llama_ref.rms_norm(out, w[p + "subln.weight"], eps)
        out = out.transpose(0, 1).reshape(1, t, -1)
        h = x + llama_ref.linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))
        pm = f"model.layers.{l}."
        x = h + llama_ref.mlp(w, pm + "mlp.", rms_norm_of(cfg, w, pm + "post_attention_layernorm.weight", h))
    return llama_ref.rms_norm(x[:, -1:], w["model.norm.weight"], eps) @ head_weight(cfg, w).T


def cmd_decode(a):
    cfg, w = load(a.model)
    ids = torch.randint(0, cfg["vocab_size"], (a.prompt,), generator=torch.Generator().manual_seed(1))
    cache = Cache(cfg["num_hidden_layers"])
    with torch.no_grad():
        logits = cached_step(cfg, w, cache, ids, 0)
        t0 = time.perf_counter()
        for i in range(a.new_tokens):
            token = logits.reshape(-1).argmax().reshape(1)
            logits = cached_step(cfg, w, cache, token, a.prompt + i)
        s = time.perf_counter() - t0
    print(json.dumps({"prompt": a.prompt, "new_tokens": a.new_tokens, "seconds": s, "tokens_per_s": a.new_tokens / s}))


def cmd_train(a):
    """Steps of AdamW on random token rows, loss and gradients through the reference forward."""
    cfg, w = load(a.model)
    params = {n: t.clone().requires_grad_(not n.endswith(".lambda_init")) for n, t in w.items()}
    del w
    opt = torch.optim.AdamW([t for t in params.values() if t.requires_grad], lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(a.micro_batch, a.seq_len, dtype=torch.long)
    pos = torch.arange(a.seq_len)[None].expand(a.micro_batch, -1)
    times = []
    for _ in range(a.steps):
        ids = torch.randint(0, cfg["vocab_size"], (a.micro_batch, a.seq_len), generator=g)
        t0 = time.perf_counter()
        logits = diff_ref.forward(cfg, params, ids, mask, pos)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        del logits
        loss.backward()
        torch.nn.utils.clip_grad_norm_([t for t in params.values() if t.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = times[1:] if len(times) > 1 else times
    tokens = a.micro_batch * a.seq_len
    print(json.dumps({"seq_len": a.seq_len, "micro_batch_size": a.micro_batch, "steps": a.steps,
                      "tokens_per_s": tokens * len(steady) / sum(steady), "step_seconds": times}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernel")
    k.add_argument("kind", choices=["standard", "double", "split"])
    k.add_argument("T", type=int)
    k.add_argument("--backward", action="store_true")
    k.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("prefill")
    p.add_argument("model")
    p.add_argument("T", type=int)
    p.add_argument("--repeats", type=int, default=2)
    d = sub.add_parser("decode")
    d.add_argument("model")
    d.add_argument("prompt", type=int)
    d.add_argument("new_tokens", type=int)
    t = sub.add_parser("train")
    t.add_argument("model")
    t.add_argument("seq_len", type=int)
    t.add_argument("micro_batch", type=int)
    t.add_argument("steps", type=int)
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count())
    {"kernel": cmd_kernel, "prefill": cmd_prefill, "decode": cmd_decode, "train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    main()
