#!/usr/bin/env bash
# The quick start on a fresh machine: adds the wasm32-wasip2 target, builds the example
# plugins and the node, and runs a node on ./parade.db over sample tasks (including a DAG)
# until they are done, printing what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo run --release --locked -p parade-host --example quickstart
