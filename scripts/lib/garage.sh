#!/usr/bin/env bash
# shellcheck shell=bash
# Garage (S3-compatible server) helpers for claimcheck scripts.
#
# Source it for the functions:
#   garage_ensure_installed  find `garage` (PATH, then the tools cache
#                            $CLAIMCHECK_TOOLS_DIR/bin), else build it with
#                            `cargo install --locked garage` (~16 min on 2 cores);
#                            sets and exports CLAIMCHECK_TEST_GARAGE_BIN.
#   garage_start_private     single-node Garage in a temp dir: config, server,
#                            layout, key, bucket; exports CLAIMCHECK_TEST_S3_*
#                            and CLAIMCHECK_TEST_GARAGE_{BIN,CONFIG,PIDFILE}.
#   garage_stop              stop the server (SIGTERM, then SIGKILL after 10 s).
#   garage_kill              SIGKILL the server at once (crash injection).
#   garage_start             start the server again with the same config and
#                            data, wait until it answers.
#   garage_restart           garage_stop + garage_start.
#   garage_cleanup           stop the server and delete its temp dir.
#
# Or execute it, for fault-injection tests (uses the exported
# CLAIMCHECK_TEST_GARAGE_BIN / _CONFIG / _PIDFILE):
#   scripts/lib/garage.sh stop|kill|start|restart|status
#   scripts/lib/garage.sh start-private   a Garage of the caller's own (so
#                          stopping it disturbs no other test); prints the
#                          CLAIMCHECK_GARAGE_DIR, CLAIMCHECK_TEST_S3_* and
#                          CLAIMCHECK_TEST_GARAGE_* lines to pass back
#   scripts/lib/garage.sh cleanup         stop it and delete its directory
#                          (needs CLAIMCHECK_GARAGE_DIR too)
#
# A 3-node cluster (replication_factor = 3, zones dc1-dc3; garage-cluster.sh):
#   scripts/lib/garage.sh start-cluster   prints CLAIMCHECK_GARAGE_CLUSTER_DIR,
#                          CLAIMCHECK_TEST_S3_* (endpoint: node 1) and, per node
#                          N, CLAIMCHECK_TEST_S3_ENDPOINT_N and
#                          CLAIMCHECK_TEST_GARAGE_{CONFIG,PIDFILE}_N
#   scripts/lib/garage.sh kill-node N | stop-node N | start-node N | node-status N
#   scripts/lib/garage.sh healthy-nodes N  how many nodes node N sees connected
#   scripts/lib/garage.sh cleanup-cluster  stop every node, delete the directory
#                          (these need CLAIMCHECK_GARAGE_CLUSTER_DIR and
#                          CLAIMCHECK_TEST_GARAGE_BIN)

[[ -n "${_CC_GARAGE_SH:-}" ]] && return 0
_CC_GARAGE_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${CLAIMCHECK_TOOLS_DIR:=${HOME:-/root}/.cache/claimcheck-tools}"
# Version installed when no garage binary is found (the one checked with claimcheck).
: "${CLAIMCHECK_GARAGE_VERSION:=2.5.0}"

CLAIMCHECK_TEST_GARAGE_KEY_NAME=claimcheck-test
CLAIMCHECK_TEST_GARAGE_BUCKET=claimcheck-test

