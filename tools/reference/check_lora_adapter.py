"""Reads an adapter directory (e.g. one `difftx train` with `adapter: lora` wrote) by PEFT's
documented rules alone (lora_ref.py: names, scaling, whole tensors), merges it into the base model
in float64 and compares the logits with `difftx forward BASE --lora ADAPTER --top K --json`.

Usage: /usr/bin/python3 tools/reference/check_lora_adapter.py BASE_DIR ADAPTER_DIR FORWARD_JSON
(FORWARD_JSON: that command's output; its ids are the input.) Prints the largest difference over
the reported logits and whether every top-1 agrees; exits 1 when they do not within 1e-4.
"""
import json
import os
import sys

import torch

import diff_ref
import lora_ref
import safetensors_io


def main():
    base_dir, adapter_dir, forward_json = sys.argv[1:4]
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    base = safetensors_io.load_file(os.path.join(base_dir, "model.safetensors"))
    config = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    tensors = safetensors_io.load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    assert config["peft_type"] == "LORA", config["peft_type"]
    assert all(k.startswith(lora_ref.PREFIX) for k in tensors), "every name starts with base_model.model."
    spec = {"r": config["r"], "alpha": config["lora_alpha"], "rslora": config.get("use_rslora", False)}
    merged = lora_ref.merged_weights(base, tensors, spec)
    rows = json.load(open(forward_json))
    ids = torch.tensor([[row["id"] for row in rows]])
    logits = diff_ref.forward(cfg, merged, ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None], mix=1.0)[0]
    worst = max(abs(t["logit"] - float(logits[row["position"], t["id"]])) for row in rows for t in row["top"])
    same = all(row["top"][0]["id"] == int(logits[row["position"]].argmax()) for row in rows)
    print(f"{len(tensors)} tensors; largest |difftx - reference| over the reported logits {worst:.2e}; "
          f"same top-1 everywhere: {same}")
    sys.exit(0 if worst <= 1e-4 and same else 1)


if __name__ == "__main__":
    main()
