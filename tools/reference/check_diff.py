"""Self-checks of the differential-attention golden cases and of diff_ref.py (spec sections 2-5).

Usage (from the repository root):  /usr/bin/python3 tools/reference/check_diff.py [golden_dir]
(check_reference.py runs these checks too, after its own.)

1. Files: strict read-back, 8-byte aligned headers, BF16 = round-to-nearest-even of F32 (lambda_init's
   0-dim tensor included), tensor set and shapes as the spec lists them, config keys, `mix` in inputs.json.
2. A naive second implementation (numpy; loops over tokens, diff-heads and RoPE pairs; two explicit
   softmaxes per diff-head, each written out from the spec's wording) agrees with diff_ref to ~1e-12
   in float64 and reproduces the stored logits (float32 storage rounding, ~1e-7).
3. The padded row equals the same tokens run alone.
4. Each case discriminates: lambda vectors, subln weights, mix, stored lambda_init, RoPE scaling,
   biases and q/k norms each change the logits.
5. Structural identities (see IDENTITIES below), on the golden cases' weights and on synthetic configs.
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_reference  # noqa: E402
import diff_ref  # noqa: E402
import llama_ref  # noqa: E402
import safetensors_io  # noqa: E402
from check_reference import bf16_rne_bits, check_file_layout, naive_rope, rel_err  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- naive implementation

def naive_diff_forward(cfg, W, ids, mask, pos, mix=1.0):
    """Written from spec 2-4 sentence by sentence; shares no code with diff_ref/llama_ref."""
    W = {k: v.double().numpy() for k, v in W.items()}
    lay = cfg["model_type"]
    assert lay in ("llama-differential", "diffllama", "diff-v1", "diff-v2")
    family = cfg.get("base_model_type", "llama")
    split = lay == "llama-differential" and bool(cfg.get("split_heads"))
    double = lay == "llama-differential" and not split
    subln = lay == "llama-differential" and cfg.get("sublayer_norm", True)
    v1 = lay == "diff-v1"
    v2 = lay == "diff-v2"
    B, T = len(ids), len(ids[0])
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or D // H
    G = H // KV
    eps = cfg["rms_norm_eps"]
    freqs, mult = naive_rope(cfg, max(max(r) for r in pos))
    sw = cfg.get("sliding_window") if family == "mistral" else None

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

    def dot(a, b):
        return sum(float(x) * float(y) for x, y in zip(a, b))

    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    out = np.zeros((B, T, cfg["vocab_size"]))
    for b in range(B):
        xs = [W["model.embed_tokens.weight"][ids[b][t]].copy() for t in range(T)]
        for l in range(cfg["num_hidden_layers"]):
            P = f"model.layers.{l}."
            A = P + "self_attn."
            if lay == "llama-differential":
                lam_init = float(W[A + "lambda_init"])
            else:
                lam_init = 0.8 - 0.6 * math.exp(-0.3 * l)
            if not v2:
                lam = (math.exp(dot(W[A + "lambda_q1"], W[A + "lambda_k1"]))
                       - math.exp(dot(W[A + "lambda_q2"], W[A + "lambda_k2"])) + lam_init)

            # per token: query heads, key heads (both after q/k norm and RoPE), value heads
            Q1, Q2, K1, K2, Q, K, Vh, LAM = [], [], [], [], [], [], [], []
            for t in range(T):
                n = norm(xs[t], W[P + "input_layernorm.weight"])
                if v2:                                       # lambda per token and output head
                    LAM.append([1 / (1 + math.exp(-dot(n, W[A + "lambda_proj.weight"][i]))) for i in range(H)])
                q = lin(A + "q_proj", n)
                k = lin(A + "k_proj", n)
                v = lin(A + "v_proj", n)

                def prep(vec, nheads, which):
                    hs = [vec[h * d:(h + 1) * d] for h in range(nheads)]
                    if family == "qwen3":
                        hs = [norm(x, W[A + which + "_norm.weight"]) for x in hs]
                    return [rope(x, pos[b][t]) for x in hs]

                if double:
                    Q1.append(prep(q[:H * d], H, "q"))
                    Q2.append(prep(q[H * d:], H, "q"))
                    K1.append(prep(k[:KV * d], KV, "k"))
                    K2.append(prep(k[KV * d:], KV, "k"))
                else:
                    Q.append(prep(q, 2 * H if v2 else H, "q"))
                    K.append(prep(k, KV, "k"))
                Vh.append([v[g * d:(g + 1) * d] for g in range(KV)])

            def softmax_weights(i, qvec, keyvec):
                """[(j, p_j)] over the keys query i sees; [] when it sees none."""
                js = [j for j in range(i + 1) if mask[b][j] == 1 and (sw is None or i - j < sw)]
                if not js:
                    return []
                sc = [dot(qvec, keyvec(j)) / math.sqrt(d) for j in js]
                m = max(sc)
                e = [math.exp(s - m) for s in sc]
                z = sum(e)
                return [(j, e_ / z) for j, e_ in zip(js, e)]

            def apply(weights, value, width):
                acc = np.zeros(width)
                for j, p in weights:
                    acc = acc + p * value(j)
                return acc

            new = []
            for i in range(T):
                pieces = []
                if double:
                    for h in range(H):                       # H diff-heads of width d
                        g = h // G
                        s1 = softmax_weights(i, Q1[i][h], lambda j: K1[j][g])
                        s2 = softmax_weights(i, Q2[i][h], lambda j: K2[j][g])
                        a1 = apply(s1, lambda j: Vh[j][g], d)
                        a2 = apply(s2, lambda j: Vh[j][g], d)
                        o = a1 - mix * lam * a2
                        pieces.append(norm(o, W[A + "subln.weight"]) if subln else o)
                elif split:
                    half, kvhalf = H // 2, KV // 2
                    for h in range(half):                    # H/2 diff-heads of width 2d
                        g = h // G                           # key head within each component
                        val = (lambda j, h=h: np.concatenate([Vh[j][h // G], Vh[j][(h + half) // G]]))
                        s1 = softmax_weights(i, Q[i][h], lambda j: K[j][g])
                        s2 = softmax_weights(i, Q[i][half + h], lambda j: K[j][kvhalf + g])
                        o = apply(s1, val, 2 * d) - mix * lam * apply(s2, val, 2 * d)
                        pieces.append(norm(o, W[A + "subln.weight"]) if subln else o)
                elif v2:
                    for h in range(H):                       # output head h: query heads 2h, 2h + 1
                        g = 2 * h // (2 * G)                 # their shared kv head
                        s1 = softmax_weights(i, Q[i][2 * h], lambda j, g=g: K[j][g])
                        s2 = softmax_weights(i, Q[i][2 * h + 1], lambda j, g=g: K[j][g])
                        o = (apply(s1, lambda j, g=g: Vh[j][g], d)
                             - mix * LAM[i][h] * apply(s2, lambda j, g=g: Vh[j][g], d))
                        pieces.append(o)
                elif v1:
                    for h in range(H // 2):                  # diff-head h: query heads 2h and 2h + 1
                        g = h // G                           # value: kv heads 2g and 2g + 1
                        val = (lambda j, g=g: np.concatenate([Vh[j][2 * g], Vh[j][2 * g + 1]]))
                        s1 = softmax_weights(i, Q[i][2 * h], lambda j, h=h: K[j][2 * h // G])
                        s2 = softmax_weights(i, Q[i][2 * h + 1], lambda j, h=h: K[j][(2 * h + 1) // G])
                        o = apply(s1, val, 2 * d) - mix * lam * apply(s2, val, 2 * d)
                        pieces.append((1 - lam_init) * norm(o, W[A + "subln.weight"]))
                else:                                        # diffllama
                    half = H // 2
                    per_head = []
                    for h in range(H):
                        r = h % half                         # query head h uses V_{h mod H/2}
                        val = (lambda j, r=r: np.concatenate([Vh[j][r // G], Vh[j][(r + half) // G]]))
                        s = softmax_weights(i, Q[i][h], lambda j, h=h: K[j][h // G])
                        per_head.append(apply(s, val, 2 * d))
                    for h in range(half):
                        o = per_head[h] - lam * per_head[h + half]
                        pieces.append((1 - lam_init) * norm(o, 1.0))
                hx = xs[i] + lin(A + "o_proj", np.concatenate(pieces))
                n = norm(hx, W[P + "post_attention_layernorm.weight"])
                gt = lin(P + "mlp.gate_proj", n)
                act = gt / (1 + np.exp(-gt)) * lin(P + "mlp.up_proj", n)
                new.append(hx + lin(P + "mlp.down_proj", act))
            xs = new
        for t in range(T):
            out[b, t] = head @ norm(xs[t], W["model.norm.weight"])
    return torch.from_numpy(out)


# ---------------------------------------------------------------- helpers

def load_case(cdir):
    with open(os.path.join(cdir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(cdir, "inputs.json")) as f:
        inp = json.load(f)
    return cfg, inp


def attn_names(w, leaf):
    return sorted(n for n in w if n.endswith(".self_attn." + leaf))


def replace(w, names, fn):
    return {n: (fn(n, t) if n in names else t) for n, t in w.items()}


def to_base(cfg, w):
    """The plain Llama-family model made of the Llama-shaped part of a differential model:
    q1/k1 rows (first H*d / KV*d rows and bias entries), v, o, norms, mlp. Differential tensors dropped."""
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    base = dict(diff_ref.base_config(cfg))
    for k in ("split_heads", "sublayer_norm", "zero_init", "mirror_weights", "base_model_type",
              "lambda_std_dev"):
        base.pop(k, None)
    out = {}
    for n, t in w.items():
        leaf = n.split(".self_attn.")[-1]
        if leaf in ("lambda_init", "lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2", "subln.weight",
                    "lambda_proj.weight"):
            continue
        if leaf.startswith("q_proj."):
            t = t[: H * d]
        elif leaf.startswith("k_proj."):
            t = t[: KV * d]
        out[n] = t
    return base, out


def as_double(cfg, w, *, subln=False, q2=None, k2=None, lam_vec=None, lam_init=None):
    """A llama-differential double-mode model whose q1/k1 rows are the Llama-shaped part of `w`.
    q2 / k2: 'zero' or 'mirror' for the negative rows (and biases); lam_vec: 'zero' or None (keep);
    lam_init: a per-layer list to store, or None (keep / formula when absent)."""
    d = llama_ref.head_dim(cfg)
    bcfg, bw = to_base(cfg, w)
    c = dict(bcfg, model_type="llama-differential", architectures=["LlamaDifferentialForCausalLM"],
             split_heads=False, sublayer_norm=subln, zero_init=False, mirror_weights=False)
    if bcfg["model_type"] != "llama":
        c["base_model_type"] = bcfg["model_type"]
    nw = dict(bw)
    for n, t in bw.items():
        leaf = n.split(".self_attn.")[-1]
        if leaf.startswith("q_proj.") or leaf.startswith("k_proj."):
            neg = {"zero": torch.zeros_like(t), "mirror": t.clone()}[q2 if leaf[0] == "q" else k2]
            nw[n] = torch.cat([t, neg], dim=0)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        for v in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
            nw[p + v] = torch.zeros(d) if (lam_vec == "zero" or p + v not in w) else w[p + v]
        if lam_init is not None:
            li = lam_init[l]
        elif p + "lambda_init" in w:
            li = float(w[p + "lambda_init"])
        else:
            li = diff_ref.lambda_init_formula(l)
        nw[p + "lambda_init"] = torch.tensor(li, dtype=torch.float32)
        if subln:
            nw[p + "subln.weight"] = w[p + "subln.weight"]
    return c, nw


# ---------------------------------------------------------------- per-case checks

def check_files(cdir, name, cfg, inp, w32, failures):
    lay = cfg["model_type"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    d = cfg.get("head_dim") or D // H
    h32, _ = check_file_layout(os.path.join(cdir, "model.safetensors"))
    hbf, data_bf = check_file_layout(os.path.join(cdir, "bf16", "model.safetensors"))
    assert all(v["dtype"] == "F32" for k, v in h32.items() if k != "__metadata__")
    assert all(v["dtype"] == "BF16" for k, v in hbf.items() if k != "__metadata__")
    for n, t in w32.items():
        b, e = hbf[n]["data_offsets"]
        if not np.array_equal(np.frombuffer(data_bf[b:e], dtype="<u2"), bf16_rne_bits(t.reshape(-1))):
            failures.append(f"{name}: BF16 bits of {n} are not RNE of F32")
    with open(os.path.join(cdir, "bf16", "config.json")) as f:
        if json.load(f) != dict(cfg, torch_dtype="bfloat16") or cfg["torch_dtype"] != "float32":
            failures.append(f"{name}: bf16/config.json is not config.json with torch_dtype bfloat16")
    if sorted(w32) != sorted(diff_ref.tensor_shapes(cfg)):
        failures.append(f"{name}: tensor set differs from diff_ref.tensor_shapes")

    # the spec's shapes, restated here independently of diff_ref (spec 3/4)
    split = bool(cfg.get("split_heads"))
    double = lay == "llama-differential" and not split
    subln = lay == "llama-differential" and cfg.get("sublayer_norm", True)
    v1 = lay == "diff-v1"
    v2 = lay == "diff-v2"
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        want = {"q_proj.weight": [(2 if double or v2 else 1) * H * d, D],
                "k_proj.weight": [(2 if double else 1) * KV * d, D],
                "v_proj.weight": [KV * d, D], "o_proj.weight": [D, H * d]}
        if v2:
            want["lambda_proj.weight"] = [H, D]
        else:
            want.update({"lambda_q1": [d], "lambda_k1": [d], "lambda_q2": [d], "lambda_k2": [d]})
        if lay == "llama-differential":
            want["lambda_init"] = []
        if subln or v1:
            want["subln.weight"] = [d if double else 2 * d]
        if cfg.get("base_model_type") == "qwen2":
            want.update({"q_proj.bias": [want["q_proj.weight"][0]], "k_proj.bias": [want["k_proj.weight"][0]],
                         "v_proj.bias": [KV * d]})
        for leaf, shape in want.items():
            if p + leaf not in w32 or list(w32[p + leaf].shape) != shape:
                failures.append(f"{name}: {p + leaf} missing or not of shape {shape}")
        extra = {n for n in w32 if n.startswith(p)} - {p + k for k in want} - \
            {p + "q_norm.weight", p + "k_norm.weight"}
        if extra:
            failures.append(f"{name}: unexpected tensors {sorted(extra)}")

    # config keys (spec 3/4 and the brief)
    if lay == "llama-differential":
        ok = (cfg["architectures"] == ["LlamaDifferentialForCausalLM"]
              and all(isinstance(cfg.get(k), bool) for k in
                      ("split_heads", "sublayer_norm", "zero_init", "mirror_weights"))
              and isinstance(inp.get("mix"), float))
    elif v1 or v2:
        ok = (cfg["architectures"] == [("DiffV1ForCausalLM" if v1 else "DiffV2ForCausalLM")]
              and isinstance(inp.get("mix"), float) and "lambda_init" not in " ".join(w32))
    else:
        ok = (cfg["architectures"] == ["DiffLlamaForCausalLM"] and cfg.get("lambda_std_dev") == 0.1
              and "mix" not in inp and "lambda_init" not in " ".join(w32))
    if not ok:
        failures.append(f"{name}: config.json / inputs.json keys do not follow the layout")


def check_case(cdir, entry, failures):
    name = entry["name"]
    cfg, inp = load_case(cdir)
    ids, mask, pos = inp["input_ids"], inp["attention_mask"], inp["position_ids"]
    mix = inp.get("mix", 1.0)
    w32 = safetensors_io.load_file(os.path.join(cdir, "model.safetensors"))
    wbf = safetensors_io.load_file(os.path.join(cdir, "bf16", "model.safetensors"))
    lg = safetensors_io.load_file(os.path.join(cdir, "logits.safetensors"))
    B, T, V = len(ids), len(ids[0]), cfg["vocab_size"]
    assert list(lg["logits"].shape) == [B, T, V] and list(lg["logits_bf16"].shape) == [B, T, V]

    # 1. files
    check_files(cdir, name, cfg, inp, w32, failures)
    lams = diff_ref.lambdas(cfg, w32)
    if [round(a, 6) for a, _ in lams] != entry.get("lambda") or entry.get("mix") != inp.get("mix"):
        failures.append(f"{name}: MANIFEST lambda/mix disagree with the files")

    # 2. naive vs vectorised (float64) and vs stored
    ref32 = diff_ref.forward(cfg, w32, ids, mask, pos, mix)
    refbf = diff_ref.forward(cfg, wbf, ids, mask, pos, mix)
    nv32 = naive_diff_forward(cfg, w32, ids, mask, pos, mix)
    nvbf = naive_diff_forward(cfg, wbf, ids, mask, pos, mix)
    e_vec = max(rel_err(nv32, ref32), rel_err(nvbf, refbf))
    e32, ebf = rel_err(lg["logits"], nv32), rel_err(lg["logits_bf16"], nvbf)
    if e_vec > 1e-10:
        failures.append(f"{name}: naive vs vectorised (float64): {e_vec:.2e}")
    if max(e32, ebf) > 1e-6:
        failures.append(f"{name}: naive vs stored logits: f32 {e32:.2e} bf16 {ebf:.2e}")
    if not torch.equal(ref32.to(torch.float32), lg["logits"]):
        failures.append(f"{name}: recomputed logits are not bit-identical to the stored ones")
    dbf = rel_err(lg["logits_bf16"], lg["logits"])
    if dbf < 1e-3:
        failures.append(f"{name}: bf16 logits too close to f32 ({dbf:.1e})")
    lam_txt = ",".join(f"{a:+.3f}" for a, _ in lams)
    line = (f"{name:31s} lambda [{lam_txt}] naive-vs-vec {e_vec:.0e}, vs stored f32 {e32:.0e} "
            f"bf16 {ebf:.0e}; bf16-vs-f32 {dbf:.0e}")

    # 3. padded rows equal the same tokens run alone
    for b in range(B):
        real = [t for t in range(T) if mask[b][t] == 1]
        if len(real) == T:
            continue
        alone = diff_ref.forward(cfg, w32, [[ids[b][t] for t in real]], [[1] * len(real)],
                                 [[pos[b][t] for t in real]], mix)
        e = rel_err(lg["logits"][b, real], alone[0])
        line += f"; padded row {b} vs alone {e:.0e}"
        if e > 1e-6:
            failures.append(f"{name}: padded row {b} differs from unpadded run: {e:.2e}")
    print(line)

    # 4. discrimination: each feature of the case changes the logits (relative to max |logit|)
    def changed(tag, c, w, m=mix, minimum=0.05):
        e = rel_err(diff_ref.forward(c, w, ids, mask, pos, m), lg["logits"])
        if e < minimum:
            failures.append(f"{name}: {tag} barely changes the logits ({e:.2e})")
        return f"{tag} {e:.2f}"

    parts = []
    lam_vecs = [n for n in w32 if n.split(".")[-1] in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2")]
    if lam_vecs:
        parts.append(changed("lambda vectors=0", cfg, replace(w32, lam_vecs, lambda n, t: torch.zeros_like(t))))
    if cfg["model_type"] == "llama-differential":
        parts.append(changed("mix=0", cfg, w32, 0.0))
        if mix != 1.0:
            parts.append(changed("mix=1", cfg, w32, 1.0))
        stored = attn_names(w32, "lambda_init")
        formula = replace(w32, stored, lambda n, t: torch.tensor(diff_ref.lambda_init_formula(int(n.split(".")[2]))))
        if any(abs(float(w32[n]) - float(formula[n])) > 1e-6 for n in stored):
            parts.append(changed("lambda_init=formula", cfg, formula))
        sub = attn_names(w32, "subln.weight")
        if sub:
            parts.append(changed("subln=ones", cfg, replace(w32, sub, lambda n, t: torch.ones_like(t)),
                                 minimum=0.01))
    if cfg["model_type"] == "diff-v2":
        parts.append(changed("mix=0", cfg, w32, 0.0))
        lp = attn_names(w32, "lambda_proj.weight")
        parts.append(changed("lambda_proj=0", cfg, replace(w32, lp, lambda n, t: torch.zeros_like(t)), minimum=0.01))
    if cfg["model_type"] == "diff-v1":
        parts.append(changed("mix=0", cfg, w32, 0.0))
        sub = attn_names(w32, "subln.weight")
        parts.append(changed("subln=ones", cfg, replace(w32, sub, lambda n, t: torch.ones_like(t)), minimum=0.01))
    if cfg["model_type"] == "diffllama" and cfg["num_key_value_heads"] % 2 == 0:
        # the same weights as split mode with subln weight ones: diffllama without (1 - lambda_init)
        d = llama_ref.head_dim(cfg)
        c = {k: v for k, v in cfg.items() if k != "lambda_std_dev"}
        c.update(model_type="llama-differential", split_heads=True, sublayer_norm=True)
        nw = dict(w32)
        for l in range(cfg["num_hidden_layers"]):
            nw[f"model.layers.{l}.self_attn.lambda_init"] = torch.tensor(diff_ref.lambda_init_formula(l))
            nw[f"model.layers.{l}.self_attn.subln.weight"] = torch.ones(2 * d)
        parts.append(changed("without (1-lambda_init)", c, nw, 1.0))
    plain = check_reference.without_feature(cfg, name)
    if plain is not None:
        parts.append(changed("no rope scaling", plain, w32))
    for tag, pick, value in (("biases=0", lambda n: n.endswith(".bias"), 0.0),
                             ("q/k norms=1", lambda n: "q_norm" in n or "k_norm" in n, 1.0)):
        names = [n for n in w32 if pick(n)]
        if names:
            parts.append(changed(tag, cfg, replace(w32, names, lambda n, t, v=value: torch.full_like(t, v)),
                                 minimum=0.01))
    if cfg.get("base_model_type") == "qwen2" and not cfg.get("split_heads"):
        H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)

        def zero_neg(n, t):
            t = t.clone()
            t[(H if ".q_proj." in n else KV) * d:] = 0
            return t
        parts.append(changed("q2/k2 biases=0", cfg,
                             replace(w32, [n for n in w32 if n.endswith(("q_proj.bias", "k_proj.bias"))], zero_neg),
                             minimum=0.01))
    print("    discriminates: " + "; ".join(parts))
    return cfg, w32, ids, mask, pos, mix, lg


# ---------------------------------------------------------------- structural identities

IDENTITIES = """
(a) zero-init: double mode, q2/k2 rows (and biases) = 0, lambda vectors = 0, lambda_init = 0, no subln
    == the base Llama-family model of the same q1/k1/v/o weights (lambda is exactly 0). Run on every
    differential case's Llama-shaped part AND on every base golden case (against its stored logits).
