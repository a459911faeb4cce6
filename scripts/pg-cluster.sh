#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks, reachable only through a unix
# socket in its own directory (no port to collide with).
#
#   scripts/pg-cluster.sh start DIR [fast|durable]   initdb + start in DIR; prints the admin URL
#   scripts/pg-cluster.sh restart DIR MODE   stop (MODE fast or immediate) and start again
#   scripts/pg-cluster.sh stop DIR    stop it and delete DIR
#
# By default the cluster trades crash safety for speed (fsync, synchronous_commit and
# full_page_writes off), which suits tests. `durable` keeps PostgreSQL's own settings, as a
# production cluster runs: the benchmarks use it, so their figures (and pgbench's TPS beside
# them) include the disk flush of every commit.
#
# Installs Debian's postgresql package first if the server binaries are missing. initdb and
# postgres refuse to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail

command=${1:?usage: pg-cluster.sh start|restart|stop DIR}
dir=${2:?usage: pg-cluster.sh start|restart|stop DIR}

find_bindir() {
    local candidate
    candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
        echo "$candidate"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    fi
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$command" in
start)
    bindir=$(find_bindir)
    if [ -z "$bindir" ]; then
        echo "pg-cluster: PostgreSQL server binaries missing; installing Debian's postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        bindir=$(find_bindir)
        [ -n "$bindir" ] || { echo "pg-cluster: still no initdb after installing" >&2; exit 1; }
    fi
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    settings="-c listen_addresses='' -k $dir -p 5432 -c max_connections=300 -c shared_buffers=256MB"
    case "${3:-fast}" in
    fast) settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off" ;;
    durable) ;;
    *) echo "pg-cluster: unknown mode ${3}: fast or durable" >&2; exit 2 ;;
    esac
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$settings" >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@localhost/postgres?host=$dir&port=5432"
    ;;
restart)
    mode=${3:-fast}
    bindir=$(find_bindir)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 restart >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    bindir=$(find_bindir)
    if [ -n "$bindir" ] && [ -d "$dir/data" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg-cluster.sh start|restart|stop DIR" >&2
    exit 2
    ;;
esac
