#!/usr/bin/env bash
# Builds the guest workspace (plugins/Cargo.toml: the Rust SDK, the example actors and the
# test-only actors) into WebAssembly components under plugins/target/wasm32-wasip2/release/.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release --locked "$@"