garage_ensure_installed() {
    local bin
    if bin=$(command -v garage 2>/dev/null); then
        :
    elif [[ -x "$CLAIMCHECK_TOOLS_DIR/bin/garage" ]]; then
        bin=$CLAIMCHECK_TOOLS_DIR/bin/garage
    else
        cc_ensure_cargo_on_path
        mkdir -p "$CLAIMCHECK_TOOLS_DIR"
        local lock=$CLAIMCHECK_TOOLS_DIR/.garage-install.lock
        # Serialise concurrent installs into the same tools dir.
        if command -v flock >/dev/null 2>&1; then
            exec {_cc_lock_fd}>"$lock"
            if ! flock -n "$_cc_lock_fd"; then
                cc_log "another garage install into $CLAIMCHECK_TOOLS_DIR is running; waiting for it"
                flock "$_cc_lock_fd"
            fi
        fi
        if [[ ! -x "$CLAIMCHECK_TOOLS_DIR/bin/garage" ]]; then
            cc_log "garage not found: building garage $CLAIMCHECK_GARAGE_VERSION with cargo install into $CLAIMCHECK_TOOLS_DIR"
            cc_log "this takes about 16 minutes on 2 cores; later runs reuse the cached binary"
            cargo install --locked garage --version "$CLAIMCHECK_GARAGE_VERSION" \
                --root "$CLAIMCHECK_TOOLS_DIR" ||
                cc_die "cargo install garage failed"
        fi
        if [[ -n "${_cc_lock_fd:-}" ]]; then
            exec {_cc_lock_fd}>&-
            unset _cc_lock_fd
        fi
        bin=$CLAIMCHECK_TOOLS_DIR/bin/garage
        [[ -x "$bin" ]] || cc_die "garage install finished but $bin is missing"
    fi
    CLAIMCHECK_TEST_GARAGE_BIN=$bin
    export CLAIMCHECK_TEST_GARAGE_BIN
}

_garage() { "$CLAIMCHECK_TEST_GARAGE_BIN" -c "$CLAIMCHECK_TEST_GARAGE_CONFIG" "$@"; }

