#!/usr/bin/env python3
"""PyTorch reference implementation of pico-decoder and fixture generator.

Written from the project spec (shared/spec/pico-relora.md, sections 1 and 2),
not copied from the pico-lm code. It produces small, committed fixtures that the
Rust runtime (wgtrain) is tested against: initial weights, a batch of token ids,
and the expected loss, logits, gradients and a short AdamW trajectory.

Usage (from the repository root):

    python tests/reference/pico_reference.py            # write all fixtures
    python tests/reference/pico_reference.py --check    # independent self-tests only

Needs: torch, safetensors, numpy (CPU is enough).

Model facts implemented here:
  * pre-norm Llama-style decoder, no biases:
      h = x + Attn(RMSNorm_attn(x)); out = h + SwiGLU(RMSNorm_ffn(h))
    then final RMSNorm `output_norm` and untied output projection
    `de_embedding_proj` [V, d] applied as x @ W^T.
  * RMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight, eps = 1e-6.
  * RoPE, theta 10000, whole head_dim, INTERLEAVED pairs (0,1),(2,3),...
    rotated as complex numbers, f_i = theta^(-2i/head_dim), position p = 0..T-1,
    applied to q and k after splitting heads.
  * causal grouped-query attention: query head h uses kv head h // (H / KV);
    scale 1/sqrt(head_dim).
  * SwiGLU: w_2(silu(w_0 x) * w_1 x).
  * loss: inputs = ids[:, :-1], labels = ids[:, 1:], mean token cross-entropy.
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

# --------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------

NORM_EPS = 1e-6
ROPE_THETA = 10000.0

ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW_STEPS = 4

FIXTURES = {
    "pico_mini": dict(
        config=dict(
            d_model=32,
            n_layers=2,
            vocab_size=97,
            attention_n_heads=4,
            attention_n_kv_heads=2,
            activation_hidden_dim=64,
            max_seq_len=16,
            norm_eps=NORM_EPS,
            position_emb_theta=ROPE_THETA,
        ),
        batch=2,
        seq=9,
        init_seed=1234,
        data_seed=5678,
        store_adamw_final=True,
    ),
    "pico_tiny_shape": dict(
        config=dict(
            d_model=96,
            n_layers=1,
            vocab_size=256,
            attention_n_heads=12,
            attention_n_kv_heads=4,
            activation_hidden_dim=384,
            max_seq_len=32,
            norm_eps=NORM_EPS,
            position_emb_theta=ROPE_THETA,
        ),
        batch=1,
        seq=16,
        init_seed=4321,
        data_seed=8765,
        # adamw_final (another full copy of the weights, ~740 kB) is left out
        # here to keep the committed fixtures small; adamw_losses is kept.
        store_adamw_final=False,
    ),
}

CONFIG_KEYS = [
    "d_model",
    "n_layers",
    "vocab_size",
    "attention_n_heads",
    "attention_n_kv_heads",
    "activation_hidden_dim",
    "max_seq_len",
    "norm_eps",
    "position_emb_theta",
]

# --------------------------------------------------------------------------
# Torch model
# --------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(seq_len, head_dim, theta, dtype):
    """[seq_len, head_dim/2] angles p * theta^(-2i/head_dim)."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    freqs = theta ** (-2.0 * i / head_dim)
    pos = torch.arange(seq_len, dtype=torch.float64)
    return torch.outer(pos, freqs).to(dtype)


