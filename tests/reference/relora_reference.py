#!/usr/bin/env python3
"""PyTorch reference for pico-relora (LoRA-wrapped pico-decoder) and fixture generator.

Written from the project spec (shared/spec/pico-relora.md, sections 1 and 3),
not copied from the pico-relora code. The decoder itself is imported from
pico_reference.py; this file adds the ReLoRA linear layer and the merge-and-reset.

Usage (from the repository root):

    python tests/reference/relora_reference.py            # self-test, then write tests/fixtures/relora_mini/
    python tests/reference/relora_reference.py --check    # self-test only, writes nothing

ReLoRA facts implemented here:
  * every linear of attention (q, k, v, o) and SwiGLU (w_0, w_1, w_2) of every
    layer is wrapped; embedding, output projection and norms stay full-rank and
    trainable. The wrapped base weight W is frozen.
  * y = W x + s * B(A(dropout(x))), s = lora_alpha / r, dropout on the LoRA input only.
  * A [r, in] ~ kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(in)), B [out, r].
    (At wrapping time B = 0; the fixture uses a non-zero B, see below.)
  * state-dict names: the frozen base keeps its name (`...q_proj.weight`), the
    adapters are `...q_proj.A_lora.weight` and `...q_proj.B_lora.weight`.
  * merge-and-reset: W += s * B @ A (corrected) or W += B @ A (reference quirk 2),
    then A is re-initialised (kaiming) and B is zeroed.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pico_reference import (  # noqa: E402
    CONFIG_KEYS,
    FIXTURES as PICO_FIXTURES,
    PicoDecoder,
    _check,
    build_model,
    lm_loss,
    make_batch,
    np_ce,
    np_forward,
)

# --------------------------------------------------------------------------
# Fixture definition
# --------------------------------------------------------------------------

RELORA_MINI = dict(
    # Same model config, init seed and data seed as pico_mini, so the base
    # weights of relora_mini equal pico_mini's weights (one more cross-check
    # for the Rust side). Batch [2, 10] -> B = 2, T = 9.
    config=dict(PICO_FIXTURES["pico_mini"]["config"]),
    relora=dict(
        target_modules=["attention", "swiglu"],
        reset_frequency=4,
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        keep_original_weights=True,
        lora_only=False,
        trainable_scaling=False,
    ),
    batch=PICO_FIXTURES["pico_mini"]["batch"],
    seq=PICO_FIXTURES["pico_mini"]["seq"],
    init_seed=PICO_FIXTURES["pico_mini"]["init_seed"],
    data_seed=PICO_FIXTURES["pico_mini"]["data_seed"],
    lora_seed=2468,  # A (kaiming) and the non-zero B
    b_init_bound=0.05,  # B ~ U(-0.05, 0.05) in the fixture (spec init: B = 0)
    reset_seed=1357,  # the A re-initialisation at merge time
)

ATTN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj")
SWIGLU_LINEARS = ("w_0", "w_1", "w_2")


# --------------------------------------------------------------------------
# LoRA linear layer and wrapping
# --------------------------------------------------------------------------


class ReLoRALinear(nn.Module):
    """y = x W^T + s * dropout(x) A^T B^T, W frozen.

    Sub-module names give the state-dict keys `weight`, `A_lora.weight`,
    `B_lora.weight`."""

    def __init__(self, in_features, out_features, r, lora_alpha, lora_dropout):
        super().__init__()
        self.in_features, self.out_features, self.r = in_features, out_features, r
        self.scale = lora_alpha / r
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.A_lora = nn.Linear(in_features, r, bias=False)
        self.B_lora = nn.Linear(r, out_features, bias=False)
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        with torch.no_grad():  # like nn.Linear; wrap_relora overwrites it with the base weight
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.reset_lora()

    @torch.no_grad()
    def reset_lora(self):
        # kaiming_uniform(a = sqrt 5): bound = sqrt(2 / (1 + 5)) * sqrt(3 / in) = 1 / sqrt(in)
        nn.init.kaiming_uniform_(self.A_lora.weight, a=math.sqrt(5))
        nn.init.zeros_(self.B_lora.weight)

    def forward(self, x):
        return F.linear(x, self.weight) + self.scale * self.B_lora(self.A_lora(self.lora_dropout(x)))

    @torch.no_grad()
    def merge_and_reset(self, scaled=True):
        """W += s * B @ A (scaled=True, corrected) or W += B @ A (reference quirk)."""
        delta = self.B_lora.weight @ self.A_lora.weight
        self.weight.add_(delta * (self.scale if scaled else 1.0))
        self.reset_lora()


def wrapped_linears(model):
    """(name prefix, module) of every wrapped linear, in layer order."""
    out = []
    for i, layer in enumerate(model.layers):
        for n in ATTN_LINEARS:
            out.append((f"layers.{i}.attention.{n}", getattr(layer.attention, n)))
        for n in SWIGLU_LINEARS:
            out.append((f"layers.{i}.swiglu.{n}", getattr(layer.swiglu, n)))
    return out


def wrap_relora(model, rcfg):
    """Replace q,k,v,o,w_0,w_1,w_2 of every layer by ReLoRALinear, keeping W.
    A gets the kaiming init and B = 0 (as at wrapping time in the spec)."""
    assert sorted(rcfg["target_modules"]) == ["attention", "swiglu"]
    for layer in model.layers:
        for parent, names in ((layer.attention, ATTN_LINEARS), (layer.swiglu, SWIGLU_LINEARS)):
            for n in names:
                base = getattr(parent, n)
                w = ReLoRALinear(base.in_features, base.out_features, rcfg["r"], rcfg["lora_alpha"], rcfg["lora_dropout"])
                w = w.to(base.weight.dtype)
                with torch.no_grad():
                    w.weight.copy_(base.weight)
                setattr(parent, n, w)
    return model


def relora_skeleton(cfg, rcfg, dtype=torch.float64):
    """An (arbitrarily initialised) ReLoRA model of the right shape, for load_state_dict."""
    return wrap_relora(PicoDecoder(cfg), rcfg).to(dtype)


def build_relora_model(fx):
    """f32 model: pico init with init_seed (= pico_mini's weights), then wrap;
    A kaiming and B ~ U(-b, b) from lora_seed, layer by layer."""
    cfg, rcfg = fx["config"], fx["relora"]
    model = build_model(cfg, fx["init_seed"])
    wrap_relora(model, rcfg)
    torch.manual_seed(fx["lora_seed"])
    with torch.no_grad():
        for _, m in wrapped_linears(model):
            nn.init.kaiming_uniform_(m.A_lora.weight, a=math.sqrt(5))
            m.B_lora.weight.uniform_(-fx["b_init_bound"], fx["b_init_bound"])
    return model.float()


def copy_model(model, dtype):
    m = relora_skeleton(model.cfg, RELORA_MINI["relora"], dtype)
    m.load_state_dict(model.state_dict())
    return m


def trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def merge_all(model, scaled, seed):
    torch.manual_seed(seed)
    for _, m in wrapped_linears(model):
        m.merge_and_reset(scaled=scaled)


def plain_from_relora_sd(cfg, sd, scale, dtype=torch.float64):
    """A plain PicoDecoder whose wrapped linears carry W_eff = W + s * B @ A."""
    plain = PicoDecoder(cfg).to(dtype)
    psd = {}
    for k, v in sd.items():
        if ".A_lora." in k or ".B_lora." in k:
            continue
        if k.endswith(".weight") and (k[: -len(".weight")] + ".A_lora.weight") in sd:
            pre = k[: -len(".weight")]
            v = v.to(dtype) + scale * sd[pre + ".B_lora.weight"].to(dtype) @ sd[pre + ".A_lora.weight"].to(dtype)
        psd[k] = v.to(dtype)
    plain.load_state_dict(psd)
    return plain


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------


def self_test():
    ok = True
    fx = RELORA_MINI
    cfg, rcfg = fx["config"], fx["relora"]
    s = rcfg["lora_alpha"] / rcfg["r"]
    print("self-test (relora: torch vs NumPy float64, finite differences, merge identity)")

    model = copy_model(build_relora_model(fx), torch.float64)
    ids = make_batch(cfg, fx["batch"], fx["seq"], fx["data_seed"])
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    # 0. Names, shapes, frozen flags, init ranges.
    names_ok = True
    for pre, m in wrapped_linears(model):
        names_ok &= sd[pre + ".A_lora.weight"].shape == (rcfg["r"], m.in_features)
        names_ok &= sd[pre + ".B_lora.weight"].shape == (m.out_features, rcfg["r"])
        names_ok &= sd[pre + ".weight"].shape == (m.out_features, m.in_features)
        names_ok &= not m.weight.requires_grad and m.A_lora.weight.requires_grad and m.B_lora.weight.requires_grad
        names_ok &= np.abs(sd[pre + ".A_lora.weight"]).max() <= 1 / math.sqrt(m.in_features)
    n_lin = len(wrapped_linears(model))
    ok &= _check("state-dict names/shapes, base frozen, |A| <= 1/sqrt(in)", names_ok and n_lin == 7 * cfg["n_layers"], f"{n_lin} wrapped linears")
    base = build_model(cfg, fx["init_seed"]).state_dict()
    same = all(torch.equal(base[k].double(), model.state_dict()[k]) for k in base)
    ok &= _check("base weights == pico_mini init", same, "")
    fresh = ReLoRALinear(64, 8, 4, 8, 0.0).double()
    ok &= _check(
        "fresh wrap: B = 0, A ~ U(+-1/sqrt(in))",
        fresh.B_lora.weight.abs().max().item() == 0 and fresh.A_lora.weight.abs().max().item() <= 1 / 8,
        f"max|A| {fresh.A_lora.weight.abs().max().item():.4f} (bound 0.125)",
    )

    # 1. One LoRA linear vs NumPy: x W^T + s (x A^T) B^T.
    rng = np.random.default_rng(1)
    worst = 0.0
    for pre, m in wrapped_linears(model):
        x = rng.standard_normal((3, 5, m.in_features))
        got = m(torch.from_numpy(x)).detach().numpy()
        W, A, Bm = sd[pre + ".weight"], sd[pre + ".A_lora.weight"], sd[pre + ".B_lora.weight"]
        want = x @ W.T + s * (x @ A.T) @ Bm.T
        worst = max(worst, np.abs(got - want).max())
    ok &= _check("LoRA linear == numpy x@W.T + s*(x@A.T)@B.T", worst < 1e-12, f"max abs err {worst:.2e}")
    # the LoRA branch matters (B != 0): dropping s*B*A changes the output
    pre, m = wrapped_linears(model)[0]
    x = rng.standard_normal((2, m.in_features))
    dl = np.abs(m(torch.from_numpy(x)).detach().numpy() - x @ sd[pre + ".weight"].T).max()
    ok &= _check("LoRA branch changes the output (B != 0)", dl > 1e-3, f"max abs diff {dl:.2e}")

    # 2. Dropout acts on the LoRA input only: with B = 0 a train-mode dropout changes nothing;
    #    with B != 0 it does.
    torch.manual_seed(7)
    dm = ReLoRALinear(16, 8, 4, 8, 0.5).double().train()
    x = torch.randn(4, 16, dtype=torch.float64)
    e0 = (dm(x) - F.linear(x, dm.weight)).abs().max().item()
    with torch.no_grad():
        dm.B_lora.weight.uniform_(-0.1, 0.1)
    ref = F.linear(x, dm.weight) + dm.scale * dm.B_lora(dm.A_lora(x))
    e1 = (dm(x) - ref).abs().max().item()
    ok &= _check("dropout only on the LoRA input", e0 == 0 and e1 > 1e-6, f"B=0 diff {e0:.1e}, B!=0 diff {e1:.2e}")

    # 3. Full forward vs the naive NumPy decoder of pico_reference with W_eff = W + s*B@A.
    loss, logits = lm_loss(model, ids)
    sd_eff = {}
    for k, v in sd.items():
        if ".A_lora." in k or ".B_lora." in k:
            continue
        pre = k[: -len(".weight")]
        if pre + ".A_lora.weight" in sd:
            v = v + s * sd[pre + ".B_lora.weight"] @ sd[pre + ".A_lora.weight"]
        sd_eff[k] = v
    np_logits, _ = np_forward(sd_eff, cfg, ids[:, :-1].numpy())
    e = np.abs(logits.detach().numpy() - np_logits).max()
    ok &= _check("relora logits == numpy loop decoder with W + s*B@A", e < 1e-10, f"max abs err {e:.2e}")
    np_loss = np_ce(np_logits, ids[:, 1:].numpy())
    ok &= _check("relora loss == numpy", abs(loss.item() - np_loss) < 1e-10, f"torch {loss.item():.12f} numpy {np_loss:.12f}")

    # 4. Gradients: frozen base has none; A/B/embedding/norm grads vs central finite differences.
    model.zero_grad()
    loss, _ = lm_loss(model, ids)
    loss.backward()
    frozen_none = all(m.weight.grad is None for _, m in wrapped_linears(model))
    ok &= _check("frozen base weights get no gradient", frozen_none, "")
    nz = min(p.grad.abs().max().item() for n, p in trainable(model) if "_lora" in n)
    ok &= _check("every A/B gradient is non-zero", nz > 1e-6, f"min over tensors of max|grad| {nz:.2e}")
    rng = np.random.default_rng(0)
    worst, count = 0.0, 0
    with torch.no_grad():
        for n, p in trainable(model):
            flat, gflat = p.view(-1), p.grad.view(-1)
            cand = np.arange(flat.numel())
            if n == "embedding_proj.weight":
                rows = np.unique(ids[:, :-1].numpy())
                cand = (rows[:, None] * p.shape[1] + np.arange(p.shape[1])[None, :]).reshape(-1)
            for idx in rng.choice(cand, size=3, replace=False):
                idx = int(idx)
                old, h = flat[idx].item(), 1e-5
                flat[idx] = old + h
                lp = lm_loss(model, ids)[0].item()
                flat[idx] = old - h
                lm = lm_loss(model, ids)[0].item()
                flat[idx] = old
                fd, an = (lp - lm) / (2 * h), gflat[idx].item()
                worst = max(worst, abs(fd - an) / (abs(an) + 1e-4))
                count += 1
    ok &= _check("trainable grads == finite differences", worst < 1e-5, f"{count} entries, worst |fd-g|/(|g|+1e-4) {worst:.2e}")

    # 5. Chain rule through the merged weight: with G = dL/dW_eff of the plain model,
    #    dL/dB = s * G @ A^T and dL/dA = s * B^T @ G; other grads equal the plain model's.
    plain = plain_from_relora_sd(cfg, model.state_dict(), s)
    pl, plg = lm_loss(plain, ids)
    pl.backward()
    pg = dict(plain.named_parameters())
    e = 0.0
    for pre, m in wrapped_linears(model):
        G = pg[pre + ".weight"].grad
        e = max(e, (m.B_lora.weight.grad - s * G @ m.A_lora.weight.T).abs().max().item())
        e = max(e, (m.A_lora.weight.grad - s * m.B_lora.weight.T @ G).abs().max().item())
    for n, p in trainable(model):
        if "_lora" not in n:
            e = max(e, (p.grad - pg[n].grad).abs().max().item())
    ok &= _check("grad A = s B^T G, grad B = s G A^T, other grads == plain model", e < 1e-12, f"max abs err {e:.2e}")
    ok &= _check("plain model with W_eff gives the same logits", (plg - logits).abs().max().item() < 1e-12, "")

    # 6. Merge-and-reset: logits unchanged (corrected), changed (quirk); B = 0 and A re-initialised.
    mm = copy_model(model, torch.float64)
    A_before = {pre: m.A_lora.weight.clone() for pre, m in wrapped_linears(mm)}
    merge_all(mm, scaled=True, seed=fx["reset_seed"])
    _, lg_m = lm_loss(mm, ids)
    e = (lg_m - logits).abs().max().item()
    ok &= _check("merged (W + s*B@A, B reset to 0) logits == pre-merge logits", e < 1e-12, f"max abs err {e:.2e}")
    reset_ok = all(
        m.B_lora.weight.abs().max().item() == 0
        and not torch.equal(m.A_lora.weight, A_before[pre])
        and m.A_lora.weight.abs().max().item() <= 1 / math.sqrt(m.in_features)
        for pre, m in wrapped_linears(mm)
    )
    ok &= _check("after reset: B == 0, A re-drawn within U(+-1/sqrt(in))", reset_ok, "")
    mq = copy_model(model, torch.float64)
    merge_all(mq, scaled=False, seed=fx["reset_seed"])
    d_ = (lm_loss(mq, ids)[1] - logits).abs().max().item()
    ok &= _check("quirk merge W + B@A changes the logits (s != 1)", d_ > 1e-4, f"max abs diff {d_:.2e}")
    # and the numbers: W_merged == W + s*B@A in numpy
    e = max(
        np.abs(mm.state_dict()[pre + ".weight"].numpy() - (sd[pre + ".weight"] + s * sd[pre + ".B_lora.weight"] @ sd[pre + ".A_lora.weight"])).max()
        for pre, _ in wrapped_linears(mm)
    )
    ok &= _check("merged W == numpy W + s*B@A", e < 1e-14, f"max abs err {e:.2e}")

    print("self-test:", "PASSED" if ok else "FAILED")
    return ok


# --------------------------------------------------------------------------
# Fixture generation
# --------------------------------------------------------------------------


def compute_expected(model32, ids, dtype):
    fx = RELORA_MINI
    model = copy_model(model32, dtype)
    model.zero_grad()
    loss, logits = lm_loss(model, ids)
    loss.backward()
    exp = {"loss": loss.detach().reshape(()), "logits": logits.detach()}
    for n, p in trainable(model):
        exp["grad." + n] = p.grad.detach().clone()
    assert all(m.weight.grad is None for _, m in wrapped_linears(model))

    merged = {}
    mm = copy_model(model32, dtype)
    merge_all(mm, scaled=True, seed=fx["reset_seed"])
    msd = mm.state_dict()
    for pre, _ in wrapped_linears(mm):
        merged[pre + ".weight"] = msd[pre + ".weight"].clone()
    with torch.no_grad():
        _, mlog = lm_loss(mm, ids)
    merged["merged_logits"] = mlog
    mq = copy_model(model32, dtype)
    merge_all(mq, scaled=False, seed=fx["reset_seed"])
    qsd = mq.state_dict()
    for pre, _ in wrapped_linears(mq):
        merged["merged_noscale." + pre + ".weight"] = qsd[pre + ".weight"].clone()
    # the merged model has B = 0, so only the folded W matters
    assert all(m.B_lora.weight.abs().max().item() == 0 for _, m in wrapped_linears(mm))
    return exp, merged


def generate(out_root):
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    fx = RELORA_MINI
    cfg, rcfg = fx["config"], fx["relora"]
    s = rcfg["lora_alpha"] / rcfg["r"]
    d = os.path.join(out_root, "relora_mini")
    os.makedirs(d, exist_ok=True)
    model = build_relora_model(fx)
    ids = make_batch(cfg, fx["batch"], fx["seq"], fx["data_seed"])
    assert ids.shape == (2, 10) and fx["seq"] <= cfg["max_seq_len"]

    meta = {
        "generator": "tests/reference/relora_reference.py",
        "torch_version": torch.__version__,
        "init_seed": str(fx["init_seed"]),
        "data_seed": str(fx["data_seed"]),
        "lora_seed": str(fx["lora_seed"]),
        "reset_seed": str(fx["reset_seed"]),
        "b_init": f"U(-{fx['b_init_bound']}, {fx['b_init_bound']})",
        "batch": str(fx["batch"]),
        "seq_len": str(fx["seq"]),
        "lora_scale": str(s),
    }
    file_meta = {"fixture": json.dumps(meta, sort_keys=True)}
    with open(os.path.join(d, "config.json"), "w") as f:
        c = {k: cfg[k] for k in CONFIG_KEYS}
        c["relora"] = dict(rcfg)
        json.dump(c, f, indent=2)
        f.write("\n")
    state = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(d, "model.safetensors"), metadata=file_meta)
    save_file({"input_ids": ids.contiguous()}, os.path.join(d, "batch.safetensors"), metadata=file_meta)

    exp, merged = compute_expected(model, ids, torch.float64)
    exp32, merged32 = compute_expected(model, ids, torch.float32)
    exp_meta = dict(meta, compute_dtype="float64", lora_dropout="0.0 (off)")
    save_file({k: v.float().contiguous() for k, v in exp.items()}, os.path.join(d, "expected.safetensors"),
              metadata={"fixture": json.dumps(exp_meta, sort_keys=True)})
    mer_meta = dict(exp_meta, merge="W + s*B@A (names as base); merged_noscale.*: W + B@A (reference quirk); "
                    "merged_logits: merged model with B = 0")
    save_file({k: v.float().contiguous() for k, v in merged.items()}, os.path.join(d, "merged.safetensors"),
              metadata={"fixture": json.dumps(mer_meta, sort_keys=True)})

    # ---- verify by reloading
    m2 = load_file(os.path.join(d, "model.safetensors"))
    b2 = load_file(os.path.join(d, "batch.safetensors"))
    e2 = load_file(os.path.join(d, "expected.safetensors"))
    g2 = load_file(os.path.join(d, "merged.safetensors"))
    assert set(m2) == set(state) and all(m2[k].dtype == torch.float32 and torch.equal(m2[k], state[k]) for k in state)
    assert b2["input_ids"].dtype == torch.int64 and torch.equal(b2["input_ids"], ids)
    assert e2["loss"].shape == torch.Size([]) and e2["logits"].shape == (fx["batch"], fx["seq"], cfg["vocab_size"])
    lin = [pre for pre, _ in wrapped_linears(model)]
    frozen = {pre + ".weight" for pre in lin}
    want_grads = {"grad." + k for k in state if k not in frozen}
    got_grads = {k for k in e2 if k.startswith("grad.")}
    assert got_grads == want_grads, sorted(got_grads ^ want_grads)
    for k in want_grads:
        assert e2[k].shape == state[k[5:]].shape
    assert set(g2) == frozen | {"merged_noscale." + k for k in frozen} | {"merged_logits"}

    # rebuild from the files alone
    cfg2 = json.load(open(os.path.join(d, "config.json")))
    rcfg2 = cfg2.pop("relora")
    m3 = relora_skeleton(cfg2, rcfg2)
    m3.load_state_dict({k: v.double() for k, v in m2.items()})
    l3, lg3 = lm_loss(m3, b2["input_ids"])
    assert abs(l3.item() - e2["loss"].item()) < 1e-5
    assert (lg3.float() - e2["logits"]).abs().max().item() < 1e-4

    # merge in numpy float64 from the stored f32 files
    s2 = rcfg2["lora_alpha"] / rcfg2["r"]
    merr = max(
        np.abs(g2[k].double().numpy() - (m2[k].double().numpy() + s2 * m2[k[:-7] + ".B_lora.weight"].double().numpy()
                                         @ m2[k[:-7] + ".A_lora.weight"].double().numpy())).max()
        for k in frozen
    )
    qerr = max(
        np.abs(g2["merged_noscale." + k].double().numpy() - (m2[k].double().numpy() + m2[k[:-7] + ".B_lora.weight"].double().numpy()
                                                             @ m2[k[:-7] + ".A_lora.weight"].double().numpy())).max()
        for k in frozen
    )
    assert merr < 1e-6 and qerr < 1e-6, (merr, qerr)
    # merged_logits must equal logits (up to f32 rounding): s*B@A was folded into W
    ml_vs_l = (g2["merged_logits"].double() - e2["logits"].double()).abs().max().item()
    assert ml_vs_l < 1e-5, ml_vs_l
    # a plain pico-decoder built from the STORED f32 merged weights (the B = 0 model)
    plain_sd = {k: (g2[k] if k in frozen else v).double() for k, v in m2.items() if "_lora" not in k}
    plain = PicoDecoder(cfg2).double()
    plain.load_state_dict(plain_sd)
    _, lg_plain = lm_loss(plain, b2["input_ids"])
    stored_merge_vs = (lg_plain - g2["merged_logits"].double()).abs().max().item()
    assert stored_merge_vs < 1e-5, stored_merge_vs
    # the quirk merge gives different logits
    qsd = {k: (g2["merged_noscale." + k] if k in frozen else v).double() for k, v in m2.items() if "_lora" not in k}
    plain.load_state_dict(qsd)
    _, lg_q = lm_loss(plain, b2["input_ids"])
    quirk_diff = (lg_q - e2["logits"].double()).abs().max().item()
    assert quirk_diff > 1e-4
    # with B = 0 and no merge the model is pico_mini: its logits differ from ours (B != 0 matters)
    b0_diff = (lm_loss(build_model(cfg, fx["init_seed"]).double(), ids)[1] - e2["logits"].double()).abs().max().item()

    def rel(a, b):
        return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()

    gerr = max(rel(exp32[k], exp[k]) for k in exp if k.startswith("grad."))
    gabs = max((exp32[k].double() - exp[k].double()).abs().max().item() for k in exp if k.startswith("grad."))
    lerr = (exp32["logits"].double() - exp["logits"].double()).abs().max().item()
    mwerr = max((merged32[k].double() - merged[k].double()).abs().max().item() for k in merged if k != "merged_logits")
    mlerr = (merged32["merged_logits"].double() - merged["merged_logits"].double()).abs().max().item()
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}

    n_tr = sum(p.numel() for _, p in trainable(model))
    n_all = sum(p.numel() for p in model.parameters())
    print(f"relora_mini: written to {d} and verified by reloading")
    print(f"  lora scale s    {s}   trainable/total params {n_tr}/{n_all}")
    print(f"  loss            {exp['loss'].item():.7f}   (ln V = {math.log(cfg['vocab_size']):.7f}; f32 run {exp32['loss'].item():.7f})")
    print(f"  |merged_logits - logits| max            {ml_vs_l:.2e}  (stored f32 values)")
    print(f"  |plain(stored merged W) - merged_logits| {stored_merge_vs:.2e}")
    print(f"  |noscale-merged logits - logits| max    {quirk_diff:.2e}  (quirk merge differs)")
    print(f"  |pico_mini logits (B=0) - logits| max   {b0_diff:.2e}  (LoRA branch matters)")
    print(f"  numpy merge from stored files: corrected {merr:.2e}, quirk {qerr:.2e}")
    print(f"  f32 vs float64: logits max abs {lerr:.2e}, grad max rel {gerr:.2e}, grad max abs {gabs:.2e}, "
          f"merged W max abs {mwerr:.2e}, merged_logits max abs {mlerr:.2e}")
    for k in sorted(exp):
        if k.startswith("grad."):
            print(f"    {k:45s} {tuple(exp[k].shape)!s:10s} max|g| {exp[k].abs().max().item():.3e}")
    print("  files           " + ", ".join(f"{f} {sz} B" for f, sz in sizes.items()) + f"  (total {sum(sizes.values())} B)")


def main():
    repo_root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo_root, "tests", "fixtures"), help="fixture root directory")
    ap.add_argument("--check", action="store_true", help="run the self-tests only (no files written)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    passed = self_test()
    if args.check or not passed:
        sys.exit(0 if passed else 1)
    generate(args.out)


if __name__ == "__main__":
    main()