# True if PID is a live process (a zombie counts as gone).
_garage_alive() {
    local pid=$1 rest state
    [[ "$pid" =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
    rest=$(</proc/"$pid"/stat) || return 1
    rest=${rest##*) }
    state=${rest%% *}
    [[ "$state" != Z && "$state" != X ]]
}

_garage_pid() {
    local f=${CLAIMCHECK_TEST_GARAGE_PIDFILE:-}
    [[ -n "$f" && -r "$f" ]] || return 1
    local pid
    pid=$(<"$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "$pid"
}

_garage_s3_answers() {
    local url=${CLAIMCHECK_TEST_S3_ENDPOINT:-}
    [[ -n "$url" ]] || return 0
    if command -v curl >/dev/null 2>&1; then
        local code
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/" 2>/dev/null || true)
        [[ -n "$code" && "$code" != 000 ]]
    else
        local hostport=${url#http://}
        (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null
    fi
}

_garage_log_tail() {
    local log=${CLAIMCHECK_GARAGE_DIR:-$(dirname "$CLAIMCHECK_TEST_GARAGE_CONFIG")}/garage.log
    if [[ -r "$log" ]]; then
        printf -- '---- last lines of %s ----\n' "$log" >&2
        tail -n 30 "$log" >&2
        printf -- '----\n' >&2
    fi
}

# Start the server with the existing config; wait until the CLI and the S3 port answer.
garage_start() {
    [[ -n "${CLAIMCHECK_TEST_GARAGE_BIN:-}" && -n "${CLAIMCHECK_TEST_GARAGE_CONFIG:-}" ]] ||
        cc_die "garage_start: CLAIMCHECK_TEST_GARAGE_BIN / _CONFIG not set"
    local dir
    dir=$(dirname "$CLAIMCHECK_TEST_GARAGE_CONFIG")
    : "${CLAIMCHECK_TEST_GARAGE_PIDFILE:=$dir/garage.pid}"
    export CLAIMCHECK_TEST_GARAGE_PIDFILE
    local pid
    if pid=$(_garage_pid) && _garage_alive "$pid"; then
        cc_die "garage_start: garage already running (pid $pid)"
    fi
    # stdin/stdout/stderr detached so a caller reading our output is not held open.
    NO_COLOR=1 RUST_LOG=${GARAGE_RUST_LOG:-garage=info} \
        "$CLAIMCHECK_TEST_GARAGE_BIN" -c "$CLAIMCHECK_TEST_GARAGE_CONFIG" server \
        </dev/null >>"$dir/garage.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$CLAIMCHECK_TEST_GARAGE_PIDFILE"
    local i
    for ((i = 0; i < 300; i++)); do
        if ! _garage_alive "$pid"; then
            _garage_log_tail
            cc_die "garage server exited during startup (log above)"
        fi
        if _garage status >/dev/null 2>&1 && _garage_s3_answers; then
            return 0
        fi
        sleep 0.2
    done
    _garage_log_tail
    cc_die "garage server did not answer within 60 s (log above)"
}

# garage_stop [SIGNAL]: stop the server (default TERM; KILL after 10 s).
garage_stop() {
    local sig=${1:-TERM} pid i
    pid=$(_garage_pid) || return 0
    if _garage_alive "$pid"; then
        kill -s "$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            _garage_alive "$pid" || break
            sleep 0.1
        done
        if _garage_alive "$pid"; then
            cc_warn "garage (pid $pid) still running after SIG$sig; sending SIGKILL"
            kill -s KILL "$pid" 2>/dev/null || true
        fi
    fi
    # Reap it if it is our child; harmless otherwise.
    wait "$pid" 2>/dev/null || true
    rm -f "$CLAIMCHECK_TEST_GARAGE_PIDFILE"
}

garage_kill() { garage_stop KILL; }

garage_restart() {
    garage_stop
    garage_start
}

# Retry a garage CLI command a few times (layout changes settle asynchronously).
_garage_retry() {
    local i out
    for ((i = 1; i <= 20; i++)); do
        if out=$(_garage "$@" 2>&1); then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.5
    done
    printf '%s\n' "$out" >&2
    cc_die "garage $* failed"
}

# 32 random bytes in hex: an rpc_secret.
_garage_secret() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    else
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
    fi
}

# _garage_write_config DIR REPLICATION_FACTOR RPC_PORT S3_PORT ADMIN_PORT SECRET:
# DIR/garage.toml for a node on loopback keeping its data under DIR.
_garage_write_config() {
    local dir=$1 rf=$2 rpc_port=$3 s3_port=$4 admin_port=$5 secret=$6
    mkdir -p "$dir/meta" "$dir/data"
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = $rf

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML
    chmod 600 "$dir/garage.toml"
}

garage_start_private() {
    [[ -n "${CLAIMCHECK_TEST_GARAGE_BIN:-}" ]] || garage_ensure_installed
    CLAIMCHECK_GARAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/claimcheck-garage.XXXXXX")
    export CLAIMCHECK_GARAGE_DIR
    local dir=$CLAIMCHECK_GARAGE_DIR ports rpc_port s3_port admin_port secret
    ports=$(cc_free_ports 3)
    { read -r rpc_port && read -r s3_port && read -r admin_port; } <<<"$ports"
    secret=$(_garage_secret)
    _garage_write_config "$dir" 1 "$rpc_port" "$s3_port" "$admin_port" "$secret"
    export CLAIMCHECK_TEST_GARAGE_CONFIG=$dir/garage.toml
    export CLAIMCHECK_TEST_GARAGE_PIDFILE=$dir/garage.pid
    export CLAIMCHECK_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
    export CLAIMCHECK_TEST_S3_BUCKET=$CLAIMCHECK_TEST_GARAGE_BUCKET
    export CLAIMCHECK_TEST_S3_REGION=garage

    cc_log "starting Garage on 127.0.0.1:$s3_port (S3), rpc $rpc_port, admin $admin_port"
    garage_start

    local node_id
    node_id=$(_garage_retry node id -q)
    node_id=${node_id%%@*}
    node_id=$(printf '%s' "$node_id" | tr -d '[:space:]')
    [[ -n "$node_id" ]] || cc_die "could not read the garage node id"
    _garage_retry layout assign -z dc1 -c 1G "$node_id" >/dev/null
    _garage_retry layout apply --version 1 >/dev/null
    _garage_key_and_bucket
}

# The test key and bucket, through the node of CLAIMCHECK_TEST_GARAGE_CONFIG
# (its layout applied); exports CLAIMCHECK_TEST_S3_{ACCESS,SECRET}_KEY.
_garage_key_and_bucket() {
    local out key_id secret_key
    out=$(_garage_retry key create "$CLAIMCHECK_TEST_GARAGE_KEY_NAME")
    key_id=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Key ID:[[:space:]]*//p' | head -n 1 | tr -d '[:space:]')
    secret_key=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Secret key:[[:space:]]*//p' | head -n 1 | tr -d '[:space:]')
    if [[ -z "$key_id" || -z "$secret_key" ]]; then
        printf '%s\n' "$out" >&2
        cc_die "could not parse Key ID / Secret key from 'garage key create' (output above)"
    fi
    export CLAIMCHECK_TEST_S3_ACCESS_KEY=$key_id
    export CLAIMCHECK_TEST_S3_SECRET_KEY=$secret_key

    _garage_retry bucket create "$CLAIMCHECK_TEST_GARAGE_BUCKET" >/dev/null
    _garage_retry bucket allow --read --write --owner "$CLAIMCHECK_TEST_GARAGE_BUCKET" \
        --key "$CLAIMCHECK_TEST_GARAGE_KEY_NAME" >/dev/null
    # Let tests create extra buckets of their own with the same key.
    _garage_retry key allow --create-bucket "$CLAIMCHECK_TEST_GARAGE_KEY_NAME" >/dev/null
}

garage_cleanup() {
    [[ -n "${CLAIMCHECK_TEST_GARAGE_PIDFILE:-}" ]] && garage_stop
    if [[ -n "${CLAIMCHECK_GARAGE_DIR:-}" && -d "$CLAIMCHECK_GARAGE_DIR" ]]; then
        rm -rf "$CLAIMCHECK_GARAGE_DIR"
    fi
    unset CLAIMCHECK_GARAGE_DIR
}

# shellcheck source=scripts/lib/garage-cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/garage-cluster.sh"

# Executed directly: control the server described by the exported variables.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    stop) garage_stop ;;
    kill) garage_kill ;;
    start) garage_start ;;
    restart) garage_restart ;;
    start-private)
        garage_start_private
        for v in CLAIMCHECK_GARAGE_DIR CLAIMCHECK_TEST_GARAGE_BIN CLAIMCHECK_TEST_GARAGE_CONFIG \
            CLAIMCHECK_TEST_GARAGE_PIDFILE CLAIMCHECK_TEST_S3_ENDPOINT CLAIMCHECK_TEST_S3_BUCKET \
            CLAIMCHECK_TEST_S3_REGION CLAIMCHECK_TEST_S3_ACCESS_KEY CLAIMCHECK_TEST_S3_SECRET_KEY; do
            printf '%s=%s\n' "$v" "${!v}"
        done
        ;;
    cleanup) garage_cleanup ;;
    start-cluster)
        garage_start_cluster
        garage_cluster_env
        ;;
    kill-node) garage_cluster_kill "${2:-}" ;;
    stop-node) garage_cluster_stop "${2:-}" ;;
    start-node) garage_cluster_start "${2:-}" ;;
    node-status) garage_cluster_status "${2:-}" ;;
    healthy-nodes) garage_cluster_healthy "${2:-}" ;;
    cleanup-cluster) garage_cluster_cleanup ;;
    status)
        pid=$(_garage_pid) && _garage_alive "$pid" && echo "running (pid $pid)" && exit 0
        echo "stopped"
        exit 1
        ;;
    *)
        echo "usage: $0 stop|kill|start|restart|status|start-private|cleanup" >&2
        echo "(needs CLAIMCHECK_TEST_GARAGE_BIN, CLAIMCHECK_TEST_GARAGE_CONFIG, CLAIMCHECK_TEST_GARAGE_PIDFILE)" >&2
        echo "   or: $0 start-cluster|kill-node N|stop-node N|start-node N|node-status N|healthy-nodes N|cleanup-cluster" >&2
        echo "(needs CLAIMCHECK_GARAGE_CLUSTER_DIR and CLAIMCHECK_TEST_GARAGE_BIN, except start-cluster)" >&2
        exit 2
        ;;
    esac
fi
