"""Reference forward pass of the differential-attention layouts (spec/DIFF_ATTENTION.md sections 2-4, 7, 8).

Layouts (config.json `model_type`):
  "llama-differential"  the seed's format (section 3): mode "double" (split_heads false) or "split"
                        (split_heads true); stored lambda_init; optional learned subln; a mix factor.
  "diffllama"           Hugging Face transformers' DiffLlama (section 4): Llama shapes, recomputed
                        lambda_init, weightless RMSNorm over 2d times (1 - lambda_init).
  "diff-v1"             the paper's layout (section 7, read as Microsoft's V1 code does for GQA):
                        Llama shapes, diff-head i = query heads 2i and 2i+1, each reading the kv head
                        of its own index (h // G, as in the base model), value [v_2g ; v_2g+1] with
                        g = i // G, recomputed lambda_init, learned subln over 2d times (1 - lambda_init).
  "diff-v2"             Microsoft's DIFF V2 (section 8): q_proj with 2H heads, ordinary attention of
                        all 2H heads (query head j on kv head j // (2G)), lambda[t, i] =
                        sigmoid(x_t . lambda_proj[i]) per token and head on the block's normed input,
                        out_i = A_2i V - mix * lambda * A_2i+1 V; no norm, no lambda_init.
Any other model_type is handed to llama_ref unchanged (section 1).

The base family of a differential model is `base_model_type` (llama when absent): it decides biases
(Qwen2 q/k/v, Llama attention_bias/mlp_bias), Qwen3 q_norm/k_norm, Mistral's sliding window, exactly as
in llama_ref. Everything is computed in float64, lambda included (the spec computes lambda in float32;
the difference is ~1e-7 relative, far below the test tolerance).

forward(cfg, weights, input_ids, attention_mask, position_ids, mix=1.0) -> logits [B, T, V].
"""
import math

import torch

import llama_ref
from llama_ref import F64, apply_rope, linear, rms_norm

LAYOUTS = ("llama-differential", "diffllama", "diff-v1", "diff-v2")


# ---------------------------------------------------------------- config helpers

def layout(cfg):
    """The differential layout of a config, or None for a plain Llama-family model."""
    mt = cfg["model_type"]
    return mt if mt in LAYOUTS else None


def mode(cfg):
    """'double' or 'split' for llama-differential, None otherwise."""
    if layout(cfg) != "llama-differential":
        return None
    return "split" if cfg.get("split_heads", False) else "double"


def sublayer_norm(cfg):
    """Whether the model has the learned subln: llama-differential by its key (spec 3: default true),
    diff-v1 always (spec 7)."""
    if layout(cfg) == "diff-v1":
        return True
    return layout(cfg) == "llama-differential" and bool(cfg.get("sublayer_norm", True))


def base_config(cfg):
    """The config as llama_ref sees it: model_type replaced by the base family."""
    if layout(cfg) is None:
        return cfg
    return dict(cfg, model_type=cfg.get("base_model_type", "llama"))


def lambda_init_formula(l):
    """Spec 2: lambda_init(l) = 0.8 - 0.6 * exp(-0.3 * l), l 0-based."""
    return 0.8 - 0.6 * math.exp(-0.3 * l)


def check_heads(cfg):
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if H % KV:
        raise ValueError(f"num_attention_heads {H} not a multiple of num_key_value_heads {KV}")
    if mode(cfg) == "split" and (H % 2 or KV % 2):
        raise ValueError(f"split mode needs even H and KV (H={H}, KV={KV})")
    if layout(cfg) == "diffllama" and H % 2:
        raise ValueError(f"diffllama needs even H (H={H})")
    if layout(cfg) == "diff-v1" and (H % 2 or KV % 2):
        raise ValueError(f"diff-v1 needs even H and KV (H={H}, KV={KV})")


def tensor_shapes(cfg):
    """Every tensor the checkpoint holds: dict name -> shape, in a fixed order."""
    base = llama_ref.tensor_shapes(base_config(cfg))
    lay = layout(cfg)
    if lay is None:
        return base
    check_heads(cfg)
    d = llama_ref.head_dim(cfg)
    doubled = mode(cfg) == "double"
    shapes = {}
    for name, shape in base.items():
        attn = name.split("self_attn.")[-1] if ".self_attn." in name else None
        if doubled and attn in ("q_proj.weight", "k_proj.weight", "q_proj.bias", "k_proj.bias"):
            shape = [2 * shape[0]] + shape[1:]          # q1/k1 rows first, then q2/k2 rows
        if lay == "diff-v2" and attn in ("q_proj.weight", "q_proj.bias"):
            shape = [2 * shape[0]] + shape[1:]          # 2H query heads
        if lay == "diff-v2" and name.endswith(".post_attention_layernorm.weight"):
            p = name[: -len("post_attention_layernorm.weight")] + "self_attn."
            shapes[p + "lambda_proj.weight"] = [cfg["num_attention_heads"], cfg["hidden_size"]]
        elif name.endswith(".post_attention_layernorm.weight"):
            p = name[: -len("post_attention_layernorm.weight")] + "self_attn."
            if lay == "llama-differential":
                shapes[p + "lambda_init"] = []          # 0-dim: the stored value is used
            for n in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                shapes[p + n] = [d]
            if sublayer_norm(cfg):
                shapes[p + "subln.weight"] = [d if doubled else 2 * d]
        shapes[name] = list(shape)
    return shapes


