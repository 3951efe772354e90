#!/usr/bin/env bash
# Every test wgtrain has: the Rust suites on the default adapter (lavapipe without a GPU),
# then the browser demo in headless Chromium on WebGPU (wasm/tests/browser.mjs).
# Needs: a Vulkan driver, ../shared/data, node + npm, Chromium (/usr/bin/chromium or
# $CHROMIUM), and OpenMPI with libclang for the data-parallel tests; .ci/run installs all of
# it on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")"
# lavapipe's per-dispatch cost is lowest single-threaded; the tests run many tiny kernels.
export LP_NUM_THREADS="${LP_NUM_THREADS:-0}"

echo "== cargo test"
cargo test --release

# The criterion benches (one per kernel family) run once each, to show they still work.
echo "== criterion benches (--test: one run each)"
cargo bench --benches -- --test

# Portability beyond Vulkan: the model against PyTorch's fixtures, every attention kernel,
# the learning-dynamics metrics (the on-device SVD), and a short CLI training run with
# evaluation, on wgpu's GL backend (llvmpipe: no subgroups, no f16), and the matmul family
# there (the subgroup variant refused with its reason).
echo "== GL backend (llvmpipe)"
# With a cold shader cache, as on a fresh machine: the first run on GL must take seconds.
gl_env=(env WGTRAIN_TEST_BACKEND=gl MESA_SHADER_CACHE_DISABLE=true)
"${gl_env[@]}" cargo test --release --test pico_fixture --test ops_attention --test dynamics --test matmul
"${gl_env[@]}" cargo test --release --test train cli_trains_then_eval

# The examples are part of the documentation: each must still build and run (seconds each).
echo "== examples"
example_out="$(mktemp -d)"
cargo run --release --example op_vs_reference
cargo run --release --example train_tiny -- ../shared/data/tinyshakespeare/input.txt "$example_out/tiny" 20
cargo run --release --example analyze_checkpoint -- "$example_out/tiny"
cargo run --release --example relora_merge
rm -rf "$example_out"

echo "== browser demo (headless Chromium, WebGPU)"
cargo build --release --bin wgtrain --bin wgbench
wasm/build.sh
(cd wasm && npm ci --no-audit --no-fund --loglevel=error)
node wasm/tests/browser.mjs

# Last, as it builds the library again with the `mpi` feature: 1, 2 and 4 ranks give the
# same bits, resume on another number of ranks, a killed and a hung rank, refused set-ups.
echo "== data-parallel training (mpirun)"
cargo test --release --features mpi --test data_parallel
