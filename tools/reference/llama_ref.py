"""Reference forward pass of the Hugging Face Llama family (spec/DIFF_ATTENTION.md section 1).

model_type llama, mistral, qwen2, qwen3. Everything is computed in float64. The model is a pure
function: forward(config, weights, input_ids, attention_mask, position_ids) -> logits [B, T, V].
"""
import math

import torch

F64 = torch.float64


# ---------------------------------------------------------------- config helpers

def head_dim(cfg):
    if cfg.get("head_dim") is not None:
        return int(cfg["head_dim"])
    return cfg["hidden_size"] // cfg["num_attention_heads"]


def biases(cfg):
    """(attention projections with a bias, mlp projections with a bias)."""
    mt = cfg["model_type"]
    if mt == "qwen2":
        return ("q", "k", "v"), ()
    if mt in ("llama", "qwen3", "mistral"):
        attn = ("q", "k", "v", "o") if cfg.get("attention_bias", False) else ()
        mlp = ("gate", "up", "down") if (mt == "llama" and cfg.get("mlp_bias", False)) else ()
        return attn, mlp
    raise ValueError(f"unknown model_type {mt}")


def tensor_shapes(cfg):
    """Every tensor the checkpoint holds: dict name -> shape, in a fixed order."""
    D, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    attn_b, mlp_b = biases(cfg)
    shapes = {"model.embed_tokens.weight": [V, D]}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = [D]
        out_in = {"q": (H * d, D), "k": (KV * d, D), "v": (KV * d, D), "o": (D, H * d)}
        for n in ("q", "k", "v", "o"):
            shapes[p + f"self_attn.{n}_proj.weight"] = list(out_in[n])
            if n in attn_b:
                shapes[p + f"self_attn.{n}_proj.bias"] = [out_in[n][0]]
        if cfg["model_type"] == "qwen3":
            shapes[p + "self_attn.q_norm.weight"] = [d]
            shapes[p + "self_attn.k_norm.weight"] = [d]
        shapes[p + "post_attention_layernorm.weight"] = [D]
        out_in = {"gate": (I, D), "up": (I, D), "down": (D, I)}
        for n in ("gate", "up", "down"):
            shapes[p + f"mlp.{n}_proj.weight"] = list(out_in[n])
            if n in mlp_b:
                shapes[p + f"mlp.{n}_proj.bias"] = [out_in[n][0]]
    shapes["model.norm.weight"] = [D]
    if not cfg.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = [V, D]
    return shapes


def rope_settings(cfg):
    """(theta, rope_type, scaling parameters dict) from any of the three config spellings:
    transformers v5 `rope_parameters`, `rope_scaling` with "rope_type", legacy "type"."""
    if cfg.get("rope_parameters") is not None:
        p = cfg["rope_parameters"]
        return float(p["rope_theta"]), p.get("rope_type", "default"), p
    theta = float(cfg.get("rope_theta", 10000.0))
    rs = cfg.get("rope_scaling")
    if rs is None:
        return theta, "default", {}
    return theta, rs.get("rope_type", rs.get("type", "default")), rs


# ---------------------------------------------------------------- RoPE frequencies

