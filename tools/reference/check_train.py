"""Self-checks of the training goldens (train.json, grads.safetensors, adamw_final.safetensors).

Usage (from the repository root):  /usr/bin/python3 tools/reference/check_train.py [golden_dir] [--no-regen]
(check_reference.py runs these checks too, after the forward checks.)

1. Files: strict read-back, aligned headers, F32, tensor sets and shapes (trainable = every checkpoint tensor
   except llama-differential's lambda_init; `loss` 0-dim), labels / no_decay / hyperparameters / lrs restated
   here from the rules (loops and literals, not train_ref's code); recomputation is bit-identical.
2. Gradients vs central finite differences in float64 (fourth-order stencil, h = 1e-4) on the largest and on
   random coordinates of every tensor: relative error < 1e-6 (plain two-point differences reported too).
3. A naive loss (loops over rows and targets, logits from the naive numpy forwards of check_reference /
   check_diff, log-sum-exp written out) reproduces losses[0].
4. Padded batches: loss and every gradient equal the per-row sums of the rows run alone / total count.
5. Zero-init identity (spec 5): a llama-differential double model built from llama_mha with q2/k2 rows,
   lambda vectors and lambda_init 0 has EXACTLY zero gradients for the q2/k2 rows and the four lambda
   vectors (also with subln, with a non-zero lambda_init, with mix 0.5), they stay exactly 0 over the 10
   AdamW steps, and the other tensors follow llama_mha's own trajectory; default-style random q2/k2 and
   lambda vectors N(0, 0.1) give non-zero gradients.
6. AdamW: a replay with torch.optim.AdamW (param groups, weight_decay 0 for no_decay), torch's
   clip_grad_norm_ and LambdaLR with the schedule formula matches train_ref's own update (< 1e-12 relative)
   and the stored files; variants (no clipping, everything decayed, schedule off by one step, decay after
   the update, other labels) show what the files can and cannot tell apart.
7. A float32 run of the same trajectory (the reference with float32 arithmetic) measures how far a
   float32 trainer lands from the float64 goldens (guidance for the C++ tolerances).
8. Regenerating every golden into a temporary folder gives byte-identical files.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_diff  # noqa: E402
import check_reference  # noqa: E402
import diff_ref  # noqa: E402
import llama_ref  # noqa: E402
import safetensors_io  # noqa: E402
import train_ref  # noqa: E402
from check_reference import check_file_layout  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F64 = torch.float64

# The brief's hyperparameters, restated (train.json must carry exactly these).
HP = {"learning_rate": 1e-3, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8,
      "weight_decay": 0.1, "max_grad_norm": 1.0, "clip_epsilon": 1e-6, "lr_scheduler_type": "cosine",
      "warmup_steps": 3, "max_steps": 10, "num_cycles": 0.5, "prompt_tokens": 2, "ignore_index": -100}


def rel(a, b):
    """max |a - b| / max |b| (0 when both are all zero; inf on NaN)."""
    a, b = a.double(), b.double()
    den = float(b.abs().max()) if b.numel() else 0.0
    num = float((a - b).abs().max()) if b.numel() else 0.0
    if not math.isfinite(num):
        return float("inf")
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))


# ---------------------------------------------------------------- restated rules

def naive_labels(ids, mask, prompt=2):
    out = []
    for row_ids, row_mask in zip(ids, mask):
        seen, row = 0, []
        for tok, m in zip(row_ids, row_mask):
            if m == 0:
                row.append(-100)
                continue
            row.append(-100 if seen < prompt else tok)
            seen += 1
        out.append(row)
    return out


def naive_no_decay(names):
    out = []
    for n in names:
        leaf = n.split(".")[-2] if n.count(".") >= 1 else n
        if n.endswith(".bias"):
            out.append(n)
        elif leaf in ("input_layernorm", "post_attention_layernorm", "q_norm", "k_norm", "subln"):
            out.append(n)
        elif n == "model.norm.weight":
            out.append(n)
    return sorted(out)


def naive_lr(step):
    """get_cosine_schedule_with_warmup(warmup 3, total 10, num_cycles 0.5) * 1e-3, written out."""
    if step < 3:
        return 1e-3 * (step / 3)
    return 1e-3 * 0.5 * (1 + math.cos(math.pi * (step - 3) / 7))


def naive_loss(logits, labels):
    """logits [B][T][V] numpy, labels [B][T]: loops, log-sum-exp written out."""
    total, count = 0.0, 0
    for b in range(len(labels)):
        for t in range(len(labels[b]) - 1):
            y = labels[b][t + 1]
            if y == -100:
                continue
            row = [float(z) for z in logits[b][t]]
            m = max(row)
            lse = m + math.log(sum(math.exp(z - m) for z in row))
            total += lse - row[y]
            count += 1
    return total / count


# ---------------------------------------------------------------- loading

def load_train_case(cdir):
    with open(os.path.join(cdir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(cdir, "inputs.json")) as f:
        inp = json.load(f)
    with open(os.path.join(cdir, "train.json")) as f:
        rec = json.load(f)
    w = safetensors_io.load_file(os.path.join(cdir, "model.safetensors"))
    grads = safetensors_io.load_file(os.path.join(cdir, "grads.safetensors"))
    final = safetensors_io.load_file(os.path.join(cdir, "adamw_final.safetensors"))
    problem = train_ref.Problem(cfg, w, inp["input_ids"], inp["attention_mask"], inp["position_ids"],
                                inp.get("mix"))
    return cfg, inp, rec, w, grads, final, problem


def f32_equal(a, b):
    return bool(torch.equal(a.to(torch.float32), b.to(torch.float32)))


# ---------------------------------------------------------------- 1. files

def check_files(name, cdir, cfg, inp, rec, w, grads, final, failures):
    for fn in ("grads.safetensors", "adamw_final.safetensors"):
        hdr, _ = check_file_layout(os.path.join(cdir, fn))
        if any(v["dtype"] != "F32" for k, v in hdr.items() if k != "__metadata__"):
            failures.append(f"{name}: {fn} not all F32")
    keys = ["labels", "num_targets", "hyperparameters", "no_decay", "trainable", "losses", "grad_norms",
            "lrs", "loss_after"]
    if list(rec) != keys:
        failures.append(f"{name}: train.json keys {list(rec)}")
    hp = dict(rec["hyperparameters"])
    hp.pop("optimizer", None)
    if hp != HP:
        failures.append(f"{name}: hyperparameters {rec['hyperparameters']}")
    trainable = [n for n in w if not n.endswith("lambda_init")]
    if sorted(rec["trainable"]) != sorted(trainable) or len(set(rec["trainable"])) != len(rec["trainable"]):
        failures.append(f"{name}: trainable list differs from the checkpoint minus lambda_init")
    if set(grads) != set(trainable) | {"loss"} or set(final) != set(trainable):
        failures.append(f"{name}: grads/adamw_final tensor sets")
    for n in trainable:
        if list(grads[n].shape) != list(w[n].shape) or list(final[n].shape) != list(w[n].shape):
            failures.append(f"{name}: shape of {n}")
    if list(grads["loss"].shape) != []:
        failures.append(f"{name}: loss is not 0-dim")
    for tag, d in (("grads", grads), ("final", final)):
        if not all(bool(torch.isfinite(t).all()) for t in d.values()):
            failures.append(f"{name}: non-finite {tag}")
    labels = naive_labels(inp["input_ids"], inp["attention_mask"])
    if rec["labels"] != labels:
        failures.append(f"{name}: labels differ from the rule")
    n_t = sum(1 for row in labels for y in row[1:] if y != -100)
    if rec["num_targets"] != n_t:
        failures.append(f"{name}: num_targets {rec['num_targets']} != {n_t}")
    if rec["no_decay"] != naive_no_decay(trainable):
        failures.append(f"{name}: no_decay {rec['no_decay']} != {naive_no_decay(trainable)}")
    lrs = [naive_lr(k) for k in range(10)]
    if max(abs(a - b) for a, b in zip(rec["lrs"], lrs)) > 1e-18 or rec["lrs"][0] != 0.0:
        failures.append(f"{name}: lrs differ from the schedule formula")
    for k in ("losses", "grad_norms", "lrs"):
        if len(rec[k]) != 10:
            failures.append(f"{name}: {k} has {len(rec[k])} entries")
    return trainable


# ---------------------------------------------------------------- 2. finite differences

def finite_differences(problem, grads64, gen, failures, name):
    """(worst 4-point relative error, worst 2-point relative error, coordinates checked)."""
    worst4 = worst2 = 0.0
    count = 0
    base = problem.init

    def f(n, i, dx):
        p = dict(base)
        t = p[n].clone().reshape(-1)
        t[i] += dx
        p[n] = t.reshape(base[n].shape)
        return float(problem.loss(p))

    for n in problem.names:
        g = grads64[n].reshape(-1)
        gmax = float(g.abs().max())
        if gmax == 0:
            failures.append(f"{name}: gradient of {n} is all zero")
            continue
        big = (g.abs() >= 1e-2 * gmax).nonzero()[:, 0]
        picks = [int(g.abs().argmax())]
        picks += big[torch.randint(len(big), (4,), generator=gen)].tolist()
        uniform = torch.randint(g.numel(), (2,), generator=gen).tolist()
        for i in dict.fromkeys(picks + uniform):
            h = 1e-4
            fp, fm, fp2, fm2 = f(n, i, h), f(n, i, -h), f(n, i, 2 * h), f(n, i, -2 * h)
            fd4 = (8 * (fp - fm) - (fp2 - fm2)) / (12 * h)
            h2 = 1e-5
            fd2 = (f(n, i, h2) - f(n, i, -h2)) / (2 * h2)
            gi = float(g[i])
            # significant coordinates: relative to |g_i|; uniform ones (often ~0): relative to max |g|
            den = abs(gi) if i in picks else max(abs(gi), gmax)
            e4, e2 = abs(fd4 - gi) / den, abs(fd2 - gi) / den
            worst4, worst2 = max(worst4, e4), max(worst2, e2)
            count += 1
            if not e4 < 1e-6:
                failures.append(f"{name}: finite differences of {n}[{i}]: {fd4:.10e} vs {gi:.10e} ({e4:.1e})")
    return worst4, worst2, count


# ---------------------------------------------------------------- 3. naive loss

def naive_case_loss(cfg, w, ids, mask, pos, mix):
    if diff_ref.layout(cfg) is None:
        logits = check_reference.naive_forward(cfg, w, ids, mask, pos)
    else:
        logits = check_diff.naive_diff_forward(cfg, w, ids, mask, pos, 1.0 if mix is None else mix)
    return naive_loss(logits.numpy(), naive_labels(ids, mask))


# ---------------------------------------------------------------- 4. padded rows

def check_padded(problem, loss, grads, failures, name):
    mask = problem.mask.tolist()
    if all(all(m == 1 for m in row) for row in mask):
        return None
    total_loss = 0.0
    total_grads = {n: torch.zeros_like(g) for n, g in grads.items()}
    for b in range(len(mask)):
        real = [t for t in range(len(mask[b])) if mask[b][t] == 1]
        row = train_ref.Problem(problem.cfg, dict(problem.frozen, **problem.init),
                                [[int(problem.ids[b, t]) for t in real]], [[1] * len(real)],
                                [[int(problem.pos[b, t]) for t in real]], problem.mix)
        n_row = row.num_targets()
        l_row, g_row = row.loss_and_grads(row.init)
        total_loss += float(l_row) * n_row
        for n in total_grads:
            total_grads[n] += g_row[n] * n_row
    n_all = problem.num_targets()
    e = abs(total_loss / n_all - float(loss)) / abs(float(loss))
    for n in total_grads:
        e = max(e, rel(total_grads[n] / n_all, grads[n]))
    if e > 1e-12:
        failures.append(f"{name}: padded batch vs rows alone: {e:.2e}")
    return e


# ---------------------------------------------------------------- 6. AdamW replay and variants

def schedule(step):
    """LambdaLR multiplier, written from transformers' get_cosine_schedule_with_warmup."""
    if step < 3:
        return float(step) / 3.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * float(step - 3) / 7.0)))