def apply_rope_interleaved(x, angles):
    """x: [B, T, H, hd]; rotate (x[2i], x[2i+1]) by angles[t, i]."""
    B, T, H, hd = x.shape
    xr = x.reshape(B, T, H, hd // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    cos = angles.cos()[None, :, None, :]
    sin = angles.sin()[None, :, None, :]
    o0 = x0 * cos - x1 * sin
    o1 = x0 * sin + x1 * cos
    return torch.stack([o0, o1], dim=-1).reshape(B, T, H, hd)


def apply_rope_rotate_half(x, angles):
    """The HF-Llama (NOT used) layout; only for the self-test's negative check."""
    hd = x.shape[-1]
    x0, x1 = x[..., : hd // 2], x[..., hd // 2 :]
    cos = angles.cos()[None, :, None, :]
    sin = angles.sin()[None, :, None, :]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.n_heads = cfg["attention_n_heads"]
        self.n_kv = cfg["attention_n_kv_heads"]
        assert d % self.n_heads == 0 and self.n_heads % self.n_kv == 0
        self.hd = d // self.n_heads
        self.theta = cfg["position_emb_theta"]
        self.q_proj = nn.Linear(d, self.n_heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.hd, d, bias=False)

    def forward(self, x, rope=apply_rope_interleaved):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.hd)
        k = self.k_proj(x).view(B, T, self.n_kv, self.hd)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hd)
        ang = rope_angles(T, self.hd, self.theta, x.dtype)
        q = rope(q, ang)
        k = rope(k, ang)
        g = self.n_heads // self.n_kv
        # query head h -> kv head h // g (consecutive query heads share a kv head)
        k = k.repeat_interleave(g, dim=2)
        v = v.repeat_interleave(g, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        p = scores.softmax(-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, self.n_heads * self.hd)
        return self.o_proj(o)


class SwiGLU(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h = cfg["d_model"], cfg["activation_hidden_dim"]
        self.w_0 = nn.Linear(d, h, bias=False)
        self.w_1 = nn.Linear(d, h, bias=False)
        self.w_2 = nn.Linear(h, d, bias=False)

    def forward(self, x):
        return self.w_2(F.silu(self.w_0(x)) * self.w_1(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.attention = Attention(cfg)
        self.swiglu_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.swiglu = SwiGLU(cfg)

    def forward(self, x, trace=None, rope=apply_rope_interleaved):
        a = self.attention(self.attention_norm(x), rope=rope)
        if trace is not None:
            trace.append(a)
        h = x + a
        return h + self.swiglu(self.swiglu_norm(h))


class PicoDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embedding_proj = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layers"])])
        self.output_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.de_embedding_proj = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)

    def forward(self, input_ids, trace=None, rope=apply_rope_interleaved):
        assert input_ids.shape[1] <= self.cfg["max_seq_len"]
        x = self.embedding_proj(input_ids)
        for layer in self.layers:
            x = layer(x, trace=trace, rope=rope)
        x = self.output_norm(x)
        return self.de_embedding_proj(x)  # logits (fp32 or fp64, never lower)


def lm_loss(model, ids, **kw):
    inputs, labels = ids[:, :-1], ids[:, 1:]
    logits = model(inputs, **kw)
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
    return loss, logits


def build_model(cfg, seed):
    """PyTorch default init (Linear: U(+-1/sqrt(fan_in)), Embedding: N(0,1),
    norms: ones), f32, with a fixed seed."""
    torch.manual_seed(seed)
    return PicoDecoder(cfg).float()


def make_batch(cfg, batch, seq, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch, seq + 1), generator=g, dtype=torch.int64)


# --------------------------------------------------------------------------
# Independent NumPy float64 reference (naive loops) for the self-test
# --------------------------------------------------------------------------


def np_rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def np_rope_loop(x, theta):
    """x: [T, hd] for one head; explicit per-pair complex rotation."""
    T, hd = x.shape
    out = np.empty_like(x)
    for p in range(T):
        for i in range(hd // 2):
            ang = p * theta ** (-2.0 * i / hd)
            c, s = math.cos(ang), math.sin(ang)
            z = complex(x[p, 2 * i], x[p, 2 * i + 1]) * complex(c, s)
            out[p, 2 * i], out[p, 2 * i + 1] = z.real, z.imag
    return out


def np_forward(sd, cfg, ids, kv_map=None):
    """Naive float64 forward. sd: dict name -> float64 ndarray; ids: [B, T].
    kv_map(h, H, KV) -> kv head of query head h (default h // (H / KV)).
    Returns (logits [B,T,V], list of per-layer attention outputs [B,T,d])."""
    d = cfg["d_model"]
    H, KV = cfg["attention_n_heads"], cfg["attention_n_kv_heads"]
    hd = d // H
    group = H // KV
    eps, theta = cfg["norm_eps"], cfg["position_emb_theta"]
    B, T = ids.shape
    x = sd["embedding_proj.weight"][ids]  # [B, T, d]
    attn_outs = []
    silu = lambda z: z / (1.0 + np.exp(-z))
    for li in range(cfg["n_layers"]):
        p = f"layers.{li}."
        xn = np_rmsnorm(x, sd[p + "attention_norm.weight"], eps)
        q = xn @ sd[p + "attention.q_proj.weight"].T
        k = xn @ sd[p + "attention.k_proj.weight"].T
        v = xn @ sd[p + "attention.v_proj.weight"].T
        heads_out = np.zeros((B, T, H * hd))
        for b in range(B):
            kr = [np_rope_loop(k[b, :, j * hd:(j + 1) * hd], theta) for j in range(KV)]
            for h in range(H):
                # the kv head serving query head h
                j = h // group if kv_map is None else kv_map(h, H, KV)
                qh = np_rope_loop(q[b, :, h * hd:(h + 1) * hd], theta)
                vh = v[b, :, j * hd:(j + 1) * hd]
                for t in range(T):
                    s = np.array([qh[t] @ kr[j][u] / math.sqrt(hd) for u in range(t + 1)])
                    w = np.exp(s - s.max())
                    w /= w.sum()
                    acc = np.zeros(hd)
                    for u in range(t + 1):
                        acc += w[u] * vh[u]
                    heads_out[b, t, h * hd:(h + 1) * hd] = acc
        a = heads_out @ sd[p + "attention.o_proj.weight"].T
        attn_outs.append(a)
        h_ = x + a
        hn = np_rmsnorm(h_, sd[p + "swiglu_norm.weight"], eps)
        f = (silu(hn @ sd[p + "swiglu.w_0.weight"].T) * (hn @ sd[p + "swiglu.w_1.weight"].T)) @ sd[
            p + "swiglu.w_2.weight"
        ].T
        x = h_ + f
    x = np_rmsnorm(x, sd["output_norm.weight"], eps)
    return x @ sd["de_embedding_proj.weight"].T, attn_outs


def np_ce(logits, labels):
    V = logits.shape[-1]
    lg = logits.reshape(-1, V)
    lab = labels.reshape(-1)
    m = lg.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - lg[np.arange(lg.shape[0]), lab]))


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------


def _check(name, ok, detail):
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def self_test():
    all_ok = True
    print("self-test (torch vs independent NumPy float64 loops)")

    # 1. RoPE interleaving on one head, vs an explicit loop.
    torch.manual_seed(0)
    hd, T = 8, 11
    x = torch.randn(1, T, 1, hd, dtype=torch.float64)
    got = apply_rope_interleaved(x, rope_angles(T, hd, ROPE_THETA, torch.float64))[0, :, 0].numpy()
    want = np_rope_loop(x[0, :, 0].numpy(), ROPE_THETA)
    err = np.abs(got - want).max()
    all_ok &= _check("rope interleaved == numpy loop", err < 1e-12, f"max abs err {err:.2e}")
    other = apply_rope_rotate_half(x, rope_angles(T, hd, ROPE_THETA, torch.float64))[0, :, 0].numpy()
    diff = np.abs(other - want).max()
    all_ok &= _check("rotate-half layout differs (test discriminates)", diff > 1e-3, f"max abs diff {diff:.2e}")
    # position 0 is the identity, position 1 pair 0 rotates by exactly 1 rad
    all_ok &= _check("rope pos 0 identity", np.allclose(got[0], x[0, 0, 0].numpy()), "")

    for fname in ("pico_mini", "pico_tiny_shape"):
        fx = FIXTURES[fname]
        cfg = fx["config"]
        model = build_model(cfg, fx["init_seed"]).double()
        ids = make_batch(cfg, fx["batch"], fx["seq"], fx["data_seed"])
        sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}

        # 2. Full forward, attention outputs (GQA mapping + causal mask + RoPE) and loss.
        trace = []
        loss, logits = lm_loss(model, ids, trace=trace)
        np_logits, np_attn = np_forward(sd, cfg, ids[:, :-1].numpy())
        for li, (ta, na) in enumerate(zip(trace, np_attn)):
            e = np.abs(ta.detach().numpy() - na).max()
            all_ok &= _check(f"{fname} layer {li} attention output (GQA) == numpy loop", e < 1e-10, f"max abs err {e:.2e}")
        e = np.abs(logits.detach().numpy() - np_logits).max()
        all_ok &= _check(f"{fname} logits == numpy loop", e < 1e-10, f"max abs err {e:.2e}")
        np_loss = np_ce(np_logits, ids[:, 1:].numpy())
        e = abs(loss.item() - np_loss)
        all_ok &= _check(f"{fname} loss == numpy", e < 1e-10, f"torch {loss.item():.12f} numpy {np_loss:.12f}")

        # Negative controls: the strided GQA map (kv head h % KV) and rotate-half RoPE
        # must give different logits, so the checks above do discriminate.
        if cfg["attention_n_kv_heads"] > 1:
            wrong, _ = np_forward(sd, cfg, ids[:, :-1].numpy(), kv_map=lambda h, H, KV: h % KV)
            d_ = np.abs(wrong - np_logits).max()
            all_ok &= _check(f"{fname} wrong GQA map changes logits (test discriminates)", d_ > 1e-4, f"max abs diff {d_:.2e}")
        _, logits_rh = lm_loss(model, ids, rope=apply_rope_rotate_half)
        d_ = (logits_rh - logits).abs().max().item()
        all_ok &= _check(f"{fname} rotate-half RoPE changes logits", d_ > 1e-4, f"max abs diff {d_:.2e}")

        # 3. Gradients vs central finite differences (float64), a few entries per parameter.
        model.zero_grad()
        loss, _ = lm_loss(model, ids)
        loss.backward()
        rng = np.random.default_rng(0)
        worst = 0.0
        with torch.no_grad():
            for n, p in model.named_parameters():
                flat = p.view(-1)
                gflat = p.grad.view(-1)
                # for embedding, pick rows that occur in the inputs so grads are non-zero
                cand = np.arange(flat.numel())
                if n == "embedding_proj.weight":
                    rows = np.unique(ids[:, :-1].numpy())
                    dm = p.shape[1]
                    cand = (rows[:, None] * dm + np.arange(dm)[None, :]).reshape(-1)
                for idx in rng.choice(cand, size=3, replace=False):
                    idx = int(idx)
                    old = flat[idx].item()
                    h = 1e-5
                    flat[idx] = old + h
                    lp = lm_loss(model, ids)[0].item()
                    flat[idx] = old - h
                    lm = lm_loss(model, ids)[0].item()
                    flat[idx] = old
                    fd = (lp - lm) / (2 * h)
                    an = gflat[idx].item()
                    # error relative to (|grad| + 1e-4): pure relative error is
                    # meaningless for entries whose gradient is ~0.
                    worst = max(worst, abs(fd - an) / (abs(an) + 1e-4))
        all_ok &= _check(
            f"{fname} grads == finite differences", worst < 1e-5, f"worst |fd - grad| / (|grad| + 1e-4) {worst:.2e}"
        )

        # 4. AdamW: torch.optim.AdamW vs hand-written decoupled AdamW.
        m_a = build_model(cfg, fx["init_seed"]).double()
        m_b = build_model(cfg, fx["init_seed"]).double()
        opt = torch.optim.AdamW(m_a.parameters(), **ADAMW)
        st = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in m_b.named_parameters()}
        lr, (b1, b2), eps, wd = ADAMW["lr"], ADAMW["betas"], ADAMW["eps"], ADAMW["weight_decay"]
        for t in range(1, ADAMW_STEPS + 1):
            opt.zero_grad()
            lm_loss(m_a, ids)[0].backward()
            opt.step()
            m_b.zero_grad()
            lm_loss(m_b, ids)[0].backward()
            with torch.no_grad():
                for n, p in m_b.named_parameters():
                    m, v = st[n]
                    g = p.grad
                    p.mul_(1 - lr * wd)
                    m.mul_(b1).add_((1 - b1) * g)
                    v.mul_(b2).add_((1 - b2) * g * g)
                    mhat = m / (1 - b1**t)
                    vhat = v / (1 - b2**t)
                    p.sub_(lr * mhat / (vhat.sqrt() + eps))
        e = max((pa - pb).abs().max().item() for pa, pb in zip(m_a.parameters(), m_b.parameters()))
        all_ok &= _check(f"{fname} torch AdamW == manual AdamW", e < 1e-12, f"max abs err {e:.2e}")

    print("self-test:", "PASSED" if all_ok else "FAILED")
    return all_ok


