#!/usr/bin/env bash
# shellcheck shell=bash
# rustus (crates.io: the Rust tus server), the peer of bench/run's `peers`
# block, built once with cargo and cached in the tools cache.
#
# Source it for the functions:
#   rustus_cached            true when the pinned version is built already
#                            (sets CLAIMCHECK_RUSTUS_BIN, builds nothing)
#   rustus_ensure_installed  the cached binary, else `cargo install --locked
#                            rustus --version $CLAIMCHECK_RUSTUS_VERSION` into
#                            $CLAIMCHECK_TOOLS_DIR/rustus-VERSION (8m46s here,
#                            5 min of CPU, on 2 cores shared with other
#                            builds); sets and exports CLAIMCHECK_RUSTUS_BIN
#
# Or execute it:
#   scripts/lib/rustus.sh install   rustus_ensure_installed, prints the binary
#   scripts/lib/rustus.sh path      prints the cached binary, exit 1 if none
#
# Default features (none): the file data store and the file info store, all
# the benchmark uses, are always built; the others (Redis, databases, AMQP,
# HTTP hooks, checksums) are left out.

[[ -n "${_CC_RUSTUS_SH:-}" ]] && return 0
_CC_RUSTUS_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${CLAIMCHECK_TOOLS_DIR:=${HOME:-/root}/.cache/claimcheck-tools}"
# The newest on crates.io (2026-11): 0.5.10.
: "${CLAIMCHECK_RUSTUS_VERSION:=0.5.10}"

# The version is in the directory's name, so a new pin builds afresh and
# never runs an older binary.
_rustus_root() { printf '%s\n' "$CLAIMCHECK_TOOLS_DIR/rustus-$CLAIMCHECK_RUSTUS_VERSION"; }

rustus_cached() {
    local bin
    bin=$(_rustus_root)/bin/rustus
    [[ -x "$bin" ]] || return 1
    CLAIMCHECK_RUSTUS_BIN=$bin
    export CLAIMCHECK_RUSTUS_BIN
}

rustus_ensure_installed() {
    rustus_cached && return 0
    cc_ensure_cargo_on_path
    mkdir -p "$CLAIMCHECK_TOOLS_DIR"
    # Serialise concurrent installs into the same tools dir.
    local fd=""
    if command -v flock >/dev/null 2>&1; then
        exec {fd}>"$CLAIMCHECK_TOOLS_DIR/.rustus-install.lock"
        if ! flock -n "$fd"; then
            cc_log "another rustus install into $CLAIMCHECK_TOOLS_DIR is running; waiting for it"
            flock "$fd"
        fi
    fi
    if ! rustus_cached; then
        local root t0
        root=$(_rustus_root)
        t0=$(cc_now)
        cc_log "rustus not cached: building rustus $CLAIMCHECK_RUSTUS_VERSION with cargo install into $root"
        cc_log "this takes about 5-9 minutes on 2 cores; later runs reuse the cached binary"
        # Into a temporary root first: an interrupted build leaves no
        # directory that looks installed.
        rm -rf "$root.partial"
        nice -n 10 cargo install --locked rustus --version "$CLAIMCHECK_RUSTUS_VERSION" \
            --root "$root.partial" || cc_die "cargo install rustus $CLAIMCHECK_RUSTUS_VERSION failed"
        rm -rf "$root"
        mv "$root.partial" "$root"
        cc_log "rustus $CLAIMCHECK_RUSTUS_VERSION built in $(cc_fmt_secs $(($(cc_now) - t0)))"
        rustus_cached || cc_die "rustus install finished but $root/bin/rustus is missing"
    fi
    [[ -z "$fd" ]] || exec {fd}>&-
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    install)
        rustus_ensure_installed
        printf '%s\n' "$CLAIMCHECK_RUSTUS_BIN"
        ;;
    path)
        rustus_cached || exit 1
        printf '%s\n' "$CLAIMCHECK_RUSTUS_BIN"
        ;;
    *)
        echo "usage: $0 install|path" >&2
        exit 2
        ;;
    esac
fi