(b) mix = 0, double mode, no subln == the base model (q2/k2, lambda arbitrary).
(c) diffllama, H = KV = 2, d = 2, 3 tokens, position 0 (RoPE = identity): the attention block
    against values written out by hand.
(d) split mode with subln weight (1 - lambda_init(l)) * ones(2d), stored lambda_init = formula, mix 1
    == diffllama with the same weights (the two layouts differ only in the norm and lambda_init).
(e) double mode with q2 = q1, k2 = k1 (mirror), no subln == the base model with o_proj scaled by
    (1 - mix * lambda_l): both maps are equal, out = (1 - mix*lambda) A1. Checks lambda's sign/scale.
(f) split mode with q heads H/2.. = q heads 0.., k heads KV/2.. = k heads 0.. (mirror), no subln
    == the base model with o_proj columns permuted and scaled by (1 - mix * lambda_l): diff-head i's
    features [d*2i, d*(2i+1)) are base head i, [d*(2i+1), d*(2i+2)) base head i + H/2.
(g) naive == vectorised on synthetic configs not in the golden set (odd GQA groups, KV = 1,
    Llama attention/mlp biases, Mistral sliding window, Qwen3 double, yarn split, mix 0.3, diff-v1
    with G = 4 and with a sliding window, diff-v2 with G = 3 and with KV = 1 and a window).
