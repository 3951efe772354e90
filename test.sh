#!/usr/bin/env bash
# Every test wgtrain has: the Rust suites on the default adapter (lavapipe without a GPU),
# then the browser demo in headless Chromium on WebGPU (wasm/tests/browser.mjs).
# Needs: a Vulkan driver, ../shared/data, node + npm, and Chromium (/usr/bin/chromium or
# $CHROMIUM); .ci/run installs all of it on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")"
# lavapipe's per-dispatch cost is lowest single-threaded; the tests run many tiny kernels.
export LP_NUM_THREADS="${LP_NUM_THREADS:-0}"

echo "== cargo test"
cargo test --release

echo "== browser demo (headless Chromium, WebGPU)"
cargo build --release --bin wgtrain --bin wgbench
wasm/build.sh
(cd wasm && npm ci --no-audit --no-fund --loglevel=error)
node wasm/tests/browser.mjs
