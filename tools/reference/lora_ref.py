"""LoRA adapters in PEFT's file format, and the logits of a model with one applied.

Written from PEFT's documented rules (LoraConfig, LoraLayer, get_peft_model_state_dict), not from
difftx's C++:
  - A targeted Linear y = x W^T + b becomes y = x W^T + b + scaling * (x A^T) B^T, with A [r, in]
    (lora_A) and B [out, r] (lora_B); scaling = lora_alpha / r, or lora_alpha / sqrt(r) with
    use_rslora. Dropout acts on the adapter's input in training only (not here).
  - adapter_model.safetensors names: base_model.model.<module path>.lora_A.weight and .lora_B.weight
    (the adapter name "default" removed); a module in modules_to_save is saved whole under
    base_model.model.<module path>.weight and replaces the base module.
  - adapter_config.json: peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout,
    target_modules, modules_to_save, use_rslora, bias "none", fan_in_fan_out false, use_dora false.
The reference logits come from the merged weights W + scaling * B A computed in float64: the same
function as the unmerged sum, to float64 rounding.
"""
import json
import math
import os

import torch

import diff_ref
import safetensors_io

F64 = torch.float64
PREFIX = "base_model.model."

# case name -> the adapter drawn for it (targets by module name; "all-linear" is every Linear of the
# decoder layers, as PEFT's shorthand outside the output layer).
LORA_CASES = {
    "llama_mha": dict(r=4, alpha=8, targets=["q_proj", "k_proj", "v_proj", "o_proj"], modules_to_save=["lm_head"]),
    "llama_gqa_tied_padded": dict(r=4, alpha=16, rslora=True, targets=["q_proj", "v_proj"]),
    "llama_bias": dict(r=2, alpha=4, targets="all-linear"),
    "qwen3_qknorm": dict(r=4, alpha=8, targets="all-linear"),
    "diffllama_gqa": dict(r=4, alpha=8, targets="all-linear"),
    "diff_double_subln_gqa": dict(r=4, alpha=8, targets="all-linear"),
    "diff_split_subln_gqa": dict(r=3, alpha=6, rslora=True, targets="all-linear"),
    "diff_v1_mha": dict(r=4, alpha=8, targets="all-linear"),
    "diff_v2_gqa_tied_padded": dict(r=4, alpha=8, targets="all-linear"),
}
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "lambda_proj", "gate_proj", "up_proj", "down_proj")


def scaling(spec):
    return spec["alpha"] / (math.sqrt(spec["r"]) if spec.get("rslora") else spec["r"])


def targeted_modules(cfg, spec):
    """Module paths (without '.weight') of the case's checkpoint that get an adapter."""
    names = spec["targets"]
    out = []
    for tensor in diff_ref.tensor_shapes(cfg):
        if not tensor.startswith("model.layers.") or not tensor.endswith(".weight"):
            continue
        module = tensor[: -len(".weight")]
        leaf = module.rsplit(".", 1)[1]
        if leaf in LINEAR_NAMES and (names == "all-linear" or leaf in names):
            out.append(module)
    return out


def make_adapter(cfg, weights, spec, seed):
    """(tensors in PEFT's names, adapter_config dict). A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
    kaiming-uniform bound); B is drawn too (N(0, 1) * 0.3 / sqrt(r)), since a zero B would test nothing."""
    g = torch.Generator().manual_seed(seed)
    r = spec["r"]
    tensors = {}
    for module in targeted_modules(cfg, spec):
        out_f, in_f = weights[module + ".weight"].shape
        bound = 1.0 / math.sqrt(in_f)
        tensors[PREFIX + module + ".lora_A.weight"] = (torch.rand(r, in_f, generator=g, dtype=F64) * 2 - 1) * bound
        tensors[PREFIX + module + ".lora_B.weight"] = torch.randn(out_f, r, generator=g, dtype=F64) * 0.3 / math.sqrt(r)
    for module in spec.get("modules_to_save", []):
        base = weights[module + ".weight"]
        tensors[PREFIX + module + ".weight"] = base.to(F64) + 0.2 * torch.randn(base.shape, generator=g, dtype=F64)
    tensors = {k: v.to(torch.float32) for k, v in tensors.items()}  # what the file holds
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "..",
        "r": r, "lora_alpha": spec["alpha"], "lora_dropout": 0.05,
        "target_modules": spec["targets"] if isinstance(spec["targets"], str) else sorted(spec["targets"]),
        "modules_to_save": spec.get("modules_to_save"), "use_rslora": bool(spec.get("rslora", False)),
        "bias": "none", "fan_in_fan_out": False, "use_dora": False, "init_lora_weights": True,
        "inference_mode": True, "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
    }
    return tensors, config


def merged_weights(weights, tensors, spec):
    """The checkpoint with the adapter folded in, float64: W + scaling * B A; saved modules replaced."""
    s = scaling(spec)
    out = {k: v.to(F64) for k, v in weights.items()}
    for name, t in tensors.items():
        module = name[len(PREFIX):]
        if module.endswith(".lora_A.weight"):
            base = module[: -len(".lora_A.weight")] + ".weight"
            b = tensors[PREFIX + module.replace(".lora_A.", ".lora_B.")]
            out[base] = out[base] + s * (b.to(F64) @ t.to(F64))
        elif not module.endswith(".lora_B.weight"):
            out[module] = t.to(F64)
    return out


