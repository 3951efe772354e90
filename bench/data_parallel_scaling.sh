#!/usr/bin/env bash
# Tokens/s of one small training run alone, under `mpirun -np 1` and under `mpirun -np 2`
# (BENCHMARKS.md, "Data-parallel training over MPI"). Needs a build with `--features mpi`
# and ../shared/data. Usage: bench/data_parallel_scaling.sh [BACKEND]
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-vulkan}"
export LP_NUM_THREADS="${LP_NUM_THREADS:-0}"
exe="$PWD/target/release/wgtrain"
work="$(mktemp -d)"
cat > "$work/config.yaml" <<YAML
model: { preset: tiny, d_model: 64, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 256, max_seq_len: 64 }
training:
  max_steps: 20
  seed: 7
  optimization: { lr: 0.003, lr_scheduler: constant, lr_warmup_steps: 2, gradient_accumulation_steps: 4 }
data:
  dataset: { name: "$PWD/../shared/data/corpus/train/gutenberg_pg11_Alices_Adventures_in_Wonderland.txt", holdout_fraction: 0.02 }
  dataloader: { batch_size: 16 }
  tokenizer: { name: bpe, vocab_size: 300 }
checkpointing: { save_every_n_steps: 100 }
evaluation: { metrics: [] }
YAML
run() { local name="$1"; shift; "$@" train --config "$work/config.yaml" --run-dir "$work/$name" --quiet --backend "$backend" >/dev/null 2>&1; }
run alone "$exe"
run np1 mpirun --allow-run-as-root --oversubscribe -np 1 "$exe"
run np2 mpirun --allow-run-as-root --oversubscribe -np 2 "$exe"
for name in alone np1 np2; do
  python3 - "$work/$name/metrics.jsonl" "$name" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
tps = [l["tokens_per_s"] for l in lines if l.get("tokens_per_s")]
comm = sorted(l["dist/comm_seconds"] for l in lines if "dist/comm_seconds" in l)
print(f"{sys.argv[2]}: {tps[-1]:.1f} tokens/s, exchange per step (median) "
      f"{comm[len(comm) // 2] if comm else '-'}")
PY
done
rm -rf "$work"
