#!/usr/bin/env python3
"""The PyTorch baseline for `wgbench step`: one pico-decoder training micro-step
(forward + backward, no optimizer) on the same preset and batch shape, timed on the
CPU (or CUDA with --device cuda). Run it beside `wgbench step` on the same machine:

    python tests/reference/bench_step.py --config tiny --batch 4 --seq 128
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from pico_reference import build_model, lm_loss, make_batch  # noqa: E402

PRESETS = {  # d_model, hidden (spec section 1); 12 layers, 12 / 4 heads, vocab 50304
    "tiny": (96, 384),
    "small": (384, 1536),
    "medium": (768, 3072),
    "large": (1536, 6144),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny", choices=PRESETS)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    d, hidden = PRESETS[args.config]
    cfg = dict(d_model=d, n_layers=12, vocab_size=50304, attention_n_heads=12,
               attention_n_kv_heads=4, activation_hidden_dim=hidden, max_seq_len=2048,
               norm_eps=1e-6, position_emb_theta=10000.0)
    model = build_model(cfg, 0).to(args.device)
    ids = make_batch(cfg, args.batch, args.seq, 1).to(args.device)

    def step():
        model.zero_grad(set_to_none=False)
        loss, _ = lm_loss(model, ids)
        loss.backward()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return loss.item()

    step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / args.steps
    print(f"PyTorch {torch.__version__} on {args.device} ({torch.get_num_threads()} threads): "
          f"pico-decoder {args.config}, micro-batch {args.batch} x {args.seq}: "
          f"{dt * 1e3:.1f} ms/step, {args.batch * args.seq / dt:.0f} tokens/s, loss {loss:.4f}")


if __name__ == "__main__":
    main()
