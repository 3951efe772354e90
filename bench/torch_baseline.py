#!/usr/bin/env python3
"""The PyTorch baseline that `wgbench suite` runs in the same run as its own entries.

    python bench/torch_baseline.py SPEC.json OUT.json

SPEC.json (written by the suite) lists the matmul products (M, K, N and which operand is
transposed) and the pico-decoder training steps (model config, batch, seq) to time, and the
number of timed repeats. Each is timed after one warm-up run; the median is written.

Lines measured: `pytorch cpu` (fp32) when no CUDA device is visible; on CUDA,
`pytorch cuda fp32` (TF32 off, so it is the same fp32 arithmetic as ours) and
`pytorch cuda bf16 autocast` (the mixed precision a PyTorch user would reach for).

A training step is the same work as the suite's: zero the gradients, forward, mean
cross-entropy, backward, one AdamW update (lr 1e-3, weight decay 0.01).
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pico_reference import build_model, lm_loss, make_batch  # noqa: E402


def median_seconds(run, repeats, sync):
    run()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def time_matmuls(cases, repeats, device, dtype_ctx, sync):
    out = {}
    g = torch.Generator().manual_seed(1)
    for c in cases:
        m, k, n = c["m"], c["k"], c["n"]
        a = torch.rand((k, m) if c["trans_a"] else (m, k), generator=g).to(device) - 0.5
        b = torch.rand((n, k) if c["trans_b"] else (k, n), generator=g).to(device) - 0.5
        a_op = a.t() if c["trans_a"] else a
        b_op = b.t() if c["trans_b"] else b

        def run():
            with dtype_ctx():
                torch.matmul(a_op, b_op)

        out[c["label"]] = median_seconds(run, repeats, sync)
    return out


def time_steps(cases, repeats, device, dtype_ctx, sync):
    out = {}
    for c in cases:
        cfg = c["config"]
        model = build_model(cfg, 0).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        ids = make_batch(cfg, c["batch"], c["seq"], 1).to(device)

        def run():
            opt.zero_grad(set_to_none=False)
            with dtype_ctx():
                loss, _ = lm_loss(model, ids)
            loss.backward()
            opt.step()

        out[c["label"]] = median_seconds(run, repeats, sync)
        del model, opt
    return out


class NoAutocast:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    repeats = spec["repeats"]
    lines = []
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize
        name = torch.cuda.get_device_name(0)
        setups = [
            ("pytorch cuda fp32", f"PyTorch {torch.__version__}, {name}, fp32, TF32 off", NoAutocast),
            ("pytorch cuda bf16 autocast", f"PyTorch {torch.__version__}, {name}, bf16 autocast",
             lambda: torch.autocast("cuda", dtype=torch.bfloat16)),
        ]
        device = "cuda"
    else:
        sync = lambda: None  # noqa: E731
        setups = [("pytorch cpu",
                   f"PyTorch {torch.__version__}, CPU, {torch.get_num_threads()} threads, fp32",
                   NoAutocast)]
        device = "cpu"
    for line, detail, ctx in setups:
        lines.append({
            "name": line,
            "detail": detail,
            "matmul": time_matmuls(spec["matmul"], repeats, device, ctx, sync),
            "steps": time_steps(spec["steps"], repeats, device, ctx, sync),
        })
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"lines": lines}, f)
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main()
