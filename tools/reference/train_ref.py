"""Training reference: causal-LM loss, every parameter gradient, and a 10-step AdamW trajectory.

Everything is float64, starting from a case's F32 weights and its inputs.json (positions, mask, mix).
The model is diff_ref.forward (which hands plain Llama-family configs to llama_ref.forward).

Loss (what transformers' causal-LM loss computes):
  labels = input_ids, then -100 (ignored) at padding positions (attention_mask 0) and at the first
  PROMPT_TOKENS real tokens of each row (a prompt that is not trained on). The logits at position t
  predict the token at t + 1: loss = mean over every (b, t) with labels[b, t+1] != -100 of
  cross_entropy(logits[b, t], labels[b, t+1]) -- one mean over the counted targets of the whole batch.

Trainable: every checkpoint tensor except llama-differential's 0-dim `lambda_init` (a stored constant).
Tied embeddings are one tensor (model.embed_tokens.weight) that receives both gradients.

AdamW (torch.optim.AdamW semantics, as the Hugging Face Trainer builds it), one step k = 0, 1, ...:
  forward + backward on the full batch (the same batch every step); total_norm = sqrt(sum of squares of
  every gradient); if total_norm > max_grad_norm, every gradient *= max_grad_norm / (total_norm + 1e-6);
  lr_k = learning_rate * f(k) (transformers' get_cosine_schedule_with_warmup; f(0) = 0, so the first
  update has lr 0 but still moves m and v); t = k + 1; for each trainable tensor:
    p -= lr_k * weight_decay * p            (decayed tensors only)
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr_k * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""
import json
import math
import os

import torch

import diff_ref
import safetensors_io
from llama_ref import F64

IGNORE_INDEX = -100
PROMPT_TOKENS = 2

HYPERPARAMETERS = {
    "learning_rate": 1e-3,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "weight_decay": 0.1,
    "max_grad_norm": 1.0,
    "clip_epsilon": 1e-6,             # clip factor max_grad_norm / (total_norm + clip_epsilon)
    "lr_scheduler_type": "cosine",
    "warmup_steps": 3,
    "max_steps": 10,
    "num_cycles": 0.5,
    "prompt_tokens": PROMPT_TOKENS,   # first real tokens of each row labelled -100
    "ignore_index": IGNORE_INDEX,
    "optimizer": "torch.optim.AdamW (decoupled weight decay applied before the Adam update)",
}

# The golden cases that also get training files (tests/golden/<case>/), and those files.
TRAIN_CASES = (
    "llama_mha", "llama_gqa_tied_padded", "llama_bias", "qwen2_bias", "qwen3_qknorm", "mistral_sliding",
    "llama_rope_llama3", "diff_double_subln_gqa", "diff_double_nosubln_mha", "diff_double_mix_half",
    "diff_split_subln_gqa", "diff_split_nosubln_mha", "diff_qwen3_split", "diffllama_gqa",
    "diffllama_mha_padded", "diff_v1_mha", "diff_v1_gqa_tied_padded", "diff_v1_gqa_h8",
    "diff_v2_qwen2_mha", "diff_v2_gqa_tied_padded", "diff_v2_qwen3_g4",
)
TRAIN_FILES = ["train.json", "grads.safetensors", "adamw_final.safetensors"]


# ---------------------------------------------------------------- labels, names

def make_labels(input_ids, attention_mask, prompt_tokens=PROMPT_TOKENS):
    """labels [B, T] (int64): input_ids, -100 at pads and at the first `prompt_tokens` real tokens."""
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    mask = torch.as_tensor(attention_mask, dtype=torch.long)
    real_index = mask.cumsum(-1) - 1                      # 0 for the first real token of a row
    keep = (mask == 1) & (real_index >= prompt_tokens)
    return torch.where(keep, ids, torch.full_like(ids, IGNORE_INDEX))


def trainable_names(cfg):
    """Checkpoint tensors that receive gradients, in the checkpoint's order."""
    return [n for n in diff_ref.tensor_shapes(cfg) if not n.endswith(".self_attn.lambda_init")]


def is_no_decay(name):
    """difftx's weight-decay rule: biases and norm weights are not decayed; everything else is
    (lambda vectors, embeddings, lm_head, every projection weight)."""
    return (name.endswith(".bias") or "layernorm" in name or name == "model.norm.weight"
            or "_norm.weight" in name or "subln.weight" in name)


