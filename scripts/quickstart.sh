#!/usr/bin/env bash
# The quick start on a fresh machine: adds the wasm32-wasip2 target, builds the example
# plugins (Rust, and the Python and C ones with tools scripts/build-guests.sh installs where
# missing) and the node, puts the example components in a plugins folder, adds sample tasks
# (an echo, a word count, a flaky task that succeeds on its third try, a fan-out DAG, a CSV
# summary in Python and a checksum in C) to ./parade.db, and runs a node until they are all
# done, printing what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
scripts/build-guests.sh python c
cargo build --release --locked -p parade-host --bin parade
parade=target/release/parade

plugins=target/quickstart/plugins
mkdir -p "$plugins"
for name in echo json_transform fan_out flaky; do
    cp "plugins/target/wasm32-wasip2/release/$name.wasm" "$plugins/"
done
for name in csv-summary checksum; do
    cp "plugins/target/guests/$name.wasm" "$plugins/"
done

# Each run's task ids start with a fresh prefix, so the quick start can run again.
run="qs$(date +%s)"
sed "s/RUN-/$run-/" scripts/quickstart-tasks.jsonl > "target/quickstart/$run.jsonl"
$parade --database sqlite://parade.db task add --file "target/quickstart/$run.jsonl" >/dev/null

echo "== parade run --until-idle (a node on ./parade.db with the plugins in $plugins)"
$parade --database sqlite://parade.db run --until-idle --plugins "$plugins"
echo
echo "== parade task list --id-prefix $run"
$parade --database sqlite://parade.db task list --id-prefix "$run"
