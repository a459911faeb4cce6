#!/usr/bin/env bash
# Parade's whole check, runnable on a fresh machine: installs what is missing, starts a
# throwaway PostgreSQL cluster, checks formatting and lints, and runs every test against it.
# The cluster is stopped and deleted on exit.
#
#   scripts/test.sh [ARGS...]           everything; ARGS go to `cargo nextest run`
#   scripts/test.sh --quick [ARGS...]   formatting, lints, the unit tests and the SQLite half
#                                       of the conformance suite, in a few minutes: no
#                                       PostgreSQL, browser, npm or guest toolchains
#
# In quick mode a test-name pattern among ARGS narrows the tier (`--quick own_`); a further
# `-E` filterset would widen it, since nextest runs the union of its filtersets.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
if [ "${1:-}" = --quick ]; then
    quick=true
    shift
fi

log() { printf '== %s\n' "$*" >&2; }

# A one-shot build gains nothing from incremental state but ~1.3 GB of disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# A clean build with every test binary takes about 3 GiB under target/; with less free the
# linker dies mid-write (SIGBUS) and says nothing about space. Say it up front instead.
need_mib=4096
[ -d target/debug/deps ] && need_mib=1024 # an earlier build: only what changed is rebuilt
mkdir -p target
free_mib=$(($(df -Pk target | awk 'NR == 2 { print $4 }') / 1024))
if [ "$free_mib" -lt "$need_mib" ]; then
    echo "scripts/test.sh: only $free_mib MiB free for $(pwd)/target; building and testing needs about $need_mib MiB" >&2
    exit 1
fi

log "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
$quick || rustup target add wasm32-wasip2 >/dev/null
if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

log "format and lints"
cargo fmt --all -- --check
cargo fmt --all --manifest-path plugins/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

if $quick; then
    log "unit tests and the SQLite conformance suite"
    exec cargo nextest run --workspace --locked --no-fail-fast --lib --bins --test conformance \
        -E 'kind(lib) or kind(bin) or (binary(conformance) and test(/^sqlite_/))' "$@"
fi

log "browser for the dashboard test (Debian's chromium, playwright-core from npm)"
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >&2)

log "plugins (wasm32-wasip2 components)"
scripts/build-plugins.sh

log "guest SDK doctests (the crate docs' example compiles)"
cargo test --doc --manifest-path guest-sdk/Cargo.toml --locked

log "plugins in Python, JavaScript and C (and their pinned tools: componentize-py, componentize-js, Debian's clang and wasi-libc)"
scripts/build-guests.sh

log "build"
cargo build --workspace --all-targets --locked

log "throwaway PostgreSQL cluster"
cluster=$(mktemp -d /tmp/parade-test-pg.XXXXXX)
trap 'scripts/pg-cluster.sh stop "$cluster"' EXIT
admin_url=$(scripts/pg-cluster.sh start "$cluster")
template_url=${admin_url/\/postgres\?/\/parade_template\?}
psql -q "$admin_url" -c 'CREATE DATABASE parade_template'
target/debug/parade migrate --database "$template_url" >/dev/null
scripts/schema.sh check "$template_url"
export PARADE_TEST_DATABASE_URL=$admin_url

log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