def lr_factor(step, warmup=HYPERPARAMETERS["warmup_steps"], total=HYPERPARAMETERS["max_steps"],
              num_cycles=HYPERPARAMETERS["num_cycles"]):
    """transformers' get_cosine_schedule_with_warmup multiplier after `step` optimizer steps."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


# ---------------------------------------------------------------- loss and gradients

def causal_lm_loss(logits, labels):
    """logits [B, T, V] float64, labels [B, T] -> (mean cross-entropy of the shifted targets, count)."""
    logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    keep = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits[keep], dim=-1)
    nll = -logp.gather(1, targets[keep][:, None])[:, 0]
    return nll.sum() / keep.sum(), int(keep.sum())


class Problem:
    """One case's training problem: config, constant tensors, inputs, labels, mix."""

    def __init__(self, cfg, weights, input_ids, attention_mask, position_ids, mix=None):
        self.cfg = cfg
        self.names = trainable_names(cfg)
        self.frozen = {n: t.to(F64) for n, t in weights.items() if n not in self.names}
        self.init = {n: weights[n].to(F64).clone() for n in self.names}
        self.ids = torch.as_tensor(input_ids)
        self.mask = torch.as_tensor(attention_mask)
        self.pos = torch.as_tensor(position_ids)
        self.labels = make_labels(self.ids, self.mask)
        self.mix = 1.0 if mix is None else float(mix)

    def loss(self, params):
        """Scalar float64 loss of a dict name -> tensor (the trainable tensors)."""
        logits = diff_ref.forward(self.cfg, dict(self.frozen, **params), self.ids, self.mask, self.pos,
                                  mix=self.mix)
        return causal_lm_loss(logits, self.labels)[0]

    def num_targets(self):
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def loss_and_grads(self, params):
        """(loss, dict name -> gradient), float64, at `params` (not modified)."""
        leaves = {n: params[n].detach().clone().requires_grad_(True) for n in self.names}
        loss = self.loss(leaves)
        grads = torch.autograd.grad(loss, [leaves[n] for n in self.names])
        return loss.detach(), {n: g.detach() for n, g in zip(self.names, grads)}


# ---------------------------------------------------------------- AdamW

def adamw_trajectory(problem, hp=HYPERPARAMETERS):
    """Runs hp['max_steps'] steps of clipped AdamW with the cosine-warmup schedule.
    Returns dict: losses, grad_norms, lrs (lists of floats, one per step), grads0 (step-0 gradients,
    unclipped), loss0, final (dict name -> float64 tensor after the last update)."""
    lr0, wd = hp["learning_rate"], hp["weight_decay"]
    b1, b2, eps = hp["adam_beta1"], hp["adam_beta2"], hp["adam_epsilon"]
    max_norm, clip_eps = hp["max_grad_norm"], hp["clip_epsilon"]
    params = {n: t.clone() for n, t in problem.init.items()}
    m = {n: torch.zeros_like(t) for n, t in params.items()}
    v = {n: torch.zeros_like(t) for n, t in params.items()}
    out = {"losses": [], "grad_norms": [], "lrs": []}
    for k in range(hp["max_steps"]):
        loss, grads = problem.loss_and_grads(params)
        if k == 0:
            out["loss0"], out["grads0"] = loss, grads
        total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        # torch's clip_grad_norm_ scales whenever max_norm / (total + 1e-6) < 1, the stated rule
        # whenever total > max_norm: they differ only for total in (max_norm - 1e-6, max_norm].
        assert not (max_norm - clip_eps < total <= max_norm), "clip rule ambiguous at this norm"
        if total > max_norm:
            coef = max_norm / (total + clip_eps)
            grads = {n: g * coef for n, g in grads.items()}
        lr = lr0 * lr_factor(k, hp["warmup_steps"], hp["max_steps"], hp["num_cycles"])
        t = k + 1
        for n in problem.names:
            p, g = params[n], grads[n]
            if not is_no_decay(n):
                p = p - lr * wd * p
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            m_hat = m[n] / (1 - b1 ** t)
            v_hat = v[n] / (1 - b2 ** t)
            params[n] = p - lr * m_hat / (torch.sqrt(v_hat) + eps)
        out["losses"].append(float(loss))
        out["grad_norms"].append(total)
        out["lrs"].append(lr)
    out["final"] = params
    return out


# ---------------------------------------------------------------- golden files

def _json_value(v):
    """Numbers and number lists on one line; dicts and string lists one item per line."""
    if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], str)):
        return json.dumps(v, indent=2, sort_keys=True).replace("\n", "\n  ")
    return json.dumps(v)


def train_record(problem, traj):
    """The content of train.json (key order fixed)."""
    return {
        "labels": problem.labels.tolist(),
        "num_targets": problem.num_targets(),
        "hyperparameters": HYPERPARAMETERS,
        "no_decay": sorted(n for n in problem.names if is_no_decay(n)),
        "trainable": list(problem.names),
        "losses": traj["losses"],
        "grad_norms": traj["grad_norms"],
        "lrs": traj["lrs"],
        "loss_after": traj["loss_after"],
    }


def write_train_files(problem, out_dir):
    """Runs the trajectory and writes train.json, grads.safetensors, adamw_final.safetensors."""
    traj = adamw_trajectory(problem)
    traj["loss_after"] = float(problem.loss(traj["final"]))
    rec = train_record(problem, traj)
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        f.write("{\n" + ",\n".join(f'  "{k}": {_json_value(v)}' for k, v in rec.items()) + "\n}\n")
    grads = dict(traj["grads0"], loss=traj["loss0"])
    assert "loss" not in problem.names
    safetensors_io.save_file(grads, os.path.join(out_dir, "grads.safetensors"), "F32")
    safetensors_io.save_file(traj["final"], os.path.join(out_dir, "adamw_final.safetensors"), "F32")
    return traj