def torch_replay(problem, *, clip=True, decay_all=False, lr_shift=0, decay_after=False, labels=None):
    """10 steps with torch.optim.AdamW + clip_grad_norm_ + LambdaLR. Returns (losses, norms, lrs, final)."""
    params = {n: torch.nn.Parameter(problem.init[n].clone()) for n in problem.names}
    if labels is not None:
        saved, problem.labels = problem.labels, labels
    decay = [params[n] for n in problem.names if decay_all or not train_ref.is_no_decay(n)]
    nodecay = [params[n] for n in problem.names if not (decay_all or not train_ref.is_no_decay(n))]
    wd = 0.0 if decay_after else 0.1
    groups = [{"params": decay, "weight_decay": wd}]
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s + lr_shift))
    losses, norms, lrs = [], [], []
    try:
        for _ in range(10):
            opt.zero_grad()
            loss = problem.loss(params)
            loss.backward()
            if clip:
                norm = torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            else:
                norm = torch.sqrt(sum((p.grad * p.grad).sum() for p in params.values()))
            lr = opt.param_groups[0]["lr"]
            opt.step()
            if decay_after:               # transformers' legacy AdamW: decay after the Adam update
                with torch.no_grad():
                    for p in decay:
                        p.add_(p, alpha=-lr * 0.1)
            sched.step()
            losses.append(float(loss))
            norms.append(float(norm))
            lrs.append(lr)
    finally:
        if labels is not None:
            problem.labels = saved
    return losses, norms, lrs, {n: p.detach() for n, p in params.items()}


