#!/usr/bin/env bash
# Runs a benchmark against a throwaway PostgreSQL cluster and a SQLite file.
#
#   scripts/bench.sh [queue|manager] [ARGS...]
#
# queue (the default): insert, own and return rates, own latency at 1,000,000 vs 1,000
# pending tasks. manager: end-to-end tasks/s with a no-op actor and idle insert-to-start
# latency. ARGS go to the benchmark: --backend postgres|sqlite|all, --tasks N, --quick,
# and for manager --workers N.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=queue
case "${1:-}" in
queue | manager) bench=$1; shift ;;
esac
cluster=$(mktemp -d /tmp/parade-bench-pg.XXXXXX)
trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
PARADE_BENCH_DATABASE_URL=$(scripts/pg-cluster.sh start "$cluster")
export PARADE_BENCH_DATABASE_URL
cargo bench -p parade-host --bench "$bench" -- "$@"