# --------------------------------------------------------------------------
# Fixture generation
# --------------------------------------------------------------------------


def compute_expected(model32, ids, dtype, store_final):
    """Loss, logits, grads and AdamW trajectory, computed in `dtype`."""
    model = PicoDecoder(model32.cfg)
    model.load_state_dict(model32.state_dict())
    model = model.to(dtype)
    model.zero_grad()
    loss, logits = lm_loss(model, ids)
    loss.backward()
    out = {"loss": loss.detach().reshape(()), "logits": logits.detach()}
    for n, p in model.named_parameters():
        out["grad." + n] = p.grad.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), **ADAMW)
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        l, _ = lm_loss(model, ids)
        losses.append(l.detach())
        l.backward()
        opt.step()
    out["adamw_losses"] = torch.stack(losses)
    if store_final:
        for n, p in model.named_parameters():
            out["adamw_final." + n] = p.detach().clone()
    return out


def generate(out_root, names, compute_dtype):
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    summary = {}
    for name in names:
        fx = FIXTURES[name]
        cfg = fx["config"]
        d = os.path.join(out_root, name)
        os.makedirs(d, exist_ok=True)
        model = build_model(cfg, fx["init_seed"])
        ids = make_batch(cfg, fx["batch"], fx["seq"], fx["data_seed"])
        assert fx["seq"] <= cfg["max_seq_len"]

        meta = {
            "generator": "tests/reference/pico_reference.py",
            "torch_version": torch.__version__,
            "init_seed": str(fx["init_seed"]),
            "data_seed": str(fx["data_seed"]),
            "batch": str(fx["batch"]),
            "seq_len": str(fx["seq"]),
        }
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({k: cfg[k] for k in CONFIG_KEYS}, f, indent=2)
            f.write("\n")
        state = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
        # One metadata key holding sorted JSON: safetensors writes several keys in
        # hash order, which would make the files differ from run to run.
        file_meta = {"fixture": json.dumps(meta, sort_keys=True)}
        save_file(state, os.path.join(d, "model.safetensors"), metadata=file_meta)
        save_file({"input_ids": ids.contiguous()}, os.path.join(d, "batch.safetensors"), metadata=file_meta)

        exp = compute_expected(model, ids, compute_dtype, fx["store_adamw_final"])
        exp32 = compute_expected(model, ids, torch.float32, fx["store_adamw_final"])
        exp_meta = dict(
            meta,
            compute_dtype=str(compute_dtype).replace("torch.", ""),
            adamw=dict(ADAMW, steps=ADAMW_STEPS, schedule="constant", grad_clip=None),
        )
        save_file(
            {k: v.float().contiguous() for k, v in exp.items()},
            os.path.join(d, "expected.safetensors"),
            metadata={"fixture": json.dumps(exp_meta, sort_keys=True)},
        )

        # Verify by reloading.
        m2 = load_file(os.path.join(d, "model.safetensors"))
        b2 = load_file(os.path.join(d, "batch.safetensors"))
        e2 = load_file(os.path.join(d, "expected.safetensors"))
        assert set(m2) == set(state) and all(torch.equal(m2[k], state[k]) for k in state)
        assert b2["input_ids"].dtype == torch.int64 and torch.equal(b2["input_ids"], ids)
        assert e2["loss"].shape == torch.Size([])
        for k in state:
            assert ("grad." + k) in e2 and e2["grad." + k].shape == state[k].shape
            if fx["store_adamw_final"]:
                assert e2["adamw_final." + k].shape == state[k].shape
        # Rebuild a model from the files alone and recompute the loss.
        cfg2 = json.load(open(os.path.join(d, "config.json")))
        m3 = PicoDecoder(cfg2).double()
        m3.load_state_dict({k: v.double() for k, v in m2.items()})
        l3, lg3 = lm_loss(m3, b2["input_ids"])
        assert abs(l3.item() - e2["loss"].item()) < 1e-5, (l3.item(), e2["loss"].item())
        assert (lg3.float() - e2["logits"]).abs().max().item() < 1e-4
        assert abs(e2["adamw_losses"][0].item() - e2["loss"].item()) < 1e-6

        # f32 vs the stored (compute_dtype) values: tells the Rust side which tolerances are realistic.
        def rel(a, b):
            return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()

        gerr = max(rel(exp32["grad." + k], exp["grad." + k]) for k in state)
        ferr = (
            max(rel(exp32["adamw_final." + k], exp["adamw_final." + k]) for k in state)
            if fx["store_adamw_final"]
            else float("nan")
        )
        sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
        summary[name] = dict(
            loss=exp["loss"].item(),
            adamw_losses=[x.item() for x in exp["adamw_losses"]],
            f32_loss=exp32["loss"].item(),
            f32_vs_ref_logits_max_abs=(exp32["logits"].double() - exp["logits"].double()).abs().max().item(),
            f32_vs_ref_grad_max_rel=gerr,
            f32_vs_ref_adamw_final_max_rel=ferr,
            f32_adamw_losses=[x.item() for x in exp32["adamw_losses"]],
            sizes=sizes,
        )
        print(f"{name}: written to {d} and verified by reloading")
        print(f"  loss            {exp['loss'].item():.7f}   (ln V = {math.log(cfg['vocab_size']):.7f})")
        print("  adamw_losses    " + " ".join(f"{x.item():.7f}" for x in exp["adamw_losses"]))
        print("  f32 run losses  " + " ".join(f"{x.item():.7f}" for x in exp32["adamw_losses"]))
        print(
            f"  f32 vs {exp_meta['compute_dtype']}: logits max abs {summary[name]['f32_vs_ref_logits_max_abs']:.2e}, "
            f"grad max rel {gerr:.2e}, adamw_final max rel "
            + (f"{ferr:.2e}" if fx["store_adamw_final"] else "n/a (not stored)")
        )
        print("  files           " + ", ".join(f"{f} {s} B" for f, s in sizes.items()))
    return summary


def main():
    repo_root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo_root, "tests", "fixtures"), help="fixture root directory")
    ap.add_argument("--only", choices=sorted(FIXTURES), action="append", help="generate only this fixture (repeatable)")
    ap.add_argument("--check", action="store_true", help="run the independent self-tests only (no files written)")
    ap.add_argument(
        "--compute-dtype",
        choices=["float64", "float32"],
        default="float64",
        help="dtype of the expected-values computation (stored as f32 either way; default float64)",
    )
    args = ap.parse_args()
    if args.check:
        sys.exit(0 if self_test() else 1)
    dtype = torch.float64 if args.compute_dtype == "float64" else torch.float32
    generate(args.out, args.only or list(FIXTURES), dtype)


if __name__ == "__main__":
    main()
