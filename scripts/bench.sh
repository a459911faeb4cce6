#!/usr/bin/env bash
# Runs a benchmark against a throwaway PostgreSQL cluster and a SQLite file.
#
#   scripts/bench.sh [queue|manager] [ARGS...]
#
# queue (the default): bulk insert rate, own latency at 1,000,000 vs 1,000 pending tasks
# and its ratio, whether own_tasks uses tasks_runnable_idx, own and return rates.
# manager: end-to-end tasks/s with a no-op actor and idle insert-to-start latency.
# ARGS go to the benchmark: --backend postgres|sqlite|all, --tasks N, --quick, and for
# manager --workers N and --actor native|wasm|both.
#
# If PARADE_BENCH_DATABASE_URL is set, it must be the admin URL of a running cluster
# (postgres://USER@HOST/postgres?...); the benchmark creates and drops its own databases
# there and no throwaway cluster is started.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=queue
case "${1:-}" in
queue | manager) bench=$1; shift ;;
esac
# Build first, so the cluster is not left idle during compilation.
cargo bench -p parade-host --bench "$bench" --no-run
if [ -z "${PARADE_BENCH_DATABASE_URL:-}" ]; then
    cluster=$(mktemp -d /tmp/parade-bench-pg.XXXXXX)
    trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
    PARADE_BENCH_DATABASE_URL=$(scripts/pg-cluster.sh start "$cluster")
    export PARADE_BENCH_DATABASE_URL
fi
cargo bench -p parade-host --bench "$bench" -- "$@"