def _yarn_mscale(s, m=1.0):
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def _inv_freq(theta, d):
    # inv_freq[i] = theta^(-2i/d), i < d/2, in float64.
    return torch.tensor([theta ** (-2.0 * i / d) for i in range(d // 2)], dtype=F64)


def rope_frequencies(cfg, position_ids):
    """inv_freq [d/2] (float64) and the attention_factor that multiplies cos and sin."""
    d = head_dim(cfg)
    theta, kind, p = rope_settings(cfg)
    inv = _inv_freq(theta, d)
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / p["factor"], 1.0
    if kind == "dynamic":
        f, L = p["factor"], cfg["max_position_embeddings"]
        seq_len = int(position_ids.max()) + 1
        if seq_len > L:
            theta2 = theta * ((f * seq_len / L) - (f - 1)) ** (d / (d - 2))
            inv = _inv_freq(theta2, d)
        return inv, 1.0
    if kind == "llama3":
        f, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        L0 = p["original_max_position_embeddings"]
        low_wl, high_wl = L0 / lo, L0 / hi
        out = torch.empty_like(inv)
        for i in range(inv.numel()):
            wl = 2 * math.pi / float(inv[i])
            if wl > low_wl:
                out[i] = inv[i] / f
            elif wl < high_wl:
                out[i] = inv[i]
            else:
                s = (L0 / wl - lo) / (hi - lo)
                out[i] = (1 - s) * inv[i] / f + s * inv[i]
        return out, 1.0
    if kind == "yarn":
        f = p["factor"]
        L0 = p.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        beta_fast = p.get("beta_fast") or 32
        beta_slow = p.get("beta_slow") or 1
        af = p.get("attention_factor")
        if af is None:
            ms, msa = p.get("mscale"), p.get("mscale_all_dim")
            if ms and msa:
                af = _yarn_mscale(f, ms) / _yarn_mscale(f, msa)
            else:
                af = _yarn_mscale(f)

        def corr_dim(r):
            return d * math.log(L0 / (r * 2 * math.pi)) / (2 * math.log(theta))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if p.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d // 2, dtype=F64) - low) / (high - low)).clamp(0, 1)
        extrap = 1 - ramp
        return (inv / f) * (1 - extrap) + inv * extrap, float(af)
    raise ValueError(f"unknown rope type {kind!r}")


def apply_rope(x, cos, sin):
    """x [B, heads, T, d]; cos, sin [B, T, d/2]. Rotate-half pairs (i, i + d/2)."""
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    c, s = cos[:, None], sin[:, None]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


# ---------------------------------------------------------------- layers

def rms_norm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def linear(x, W, b=None):
    y = x @ W.T
    return y if b is None else y + b


def visible_keys(cfg, attention_mask):
    """[B, T, T] bool: key j visible to query i (causal, padding, optional sliding window)."""
    B, T = attention_mask.shape
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    vis = j <= i
    sw = cfg.get("sliding_window")
    if cfg["model_type"] == "mistral" and isinstance(sw, int):
        vis = vis & (i - j < sw)
    return vis[None] & (attention_mask[:, None, :] != 0)


def attention(cfg, w, p, x, cos, sin, vis):
    """x [B, T, D] -> [B, T, D]. A query with no visible key gets a zero attention output."""
    B, T, _ = x.shape
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    q = linear(x, w[p + "q_proj.weight"], w.get(p + "q_proj.bias")).view(B, T, H, d)
    k = linear(x, w[p + "k_proj.weight"], w.get(p + "k_proj.bias")).view(B, T, KV, d)
    v = linear(x, w[p + "v_proj.weight"], w.get(p + "v_proj.bias")).view(B, T, KV, d)
    if cfg["model_type"] == "qwen3":
        eps = cfg["rms_norm_eps"]
        q = rms_norm(q, w[p + "q_norm.weight"], eps)
        k = rms_norm(k, w[p + "k_norm.weight"], eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # [B, heads, T, d]
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    G = H // KV
    k, v = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)  # head h -> kv head h // G
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)                   # [B, H, T, T]
    scores = scores.masked_fill(~vis[:, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    probs = torch.where(vis[:, None].any(-1, keepdim=True), probs, torch.zeros_like(probs))
    out = (probs @ v).transpose(1, 2).reshape(B, T, H * d)
    return linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))


def mlp(w, p, x):
    g = linear(x, w[p + "gate_proj.weight"], w.get(p + "gate_proj.bias"))
    u = linear(x, w[p + "up_proj.weight"], w.get(p + "up_proj.bias"))
    return linear(torch.nn.functional.silu(g) * u, w[p + "down_proj.weight"], w.get(p + "down_proj.bias"))


def forward(cfg, weights, input_ids, attention_mask, position_ids):
    """Logits [B, T, V] in float64. weights: dict name -> tensor (any float dtype)."""
    expected = tensor_shapes(cfg)
    if set(weights) != set(expected):
        raise ValueError(f"tensor set mismatch: {sorted(set(weights) ^ set(expected))}")
    w = {n: t.to(F64) for n, t in weights.items()}
    for n, shape in expected.items():
        assert list(w[n].shape) == shape, n
    input_ids = torch.as_tensor(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    position_ids = torch.as_tensor(position_ids)
    eps = cfg["rms_norm_eps"]

    inv_freq, attn_factor = rope_frequencies(cfg, position_ids)
    angle = position_ids.to(F64)[..., None] * inv_freq            # [B, T, d/2]
    cos, sin = torch.cos(angle) * attn_factor, torch.sin(angle) * attn_factor
    vis = visible_keys(cfg, attention_mask)

    x = w["model.embed_tokens.weight"][input_ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = x + attention(cfg, w, p + "self_attn.", rms_norm(x, w[p + "input_layernorm.weight"], eps),
                          cos, sin, vis)
        x = h + mlp(w, p + "mlp.", rms_norm(h, w[p + "post_attention_layernorm.weight"], eps))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T
