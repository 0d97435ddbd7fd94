"""Builds every golden case and writes it under tests/golden/ (see README.md in this folder).

Usage (from the repository root):  /usr/bin/python3 tools/reference/make_golden.py [out_dir]
Deterministic: each case seeds torch itself, so regenerating gives byte-identical files.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diff_ref  # noqa: E402
import llama_ref  # noqa: E402
import safetensors_io  # noqa: E402
import lora_ref  # noqa: E402
import train_ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
        "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# Pad tokens (left padding) carry this id; their position id is 0 (cumsum(mask) - 1, clamped at 0).
PAD_ID = 0


def config(model_type, *, D=48, I=64, H=4, KV=2, V=96, layers=2, max_pos=256, eps=1e-5,
           theta=10000.0, tied=False, **extra):
    cfg = {
        "architectures": [ARCH[model_type]],
        "model_type": model_type,
        "hidden_size": D,
        "intermediate_size": I,
        "num_hidden_layers": layers,
        "num_attention_heads": H,
        "num_key_value_heads": KV,
        "vocab_size": V,
        "max_position_embeddings": max_pos,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "tie_word_embeddings": tied,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    if model_type == "llama":
        cfg.update({"attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
                    "pretraining_tp": 1, "rope_scaling": None})
    cfg.update(extra)
    if "rope_parameters" in cfg:          # transformers v5 spelling: no top-level rope_theta
        del cfg["rope_theta"]
        cfg.pop("rope_scaling", None)
    return cfg


CASES = [
    dict(name="llama_mha", seed=101, T=8,
         cfg=config("llama", H=4, KV=4),
         covers="Llama, multi-head attention (H=KV=4), untied lm_head, no biases, default RoPE."),
    dict(name="llama_gqa_tied_padded", seed=102, T=9, B=2, pads=[0, 3],
         cfg=config("llama", H=4, KV=2, tied=True),
         covers="Llama, GQA (H=4, KV=2, G=2), tie_word_embeddings (no lm_head.weight), batch of 2: "
                "row 0 unpadded, row 1 left-padded with 3 pads (attention_mask 0, input id 0, "
                "position id 0), position_ids = max(cumsum(mask) - 1, 0)."),
    dict(name="llama_bias", seed=103, T=8,
         cfg=config("llama", attention_bias=True, mlp_bias=True),
         covers="Llama, attention_bias (q/k/v/o biases) and mlp_bias (gate/up/down biases)."),
    dict(name="llama_rope_llama3", seed=104, T=10, pos_offset=40,
         cfg=config("llama", theta=500000.0, max_pos=256,
                    rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
         covers="RoPE llama3 scaling (rope_type key), factor 4, original_max_position_embeddings 64; "
                "with d=12 and theta 5e5 the six frequencies hit all three branches (1 unchanged, "
                "1 smoothed, 4 divided); explicit position_ids 40..49."),
    dict(name="llama_rope_yarn", seed=105, T=10, pos_offset=30,
         cfg=config("llama", max_pos=64,
                    rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                  "original_max_position_embeddings": 16}),
         covers="RoPE yarn (rope_type key), factor 4, original_max_position_embeddings 16, "
                "max_position_embeddings 64, defaults for beta_fast/beta_slow/truncate, "
                "attention_factor = 0.1*ln(4)+1 on cos/sin; position_ids 30..39."),
    dict(name="llama_rope_linear_legacy", seed=106, T=8,
         cfg=config("llama", tied=True, rope_scaling={"type": "linear", "factor": 2.0}),
         covers="RoPE linear scaling written with the legacy `type` key, factor 2; tied embeddings."),
    dict(name="llama_rope_dynamic", seed=107, T=12,
         cfg=config("llama", max_pos=8, tied=True, rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
         covers="RoPE dynamic NTK, factor 2, max_position_embeddings 8 < sequence length 12, so "
                "theta is rescaled with seq_len = max(position_ids) + 1 = 12; tied embeddings."),
    dict(name="llama_head_dim", seed=108, T=8,
         cfg=config("llama", D=48, H=4, KV=2, head_dim=16),
         covers="Llama with explicit head_dim 16 != hidden_size / heads (12): q_proj [64,48], "
                "o_proj [48,64]; GQA H=4 KV=2."),
    dict(name="mistral_sliding", seed=109, T=10,
         cfg=config("mistral", H=4, KV=2, theta=1000000.0, sliding_window=4),
         covers="Mistral, GQA H=4 KV=2, sliding_window 4 (key j hidden from query i when "
                "i - j >= 4) over 10 tokens."),
    dict(name="qwen2_bias", seed=110, T=8,
         cfg=config("qwen2", H=4, KV=2, theta=1000000.0, eps=1e-6, use_sliding_window=False,
                    sliding_window=4096, max_window_layers=2, attention_dropout=0.0),
         covers="Qwen2, GQA H=4 KV=2, biases on q/k/v only (always present, no o bias), eps 1e-6."),
    dict(name="qwen3_qknorm", seed=111, T=8,
         cfg=config("qwen3", D=48, H=4, KV=2, head_dim=16, eps=1e-6, tied=True,
                    attention_bias=False, use_sliding_window=False, sliding_window=None,
                    max_window_layers=2, attention_dropout=0.0,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
         covers="Qwen3, GQA H=4 KV=2, head_dim 16 with hidden 48, per-head q_norm/k_norm before "
                "RoPE, no biases, tied embeddings, transformers-v5 `rope_parameters` spelling "
                "(rope_type default, no top-level rope_theta)."),
    dict(name="llama_rope_yarn_v5", seed=112, T=10, pos_offset=30,
         cfg=config("llama", max_pos=64, tied=True,
                    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                     "original_max_position_embeddings": 16, "beta_fast": 8.0,
                                     "beta_slow": 0.25, "mscale": 1.0, "mscale_all_dim": 0.5,
                                     "truncate": False}),
         covers="RoPE yarn in the transformers-v5 `rope_parameters` spelling with non-default "
                "beta_fast 8, beta_slow 0.25, truncate false (fractional ramp), and "
                "attention_factor from mscale 1 / mscale_all_dim 0.5; position_ids 30..39; tied embeddings."),
]


def diff_config(lay, family="llama", *, split=False, subln=True, **kw):
    """A differential config (spec 3/4): the base family's config plus the layout's keys;
    `base_model_type` records a base family other than llama."""
    cfg = config(family, **kw)
    if lay == "llama-differential":
        cfg.update({"model_type": lay, "architectures": ["LlamaDifferentialForCausalLM"],
                    "split_heads": split, "sublayer_norm": subln, "zero_init": False,
                    "mirror_weights": False})
    elif lay == "diffllama":
        cfg.update({"model_type": lay, "architectures": ["DiffLlamaForCausalLM"], "lambda_std_dev": 0.1})
    elif lay == "diff-v1":
        cfg.update({"model_type": lay, "architectures": ["DiffV1ForCausalLM"]})
    elif lay == "diff-v2":
        cfg.update({"model_type": lay, "architectures": ["DiffV2ForCausalLM"]})
    else:
        raise ValueError(lay)
    if family != "llama":
        cfg["base_model_type"] = family
    return cfg


# Differential cases (spec 2-4). Every llama-differential case stores lambda_init(l) from the formula
# unless it lists `lambda_init`; `mix` goes to inputs.json (llama-differential only).
DIFF_CASES = [
    dict(name="diff_double_subln_gqa", seed=201, T=8, mix=1.0,
         cfg=diff_config("llama-differential", H=4, KV=2),
         covers="llama-differential, mode double (q_proj [2*H*d, D], k_proj [2*KV*d, D]), GQA H=4 KV=2, "
                "learned subln over d, mix 1, stored lambda_init = formula, untied."),
    dict(name="diff_double_nosubln_mha", seed=502, T=9, B=2, pads=[0, 3], mix=1.0,
         cfg=diff_config("llama-differential", H=4, KV=4, subln=False),
         covers="llama-differential double, MHA H=KV=4, no subln (no subln.weight tensors), batch of 2 "
                "with row 1 left-padded by 3 (same conventions as llama_gqa_tied_padded)."),
    dict(name="diff_double_mix_half", seed=303, T=8, mix=0.5,
         cfg=diff_config("llama-differential", H=4, KV=2),
         covers="llama-differential double with subln and the warm-up factor mix 0.5 "
                "(lambda_eff = 0.5 * lambda; inputs.json `mix`)."),
    dict(name="diff_double_lambda_init_stored", seed=204, T=8, mix=1.0, lambda_init=[0.05, 0.9],
         cfg=diff_config("llama-differential", H=4, KV=2, subln=False),
         covers="llama-differential double, no subln, stored lambda_init 0.05 and 0.9 (NOT the formula's "
                "0.2 and 0.3555): proves the 0-dim lambda_init tensor is read, not recomputed."),
    dict(name="diff_split_subln_gqa", seed=205, T=8, mix=1.0,
         cfg=diff_config("llama-differential", H=4, KV=2, split=True),
         covers="llama-differential, mode split (Llama q/k shapes; q1 = heads 0..H/2-1, q2 = the rest; "
                "k1/k2 likewise), GQA H=4 KV=2, value [v_i ; v_{i+H/2}] of width 2d, subln.weight [2d]."),
    dict(name="diff_split_nosubln_mha", seed=306, T=8, mix=1.0,
         cfg=diff_config("llama-differential", H=4, KV=4, split=True, subln=False, tied=True),
         covers="llama-differential split, MHA H=KV=4, no subln, tie_word_embeddings (no lm_head.weight)."),
    dict(name="diff_qwen2_double", seed=307, T=8, mix=1.0,
         cfg=diff_config("llama-differential", "qwen2", H=4, KV=2, theta=1000000.0, eps=1e-6,
                         use_sliding_window=False, sliding_window=4096, max_window_layers=2,
                         attention_dropout=0.0),
         covers="llama-differential double on base_model_type qwen2: q/k/v biases, q_proj.bias [2*H*d] and "
                "k_proj.bias [2*KV*d] doubled like their weights (q2/k2 biases = last halves), v bias "
                "unchanged, no o bias; subln on; eps 1e-6."),
    dict(name="diff_qwen3_split", seed=508, T=8, mix=1.0,
         cfg=diff_config("llama-differential", "qwen3", split=True, H=4, KV=2, head_dim=16, eps=1e-6,
                         theta=1000000.0, attention_bias=False, use_sliding_window=False,
                         sliding_window=None, max_window_layers=2, attention_dropout=0.0),
         covers="llama-differential split on base_model_type qwen3: q_norm/k_norm (weights [d]) per head on "
                "both components before RoPE, head_dim 16 with hidden 48, GQA H=4 KV=2, subln.weight [2d] = [32]."),
    dict(name="diffllama_gqa", seed=1309, T=8,
         cfg=diff_config("diffllama", H=4, KV=2),
         covers="diffllama (transformers' DiffLlama): Llama shapes, lambda_init recomputed from l (not stored), "
                "GQA H=4 KV=2, V_i = [v_i ; v_{i+H/2}], query head h uses V_{h mod H/2}, "
                "(1 - lambda_init) * weightless RMSNorm over 2d."),
    dict(name="diffllama_mha_padded", seed=210, T=9, B=2, pads=[0, 3],
         cfg=diff_config("diffllama", H=4, KV=4),
         covers="diffllama, MHA H=KV=4, batch of 2 with row 1 left-padded by 3."),
    dict(name="diffllama_rope_llama3", seed=411, T=10, pos_offset=40,
         cfg=diff_config("diffllama", theta=500000.0, max_pos=256,
                         rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
         covers="diffllama with RoPE llama3 scaling (as llama_rope_llama3: factor 4, L0 64, theta 5e5, "
                "all three frequency branches), position_ids 40..49."),
    # With H=4 KV=2 both diff-heads of split/diffllama read the same value [v_0 ; v_1], so a wrong
    # diff-head -> value mapping that is the identity for MHA (e.g. V_{i // G}) would go unseen. H=8 KV=4
    # gives distinct values [v_0 ; v_2], [v_0 ; v_2], [v_1 ; v_3], [v_1 ; v_3]; smaller D/I keep it small.
    dict(name="diff_split_gqa_h8", seed=1612, T=8, mix=1.0,
         cfg=diff_config("llama-differential", split=True, D=32, I=32, H=8, KV=4, tied=True),
         covers="llama-differential split, GQA H=8 KV=4 (d=4, hidden 32, intermediate 32, tied), subln [2d]: "
                "component-2 keys are kv heads 2..3, and the diff-heads' values differ "
                "([v_0;v_2] for i=0,1, [v_1;v_3] for i=2,3)."),
    dict(name="diffllama_gqa_h8", seed=4813, T=8,
         cfg=diff_config("diffllama", D=32, I=32, H=8, KV=4, tied=True),
         covers="diffllama, GQA H=8 KV=4 (d=4, hidden 32, intermediate 32, tied): distinct values per "
                "diff-head (V_i = [v_{i//2} ; v_{2+i//2}]), query head h uses V_{h mod 4}."),
    # diff-v1 (spec 7): adjacent query heads 2i, 2i+1, each on the kv head of its own index (h // G).
    dict(name="diff_v1_mha", seed=7102, T=8, mix=1.0,
         cfg=diff_config("diff-v1", H=4, KV=4),
         covers="diff-v1 (the paper's layout), MHA H=KV=4: diff-head i = query heads 2i, 2i+1 on kv heads 2i, "
                "2i+1, value [v_2i ; v_2i+1] of width 2d, learned subln [2d], (1 - lambda_init(l)), untied."),
    dict(name="diff_v1_gqa_tied_padded", seed=7202, T=9, B=2, pads=[0, 3], mix=0.5,
         cfg=diff_config("diff-v1", H=4, KV=2, tied=True),
         covers="diff-v1, GQA H=4 KV=2 (G=2: query heads 0,1 read kv head 0 and 2,3 kv head 1, as in the base; "
                "both diff-heads use the value [v_0 ; v_1]), tied, B=2 with row 1 left-padded by 3, warm-up "
                "mix 0.5."),
    dict(name="diff_v1_gqa_h8", seed=7307, T=8, mix=1.0,
         cfg=diff_config("diff-v1", "qwen3", D=32, I=32, H=8, KV=4, head_dim=8, eps=1e-6, theta=1000000.0,
                         attention_bias=False, use_sliding_window=False, sliding_window=None,
                         max_window_layers=2, attention_dropout=0.0),
         covers="diff-v1 on base_model_type qwen3 (q_norm/k_norm before RoPE), GQA H=8 KV=4, head_dim 8 "
                "(hidden 32): values [v_0 ; v_1] for diff-heads 0,1 and [v_2 ; v_3] for 2,3."),
    # diff-v2 (spec 8): 2H query heads in ordinary attention, lambda per token and head.
    dict(name="diff_v2_qwen2_mha", seed=8101, T=8, mix=1.0,
         cfg=diff_config("diff-v2", "qwen2", H=4, KV=4, theta=1000000.0, eps=1e-6, use_sliding_window=False,
                         sliding_window=4096, max_window_layers=2, attention_dropout=0.0),
         covers="diff-v2 (Microsoft's DIFF V2) on base_model_type qwen2, MHA H=KV=4: q_proj [2*H*d, D] with its "
                "bias [2*H*d], query heads 2i and 2i+1 on kv head i, lambda_proj [H, D], "
                "lambda = sigmoid(x . lambda_proj[i]) per token, out_i = A_2i V - lambda A_2i+1 V, untied."),
    dict(name="diff_v2_gqa_tied_padded", seed=8202, T=9, B=2, pads=[0, 3], mix=0.5,
         cfg=diff_config("diff-v2", H=4, KV=2, tied=True),
         covers="diff-v2, GQA H=4 KV=2 (query heads 0..3 on kv head 0, 4..7 on kv head 1), tied, B=2 with row 1 "
                "left-padded by 3, warm-up mix 0.5 (lambda_eff = 0.5 * lambda)."),
    dict(name="diff_v2_qwen3_g4", seed=8303, T=8, mix=1.0,
         cfg=diff_config("diff-v2", "qwen3", D=32, I=32, H=8, KV=2, head_dim=8, eps=1e-6, theta=1000000.0,
                         attention_bias=False, use_sliding_window=False, sliding_window=None,
                         max_window_layers=2, attention_dropout=0.0),
         covers="diff-v2 on base_model_type qwen3 (q_norm/k_norm on all 2H query heads and the kv heads before "
                "RoPE), GQA H=8 KV=2 (16 query heads, 8 per kv head), head_dim 8, hidden 32."),
]

# Lambda vectors are drawn N(0, LAMBDA_STD) (the init is N(0, 0.1)) so that lambda varies meaningfully.
LAMBDA_STD = 0.3


def init_weights(cfg):
    """Random weights that keep activations O(1) and make every tensor matter."""
    w = {}
    for name, shape in llama_ref.tensor_shapes(cfg).items():
        if name == "model.embed_tokens.weight":
            t = torch.randn(shape)
        elif name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape)
        else:                                     # linear weight [out, in]
            t = torch.randn(shape) * (1.5 / math.sqrt(shape[1]))
        w[name] = t.to(torch.float32)
    return w


def init_diff_weights(cfg, lambda_init=None):
    """Weights of a differential case: init_weights' rules for the base tensors, lambda vectors
    N(0, LAMBDA_STD), subln weights 1 + 0.1 N(0,1), lambda_init stored = the formula or the given list."""
    w = {}
    for name, shape in diff_ref.tensor_shapes(cfg).items():
        leaf = name.split(".self_attn.")[-1]
        if leaf == "lambda_init":
            l = int(name.split(".")[2])
            v = lambda_init[l] if lambda_init is not None else diff_ref.lambda_init_formula(l)
            t = torch.tensor(v, dtype=torch.float64)
        elif leaf in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
            t = LAMBDA_STD * torch.randn(shape)
        elif leaf == "subln.weight" or name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape)
        elif name == "model.embed_tokens.weight":
            t = torch.randn(shape)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape)
        else:                                     # linear weight [out, in]
            t = torch.randn(shape) * (1.5 / math.sqrt(shape[1]))
        w[name] = t.to(torch.float32)
    return w


def make_inputs(case, V):
    B, T = case.get("B", 1), case["T"]
    ids = torch.randint(0, V, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    for b, n in enumerate(case.get("pads", [0] * B)):
        mask[b, :n] = 0
        ids[b, :n] = PAD_ID
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + case.get("pos_offset", 0)
    return ids, mask, pos


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_inputs(path, ids, mask, pos, mix=None):
    lines = [f'  "{k}": {json.dumps(v.tolist())}' for k, v in
             (("input_ids", ids), ("attention_mask", mask), ("position_ids", pos))]
    if mix is not None:
        lines.append(f'  "mix": {json.dumps(float(mix))}')
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def build_case(case, out_root):
    torch.manual_seed(case["seed"])
    cfg = case["cfg"]
    lay = diff_ref.layout(cfg)
    mix = case.get("mix")
    if lay is None:
        w32 = init_weights(cfg)
    else:
        w32 = init_diff_weights(cfg, case.get("lambda_init"))
    ids, mask, pos = make_inputs(case, cfg["vocab_size"])
    wbf = {n: t.to(torch.bfloat16).to(torch.float32) for n, t in w32.items()}
    if lay is None:
        logits = llama_ref.forward(cfg, w32, ids, mask, pos).to(torch.float32)
        logits_bf16 = llama_ref.forward(cfg, wbf, ids, mask, pos).to(torch.float32)
    else:
        lams = diff_ref.lambdas(cfg, w32)
        # Seeds are chosen so that every layer's lambda is large enough for the second softmax map
        # to matter and small enough to keep activations tame (see README).
        assert all(0.3 <= abs(lam) < 1.5 for lam, _ in lams), (case["name"], lams)
        logits = diff_ref.forward(cfg, w32, ids, mask, pos, mix=mix if mix is not None else 1.0)
        logits_bf16 = diff_ref.forward(cfg, wbf, ids, mask, pos, mix=mix if mix is not None else 1.0)
        logits, logits_bf16 = logits.to(torch.float32), logits_bf16.to(torch.float32)

    d = os.path.join(out_root, case["name"])
    os.makedirs(os.path.join(d, "bf16"), exist_ok=True)
    write_json(os.path.join(d, "config.json"), cfg)
    safetensors_io.save_file(w32, os.path.join(d, "model.safetensors"), "F32")
    write_json(os.path.join(d, "bf16", "config.json"), dict(cfg, torch_dtype="bfloat16"))
    safetensors_io.save_file(w32, os.path.join(d, "bf16", "model.safetensors"), "BF16")
    write_inputs(os.path.join(d, "inputs.json"), ids, mask, pos, mix)
    safetensors_io.save_file({"logits": logits, "logits_bf16": logits_bf16},
                             os.path.join(d, "logits.safetensors"), "F32")
    entry = {"name": case["name"], "model_type": cfg["model_type"], "covers": case["covers"],
             "batch": ids.shape[0], "seq_len": ids.shape[1], "vocab_size": cfg["vocab_size"]}
    entry["train"] = []
    if case["name"] in train_ref.TRAIN_CASES:
        # Training goldens (loss, gradients, 10 AdamW steps) from the same F32 weights and inputs.
        problem = train_ref.Problem(cfg, w32, ids, mask, pos, mix)
        train_ref.write_train_files(problem, d)
        entry["train"] = list(train_ref.TRAIN_FILES)
    if case["name"] in lora_ref.LORA_CASES:
        # A LoRA adapter in PEFT's format and the logits with it (its own generator: the files above
        # do not change).
        entry["lora"] = lora_ref.write_lora_files(cfg, w32, ids, mask, pos, mix, d, case["name"])
        entry["lora"] += lora_ref.write_lora_grads(cfg, w32, ids, mask, pos, mix, d, case["name"])
    if lay is not None:
        entry.update({
            "layout": lay,
            "base_model_type": cfg.get("base_model_type", "llama"),
            "mode": diff_ref.mode(cfg),                                   # null for diffllama
            "sublayer_norm": diff_ref.sublayer_norm(cfg) if lay != "diffllama" else None,
            "mix": mix,                                                   # null for diffllama
            "lambda": [round(lam, 6) for lam, _ in lams],                 # per layer, F32 weights
            "lambda_init": [round(li, 6) for _, li in lams],
        })
    return entry


MANIFEST_NOTES = {
    "generator": "tools/reference/make_golden.py (do not edit these files by hand)",
    "files": {
        "config.json": "Hugging Face config, torch_dtype float32",
        "model.safetensors": "all weights, F32",
        "bf16/config.json": "same config, torch_dtype bfloat16",
        "bf16/model.safetensors": "the same weights rounded to BF16 (nearest, ties to even)",
        "inputs.json": "input_ids, attention_mask, position_ids: int lists [B, T]",
        "logits.safetensors": "logits F32 [B,T,V] from the F32 weights; logits_bf16 F32 [B,T,V] from "
                              "the BF16 weights upcast; both computed in float64",
        "train.json": "training cases only (entries whose `train` list is not empty): labels [B,T] "
                      "(-100 = ignored), num_targets, hyperparameters, no_decay and trainable tensor names, "
                      "losses / grad_norms / lrs of the 10 AdamW steps (float64 values), loss_after "
                      "(loss at the final parameters)",
        "grads.safetensors": "training cases only: `loss` (0-dim F32) and d loss / d parameter (F32) for "
                             "every trainable tensor, named like the parameter, at the initial weights "
                             "(unclipped); computed in float64",
        "adamw_final.safetensors": "training cases only: every trainable tensor after 10 clipped-AdamW "
                                   "updates with the cosine-warmup schedule (float64 trajectory, stored F32)",
    },
    "conventions": {
        "padding": "left padding; pad tokens have input id 0, attention_mask 0 and position id 0 "
                   "(position_ids = max(cumsum(attention_mask) - 1, 0) + offset)",
        "pad_positions": "a query with no visible key (every left-pad query) gets attention output 0 "
                         "(o_proj bias still added); compare logits only where attention_mask == 1",
        "mask": "key j visible to query i iff j <= i (sequence indices, not position ids), "
                "attention_mask[b, j] == 1, and for mistral with int sliding_window: i - j < sliding_window",
        "tolerance": "DESIGN.md: float32 logits within 1e-4 relative to the max magnitude",
        "differential": "cases with a `layout` field (spec 2-4): llama-differential stores lambda_init as a "
                        "0-dim tensor (F32, BF16 in bf16/) and its value is used as stored; diffllama "
                        "recomputes lambda_init = 0.8 - 0.6*exp(-0.3*l); lambda is one scalar per layer "
                        "(reference: float64). A query with no visible key gets 0 from each softmax map, so its "
                        "differential output is 0 (and RMSNorm(0) = 0). `mode`, `sublayer_norm` and `mix` "
                        "are null for diffllama. "
                        "`lambda` / `lambda_init` list the per-layer values of the F32 weights (rounded, "
                        "for debugging only)",
        "mix": "llama-differential cases carry `mix` in inputs.json: lambda_eff = mix * lambda",
        "training": "see tests/golden/README.md (Training goldens) and tools/reference/train_ref.py: "
                    "labels = input_ids with -100 at pads (attention_mask 0) and at the first 2 real tokens "
                    "of each row; loss = mean over (b,t) with labels[b,t+1] != -100 of "
                    "cross_entropy(logits[b,t], labels[b,t+1]); trainable = every tensor except "
                    "llama-differential's lambda_init; tied embeddings get both gradients in "
                    "model.embed_tokens.weight; the mix of inputs.json is used in every step; "
                    "per step k: clip by global norm (scale max_grad_norm / (norm + 1e-6) when "
                    "norm > max_grad_norm), lr_k = 1e-3 * f(k) (cosine with 3 warmup steps of 10, f(0) = 0), "
                    "torch.optim.AdamW (decay p -= lr*wd*p first, for tensors not in no_decay)",
    },
}


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden")
    os.makedirs(out_root, exist_ok=True)
    entries = [build_case(c, out_root) for c in CASES + DIFF_CASES]
    missing = set(train_ref.TRAIN_CASES) - {e["name"] for e in entries if e["train"]}
    assert not missing, f"training cases not built: {sorted(missing)}"
    write_json(os.path.join(out_root, "MANIFEST.json"), dict(MANIFEST_NOTES, cases=entries))
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(README)
    print(f"wrote {len(entries)} cases to {out_root}")


README = """# Golden files (generated)

