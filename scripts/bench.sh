#!/usr/bin/env bash
# Runs the queue benchmark (host/benches/queue.rs) against a throwaway PostgreSQL cluster
# and a SQLite file. Arguments go to the benchmark: --backend postgres|sqlite|all,
# --tasks N (default 1000000), --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=$(mktemp -d /tmp/parade-bench-pg.XXXXXX)
trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
PARADE_BENCH_DATABASE_URL=$(scripts/pg-cluster.sh start "$cluster")
export PARADE_BENCH_DATABASE_URL
cargo bench -p parade-host --bench queue -- "$@"