def write_lora_files(cfg, weights, ids, mask, pos, mix, case_dir, name):
    """tests/golden/<case>/lora/: adapter_config.json, adapter_model.safetensors, logits.safetensors."""
    spec = LORA_CASES[name]
    tensors, config = make_adapter(cfg, weights, spec, seed=1000 + sum(map(ord, name)))
    d = os.path.join(case_dir, "lora")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    safetensors_io.save_file(tensors, os.path.join(d, "adapter_model.safetensors"), "F32")
    merged = merged_weights(weights, tensors, spec)
    logits = diff_ref.forward(cfg, merged, ids, mask, pos, mix=mix if mix is not None else 1.0)
    safetensors_io.save_file({"logits": logits.to(torch.float32)}, os.path.join(d, "logits.safetensors"), "F32")
    return ["lora/adapter_config.json", "lora/adapter_model.safetensors", "lora/logits.safetensors"]


# ---------------------------------------------------------------- training gradients

def whole_trained(cfg, weights, spec):
    """Base tensors a LoRA run trains whole beside the adapters: the differential parameters
    (lambda vectors, subln; diff-v2's lambda_proj only when no adapter targets it) and the
    modules_to_save (difftx's lora_train_diff_params default)."""
    adapted = set(targeted_modules(cfg, spec))
    out = []
    for name in weights:
        leaf = name.split(".")[-1] if not name.endswith(".weight") else name.split(".")[-2]
        module = name[: -len(".weight")] if name.endswith(".weight") else name
        if leaf in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2", "subln"):
            out.append(name)
        elif leaf == "lambda_proj" and module not in adapted:
            out.append(name)
    out += [m + ".weight" for m in spec.get("modules_to_save", [])]
    return out


def lora_loss_and_grads(cfg, weights, tensors, spec, ids, mask, pos, mix):
    """Mean next-token loss (train_ref's labels) of the model with the adapter, and its gradient
    with respect to every lora_A / lora_B and every whole-trained tensor (float64 autograd through
    W + scaling * B A: PEFT's function without dropout)."""
    import train_ref
    s = scaling(spec)
    leaves = {n: t.to(F64).clone().requires_grad_(True) for n, t in tensors.items() if ".lora_" in n}
    whole = {n: (tensors[PREFIX + n] if PREFIX + n in tensors else weights[n]).to(F64).clone().requires_grad_(True)
             for n in whole_trained(cfg, weights, spec)}
    eff = {k: v.to(F64) for k, v in weights.items()}
    eff.update(whole)
    for name, a in leaves.items():
        if name.endswith(".lora_A.weight"):
            base = name[len(PREFIX): -len(".lora_A.weight")] + ".weight"
            eff[base] = eff[base] + s * (leaves[name.replace(".lora_A.", ".lora_B.")] @ a)
    labels = train_ref.make_labels(ids, mask)
    logits = diff_ref.forward(cfg, eff, torch.as_tensor(ids), torch.as_tensor(mask), torch.as_tensor(pos),
                              mix=1.0 if mix is None else float(mix))
    loss = train_ref.causal_lm_loss(logits, labels)[0]
    names = list(leaves) + list(whole)
    grads = torch.autograd.grad(loss, [leaves.get(n, whole.get(n)) for n in names])
    out = {(n[len(PREFIX):] if n.startswith(PREFIX) else n): g.detach() for n, g in zip(names, grads)}
    return loss.detach(), out


def write_lora_grads(cfg, weights, ids, mask, pos, mix, case_dir, name):
    """tests/golden/<case>/lora/grads.safetensors: `loss` and d loss / d tensor under the trained
    table's names (<module>.lora_A.weight, <module>.lora_B.weight, whole tensors by their own)."""
    spec = LORA_CASES[name]
    tensors, _ = make_adapter(cfg, weights, spec, seed=1000 + sum(map(ord, name)))
    loss, grads = lora_loss_and_grads(cfg, weights, tensors, spec, ids, mask, pos, mix)
    out = {k: v.to(torch.float32) for k, v in grads.items()}
    out["loss"] = loss.to(torch.float32)
    safetensors_io.save_file(out, os.path.join(case_dir, "lora", "grads.safetensors"), "F32")
    return ["lora/grads.safetensors"]


def main():
    """Writes lora/grads.safetensors for every LoRA case of an existing golden tree (the other
    files stay as they are) and lists it in MANIFEST.json."""
    import sys
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")
    manifest_path = os.path.join(root, "MANIFEST.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    for entry in manifest["cases"]:
        name = entry["name"]
        if name not in LORA_CASES:
            continue
        d = os.path.join(root, name)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(d, "inputs.json")) as f:
            inputs = json.load(f)
        weights = safetensors_io.load_file(os.path.join(d, "model.safetensors"))
        mix = inputs.get("mix")
        drawn, _ = make_adapter(cfg, weights, LORA_CASES[name], seed=1000 + sum(map(ord, name)))
        stored = safetensors_io.load_file(os.path.join(d, "lora", "adapter_model.safetensors"))
        assert set(drawn) == set(stored) and all(torch.equal(drawn[k], stored[k].to(torch.float32)) for k in drawn), name
        ids, mask, pos = (torch.tensor(inputs[k]) for k in ("input_ids", "attention_mask", "position_ids"))
        files = write_lora_grads(cfg, weights, ids, mask, pos, mix, d, name)
        entry["lora"] = [f for f in entry.get("lora", []) if f not in files] + files
        print(name, "ok")
    with open(manifest_path, "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
