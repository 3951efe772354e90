#!/usr/bin/env bash
# Build the browser demo: the wgtrain-web crate for wasm32, then its JavaScript bindings into
# wasm/www/pkg. Installs the wasm32 target and the wasm-bindgen CLI (the version Cargo.lock
# pins for the wasm-bindgen crate: the two must match) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "installing wasm-bindgen-cli $version (a few minutes, once)"
  # Not --locked: its lock file asks for a webpki-roots release that is no longer published.
  # --force: cargo may still list an install whose binary is gone or is another version.
  cargo install --force wasm-bindgen-cli --version "$version"
fi
cargo build -p wgtrain-web --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir wasm/www/pkg \
  target/wasm32-unknown-unknown/release/wgtrain_web.wasm
echo "built wasm/www/pkg ($(du -sh wasm/www/pkg | cut -f1))"