(i) diff-v2 identity conversion (spec 9): query heads 2i and 2i+1 both = base head i, lambda_proj = 0
    (lambda = 1/2), o_proj = 2 * base o_proj == the base model whose query heads are the case's even
    heads: out_i = A_i V / 2, doubled again by o_proj.
(h) diff-v1 with H = KV and subln weight ones == diffllama of the same weights with query, key and
    value heads reordered (diffllama head i <- diff-v1 head 2i, head i + H/2 <- head 2i + 1), mix 1:
    the two layouts differ only in which heads they pair.
"""


def identity_zero_init(cfg, w, ids, mask, pos, ref=None):
    """(a) -> relative error vs the base model (or vs `ref`, e.g. stored base logits)."""
    c, nw = as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero",
                      lam_init=[0.0] * cfg["num_hidden_layers"])
    got = diff_ref.forward(c, nw, ids, mask, pos, 1.0)
    if ref is None:
        bc, bw = to_base(cfg, w)
        ref = llama_ref.forward(bc, bw, ids, mask, pos)
    return rel_err(got, ref), bool(torch.equal(got, ref))


def identity_mix0(cfg, w, ids, mask, pos):
    """(b) double mode, mix 0, no subln (dropped when present); q2/k2 and lambda as stored."""
    if cfg.get("model_type") == "llama-differential" and not cfg.get("split_heads"):
        c = dict(cfg, sublayer_norm=False)
        nw = {n: t for n, t in w.items() if not n.endswith("subln.weight")}
    else:
        return None
    got = diff_ref.forward(c, nw, ids, mask, pos, 0.0)
    bc, bw = to_base(cfg, w)
    return rel_err(got, llama_ref.forward(bc, bw, ids, mask, pos))


def identity_mirror_double(cfg, w, ids, mask, pos, mix):
    """(e)"""
    c, nw = as_double(cfg, w, q2="mirror", k2="mirror")
    bc, bw = to_base(cfg, w)
    for l, (lam, _) in enumerate(diff_ref.lambdas(c, nw)):
        n = f"model.layers.{l}.self_attn.o_proj.weight"
        bw[n] = bw[n].double() * (1 - mix * lam)
    return rel_err(diff_ref.forward(c, nw, ids, mask, pos, mix), llama_ref.forward(bc, bw, ids, mask, pos))


def identity_mirror_split(cfg, w, ids, mask, pos, mix):
    """(f) on a split case's weights."""
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    c = dict(cfg, sublayer_norm=False)
    nw = {n: t.double().clone() for n, t in w.items() if not n.endswith("subln.weight")}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        for leaf, rows in (("q_proj", H * d // 2), ("k_proj", KV * d // 2)):
            for kind in ("weight", "bias"):
                if p + f"{leaf}.{kind}" in nw:
                    t = nw[p + f"{leaf}.{kind}"]
                    t[rows:] = t[:rows]
    bc, bw = to_base(c, nw)
    for l, (lam, _) in enumerate(diff_ref.lambdas(c, nw)):
        n = f"model.layers.{l}.self_attn.o_proj.weight"
        o = nw[n]
        cols = []
        for h in range(H):                                  # base head h's columns of o_proj
            i, second = (h, 0) if h < H // 2 else (h - H // 2, 1)
            start = 2 * d * i + d * second
            cols.append(o[:, start:start + d])
        bw[n] = torch.cat(cols, dim=1) * (1 - mix * lam)
    return rel_err(diff_ref.forward(c, nw, ids, mask, pos, mix), llama_ref.forward(bc, bw, ids, mask, pos))


def identity_split_is_diffllama(cfg, w, ids, mask, pos):
    """(d) on a diffllama case's weights (KV even)."""
    if cfg["num_key_value_heads"] % 2:
        return None
    d = llama_ref.head_dim(cfg)
    c = {k: v for k, v in cfg.items() if k != "lambda_std_dev"}
    c.update(model_type="llama-differential", architectures=["LlamaDifferentialForCausalLM"],
             split_heads=True, sublayer_norm=True, zero_init=False, mirror_weights=False)
    nw = dict(w)
    for l in range(cfg["num_hidden_layers"]):
        li = diff_ref.lambda_init_formula(l)
        nw[f"model.layers.{l}.self_attn.lambda_init"] = torch.tensor(li, dtype=torch.float64)
        nw[f"model.layers.{l}.self_attn.subln.weight"] = torch.full((2 * d,), 1 - li, dtype=torch.float64)
    return rel_err(diff_ref.forward(c, nw, ids, mask, pos, 1.0), diff_ref.forward(cfg, w, ids, mask, pos))


def identity_v1_is_diffllama(cfg, w, ids, mask, pos):
    """(h) on a diff-v1 case's weights (H = KV only: with GQA the two layouts read different kv heads)."""
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    if H != KV:
        return None
    order = [2 * i for i in range(H // 2)] + [2 * i + 1 for i in range(H // 2)]   # diffllama head -> v1 head
    c = dict(cfg, model_type="diffllama", architectures=["DiffLlamaForCausalLM"], lambda_std_dev=0.1)
    v1w = dict(w)
    dl = dict(w)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        v1w[p + "subln.weight"] = torch.ones(2 * d)
        del dl[p + "subln.weight"]
        for leaf in ("q_proj", "k_proj", "v_proj"):
            for kind in ("weight", "bias"):
                if p + f"{leaf}.{kind}" in w:
                    t = w[p + f"{leaf}.{kind}"]
                    dl[p + f"{leaf}.{kind}"] = torch.cat([t[h * d:(h + 1) * d] for h in order], dim=0)
    return rel_err(diff_ref.forward(cfg, v1w, ids, mask, pos, 1.0), diff_ref.forward(c, dl, ids, mask, pos))


def identity_v2_identity_init(cfg, w, ids, mask, pos):
    """(i) on a diff-v2 case's weights: the base = even query heads; the identity conversion of it."""
    H, d = cfg["num_attention_heads"], llama_ref.head_dim(cfg)
    base = dict(diff_ref.base_config(cfg))
    base.pop("base_model_type", None)
    base["architectures"] = ["X"]
    bw, iw = {}, {}
    for n, t in w.items():
        leaf = n.split(".self_attn.")[-1]
        if leaf in ("q_proj.weight", "q_proj.bias"):
            heads = [t[h * d:(h + 1) * d] for h in range(0, 2 * H, 2)]
            bw[n] = torch.cat(heads, dim=0)
            iw[n] = torch.cat([x for h in heads for x in (h, h)], dim=0)
        elif leaf == "lambda_proj.weight":
            iw[n] = torch.zeros_like(t)
        elif leaf == "o_proj.weight":
            bw[n] = t
            iw[n] = 2 * t.double()
        else:
            bw[n] = iw[n] = t
    got = diff_ref.forward(cfg, iw, ids, mask, pos, 1.0)
    return rel_err(got, llama_ref.forward(base, bw, ids, mask, pos))


def identity_hand_diffllama(failures):
    """(c) diffllama attention block, H = KV = 2, d = 2, D = 4, 3 tokens, all at position 0.

    Weights: q_proj = 0 with bias (0, 0 | sqrt(2), 0) so head 0's query is 0 (uniform attention) and
    head 1's scores are q.k/sqrt(2) = k_j[0] = x_j[2]; k_proj = v_proj = identity (k head 0 = x[0:2],
    k/v head 1 = x[2:4]); o_proj = identity. Then V_0 = [v_0 ; v_1] = x itself (width 2d = 4), and both
    heads use it. Tokens x_0 = (1,0,0,0), x_1 = (0,1,ln 2,0), x_2 = (0,0,ln 3,1): head 1's weights over
    the visible keys are proportional to e^{x_j[2]} = 1, 2, 3.
    lambda: lq1 = (1,0), lk1 = (ln 2,0) -> e^{ln 2} = 2; lq2 = lk2 = 0 -> e^0 = 1; lambda_init(0) = 0.2;
    lambda = 2 - 1 + 0.2 = 1.2. eps = 1e-12 (kept in the hand formula).
      t=0: A_0 = A_1 = x_0; out = -0.2 x_0 = (-0.2,0,0,0); rms = 0.1 -> (-2,0,0,0); * 0.8 -> (-1.6,0,0,0)
      t=1: A_0 = (x_0+x_1)/2 = (1/2, 1/2, ln2/2, 0); A_1 = (x_0 + 2 x_1)/3 = (1/3, 2/3, 2 ln2/3, 0);
           out = A_0 - 1.2 A_1 = (0.1, -0.3, -0.3 ln 2, 0)
      t=2: A_0 = (1/3, 1/3, (ln2+ln3)/3, 1/3); A_1 = (x_0 + 2 x_1 + 3 x_2)/6 = (1/6, 1/3, (2 ln2 + 3 ln3)/6, 1/2);
           out = A_0 - 1.2 A_1 = (0.133.., -0.066.., (ln2+ln3)/3 - 0.2 (2 ln2 + 3 ln3), -0.266..)
      each then (1 - 0.2) * out / sqrt(mean(out^2)).
    """
    L2, L3 = math.log(2), math.log(3)
    cfg = {"model_type": "diffllama", "hidden_size": 4, "num_attention_heads": 2, "num_key_value_heads": 2,
           "head_dim": 2, "rms_norm_eps": 1e-12, "attention_bias": True, "mlp_bias": False,
           "rope_theta": 10000.0, "num_hidden_layers": 1}
    p = "model.layers.0.self_attn."
    f64 = {"dtype": torch.float64}
    w = {p + "q_proj.weight": torch.zeros(4, 4, **f64),
         p + "q_proj.bias": torch.tensor([0, 0, math.sqrt(2), 0], **f64),
         p + "k_proj.weight": torch.eye(4, **f64), p + "k_proj.bias": torch.zeros(4, **f64),
         p + "v_proj.weight": torch.eye(4, **f64), p + "v_proj.bias": torch.zeros(4, **f64),
         p + "o_proj.weight": torch.eye(4, **f64), p + "o_proj.bias": torch.zeros(4, **f64),
         p + "lambda_q1": torch.tensor([1.0, 0], **f64), p + "lambda_k1": torch.tensor([L2, 0], **f64),
         p + "lambda_q2": torch.zeros(2, **f64), p + "lambda_k2": torch.zeros(2, **f64)}
    x = torch.tensor([[[1, 0, 0, 0], [0, 1, L2, 0], [0, 0, L3, 1]]], dtype=torch.float64)
    cos, sin = torch.ones(1, 3, 1, dtype=torch.float64), torch.zeros(1, 3, 1, dtype=torch.float64)
    vis = torch.tril(torch.ones(3, 3, dtype=torch.bool))[None]
    got = diff_ref.attention(cfg, w, p, 0, x, cos, sin, vis)[0]

    lam = 2 - 1 + 0.2
    outs = [
        [1 - lam, 0, 0, 0],
        [1 / 2 - lam / 3, 1 / 2 - lam * 2 / 3, L2 / 2 - lam * 2 * L2 / 3, 0],
        [1 / 3 - lam / 6, 1 / 3 - lam / 3, (L2 + L3) / 3 - lam * (2 * L2 + 3 * L3) / 6, 1 / 3 - lam / 2],
    ]
    want = []
    for o in outs:
        rms = math.sqrt(sum(v * v for v in o) / 4 + 1e-12)
        want.append([0.8 * v / rms for v in o])
    want = torch.tensor(want, dtype=torch.float64)
    assert abs(want[0, 0] + 1.6) < 1e-9
    e = float((got - want).abs().max())
    if e > 1e-12:
        failures.append(f"identity (c): diffllama hand check off by {e:.2e}")
    return e


def synthetic_cases():
    """(g) configs beyond the golden set, random weights, naive vs vectorised."""
    import make_golden as mg
    out = [
        ("diffllama H=2 KV=1 (G=2)", mg.diff_config("diffllama", H=2, KV=1, D=16), 1.0),
        ("diffllama H=6 KV=3 odd KV", mg.diff_config("diffllama", H=6, KV=3, D=24), 1.0),
        ("split H=8 KV=2 (G=4)", mg.diff_config("llama-differential", H=8, KV=2, D=32, split=True), 1.0),
        ("double H=6 KV=2 (G=3) mix 0.3", mg.diff_config("llama-differential", H=6, KV=2, D=24), 0.3),
        ("double H=4 KV=1 llama biases", mg.diff_config("llama-differential", H=4, KV=1, D=16,
                                                        attention_bias=True, mlp_bias=True), 1.0),
        ("double mistral sliding 3", mg.diff_config("llama-differential", "mistral", H=4, KV=2, D=16,
                                                    sliding_window=3), 1.0),
        ("double qwen3", mg.diff_config("llama-differential", "qwen3", H=4, KV=2, D=16, head_dim=8), 1.0),
        ("split yarn qwen2", mg.diff_config("llama-differential", "qwen2", H=4, KV=2, D=16, split=True,
                                            rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                          "original_max_position_embeddings": 4}), 1.0),
        ("diffllama qwen3 v5 rope", mg.diff_config("diffllama", "qwen3", H=4, KV=2, D=16, head_dim=8,
                                                   rope_parameters={"rope_type": "linear",
                                                                    "rope_theta": 10000.0, "factor": 2.0}), 1.0),
        ("diff-v1 H=8 KV=2 (G=4) mix 0.3", mg.diff_config("diff-v1", H=8, KV=2, D=32), 0.3),
        ("diff-v1 mistral sliding 3", mg.diff_config("diff-v1", "mistral", H=4, KV=2, D=16, sliding_window=3), 1.0),
        ("diff-v1 qwen2 biases", mg.diff_config("diff-v1", "qwen2", H=4, KV=4, D=16), 1.0),
        ("diff-v2 H=6 KV=2 (G=3) mix 0.3", mg.diff_config("diff-v2", H=6, KV=2, D=24), 0.3),
        ("diff-v2 mistral sliding 3, KV=1", mg.diff_config("diff-v2", "mistral", H=2, KV=1, D=16,
                                                           sliding_window=3), 1.0),
    ]
    return out


def check_identities(golden, manifest, loaded, failures):
    print("structural identities:" + IDENTITIES.rstrip())
    # (a), (b), (e), (f), (d) on each differential case
    for name, (cfg, w32, ids, mask, pos, mix, lg) in loaded.items():
        res = []
        e, exact = identity_zero_init(cfg, w32, ids, mask, pos)
        res.append(f"(a) {e:.0e}{' bit-exact' if exact else ''}")
        if e > 1e-12:
            failures.append(f"{name}: identity (a) zero-init == base: {e:.2e}")
        e = identity_mix0(cfg, w32, ids, mask, pos)
        if e is not None:
            res.append(f"(b) {e:.0e}")
            if e > 1e-12:
                failures.append(f"{name}: identity (b) mix 0 == base: {e:.2e}")
        if cfg["model_type"] == "llama-differential":
            e = identity_mirror_double(cfg, w32, ids, mask, pos, mix)
            res.append(f"(e) {e:.0e}")
            if e > 1e-12:
                failures.append(f"{name}: identity (e) mirror double: {e:.2e}")
            if cfg.get("split_heads"):
                e = identity_mirror_split(cfg, w32, ids, mask, pos, mix)
                res.append(f"(f) {e:.0e}")
                if e > 1e-12:
                    failures.append(f"{name}: identity (f) mirror split: {e:.2e}")
        elif cfg["model_type"] == "diffllama":
            e = identity_split_is_diffllama(cfg, w32, ids, mask, pos)
            if e is not None:
                res.append(f"(d) {e:.0e}")
                if e > 1e-12:
                    failures.append(f"{name}: identity (d) split == diffllama: {e:.2e}")
        elif cfg["model_type"] == "diff-v2":
            e = identity_v2_identity_init(cfg, w32, ids, mask, pos)
            res.append(f"(i) {e:.0e}")
            if e > 1e-12:
                failures.append(f"{name}: identity (i) diff-v2 identity conversion == base: {e:.2e}")
        else:
            e = identity_v1_is_diffllama(cfg, w32, ids, mask, pos)
            if e is not None:
                res.append(f"(h) {e:.0e}")
                if e > 1e-12:
                    failures.append(f"{name}: identity (h) diff-v1 == reordered diffllama: {e:.2e}")
        print(f"  {name:31s} " + ", ".join(res))
    # (a) on every base golden case, against its STORED logits
    worst = 0.0
    for entry in manifest["cases"]:
        if "layout" in entry:
            continue
        cdir = os.path.join(golden, entry["name"])
        cfg, inp = load_case(cdir)
        w = safetensors_io.load_file(os.path.join(cdir, "model.safetensors"))
        stored = safetensors_io.load_file(os.path.join(cdir, "logits.safetensors"))["logits"]
        real = torch.tensor(inp["attention_mask"]).bool()
        args = (inp["input_ids"], inp["attention_mask"], inp["position_ids"])
        c, nw = as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero",
                          lam_init=[0.0] * cfg["num_hidden_layers"])
        got = diff_ref.forward(c, nw, *args)
        e = rel_err(got, llama_ref.forward(cfg, w, *args))
        e_st = rel_err(got.to(torch.float32)[real], stored[real])
        worst = max(worst, e)
        if e > 1e-12 or e_st > 1e-6:
            failures.append(f"{entry['name']}: identity (a) on the base case: {e:.2e} / stored {e_st:.2e}")
    print(f"  (a) on all base golden cases: max rel err vs llama_ref {worst:.0e}, stored logits reproduced")
    # (c)
    e = identity_hand_diffllama(failures)
    print(f"  (c) diffllama by hand: max abs err {e:.0e}")
    # (g)
    worst = 0.0
    for tag, cfg, mix in synthetic_cases():
        torch.manual_seed(7)
        import make_golden as mg
        w = mg.init_diff_weights(cfg)
        ids = torch.randint(0, cfg["vocab_size"], (2, 7))
        mask = torch.ones(2, 7, dtype=torch.long)
        mask[1, :2] = 0
        pos = (mask.cumsum(-1) - 1).clamp(min=0) + 3
        ids, mask, pos = ids.tolist(), mask.tolist(), pos.tolist()
        e = rel_err(naive_diff_forward(cfg, w, ids, mask, pos, mix), diff_ref.forward(cfg, w, ids, mask, pos, mix))
        worst = max(worst, e)
        if e > 1e-10:
            failures.append(f"identity (g) {tag}: naive vs vectorised {e:.2e}")
    print(f"  (g) naive == vectorised on {len(synthetic_cases())} synthetic configs: max {worst:.0e}")


def check_all(golden, failures):
    with open(os.path.join(golden, "MANIFEST.json")) as f:
        manifest = json.load(f)
    loaded = {}
    for entry in manifest["cases"]:
        if "layout" not in entry:
            continue
        loaded[entry["name"]] = check_case(os.path.join(golden, entry["name"]), entry, failures)
    check_identities(golden, manifest, loaded, failures)
    return len(loaded)


def main():
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden")
    failures = []
    n = check_all(golden, failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"all {n} differential cases OK")


if __name__ == "__main__":
    main()
