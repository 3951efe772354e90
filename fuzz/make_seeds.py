#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/TARGET/*): small valid inputs of each
reader, so mutations start from files wgtrain accepts. Standard library only; run from the
repository root: python3 fuzz/make_seeds.py"""
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def safetensors(tensors, dtype="F32"):
    """tensors: name -> (shape, list of floats); little-endian, header padded to 8 bytes."""
    header, data = {}, b""
    width = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    for name, (shape, values) in tensors.items():
        if dtype == "F32":
            raw = struct.pack(f"<{len(values)}f", *values)
        elif dtype == "F16":
            raw = struct.pack(f"<{len(values)}e", *values)
        else:  # bf16: the high half of the f32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        assert len(raw) == width * len(values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def tiny_model(d=4, layers=1, vocab=8, heads=2, kv=1, hidden=8):
    hd = d // heads
    shapes = {"embedding_proj.weight": [vocab, d]}
    for i in range(layers):
        l = f"layers.{i}"
        shapes[f"{l}.attention_norm.weight"] = [d]
        shapes[f"{l}.attention.q_proj.weight"] = [heads * hd, d]
        shapes[f"{l}.attention.k_proj.weight"] = [kv * hd, d]
        shapes[f"{l}.attention.v_proj.weight"] = [kv * hd, d]
        shapes[f"{l}.attention.o_proj.weight"] = [d, heads * hd]
        shapes[f"{l}.swiglu_norm.weight"] = [d]
        shapes[f"{l}.swiglu.w_0.weight"] = [hidden, d]
        shapes[f"{l}.swiglu.w_1.weight"] = [hidden, d]
        shapes[f"{l}.swiglu.w_2.weight"] = [d, hidden]
    shapes["output_norm.weight"] = [d]
    shapes["de_embedding_proj.weight"] = [vocab, d]
    config = {"d_model": d, "n_layers": layers, "vocab_size": vocab, "attention_n_heads": heads,
              "attention_n_kv_heads": kv, "activation_hidden_dim": hidden, "max_seq_len": 8,
              "norm_eps": 1e-6, "position_emb_theta": 10000.0}
    tensors = {}
    for k, s in shapes.items():
        n = 1
        for x in s:
            n *= x
        tensors[k] = (s, [((i * 7) % 13 - 6) / 10 for i in range(n)])
    return config, tensors


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    config, tensors = tiny_model()
    put("safetensors_file", "f32", safetensors(tensors))
    put("safetensors_file", "f16", safetensors({"a": ([2, 3], [0.5, 1, 2, -1, 0, 3])}, "F16"))
    put("safetensors_file", "bf16", safetensors({"m.x": ([3], [1, 2, 3])}, "BF16"))
    cfg = json.dumps(config, indent=1)
    put("checkpoint_dir", "tiny", cfg.encode() + b"\0" + safetensors(tensors))
    hf = {f"pico_decoder.{k}": v for k, v in tensors.items()}
    put("checkpoint_dir", "hf_prefix",
        json.dumps({**config, "model_type": "pico_decoder"}).encode() + b"\0" + safetensors(hf, "BF16"))

    run_yaml = (ROOT / "configs" / "quickstart.yaml").read_text()
    state = {"step": 3, "data": {"seed": 0, "epoch": 0, "position": 6, "windows": 400, "seq_len": 4},
             "config_yaml": run_yaml, "data_path": "data/tokens.bin", "wgtrain_version": "0.1.0"}
    put("trainer_state", "step3", json.dumps(state, indent=2))

    for cfg_file in sorted((ROOT / "configs").glob("*.yaml")):
        put("train_config", cfg_file.stem, cfg_file.read_text() + "\0training.max_steps=3\ncheckpointing.save_every_n_steps=7")
    put("train_config", "empty", "\0")

    for study in sorted((ROOT / "studies").glob("*.yaml")):
        put("study_file", study.stem, study.read_text())

    byte_tok = {"version": "1.0", "added_tokens": [{"id": 3, "content": "<|endoftext|>", "single_word": False,
                "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
                "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                "trim_offsets": True, "use_regex": True}, "post_processor": None,
                "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
                "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                          "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                          "vocab": {"H": 0, "e": 1, "He": 2}, "merges": ["H e"]}}
    put("tokenizer_json", "bpe", json.dumps(byte_tok, indent=1))
    wl = dict(byte_tok, model={"type": "WordLevel", "vocab": {"hello": 0, "world": 1, "[UNK]": 2}, "unk_token": "[UNK]"},
              pre_tokenizer={"type": "Whitespace"}, decoder=None)
    put("tokenizer_json", "wordlevel", json.dumps(wl))

    ids = [(i * 37) % 300 for i in range(64)]
    put("token_bin", "u16", b"\0" + struct.pack(f"<{len(ids)}H", *ids))
    put("token_bin", "u32", b"\1" + struct.pack(f"<{len(ids)}I", *ids))

    put("jsonl_text", "docs", '{"text": "The quick brown fox."}\n{"text": "jumps over the lazy dog", "id": 2}\n')
    put("blimp_jsonl", "pairs",
        '{"sentence_good": "Who should Derek hug?", "sentence_bad": "Who should Derek hug Jane?", '
        '"UID": "wh_island", "pairID": "0"}\n'
        '{"sentence_good": "A dog barks.", "sentence_bad": "A dog bark.", "UID": "wh_island", "pairID": "1"}\n')


if __name__ == "__main__":
    main()
