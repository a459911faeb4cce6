#!/usr/bin/env bash
# Parade's benchmark suite, against a throwaway PostgreSQL cluster and SQLite files.
#
#   scripts/bench.sh [all|queue|manager|guests] [ARGS...]
#
# queue: bulk insert rate, own latency at 1,000,000 vs 1,000 pending tasks and its ratio (and
# at 1,000,000 of which 900,000 are not due yet),
# whether own_tasks uses tasks_runnable_idx, own and return rates.
# manager: the node end to end (host/benches/manager.rs): instantiate-and-call cost, no-op
# tasks/s native vs WebAssembly and their ratio, CPU per task of the node and of PostgreSQL,
# pgbench TPS on the same cluster and the ratio to it, idle insert-to-start latency, how late an
# idle node starts due tasks (the wake timer), CPU-bound scaling 2 vs 1 workers, idle RSS of a
# node with 10 plugins.
# guests: per language (Rust, C, Python, JavaScript), the example component's size, its first
# load (compile) and cached load, and its per-task instantiate and whole-task times.
# all (the default): all three, each with its defaults (ARGS: only --quick).
# ARGS go to the benchmark: --backend postgres|sqlite|all, --tasks N, --quick, and for
# manager --workers N, --actor native|wasm|both, --rounds N, --only FIGURE,... (instantiate,
# throughput, pgbench, wake, lateness, cpu_scaling, rss).
#
# The throwaway cluster keeps PostgreSQL's durable defaults (every commit flushed to disk), as
# production runs it; the tests' clusters turn that off for speed.
# If PARADE_BENCH_DATABASE_URL is set, it must be the admin URL of a running cluster
# (postgres://USER@HOST/postgres?...); the benchmark creates and drops its own databases
# there and no throwaway cluster is started.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=all
case "${1:-}" in
all | queue | manager | guests) bench=$1; shift ;;
esac
benches=$bench
[ "$bench" = all ] && benches="queue manager guests"
scripts/build-plugins.sh
case " $benches " in *" guests "*) scripts/build-guests.sh ;; esac
# Build first, so the cluster is not left idle during compilation.
for b in $benches; do cargo bench -p parade-host --bench "$b" --no-run; done
if [ -z "${PARADE_BENCH_DATABASE_URL:-}" ]; then
    cluster=$(mktemp -d /tmp/parade-bench-pg.XXXXXX)
    trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
    PARADE_BENCH_DATABASE_URL=$(scripts/pg-cluster.sh start "$cluster" durable)
    export PARADE_BENCH_DATABASE_URL
fi
for b in $benches; do cargo bench -p parade-host --bench "$b" -- "$@"; done