Every file in this folder is produced by the independent PyTorch reference in `tools/reference/`
(spec/DIFF_ATTENTION.md sections 1-4, computed in float64 from the stored weights) and must not be
edited by hand. Each case folder holds `config.json` + `model.safetensors` (F32), `bf16/` (the
same weights as BF16), `inputs.json` and `logits.safetensors` (`logits`, `logits_bf16`);
the training cases also hold `train.json`, `grads.safetensors` and `adamw_final.safetensors` (see
"Training goldens" below). `MANIFEST.json` lists the cases, what each covers, the padding convention and
(`train`) each case's training files. To regenerate (byte-identical), run from the repository root
`/usr/bin/python3 tools/reference/make_golden.py`, then `/usr/bin/python3 tools/reference/check_reference.py`
to re-verify (it runs `tools/reference/check_diff.py` for the differential cases and
`tools/reference/check_train.py` for the training files too).

## Differential cases (spec sections 2-4, 7, 8)

MANIFEST entries with a `layout` field (`llama-differential`, `diffllama`, `diff-v1` or `diff-v2`) also give `mode`
(`double`/`split`), `sublayer_norm`, `mix`, `base_model_type`, and the per-layer `lambda` /
`lambda_init` values (rounded; for debugging). `mode`, `sublayer_norm` and `mix` are null for diffllama.
llama-differential, diff-v1 and diff-v2 cases carry `"mix"` in `inputs.json` (lambda_eff = mix * lambda); the former's
`lambda_init` is a 0-dim tensor whose stored value is used (in `bf16/` it is BF16 like every weight,
so the BF16 logits use the rounded value); diffllama and diff-v1 recompute lambda_init = 0.8 - 0.6 exp(-0.3 l).