# ---------------------------------------------------------------- attention

def layer_lambda(cfg, w, p, l):
    """Spec 2: lambda = exp(sum(lq1*lk1)) - exp(sum(lq2*lk2)) + lambda_init; and lambda_init.
    llama-differential reads lambda_init from the checkpoint, diffllama recomputes it from l."""
    if layout(cfg) == "llama-differential":
        lam_init = w[p + "lambda_init"].reshape(())
    else:
        lam_init = torch.tensor(lambda_init_formula(l), dtype=F64)
    lam = (torch.exp((w[p + "lambda_q1"] * w[p + "lambda_k1"]).sum())
           - torch.exp((w[p + "lambda_q2"] * w[p + "lambda_k2"]).sum()) + lam_init)
    return lam, lam_init


def softmax_masked(q, k, vis, d):
    """q [B, h, T, d], k [B, h, T, d] (already expanded to q's heads), vis [B, T, T].
    Probabilities [B, h, T, T]; a query that sees no key gets an all-zero row."""
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.masked_fill(~vis[:, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.where(vis[:, None].any(-1, keepdim=True), probs, torch.zeros_like(probs))


def _heads(t, n, d):
    """[B, T, n*d] -> [B, n, T, d]."""
    B, T, _ = t.shape
    return t.reshape(B, T, n, d).transpose(1, 2)


def _qk_prepare(cfg, w, p, t, n, which, cos, sin):
    """Split the projection output t [B, T, n*d] into n heads, apply Qwen3's q_norm/k_norm
    (which is 'q' or 'k') per head, then RoPE. Returns [B, n, T, d]."""
    d = llama_ref.head_dim(cfg)
    x = _heads(t, n, d)
    if base_config(cfg)["model_type"] == "qwen3":
        x = rms_norm(x, w[p + f"{which}_norm.weight"], cfg["rms_norm_eps"])
    return apply_rope(x, cos, sin)


def attention(cfg, w, p, l, x, cos, sin, vis, mix=1.0):
    """One differential attention block: x [B, T, D] -> [B, T, D] (o_proj applied)."""
    lay = layout(cfg)
    B, T, _ = x.shape
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    G = H // KV
    eps = cfg["rms_norm_eps"]
    q = linear(x, w[p + "q_proj.weight"], w.get(p + "q_proj.bias"))
    k = linear(x, w[p + "k_proj.weight"], w.get(p + "k_proj.bias"))
    v = _heads(linear(x, w[p + "v_proj.weight"], w.get(p + "v_proj.bias")), KV, d)   # [B, KV, T, d]
    vexp = v.repeat_interleave(G, dim=1)                     # [B, H, T, d]: head h = kv head h // G
    if lay == "diff-v2":
        qa = _qk_prepare(cfg, w, p, q, 2 * H, "q", cos, sin)                 # [B, 2H, T, d]
        ka = _qk_prepare(cfg, w, p, k, KV, "k", cos, sin)                    # [B, KV, T, d]
        a = softmax_masked(qa, ka.repeat_interleave(2 * G, dim=1), vis, d) @ v.repeat_interleave(2 * G, dim=1)
        lam_t = torch.sigmoid(linear(x, w[p + "lambda_proj.weight"]))       # [B, T, H]
        out = a[:, 0::2] - mix * lam_t.transpose(1, 2)[..., None] * a[:, 1::2]   # [B, H, T, d]
        out = out.transpose(1, 2).reshape(B, T, H * d)
        return linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))
    lam, lam_init = layer_lambda(cfg, w, p, l)

    if lay == "llama-differential" and mode(cfg) == "double":
        # q_proj rows [0, H*d) are q1, [H*d, 2*H*d) are q2; k likewise with KV heads.
        q1 = _qk_prepare(cfg, w, p, q[..., : H * d], H, "q", cos, sin)
        q2 = _qk_prepare(cfg, w, p, q[..., H * d:], H, "q", cos, sin)
        k1 = _qk_prepare(cfg, w, p, k[..., : KV * d], KV, "k", cos, sin)
        k2 = _qk_prepare(cfg, w, p, k[..., KV * d:], KV, "k", cos, sin)
        a1 = softmax_masked(q1, k1.repeat_interleave(G, dim=1), vis, d) @ vexp   # [B, H, T, d]
        a2 = softmax_masked(q2, k2.repeat_interleave(G, dim=1), vis, d) @ vexp
        out = a1 - (mix * lam) * a2
        if sublayer_norm(cfg):
            out = rms_norm(out, w[p + "subln.weight"], eps)
    elif lay == "llama-differential":                        # split
        qa = _qk_prepare(cfg, w, p, q, H, "q", cos, sin)     # [B, H, T, d]
        ka = _qk_prepare(cfg, w, p, k, KV, "k", cos, sin)    # [B, KV, T, d]
        h2, kv2 = H // 2, KV // 2
        q1, q2 = qa[:, :h2], qa[:, h2:]
        k1, k2 = ka[:, :kv2], ka[:, kv2:]
        # component query head i reads key head i // G of its own component (H/2 / (KV/2) = G)
        vcat = torch.cat([vexp[:, :h2], vexp[:, h2:]], dim=-1)                 # [B, H/2, T, 2d]
        a1 = softmax_masked(q1, k1.repeat_interleave(G, dim=1), vis, d) @ vcat
        a2 = softmax_masked(q2, k2.repeat_interleave(G, dim=1), vis, d) @ vcat
        out = a1 - (mix * lam) * a2                                            # [B, H/2, T, 2d]
        if sublayer_norm(cfg):
            out = rms_norm(out, w[p + "subln.weight"], eps)
    elif lay == "diffllama":
        qa = _qk_prepare(cfg, w, p, q, H, "q", cos, sin)
        ka = _qk_prepare(cfg, w, p, k, KV, "k", cos, sin)
        probs = softmax_masked(qa, ka.repeat_interleave(G, dim=1), vis, d)     # [B, H, T, T]
        h2 = H // 2
        vcat = torch.cat([vexp[:, :h2], vexp[:, h2:]], dim=-1)                 # [B, H/2, T, 2d]
        a = probs @ vcat.repeat(1, 2, 1, 1)              # query head h uses V_{h mod H/2}
        out = a[:, :h2] - lam * a[:, h2:]
        out = (1 - lam_init) * rms_norm(out, torch.ones((), dtype=F64), eps)
    elif lay == "diff-v1":
        qa = _qk_prepare(cfg, w, p, q, H, "q", cos, sin)
        ka = _qk_prepare(cfg, w, p, k, KV, "k", cos, sin)
        probs = softmax_masked(qa, ka.repeat_interleave(G, dim=1), vis, d)     # [B, H, T, T]
        vpair = torch.cat([v[:, 0::2], v[:, 1::2]], dim=-1)                   # [B, KV/2, T, 2d]
        vpair = vpair.repeat_interleave(G, dim=1)                              # [B, H/2, T, 2d]
        out = probs[:, 0::2] @ vpair - (mix * lam) * (probs[:, 1::2] @ vpair)
        out = (1 - lam_init) * rms_norm(out, w[p + "subln.weight"], eps)
    else:
        raise ValueError(f"not a differential layout: {cfg['model_type']}")

    out = out.transpose(1, 2).reshape(B, T, H * d)      # H diff-heads of d, or H/2 of 2d
    return linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))