def max_rel_params(a, b):
    return max(rel(a[n], b[n]) for n in b)


def max_abs_params(a, b, names=None):
    return max(float((a[n].double() - b[n].double()).abs().max()) for n in (names or b))


FINE_TOL = 2e-6     # a per-coordinate level that a float32 run meets on all but a few coordinates


def spread(a, b):
    """(max |a - b|, fraction of coordinates with |a - b| > FINE_TOL) over every tensor of b."""
    d = torch.cat([(a[n].double() - b[n].double()).abs().reshape(-1) for n in b])
    return float(d.max()), float((d > FINE_TOL).double().mean())


# ---------------------------------------------------------------- 7. float32 run

def float32_trajectory(problem):
    """train_ref's trajectory with every float64 of the reference switched to float32."""
    mods = (llama_ref, diff_ref, train_ref)
    saved = [m.F64 for m in mods]
    try:
        for m in mods:
            m.F64 = torch.float32
        p32 = train_ref.Problem(problem.cfg, dict(problem.frozen, **problem.init), problem.ids,
                                problem.mask, problem.pos, problem.mix)
        p32.frozen = {n: t.float() for n, t in p32.frozen.items()}
        p32.init = {n: t.float() for n, t in p32.init.items()}
        return train_ref.adamw_trajectory(p32)
    finally:
        for m, f in zip(mods, saved):
            m.F64 = f


