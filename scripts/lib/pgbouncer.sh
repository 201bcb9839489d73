#!/usr/bin/env bash
# shellcheck shell=bash
# PgBouncer helpers for claimcheck scripts: a private PgBouncer in
# transaction pooling mode in front of a PostgreSQL on loopback.
#
# Source it for the functions:
#   pgbouncer_ensure_installed   find Debian's pgbouncer (PATH, /usr/sbin),
#                                else apt-get install it; sets PGBOUNCER_BIN.
#   pgbouncer_start_private PG_PORT [POOL_SIZE]
#                                a PgBouncer on a free port of 127.0.0.1,
#                                pool_mode = transaction, every database of
#                                the PostgreSQL on 127.0.0.1:PG_PORT, at most
#                                POOL_SIZE (default 20) server connections per
#                                database and user; exports
#                                CLAIMCHECK_PGBOUNCER_{DIR,PORT,PIDFILE}.
#   pgbouncer_stop_private       stop it and delete its directory.
#
# Or execute it:
#   scripts/lib/pgbouncer.sh start-private PG_PORT [POOL_SIZE]
#                                prints the CLAIMCHECK_PGBOUNCER_* lines
#   scripts/lib/pgbouncer.sh stop    (needs CLAIMCHECK_PGBOUNCER_DIR and _PIDFILE)
#
# Debian's PgBouncer is 1.18: no prepared statements in transaction mode,
# hence CLAIMCHECK_DB_PREPARED_STATEMENTS=false behind it, and no LISTEN or
# session-level advisory lock through it (CLAIMCHECK_LISTEN_DATABASE_URL).

[[ -n "${_CC_PGBOUNCER_SH:-}" ]] && return 0
_CC_PGBOUNCER_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pgbouncer_ensure_installed() {
    if PGBOUNCER_BIN=$(command -v pgbouncer 2>/dev/null); then
        :
    elif [[ -x /usr/sbin/pgbouncer ]]; then
        PGBOUNCER_BIN=/usr/sbin/pgbouncer
    else
        cc_log "pgbouncer not found: installing Debian's pgbouncer"
        cc_apt_install pgbouncer
        PGBOUNCER_BIN=/usr/sbin/pgbouncer
        [[ -x "$PGBOUNCER_BIN" ]] || cc_die "pgbouncer installed but $PGBOUNCER_BIN is missing"
    fi
    export PGBOUNCER_BIN
}

# PgBouncer refuses to run as root: run it as the postgres user then.
_pgb_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pgbouncer_start_private() {
    local pg_port=${1:?pgbouncer_start_private PG_PORT [POOL_SIZE]} pool=${2:-20}
    [[ -n "${PGBOUNCER_BIN:-}" ]] || pgbouncer_ensure_installed
    if [[ $(id -u) -eq 0 ]]; then
        CLAIMCHECK_PGBOUNCER_DIR=$(mktemp -d /tmp/claimcheck-pgbouncer.XXXXXX)
        chown postgres: "$CLAIMCHECK_PGBOUNCER_DIR"
    else
        CLAIMCHECK_PGBOUNCER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/claimcheck-pgbouncer.XXXXXX")
    fi
    local dir=$CLAIMCHECK_PGBOUNCER_DIR port
    port=$(cc_free_ports 1)
    # Trust, as the private clusters the tests start: loopback only.
    printf '"postgres" ""\n' >"$dir/users.txt"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = $pool
max_db_connections = $pool
max_client_conn = 2000
reserve_pool_size = 0
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"/*
    _pgb_as_owner "$PGBOUNCER_BIN" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 ||
        { tail -n 20 "$dir/pgbouncer.log" >&2; cc_die "pgbouncer did not start (log above)"; }
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            CLAIMCHECK_PGBOUNCER_PORT=$port
            CLAIMCHECK_PGBOUNCER_PIDFILE=$dir/pgbouncer.pid
            export CLAIMCHECK_PGBOUNCER_DIR CLAIMCHECK_PGBOUNCER_PORT CLAIMCHECK_PGBOUNCER_PIDFILE
            cc_log "PgBouncer (transaction pooling, $pool server connections) on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/pgbouncer.log" >&2
    cc_die "pgbouncer did not listen on $port within 10 s (log above)"
}

pgbouncer_stop_private() {
    local dir=${CLAIMCHECK_PGBOUNCER_DIR:-} pid
    [[ -n "$dir" ]] || return 0
    if [[ -r "$dir/pgbouncer.pid" ]]; then
        pid=$(<"$dir/pgbouncer.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    unset CLAIMCHECK_PGBOUNCER_DIR CLAIMCHECK_PGBOUNCER_PORT CLAIMCHECK_PGBOUNCER_PIDFILE
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    start-private)
        pgbouncer_start_private "${2:?PG_PORT}" "${3:-20}"
        for v in CLAIMCHECK_PGBOUNCER_DIR CLAIMCHECK_PGBOUNCER_PORT CLAIMCHECK_PGBOUNCER_PIDFILE; do
            printf '%s=%s\n' "$v" "${!v}"
        done
        ;;
    stop) pgbouncer_stop_private ;;
    *)
        echo "usage: $0 start-private PG_PORT [POOL_SIZE] | stop" >&2
        exit 2
        ;;
    esac
fi
