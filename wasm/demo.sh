#!/usr/bin/env bash
# Build the browser demo and serve it: open the printed address in a browser with WebGPU.
# Usage: wasm/demo.sh [port]
set -euo pipefail
cd "$(dirname "$0")/.."
wasm/build.sh
exec node wasm/serve.mjs "${1:-8080}"