| case | covers |
| --- | --- |
| diff_double_subln_gqa | double, H=4 KV=2, learned subln [d], mix 1 |
| diff_double_nosubln_mha | double, H=KV=4, no subln, B=2 with row 1 left-padded by 3 |
| diff_double_mix_half | double, subln, mix 0.5 (warm-up) |
| diff_double_lambda_init_stored | double, no subln, stored lambda_init 0.05 / 0.9 (not the formula) |
| diff_split_subln_gqa | split, H=4 KV=2, subln [2d] |
| diff_split_nosubln_mha | split, H=KV=4, no subln, tied embeddings |
| diff_qwen2_double | double on qwen2: q/k/v biases, q/k biases doubled like their weights |
| diff_qwen3_split | split on qwen3: q_norm/k_norm on both components, head_dim 16, subln [32] |
| diff_split_gqa_h8 | split, H=8 KV=4 (hidden 32, tied): diff-heads read different values |
| diffllama_gqa | diffllama, H=4 KV=2 |
| diffllama_mha_padded | diffllama, H=KV=4, B=2 with row 1 left-padded by 3 |
| diffllama_rope_llama3 | diffllama with llama3 RoPE scaling, positions 40..49 |
| diffllama_gqa_h8 | diffllama, H=8 KV=4 (hidden 32, tied): diff-heads read different values |
| diff_v1_mha | diff-v1, H=KV=4: adjacent query heads 2i, 2i+1, value [v_2i ; v_2i+1], learned subln [2d], (1 - lambda_init) |
| diff_v1_gqa_tied_padded | diff-v1, H=4 KV=2 (each query head on kv head h // G), tied, B=2 left-padded, mix 0.5 |
| diff_v1_gqa_h8 | diff-v1 on qwen3 (q/k norms), H=8 KV=4, head_dim 8: values [v_0 ; v_1] and [v_2 ; v_3] |
| diff_v2_qwen2_mha | diff-v2 on qwen2 (q bias [2Hd]), H=KV=4: lambda_proj [H, D], per-token sigmoid lambda |
| diff_v2_gqa_tied_padded | diff-v2, H=4 KV=2, tied, B=2 left-padded, mix 0.5 |
| diff_v2_qwen3_g4 | diff-v2 on qwen3 (q/k norms on all 2H heads), H=8 KV=2, head_dim 8 |

With H=4 KV=2, both diff-heads of split/diffllama read the same value [v_0 ; v_1]; the `_h8` cases
are the ones that catch a wrong diff-head -> value mapping under GQA.

## Training goldens (tools/reference/train_ref.py)

Twenty-one cases (MANIFEST entries whose `train` list is not empty: llama_mha, llama_gqa_tied_padded,
llama_bias, qwen2_bias, qwen3_qknorm, mistral_sliding, llama_rope_llama3, diff_double_subln_gqa,
diff_double_nosubln_mha, diff_double_mix_half, diff_split_subln_gqa, diff_split_nosubln_mha,
diff_qwen3_split, diffllama_gqa, diffllama_mha_padded, diff_v1_mha, diff_v1_gqa_tied_padded,
diff_v1_gqa_h8, diff_v2_qwen2_mha, diff_v2_gqa_tied_padded, diff_v2_qwen3_g4) also hold three files, all computed in float64
from the case's F32 weights and its `inputs.json` (input_ids, attention_mask, position_ids, and `mix`,
which stays fixed for all steps):