# ---------------------------------------------------------------- per case

def check_case(golden, entry, failures, gen, summary):
    name = entry["name"]
    cdir = os.path.join(golden, name)
    cfg, inp, rec, w, grads, final, problem = load_train_case(cdir)
    if entry["train"] != train_ref.TRAIN_FILES:
        failures.append(f"{name}: MANIFEST train field {entry['train']}")
    check_files(name, cdir, cfg, inp, rec, w, grads, final, failures)

    # recomputation: bit-identical to the stored files
    traj = train_ref.adamw_trajectory(problem)
    loss64, g64 = traj["loss0"], traj["grads0"]
    same = (f32_equal(grads["loss"], loss64) and all(f32_equal(grads[n], g64[n]) for n in problem.names)
            and all(f32_equal(final[n], traj["final"][n]) for n in problem.names)
            and rec["losses"] == traj["losses"] and rec["grad_norms"] == traj["grad_norms"]
            and rec["lrs"] == traj["lrs"] and rec["loss_after"] == float(problem.loss(traj["final"])))
    if not same:
        failures.append(f"{name}: recomputation differs from the stored training files")
    if float(grads["loss"]) != float(torch.tensor(rec["losses"][0]).float()):
        failures.append(f"{name}: grads.safetensors loss != losses[0]")

    # 2. finite differences
    fd4, fd2, n_fd = finite_differences(problem, g64, gen, failures, name)

    # 3. naive loss
    nl = naive_case_loss(cfg, w, inp["input_ids"], inp["attention_mask"], inp["position_ids"], inp.get("mix"))
    e_naive = abs(nl - rec["losses"][0]) / abs(rec["losses"][0])
    if e_naive > 1e-10:
        failures.append(f"{name}: naive loss {nl!r} vs {rec['losses'][0]!r} ({e_naive:.1e})")

    # 4. padded rows
    e_pad = check_padded(problem, loss64, g64, failures, name)

    # 6. AdamW replay with torch's own optimizer
    losses, norms, lrs, fin = torch_replay(problem)
    e_traj = max(max(abs(a - b) / abs(b) for a, b in zip(losses, rec["losses"])),
                 max(abs(a - b) / abs(b) for a, b in zip(norms, rec["grad_norms"])))
    e_lr = max(abs(a - b) for a, b in zip(lrs, rec["lrs"]))
    e_final = max_rel_params(fin, traj["final"])
    e_stored = max_rel_params(fin, final)
    if e_traj > 1e-12 or e_lr > 1e-18 or e_final > 1e-12:
        failures.append(f"{name}: torch.optim.AdamW replay differs: losses/norms {e_traj:.1e}, "
                        f"lrs {e_lr:.1e}, final {e_final:.1e}")
    if e_stored > 1e-6:
        failures.append(f"{name}: replay vs stored adamw_final {e_stored:.1e}")
    if min(rec["grad_norms"]) <= 1.0:
        summary.setdefault("unclipped", []).append(name)

    # variants: how far each moves the final parameters (absolute; compare with the float32 spread)
    var = {}
    var["no clipping"] = spread(torch_replay(problem, clip=False)[3], fin)
    var["decay all"] = spread(torch_replay(problem, decay_all=True)[3], fin)
    var["lr off by one"] = spread(torch_replay(problem, lr_shift=1)[3], fin)
    var["decay after update"] = spread(torch_replay(problem, decay_after=True)[3], fin)
    alt = train_ref.make_labels(problem.ids, problem.mask, prompt_tokens=0)
    var["prompt not masked"] = spread(torch_replay(problem, labels=alt)[3], fin)

    # 7. float32 run of the same trajectory
    t32 = float32_trajectory(problem)
    s = {
        "grads": max(rel(t32["grads0"][n], g64[n]) for n in problem.names),
        "losses": max(abs(a - b) / abs(b) for a, b in zip(t32["losses"], rec["losses"])),
        "final_abs": max_abs_params(t32["final"], traj["final"]),
        "final_frac": spread(t32["final"], traj["final"])[1],
        "final_rel": max_rel_params(t32["final"], traj["final"]),
    }
    sum_lr = sum(rec["lrs"])
    for tag, v in var.items():
        summary.setdefault("variants", {}).setdefault(tag, []).append(v)
    summary.setdefault("f32", []).append(s)
    summary.setdefault("sum_lr", sum_lr)
    print(f"{name:26s} FD4 {fd4:.1e} (FD2 {fd2:.1e}, {n_fd} coords); naive loss {e_naive:.1e}; "
          + (f"pad rows {e_pad:.1e}; " if e_pad is not None else "")
          + f"torch AdamW: traj {e_traj:.1e} final {e_final:.1e} stored {e_stored:.1e}; "
          + f"f32 run: grads {s['grads']:.1e} losses {s['losses']:.1e} final {s['final_abs']:.1e} "
          + f"({s['final_abs'] / sum_lr:.3f} sum lr), {100 * s['final_frac']:.3f}% > {FINE_TOL:.0e}; "
          + "variants (max abs, % > 2e-6): "
          + ", ".join(f"{k} {m:.1e} {100 * fr:.1f}%" for k, (m, fr) in var.items()))