# ---------------------------------------------------------------- model

def forward(cfg, weights, input_ids, attention_mask, position_ids, mix=1.0):
    """Logits [B, T, V] in float64. weights: dict name -> tensor (any float dtype).
    mix (llama-differential, diff-v1, diff-v2) multiplies lambda: lambda_eff = mix * lambda (spec 3)."""
    if layout(cfg) is None:
        return llama_ref.forward(cfg, weights, input_ids, attention_mask, position_ids)
    if layout(cfg) == "diffllama" and mix != 1.0:
        raise ValueError("diffllama has no mix factor")
    expected = tensor_shapes(cfg)
    if set(weights) != set(expected):
        raise ValueError(f"tensor set mismatch: {sorted(set(weights) ^ set(expected))}")
    w = {n: t.to(F64) for n, t in weights.items()}
    for n, shape in expected.items():
        assert list(w[n].shape) == shape, (n, list(w[n].shape), shape)
    input_ids = torch.as_tensor(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    position_ids = torch.as_tensor(position_ids)
    eps = cfg["rms_norm_eps"]
    bcfg = base_config(cfg)

    inv_freq, attn_factor = llama_ref.rope_frequencies(cfg, position_ids)
    angle = position_ids.to(F64)[..., None] * inv_freq
    cos, sin = torch.cos(angle) * attn_factor, torch.sin(angle) * attn_factor
    vis = llama_ref.visible_keys(bcfg, attention_mask)

    x = w["model.embed_tokens.weight"][input_ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = x + attention(cfg, w, p + "self_attn.", l,
                          rms_norm(x, w[p + "input_layernorm.weight"], eps), cos, sin, vis, mix)
        x = h + llama_ref.mlp(w, p + "mlp.", rms_norm(h, w[p + "post_attention_layernorm.weight"], eps))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def lambdas(cfg, weights):
    """Per-layer (lambda, lambda_init) as Python floats (for reports and checks); [] for diff-v2,
    whose lambda is per token."""
    if layout(cfg) == "diff-v2":
        return []
    w = {n: t.to(F64) for n, t in weights.items()}
    out = []
    for l in range(cfg["num_hidden_layers"]):
        lam, li = layer_lambda(cfg, w, f"model.layers.{l}.self_attn.", l)
        out.append((float(lam), float(li)))
    return out