- `train.json`: `labels` [B,T], `num_targets`, `hyperparameters`, `no_decay` (sorted names),
  `trainable` (checkpoint order), `losses`, `grad_norms`, `lrs` (10 values each, full float64 precision)
  and `loss_after` (the loss at the final parameters).
- `grads.safetensors`: `loss` (0-dim F32, = losses[0]) and, for every trainable tensor, d loss / d tensor
  (F32, same name and shape) at the initial weights, before clipping.
- `adamw_final.safetensors`: every trainable tensor after the 10 updates (F32).

Exact definitions:

- labels = input_ids; -100 (ignored) where attention_mask is 0 and at the first 2 real tokens of each row
  (after any left padding). Labels come from the mask, never from the token id: id 0 is also a real token.
- loss = mean over all (b, t) with labels[b, t+1] != -100 of cross_entropy(logits[b, t], labels[b, t+1]):
  one mean over the counted targets of the whole batch (`num_targets`), not a mean of row means.
- trainable = every checkpoint tensor except llama-differential's 0-dim `lambda_init` (a constant).
  Tied embeddings: `model.embed_tokens.weight` receives the embedding and the lm_head gradient.
  In llama-differential, lambda_eff = mix * lambda, so the lambda vectors' gradients carry the factor mix.
- step k = 0..9 (the same full batch each step): forward + backward -> losses[k]; total_norm =
  sqrt(sum of squares of every gradient) -> grad_norms[k]; if total_norm > 1.0 every gradient is multiplied
  by 1.0 / (total_norm + 1e-6) (every step of every case clips: norms 4.5 .. 62); lr_k = 1e-3 * f(k) -> lrs[k],
  f(k) = k / 3 for k < 3, else 0.5 * (1 + cos(pi * (k - 3) / 7)) (so lr_0 = 0: the first update moves
  m and v only); then torch.optim.AdamW per tensor with t = k + 1: p -= lr_k * 0.1 * p (only tensors not
  in `no_decay`), m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2,
  p -= lr_k * (m / (1 - 0.9^t)) / (sqrt(v / (1 - 0.999^t)) + 1e-8). Parameters stay float64 between steps.