# ---------------------------------------------------------------- 5. zero-init identity

def zero_init_checks(golden, failures):
    cdir = os.path.join(golden, "llama_mha")
    cfg, inp, rec, w, grads, final, base = load_train_case(cdir)
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], llama_ref.head_dim(cfg)
    L = cfg["num_hidden_layers"]
    lam_names = ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2")

    def new_param_grads(c, nw, mix=1.0, steps=False):
        pr = train_ref.Problem(c, nw, inp["input_ids"], inp["attention_mask"], inp["position_ids"], mix)
        traj = train_ref.adamw_trajectory(pr) if steps else None
        _, g = pr.loss_and_grads(pr.init)
        out = {}
        for l in range(L):
            p = f"model.layers.{l}.self_attn."
            out[p + "q_proj.weight[q2 rows]"] = g[p + "q_proj.weight"][H * d:]
            out[p + "k_proj.weight[k2 rows]"] = g[p + "k_proj.weight"][KV * d:]
            for v in lam_names:
                out[p + v] = g[p + v]
        return pr, g, out, traj

    def zero(c, nw, tag, mix=1.0, steps=False):
        pr, g, out, traj = new_param_grads(c, nw, mix, steps)
        nz = sum(int(torch.count_nonzero(t)) for t in out.values())
        if nz:
            failures.append(f"zero-init ({tag}): {nz} non-zero gradient entries of q2/k2/lambda")
        line = f"  zero-init {tag}: non-zero q2/k2/lambda gradient entries {nz} of " \
               f"{sum(t.numel() for t in out.values())}"
        if traj is not None:
            moved = 0
            for l in range(L):
                p = f"model.layers.{l}.self_attn."
                moved += int(torch.count_nonzero(traj["final"][p + "q_proj.weight"][H * d:]))
                moved += int(torch.count_nonzero(traj["final"][p + "k_proj.weight"][KV * d:]))
                moved += sum(int(torch.count_nonzero(traj["final"][p + v])) for v in lam_names)
            if moved:
                failures.append(f"zero-init ({tag}): {moved} q2/k2/lambda entries left 0 during AdamW")
            line += f"; after 10 AdamW steps still exactly 0: {moved == 0}"
        print(line)
        return pr, g, traj

    zi = [0.0] * L
    c, nw = check_diff.as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero", lam_init=zi)
    pr, g, traj = zero(c, nw, "(no subln, lambda_init 0)", steps=True)
    # the rest of the model: the base model's loss, gradients and trajectory
    bl, bg = base.loss_and_grads(base.init)
    btraj = train_ref.adamw_trajectory(base)
    e_g = 0.0
    for n, t in bg.items():
        mine = g[n][: t.shape[0]] if n.endswith(("q_proj.weight", "k_proj.weight")) else g[n]
        e_g = max(e_g, rel(mine, t))
    e_t = 0.0
    for n, t in btraj["final"].items():
        mine = traj["final"][n][: t.shape[0]] if n.endswith(("q_proj.weight", "k_proj.weight")) else \
            traj["final"][n]
        e_t = max(e_t, rel(mine, t))
    e_l = max(abs(a - b) / b for a, b in zip(traj["losses"], rec["losses"]))
    print(f"  zero-init model vs llama_mha: loss {abs(float(pr.loss(pr.init)) - float(bl)):.1e}, "
          f"shared gradients {e_g:.1e}, 10-step losses vs golden {e_l:.1e}, final shared params {e_t:.1e}")
    if e_g > 1e-12 or e_t > 1e-10 or e_l > 1e-12:
        failures.append(f"zero-init model does not train like llama_mha ({e_g:.1e}, {e_t:.1e}, {e_l:.1e})")

    c_s, nw_s = check_diff.as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero", lam_init=zi, subln=False)
    c_s = dict(c_s, sublayer_norm=True)
    for l in range(L):
        nw_s[f"model.layers.{l}.self_attn.subln.weight"] = torch.ones(d)
    zero(c_s, nw_s, "(subln ones)", steps=True)
    c_f, nw_f = check_diff.as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero")   # formula lambda_init
    zero(c_f, nw_f, "(lambda_init = formula 0.2 / 0.3555, so lambda != 0)", steps=True)
    zero(c, nw, "(mix 0.5)", mix=0.5)

    # default-style random negative rows and lambda vectors N(0, 0.1): gradients are non-zero
    gen = torch.Generator().manual_seed(7)
    c_r, nw_r = check_diff.as_double(cfg, w, q2="zero", k2="zero", lam_vec="zero")
    D = cfg["hidden_size"]
    for l in range(L):
        p = f"model.layers.{l}.self_attn."
        for leaf, rows in (("q_proj.weight", H * d), ("k_proj.weight", KV * d)):
            t = nw_r[p + leaf].clone()
            t[rows:] = (torch.rand(t[rows:].shape, generator=gen) * 2 - 1) / math.sqrt(D)
            nw_r[p + leaf] = t
        for v in lam_names:
            nw_r[p + v] = 0.1 * torch.randn(d, generator=gen)
    _, _, out, _ = new_param_grads(c_r, nw_r)
    smallest = min(float(t.norm()) for t in out.values())
    fraction = min(int(torch.count_nonzero(t)) / t.numel() for t in out.values())
    print(f"  default-style init (uniform +-1/sqrt(D) q2/k2, lambda N(0, 0.1)): smallest gradient norm "
          f"of q2/k2/lambda tensors {smallest:.2e}, smallest non-zero fraction {fraction:.2f}")
    if smallest < 1e-6 or fraction < 0.99:
        failures.append("random init: q2/k2/lambda gradients unexpectedly zero")


