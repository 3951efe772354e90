#!/usr/bin/env python3
"""Load a `wgtrain export --hf` directory into the PyTorch reference model and compare its
logits with the ones wgtrain computed.

The export is read the way pico-train's Hugging Face wrapper holds it: config.json must say
`model_type: "pico_decoder"`, and every tensor of model.safetensors must be named
`pico_decoder.<pico name>`. The prefix is removed and the state dict is loaded, strictly,
into `pico_reference.PicoDecoder` (the independent implementation in this directory).

The token ids come from a batch file, `input_ids` [B, T+1] (the one `wgtrain grads` reads);
the model runs on `input_ids[:, :-1]`. wgtrain's logits come from the file `wgtrain grads`
writes (`logits` [B, T, V], `loss`):

    python tests/reference/load_hf_export.py --write-batch batch.safetensors --ids 1,5,9,...
    wgtrain grads --checkpoint EXPORT --batch batch.safetensors --out wgtrain.safetensors
    python tests/reference/load_hf_export.py EXPORT --batch batch.safetensors \\
        --logits wgtrain.safetensors [--tol 1e-3]

It prints the largest absolute logit difference (and the loss of each side) and exits with
status 1 when the difference is above --tol, 2 when the export is not pico's layout.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pico_reference  # noqa: E402

PREFIX = "pico_decoder."


def fail(message, status=2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def load_export(directory):
    """The reference model holding the export's weights, in float64."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") != "pico_decoder":
        fail(f"config.json has model_type {config.get('model_type')!r}, not 'pico_decoder'")
    missing = [k for k in pico_reference.CONFIG_KEYS if k not in config]
    if missing:
        fail(f"config.json lacks pico's model keys {missing}")
    cfg = {k: config[k] for k in pico_reference.CONFIG_KEYS}

    weights = load_file(os.path.join(directory, "model.safetensors"))
    unprefixed = sorted(n for n in weights if not n.startswith(PREFIX))
    if unprefixed:
        fail(f"{len(unprefixed)} tensors lack the {PREFIX!r} prefix, e.g. {unprefixed[0]!r}")
    state = {n[len(PREFIX):]: t for n, t in weights.items()}

    model = pico_reference.PicoDecoder(cfg)
    try:
        model.load_state_dict(state, strict=True)  # every parameter, nothing else
    except RuntimeError as e:
        fail(f"the weights do not match pico's parameters for this config: {e}")
    return model.double().eval(), cfg


def write_batch(path, ids):
    t = torch.tensor([ids], dtype=torch.int64)
    if t.shape[1] < 2:
        fail("--ids needs at least 2 token ids (inputs and the next-token labels)")
    save_file({"input_ids": t}, path)
    print(f"wrote input_ids {list(t.shape)} to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", nargs="?", help="directory written by `wgtrain export --hf`")
    ap.add_argument("--batch", help="safetensors file with input_ids [B, T+1]")
    ap.add_argument("--logits", help="wgtrain's output: safetensors with logits [B, T, V] (wgtrain grads --out)")
    ap.add_argument("--tol", type=float, default=1e-3, help="largest allowed |logit difference| (default 1e-3)")
    ap.add_argument("--write-batch", metavar="PATH", help="only write --ids as a batch file and exit")
    ap.add_argument("--ids", help="comma-separated token ids for --write-batch")
    args = ap.parse_args()

    if args.write_batch:
        if not args.ids:
            fail("--write-batch needs --ids")
        write_batch(args.write_batch, [int(x) for x in args.ids.split(",") if x.strip()])
        return
    if not (args.export and args.batch and args.logits):
        ap.error("give EXPORT, --batch and --logits (or --write-batch with --ids)")

    torch.set_num_threads(1)
    model, cfg = load_export(args.export)
    ids = load_file(args.batch)["input_ids"].long()
    if int(ids.max()) >= cfg["vocab_size"] or int(ids.min()) < 0:
        fail(f"token ids must be in [0, {cfg['vocab_size']})")
    with torch.no_grad():
        ours = model(ids[:, :-1])
        ref_loss = F.cross_entropy(ours.reshape(-1, ours.shape[-1]), ids[:, 1:].reshape(-1)).item()

    wg = load_file(args.logits)
    theirs = wg["logits"].double()
    if theirs.shape != ours.shape:
        fail(f"wgtrain's logits have shape {list(theirs.shape)}, the reference's {list(ours.shape)}")
    diff = (ours - theirs).abs()
    max_abs = diff.max().item()
    scale = ours.abs().max().item()
    print(f"export: {args.export} ({sum(p.numel() for p in model.parameters())} parameters)")
    print(f"tokens: {list(ids.shape)} -> logits {list(ours.shape)}, |logit| up to {scale:.4g}")
    if "loss" in wg:
        print(f"loss: reference {ref_loss:.8f}, wgtrain {wg['loss'].double().item():.8f}")
    print(f"max abs logit difference: {max_abs:.3e} (tolerance {args.tol:g})")
    if not max_abs <= args.tol:
        print("FAIL: above tolerance", file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