- no_decay: names ending in `.bias`, containing `layernorm`, `model.norm.weight`, q_norm/k_norm
  (`_norm.weight`) and llama-differential's `subln.weight`. Lambda vectors, embeddings, lm_head and every
  projection weight are decayed.

Suggested tolerances (measured by running the same trajectory with float32 arithmetic,
`tools/reference/check_train.py`): losses 1e-4 relative (float32: <= 8e-6); gradients 1e-4 relative to each
tensor's max (float32: <= 2.7e-5; the lambda vectors are the least accurate, since all four of a layer
share one scalar factor d loss / d lambda); final parameters: at most 0.1% of coordinates off by more than
2e-6 (float32: <= 0.024%) and none by more than 5e-4 (float32: <= 7.3e-5, on coordinates whose gradient is
near 0, where Adam's g / (sqrt(v) + eps) amplifies rounding). Dropping the clipping, decaying every tensor,
shifting the schedule by one step or training on the prompt tokens each moves 9.6% .. 99% of the
coordinates by more than 2e-6; applying the decay after the Adam update (transformers' legacy AdamW)
changes the final parameters by <= 5.5e-6 and is NOT distinguishable at float32 tolerance.

## LoRA goldens (tools/reference/lora_ref.py)

Nine cases (MANIFEST entries with a `lora` list: llama_mha, llama_gqa_tied_padded, llama_bias,
qwen3_qknorm, diffllama_gqa, diff_double_subln_gqa, diff_split_subln_gqa, diff_v1_mha,
diff_v2_gqa_tied_padded) hold `lora/`: a LoRA adapter in PEFT's format drawn at random for the case's
F32 model, and the logits with it applied.

- `lora/adapter_config.json`: PEFT's LoraConfig fields (`peft_type` LORA, `r`, `lora_alpha`,
  `target_modules` as names or the "all-linear" shorthand, `modules_to_save`, `use_rslora`, ...).
- `lora/adapter_model.safetensors` (F32): `base_model.model.<module>.lora_A.weight` [r, in] and
  `.lora_B.weight` [out, r] for every targeted Linear of the decoder layers (all-linear includes diff-v2's
  lambda_proj), and `base_model.model.lm_head.weight` for llama_mha's `modules_to_save: [lm_head]`.
  A is uniform in +-1/sqrt(in) (PEFT's initial bound), B is N(0, 1) * 0.3 / sqrt(r) (not PEFT's zero
  initialisation, which would make the adapter a no-op).
- `lora/logits.safetensors`: `logits` [B,T,V] (F32) of the model with the adapter: every targeted
  y = x W^T + b becomes y + scaling * (x A^T) B^T, scaling = lora_alpha / r (lora_alpha / sqrt(r) with
  use_rslora: llama_gqa_tied_padded, diff_split_subln_gqa), saved modules replace the base ones; computed
  in float64 on the merged weights W + scaling * B A (the same function to float64 rounding).
"""

if __name__ == "__main__":
    main()