# ---------------------------------------------------------------- 8. regeneration

def check_regeneration(golden, failures):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "golden")
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "make_golden.py"), out],
                       check=True, stdout=subprocess.DEVNULL)
        mine, theirs = {}, {}
        for root_dir, table in ((out, mine), (golden, theirs)):
            for dirpath, _, files in os.walk(root_dir):
                for fn in files:
                    path = os.path.join(dirpath, fn)
                    with open(path, "rb") as f:
                        table[os.path.relpath(path, root_dir)] = f.read()
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            failures.append(f"regeneration differs in {len(diff)} files: {diff[:5]}")
        print(f"  regeneration into a temporary folder: {len(mine)} files, "
              f"{'byte-identical' if not diff else str(len(diff)) + ' differ'}")


def check_all(golden, failures, regen=True):
    torch.set_num_threads(1)                       # tiny models; keep CPU use modest
    with open(os.path.join(golden, "MANIFEST.json")) as f:
        manifest = json.load(f)
    entries = [e for e in manifest["cases"] if e.get("train")]
    if {e["name"] for e in entries} != set(train_ref.TRAIN_CASES):
        failures.append("MANIFEST training cases differ from train_ref.TRAIN_CASES")
    gen = torch.Generator().manual_seed(1234)
    summary = {}
    for entry in entries:
        check_case(golden, entry, failures, gen, summary)
    f32 = summary["f32"]
    print(f"  float32 run vs float64 goldens (all cases): grads <= {max(s['grads'] for s in f32):.1e} "
          f"(rel. to each tensor's max), losses <= {max(s['losses'] for s in f32):.1e}, final params "
          f"<= {max(s['final_abs'] for s in f32):.1e} abs = {max(s['final_abs'] for s in f32) / summary['sum_lr']:.3f}"
          f" x sum(lrs) ({max(s['final_rel'] for s in f32):.1e} rel. to each tensor's max)")
    print(f"  float32 run: coordinates of the final params off by more than {FINE_TOL:.0e}: at most "
          f"{100 * max(s['final_frac'] for s in f32):.3f}%")
    for tag, v in summary["variants"].items():
        print(f"  variant '{tag}': final params move by at least {min(m for m, _ in v):.1e} (max abs), "
              f"with at least {100 * min(fr for _, fr in v):.2f}% of coordinates beyond {FINE_TOL:.0e}")
    print(f"  steps without clipping (grad norm <= 1): {summary.get('unclipped', 'none')}")
    zero_init_checks(golden, failures)
    if regen:
        check_regeneration(golden, failures)
    return len(entries)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    golden = args[0] if args else os.path.join(ROOT, "tests", "golden")
    failures = []
    n = check_all(golden, failures, regen="--no-regen" not in sys.argv)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"all {n} training cases OK")


if __name__ == "__main__":
    main()
