#!/usr/bin/env bash
# The prepared GPU run: `wgbench suite` and its PyTorch baselines on one adapter, the JSON
# records written into OUT_DIR, in under 8 minutes on a GPU machine without network.
#
#   bash bench/gpu_suite.sh OUT_DIR [BACKEND]        # BACKEND: vulkan (default), gl, ...
#
# Run it from the project root with the binaries built elsewhere (target/release/wgbench, or
# $WGBENCH). On an NVIDIA machine without a Vulkan loader, carry `.gl/` as
# ../shared/device/README.md says: the script then sets the loader up through
# .gl/gpu-env.sh itself. PyTorch comes from $WGBENCH_PYTHON (default python3); on CUDA it
# measures fp32 with TF32 off and bf16 autocast.
#
# The quick suite runs first (about a minute on a GPU), so a record exists even if the full
# suite then runs out of time; the full suite gets what is left of the budget.
# WGBENCH_QUICK_ONLY=1 stops after the quick suite; WGBENCH_BUDGET_S (default 450) is the
# time for both. Tested on lavapipe with WGBENCH_QUICK_ONLY=1 WGBENCH_BUDGET_S=1200.
set -euo pipefail
out=${1:?usage: bash bench/gpu_suite.sh OUT_DIR [BACKEND]}
backend=${2:-vulkan}
if [ -f .gl/gpu-env.sh ] && [ -z "${WGBENCH_GPU_ENV:-}" ]; then
  export WGBENCH_GPU_ENV=1
  exec bash .gl/gpu-env.sh bash "$0" "$@"
fi
bin=${WGBENCH:-target/release/wgbench}
python=${WGBENCH_PYTHON:-python3}
budget=${WGBENCH_BUDGET_S:-450}
start=$(date +%s)
mkdir -p "$out"
[ -x "$bin" ] || { echo "no wgbench binary at $bin (build it with cargo build --release, or set WGBENCH)"; exit 2; }
# A copied tree may have no git: the record takes the commit from here then.
export WGBENCH_COMMIT=${WGBENCH_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true; } > "$out/gpu.txt"
"$bin" --version > "$out/wgbench-version.txt"

echo "== quick suite ($backend)"
timeout $((budget / 2)) "$bin" suite --quick --backend "$backend" --python "$python" \
  --out "$out/suite-quick-$backend.json" 2>&1 | tee "$out/suite-quick-$backend.txt" \
  || echo "the quick suite did not finish in $((budget / 2)) s; what it measured: $out/suite-quick-$backend.json.partial"
if [ "${WGBENCH_QUICK_ONLY:-0}" = 1 ]; then exit 0; fi
left=$((budget - ($(date +%s) - start)))
echo "== full suite ($backend), ${left} s left"
if timeout "$left" "$bin" suite --backend "$backend" --python "$python" \
  --out "$out/suite-$backend.json" > "$out/suite-$backend.txt" 2>&1; then
  tail -n 60 "$out/suite-$backend.txt"
else
  echo "the full suite did not finish in ${left} s (exit $?); what it measured: $out/suite-$backend.json.partial, its log: $out/suite-$backend.txt"
  tail -n 20 "$out/suite-$backend.txt"
fi
