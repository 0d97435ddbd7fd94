"""Self-checks of the golden files and of the reference model.

Usage (from the repository root):  /usr/bin/python3 tools/reference/check_reference.py [golden_dir]

1. Every safetensors file reads back with our own strict reader; headers are 8-byte aligned;
   the BF16 files hold exactly round-to-nearest-even of the F32 weights (checked with integer math).
2. A naive second implementation (numpy, per-token / per-head / per-pair loops, its own RoPE
   frequency code, biases taken from whichever tensors the file holds) reproduces the stored
   `logits` and `logits_bf16` of every case.
3. The padded row's logits at real positions equal the same tokens run alone.
4. Each case is discriminating: removing the feature it covers changes the logits.
Then the differential cases (MANIFEST entries with a `layout`) are checked by check_diff.py, and the
training goldens (MANIFEST entries with a non-empty `train` list) by check_train.py.
"""
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- naive implementation

def naive_rope(cfg, max_pos):
    """Python-float list of per-pair frequencies and the cos/sin multiplier."""
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    if "rope_parameters" in cfg:
        p = dict(cfg["rope_parameters"])
        base = p["rope_theta"]
        kind = p.get("rope_type", "default")
    else:
        p = dict(cfg.get("rope_scaling") or {})
        base = cfg["rope_theta"]
        kind = p.get("rope_type") or p.get("type") or "default"
    freqs = [base ** (-(2.0 * i) / d) for i in range(d // 2)]
    mult = 1.0
    if kind == "linear":
        freqs = [f / p["factor"] for f in freqs]
    elif kind == "dynamic":
        L = cfg["max_position_embeddings"]
        n = max_pos + 1
        if n > L:
            a = p["factor"]
            new_base = base * (a * n / L - a + 1) ** (d / (d - 2))
            freqs = [new_base ** (-(2.0 * i) / d) for i in range(d // 2)]
    elif kind == "llama3":
        a, L0 = p["factor"], p["original_max_position_embeddings"]
        lo, hi = p["low_freq_factor"], p["high_freq_factor"]
        out = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < L0 / hi:
                out.append(f)
            elif wavelen > L0 / lo:
                out.append(f / a)
            else:
                t = (L0 / wavelen - lo) / (hi - lo)
                out.append(t * f + (1 - t) * f / a)
        freqs = out
    elif kind == "yarn":
        a = p["factor"]
        L0 = p.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        bf, bs = p.get("beta_fast", 32), p.get("beta_slow", 1)

        def ms(s, m):
            return 1.0 if s <= 1 else 1.0 + 0.1 * m * math.log(s)

        if p.get("attention_factor") is not None:
            mult = p["attention_factor"]
        elif p.get("mscale") and p.get("mscale_all_dim"):
            mult = ms(a, p["mscale"]) / ms(a, p["mscale_all_dim"])
        else:
            mult = ms(a, 1.0)
        lo = d * math.log(L0 / (bf * 2 * math.pi)) / (2 * math.log(base))
        hi = d * math.log(L0 / (bs * 2 * math.pi)) / (2 * math.log(base))
        if p.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        if hi == lo:
            hi = hi + 0.001
        out = []
        for i, f in enumerate(freqs):
            r = min(max((i - lo) / (hi - lo), 0.0), 1.0)   # 0: keep f, 1: f / a
            out.append(f * (1 - r) + (f / a) * r)
        freqs = out
    elif kind != "default":
        raise ValueError(kind)
    return freqs, mult


def naive_forward(cfg, W, ids, mask, pos):
    W = {k: v.double().numpy() for k, v in W.items()}
    B, T = len(ids), len(ids[0])
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or D // H
    eps = cfg["rms_norm_eps"]
    freqs, mult = naive_rope(cfg, max(max(r) for r in pos))
    sw = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None

    def norm(v, w):
        return w * v / math.sqrt(float(np.mean(v * v)) + eps)

    def lin(name, v):
        y = W[name + ".weight"] @ v
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def rope(v, p):
        v = v.copy()
        for i, f in enumerate(freqs):
            c, s = math.cos(p * f) * mult, math.sin(p * f) * mult
            a, b = v[i], v[i + d // 2]
            v[i], v[i + d // 2] = a * c - b * s, b * c + a * s
        return v

    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    out = np.zeros((B, T, cfg["vocab_size"]))
    for b in range(B):
        xs = [W["model.embed_tokens.weight"][ids[b][t]].copy() for t in range(T)]
        for l in range(cfg["num_hidden_layers"]):
            P = f"model.layers.{l}."
            qs, ks, vs = [], [], []
            for t in range(T):
                n = norm(xs[t], W[P + "input_layernorm.weight"])
                q = lin(P + "self_attn.q_proj", n).reshape(H, d)
                k = lin(P + "self_attn.k_proj", n).reshape(KV, d)
                v = lin(P + "self_attn.v_proj", n).reshape(KV, d)
                if P + "self_attn.q_norm.weight" in W:
                    q = np.stack([norm(q[h], W[P + "self_attn.q_norm.weight"]) for h in range(H)])
                    k = np.stack([norm(k[h], W[P + "self_attn.k_norm.weight"]) for h in range(KV)])
                qs.append([rope(q[h], pos[b][t]) for h in range(H)])
                ks.append([rope(k[h], pos[b][t]) for h in range(KV)])
                vs.append(v)
            new = []
            for i in range(T):
                heads = []
                for h in range(H):
                    g = h // (H // KV)
                    js = [j for j in range(i + 1) if mask[b][j] == 1 and (sw is None or i - j < sw)]
                    if not js:
                        heads.append(np.zeros(d))
                        continue
                    sc = [float(qs[i][h] @ ks[j][g]) / math.sqrt(d) for j in js]
                    m = max(sc)
                    e = [math.exp(s - m) for s in sc]
                    z = sum(e)
                    heads.append(sum((e_ / z) * vs[j][g] for e_, j in zip(e, js)))
                hx = xs[i] + lin(P + "self_attn.o_proj", np.concatenate(heads))
                n = norm(hx, W[P + "post_attention_layernorm.weight"])
                gt = lin(P + "mlp.gate_proj", n)
                act = gt / (1 + np.exp(-gt)) * lin(P + "mlp.up_proj", n)
                new.append(hx + lin(P + "mlp.down_proj", act))
            xs = new
        for t in range(T):
            out[b, t] = head @ norm(xs[t], W["model.norm.weight"])
    return torch.from_numpy(out)


# ---------------------------------------------------------------- helpers

def rel_err(a, b):
    """max |a - b| / max |b|; NaN anywhere gives inf, so a NaN never passes a `<` test."""
    a, b = a.double(), b.double()
    e = float((a - b).abs().max() / b.abs().max())
    return e if math.isfinite(e) else float("inf")


def bf16_rne_bits(x):
    """float32 tensor -> uint16 numpy array, round to nearest even, with integer math."""
    u = x.numpy().astype("<f4").view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def check_file_layout(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, f"{path}: header not 8-byte aligned"
    hdr = json.loads(raw[8:8 + n])
    assert hdr["__metadata__"] == {"format": "pt"}, path
    return hdr, raw[8 + n:]


def load_case(cdir):
    with open(os.path.join(cdir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(cdir, "inputs.json")) as f:
        inp = json.load(f)
    return cfg, inp


def without_feature(cfg, name):
    """The config with the case's feature removed (for the discrimination check), or None."""
    c = copy.deepcopy(cfg)
    if "rope_parameters" in c and c["rope_parameters"].get("rope_type", "default") != "default":
        c["rope_parameters"] = {"rope_type": "default", "rope_theta": c["rope_parameters"]["rope_theta"]}
        return c
    if c.get("rope_scaling"):
        c["rope_scaling"] = None
        return c
    if name == "mistral_sliding":
        c["sliding_window"] = None
        return c
    return None


# ---------------------------------------------------------------- checks

def check_case(cdir, name, failures):
    cfg, inp = load_case(cdir)
    ids, mask, pos = inp["input_ids"], inp["attention_mask"], inp["position_ids"]
    w32 = safetensors_io.load_file(os.path.join(cdir, "model.safetensors"))
    wbf = safetensors_io.load_file(os.path.join(cdir, "bf16", "model.safetensors"))
    lg = safetensors_io.load_file(os.path.join(cdir, "logits.safetensors"))
    B, T, V = len(ids), len(ids[0]), cfg["vocab_size"]

    # 1. file layout, dtypes, BF16 rounding
    h32, _ = check_file_layout(os.path.join(cdir, "model.safetensors"))
    hbf, data_bf = check_file_layout(os.path.join(cdir, "bf16", "model.safetensors"))
    assert all(v["dtype"] == "F32" for k, v in h32.items() if k != "__metadata__")
    assert all(v["dtype"] == "BF16" for k, v in hbf.items() if k != "__metadata__")
    for n, t in w32.items():
        b, e = hbf[n]["data_offsets"]
        stored = np.frombuffer(data_bf[b:e], dtype="<u2")
        if not np.array_equal(stored, bf16_rne_bits(t).reshape(-1)):
            failures.append(f"{name}: BF16 bits of {n} are not RNE of F32")
    with open(os.path.join(cdir, "bf16", "config.json")) as f:
        cbf = json.load(f)
    assert cbf == dict(cfg, torch_dtype="bfloat16") and cfg["torch_dtype"] == "float32"
    assert list(lg["logits"].shape) == [B, T, V] and list(lg["logits_bf16"].shape) == [B, T, V]
    for k in ("logits", "logits_bf16"):
        if not bool(torch.isfinite(lg[k]).all()):
            failures.append(f"{name}: {k} has non-finite values")
    assert sorted(w32) == sorted(llama_ref.tensor_shapes(cfg))

    # 2. naive implementation vs stored logits (stored as float32, so ~1e-7 relative)
    e32 = rel_err(lg["logits"], naive_forward(cfg, w32, ids, mask, pos))
    ebf = rel_err(lg["logits_bf16"], naive_forward(cfg, wbf, ids, mask, pos))
    for tag, e in (("logits", e32), ("logits_bf16", ebf)):
        if e > 1e-6:
            failures.append(f"{name}: naive vs stored {tag}: rel err {e:.2e}")
    e_ref = rel_err(lg["logits"], llama_ref.forward(cfg, w32, ids, mask, pos))
    if e_ref > 1e-6:
        failures.append(f"{name}: reference recomputation differs: {e_ref:.2e}")
    dbf = rel_err(lg["logits_bf16"], lg["logits"])
    line = f"{name:26s} naive rel err f32 {e32:.1e} bf16 {ebf:.1e}; bf16-vs-f32 {dbf:.1e}"
    if dbf < 1e-3:
        failures.append(f"{name}: bf16 logits too close to f32 ({dbf:.1e})")

    # 3. padded rows equal the same tokens run alone
    for b in range(B):
        real = [t for t in range(T) if mask[b][t] == 1]
        if len(real) == T:
            continue
        alone = llama_ref.forward(cfg, w32, [[ids[b][t] for t in real]], [[1] * len(real)],
                                  [[pos[b][t] for t in real]])
        e = rel_err(lg["logits"][b, real], alone[0])
        line += f"; padded row {b} vs alone {e:.1e}"
        if e > 1e-6:
            failures.append(f"{name}: padded row {b} differs from unpadded run: {e:.2e}")

    # 4. discrimination: the covered feature changes the logits
    plain = without_feature(cfg, name)
    if plain is not None:
        e = rel_err(llama_ref.forward(plain, w32, ids, mask, pos), lg["logits"])
        line += f"; without feature {e:.2f}"
        if e < 0.05:
            failures.append(f"{name}: removing the feature barely changes logits ({e:.2e})")
    # ... and so do the biases and q/k norms the case holds (zeroed / set to ones)
    for tag, pick, value in (("biases", lambda n: n.endswith(".bias"), 0.0),
                             ("q/k norms", lambda n: "q_norm" in n or "k_norm" in n, 1.0)):
        names = [n for n in w32 if pick(n)]
        if not names:
            continue
        ablated = {n: (torch.full_like(t, value) if n in names else t) for n, t in w32.items()}
        e = rel_err(llama_ref.forward(cfg, ablated, ids, mask, pos), lg["logits"])
        line += f"; without {tag} {e:.2f}"
        if e < 0.01:
            failures.append(f"{name}: {tag} barely change the logits ({e:.2e})")
    print(line)


def print_rope_diagnostics(golden):
    """How the scaled frequencies relate to the default ones (ratio per pair)."""
    for name in sorted(os.listdir(golden)):
        cdir = os.path.join(golden, name)
        if not os.path.isdir(cdir):
            continue
        cfg, inp = load_case(cdir)
        theta, kind, _ = llama_ref.rope_settings(cfg)
        if kind == "default":
            continue
        pos = torch.tensor(inp["position_ids"])
        inv, af = llama_ref.rope_frequencies(cfg, pos)
        d = llama_ref.head_dim(cfg)
        base = torch.tensor([theta ** (-2.0 * i / d) for i in range(d // 2)], dtype=torch.float64)
        ratios = " ".join(f"{r:.3f}" for r in (inv / base).tolist())
        print(f"  rope {name}: type {kind}, inv_freq/default = [{ratios}], attention_factor {af:.4f}")


def main():
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden")
    with open(os.path.join(golden, "MANIFEST.json")) as f:
        manifest = json.load(f)
    failures = []
    base_cases = [c for c in manifest["cases"] if "layout" not in c]
    for case in base_cases:
        check_case(os.path.join(golden, case["name"]), case["name"], failures)
    print_rope_diagnostics(golden)
    # naive RoPE frequencies vs the reference ones, for every case
    for case in manifest["cases"]:
        cfg, inp = load_case(os.path.join(golden, case["name"]))
        inv, af = llama_ref.rope_frequencies(cfg, torch.tensor(inp["position_ids"]))
        nf, nm = naive_rope(cfg, max(max(r) for r in inp["position_ids"]))
        if rel_err(inv, torch.tensor(nf, dtype=torch.float64)) > 1e-12 or abs(af - nm) > 1e-12:
            failures.append(f"{case['name']}: rope frequencies differ between implementations")
    import check_diff                     # the differential layouts (spec 2-4)
    n_diff = check_diff.check_all(golden, failures)
    import check_train                    # loss, gradients, AdamW trajectory
    n_train = check_train.check_all(golden, failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"all {len(base_cases)} base cases, {n_diff} differential cases and {n_train} training cases OK")


if __name__ == "__main__":
    main()
