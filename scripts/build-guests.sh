#!/usr/bin/env bash
# Builds the example actors written in Python, JavaScript and C into components under
# plugins/target/guests/, installing each language's tools first where they are missing,
# at the exact versions pinned below (and in plugins/http-get-js/package-lock.json).
#
#   scripts/build-guests.sh [python|js|c]...   (default: all three)
#
# Python: componentize-py from PyPI, in a virtualenv under target/guest-tools/.
# JavaScript: componentize-js from npm (plugins/http-get-js/package-lock.json).
# C: Debian's clang, lld and wasi-libc (WASI preview 1), plus tools/wit-c for the bindings
#    and for adapting the module into a component.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY=0.25.1
DEBIAN_C_TOOLS=(
    clang=1:14.0-55.7~deb12u1
    lld=1:14.0-55.7~deb12u1
    wasi-libc=0.0~git20220510.9886d3d-2
    libclang-rt-14-dev-wasm32=1:14.0.6-12
)

out=plugins/target/guests
mkdir -p "$out"
log() { printf '== %s\n' "$*" >&2; }

python_actor() {
    local venv=target/guest-tools/componentize-py-$COMPONENTIZE_PY
    if [ ! -x "$venv/bin/componentize-py" ]; then
        log "installing componentize-py $COMPONENTIZE_PY (PyPI)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
    fi
    log "python: csv-summary"
    # The http-actor world: the actor world plus outbound wasi:http.
    (cd plugins/csv-summary-py &&
        "../../$venv/bin/componentize-py" --wit-path ../../wit --world http-actor \
            componentize app --output "../../$out/csv-summary.wasm" >/dev/null)
}

js_actor() {
    log "javascript: http-get"
    (cd plugins/http-get-js &&
        npm ci --no-audit --no-fund --loglevel=error >&2 &&
        node build.mjs ../../wit "../../$out/http-get.wasm" >/dev/null)
}

c_actor() {
    local missing=()
    for pinned in "${DEBIAN_C_TOOLS[@]}"; do
        local package=${pinned%%=*} version=${pinned#*=}
        if [ "$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null)" != "$version" ]; then
            missing+=("$pinned")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --allow-downgrades "${missing[@]}" >&2
    fi
    log "c: checksum"
    cargo build --quiet --locked -p parade-wit-c
    local work=target/guest-tools/checksum-c
    mkdir -p "$work"
    target/debug/parade-wit-c bindings --wit wit --world actor --out "$work"
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
        -Wl,--strip-debug -I "$work" \
        plugins/checksum-c/checksum.c "$work/actor.c" "$work/actor_component_type.o" \
        -o "$work/checksum.core.wasm"
    target/debug/parade-wit-c component "$work/checksum.core.wasm" --output "$out/checksum.wasm"
}

languages=("$@")
[ ${#languages[@]} -gt 0 ] || languages=(python js c)
for language in "${languages[@]}"; do
    case $language in
        python) python_actor ;;
        js) js_actor ;;
        c) c_actor ;;
        *) echo "unknown language $language: python, js or c" >&2; exit 2 ;;
    esac
done
ls -l "$out"/*.wasm >&2
