# shellcheck shell=bash
# PostgreSQL helpers for claimcheck scripts (test runner, dev, fault tests).
# Source it (after common.sh is found next to it); do not execute it.
#
#   pg_ensure_installed   find initdb/pg_ctl/postgres (PATH, then
#                         /usr/lib/postgresql/*/bin), apt-get install
#                         postgresql if missing; sets PG_BINDIR and puts it
#                         on PATH.
#   pg_url_answers URL    true if a server answers at URL.
#   pg_start_private      initdb + start a throwaway cluster on a free port of
#                         127.0.0.1; exports DATABASE_URL (admin URL, user
#                         postgres, database postgres, trust auth).
#   pg_stop_private       stop it and delete its directory (idempotent).
#   pg_use_or_start       keep DATABASE_URL if it answers, else pg_start_private.
#   pg_server_stop [MODE] stop the private cluster's server (default mode
#                         fast: open connections are cut), keep its data.
#   pg_server_start       start it again on the same port, same data; wait
#                         until it answers.
#   pg_start_pair         a primary and a streaming standby (pg_basebackup -R)
#                         on two free ports of 127.0.0.1, replicating
#                         synchronously; exports CLAIMCHECK_PG_PAIR_DIR,
#                         CLAIMCHECK_PG_{PRIMARY,STANDBY}_{PORT,URL} and a
#                         multi-host DATABASE_URL (target_session_attrs=read-write).
#   pg_promote_standby    promote the standby; wait until it accepts writes.
#   pg_stop_primary [MODE] stop the primary (fast; immediate = a crash).
#   pg_destroy_pair       stop both and delete their directory (idempotent).
#
# Or execute it, for fault-injection tests (a cluster of their own, so a
# restart disturbs no other test):
#   scripts/lib/postgres.sh start-private   prints CLAIMCHECK_PG_DIR=,
#                                           CLAIMCHECK_PG_PORT=, DATABASE_URL=
#   scripts/lib/postgres.sh stop [MODE] | start | destroy
#                                           (need CLAIMCHECK_PG_DIR and _PORT)
#   scripts/lib/postgres.sh start-pair      prints the pair's variables above
#   scripts/lib/postgres.sh promote-standby | stop-primary [MODE] | destroy-pair
#                                           (need the variables start-pair printed)
#
# State: CLAIMCHECK_PG_DIR (temp dir: data/, socket, postgres.log),
#        CLAIMCHECK_PG_PORT.

[[ -n "${_CC_POSTGRES_SH:-}" ]] && return 0
_CC_POSTGRES_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_pg_bindir_candidates() {
    local d
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        d=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
        printf '%s\n' "$d"
    fi
    # Newest major version first.
    # shellcheck disable=SC2012
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -rn || true
}

_pg_find_bindir() {
    local d
    while IFS= read -r d; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done < <(_pg_bindir_candidates)
    return 1
}

pg_ensure_installed() {
    if ! PG_BINDIR=$(_pg_find_bindir); then
        cc_log "PostgreSQL server not found: installing Debian's postgresql"
        cc_apt_install postgresql
        PG_BINDIR=$(_pg_find_bindir) ||
            cc_die "postgresql installed but initdb/pg_ctl/postgres not found"
    fi
    case ":$PATH:" in
    *":$PG_BINDIR:"*) ;;
    *) export PATH="$PATH:$PG_BINDIR" ;;
    esac
    export PG_BINDIR
}

# Run a PostgreSQL server program as a user it accepts (not root).
_pg_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_url_answers() {
    local url=$1
    [[ -n "$url" ]] || return 1
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=5 psql "$url" -XAtq -c 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 5 -d "$url" >/dev/null 2>&1
    else
        return 1
    fi
}

# The server options of a private cluster on PORT with its socket in DIR.
_pg_server_opts() {
    printf '%s' "-p $1 -k $2 -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
}

pg_start_private() {
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
    local version major
    version=$("$PG_BINDIR/postgres" --version | awk '{print $NF}')
    major=${version%%.*}

    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 ||
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres ||
            cc_die "cannot create the postgres user"
        # The postgres user must reach the directory: use /tmp, not $TMPDIR.
        CLAIMCHECK_PG_DIR=$(mktemp -d /tmp/claimcheck-pg.XXXXXX)
        chown postgres: "$CLAIMCHECK_PG_DIR"
    else
        CLAIMCHECK_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/claimcheck-pg.XXXXXX")
    fi
    export CLAIMCHECK_PG_DIR
    local dir=$CLAIMCHECK_PG_DIR

    if ! _pg_as_owner "$PG_BINDIR/initdb" -D "$dir/data" --auth=trust -U postgres \
        --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2
        cc_die "initdb failed (log above)"
    fi

    local attempt port
    for attempt in 1 2 3; do
        port=$(cc_free_ports 1)
        cc_log "starting PostgreSQL $major on 127.0.0.1:$port"
        if _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
            -w -t 60 -o "$(_pg_server_opts "$port" "$dir")" \
            start >/dev/null; then
            CLAIMCHECK_PG_PORT=$port
            export CLAIMCHECK_PG_PORT
            export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            if ! pg_url_answers "$DATABASE_URL"; then
                cc_die "PostgreSQL started but $DATABASE_URL does not answer"
            fi
            return 0
        fi
        cc_warn "PostgreSQL did not start (attempt $attempt); log tail:"
        tail -n 20 "$dir/postgres.log" >&2 || true
    done
    cc_die "could not start PostgreSQL"
}

pg_stop_private() {
    local dir=${CLAIMCHECK_PG_DIR:-}
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        if ! _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 \
            stop >/dev/null 2>&1; then
            # Last resort: immediate shutdown of the postmaster we started.
            local pid
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            if [[ "$pid" =~ ^[0-9]+$ ]]; then
                kill -QUIT "$pid" 2>/dev/null || true
                sleep 1
            fi
        fi
    fi
    rm -rf "$dir"
    unset CLAIMCHECK_PG_DIR CLAIMCHECK_PG_PORT
}

pg_use_or_start() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        if pg_url_answers "$DATABASE_URL"; then
            cc_log "using PostgreSQL at DATABASE_URL (it answers)"
            return 0
        fi
        cc_warn "DATABASE_URL is set but does not answer; starting a private cluster"
    fi
    pg_start_private
}

pg_server_stop() {
    local mode=${1:-fast} dir=${CLAIMCHECK_PG_DIR:-}
    [[ -n "$dir" && -d "$dir/data" ]] || cc_die "pg_server_stop: CLAIMCHECK_PG_DIR is not a private cluster"
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
    [[ -f "$dir/data/postmaster.pid" ]] || return 0
    _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m "$mode" -w -t 30 stop >/dev/null
}

pg_server_start() {
    local dir=${CLAIMCHECK_PG_DIR:-} port=${CLAIMCHECK_PG_PORT:-}
    [[ -n "$dir" && -d "$dir/data" && -n "$port" ]] ||
        cc_die "pg_server_start: CLAIMCHECK_PG_DIR / CLAIMCHECK_PG_PORT not set"
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
    if ! _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
        -w -t 60 -o "$(_pg_server_opts "$port" "$dir")" start >/dev/null; then
        tail -n 20 "$dir/postgres.log" >&2 || true
        cc_die "PostgreSQL did not start again on port $port"
    fi
}

# --- A primary and a streaming standby, for failover tests ---------------
#
# The standby's name on the primary: the primary waits for it to flush each
# commit's WAL before it acknowledges the commit (synchronous replication),
# so a commit a client saw acknowledged survives the primary's crash.
_PG_STANDBY_NAME=claimcheck_standby

# Server options of one member of the pair. Unlike _pg_server_opts,
# synchronous_commit stays on: with it off the primary acknowledges before
# the standby has the WAL, and a failover loses acknowledged commits. fsync
# stays off for speed: the tests crash processes, never the machine, and the
# kernel keeps what was written.
_pg_pair_opts() {
    printf '%s' "-p $1 -k $2 -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c synchronous_commit=on -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c wal_receiver_status_interval=1s"
}

# psql as the admin on 127.0.0.1:PORT, one value out.
_pg_pair_psql() {
    PGCONNECT_TIMEOUT=5 psql "postgres://postgres@127.0.0.1:$1/postgres" -XAtq -c "$2"
}

# Start the member in DIR on PORT with extra options; show its log on failure.
_pg_pair_start_one() {
    local dir=$1 port=$2 extra=$3
    if ! _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
        -w -t 60 -o "$(_pg_pair_opts "$port" "$dir") $extra" start >/dev/null; then
        tail -n 20 "$dir/postgres.log" >&2 || true
        cc_die "PostgreSQL did not start in $dir on port $port"
    fi
}

pg_start_pair() {
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
    local pair primary standby ports p1 p2 i
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 ||
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres ||
            cc_die "cannot create the postgres user"
        pair=$(mktemp -d /tmp/claimcheck-pgpair.XXXXXX)
    else
        pair=$(mktemp -d "${TMPDIR:-/tmp}/claimcheck-pgpair.XXXXXX")
    fi
    export CLAIMCHECK_PG_PAIR_DIR=$pair
    primary=$pair/primary standby=$pair/standby
    mkdir -p "$primary" "$standby"
    [[ $(id -u) -ne 0 ]] || chown -R postgres: "$pair"

    if ! _pg_as_owner "$PG_BINDIR/initdb" -D "$primary/data" --auth=trust -U postgres \
        --encoding=UTF8 --locale=C --no-sync >"$primary/initdb.log" 2>&1; then
        tail -n 30 "$primary/initdb.log" >&2
        cc_die "initdb failed (log above)"
    fi
    # initdb's defaults already allow it with --auth=trust; said explicitly
    # since the standby cannot exist without it.
    echo "host replication postgres 127.0.0.1/32 trust" >>"$primary/data/pg_hba.conf"

    ports=$(cc_free_ports 2)
    p1=$(sed -n 1p <<<"$ports") p2=$(sed -n 2p <<<"$ports")
    cc_log "starting a PostgreSQL primary on 127.0.0.1:$p1"
    _pg_pair_start_one "$primary" "$p1" "-c synchronous_standby_names=$_PG_STANDBY_NAME"

    cc_log "cloning it (pg_basebackup -R) into a standby on 127.0.0.1:$p2"
    if ! _pg_as_owner "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres \
        -D "$standby/data" -R -X stream -c fast --no-sync >"$standby/basebackup.log" 2>&1; then
        tail -n 30 "$standby/basebackup.log" >&2
        cc_die "pg_basebackup failed (log above)"
    fi
    # The walreceiver names itself after cluster_name: the name the primary waits for.
    _pg_pair_start_one "$standby" "$p2" "-c cluster_name=$_PG_STANDBY_NAME"

    # Nothing is replicated synchronously until the standby streams: wait.
    for ((i = 0; i < 300; i++)); do
        [[ $(_pg_pair_psql "$p1" "SELECT count(*) FROM pg_stat_replication
              WHERE application_name = '$_PG_STANDBY_NAME' AND state = 'streaming'
                AND sync_state = 'sync'" 2>/dev/null) == 1 ]] && break
        sleep 0.1
    done
    ((i < 300)) || cc_die "the standby does not stream synchronously after 30 s"

    export CLAIMCHECK_PG_PRIMARY_PORT=$p1 CLAIMCHECK_PG_STANDBY_PORT=$p2
    export CLAIMCHECK_PG_PRIMARY_URL="postgres://postgres@127.0.0.1:$p1/postgres"
    export CLAIMCHECK_PG_STANDBY_URL="postgres://postgres@127.0.0.1:$p2/postgres"
    # libpq's multi-host syntax: try each in turn, keep the one that writes.
    export DATABASE_URL="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/postgres?target_session_attrs=read-write"
}

_pg_pair_need() {
    [[ -n "${CLAIMCHECK_PG_PAIR_DIR:-}" && -d "$CLAIMCHECK_PG_PAIR_DIR" ]] ||
        cc_die "CLAIMCHECK_PG_PAIR_DIR is not a pair started by start-pair"
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
}

pg_promote_standby() {
    _pg_pair_need
    local i port=${CLAIMCHECK_PG_STANDBY_PORT:?}
    _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$CLAIMCHECK_PG_PAIR_DIR/standby/data" -w -t 60 \
        promote >/dev/null || cc_die "pg_ctl promote failed"
    # Promoted is not yet writable for every new session: wait until one is.
    for ((i = 0; i < 300; i++)); do
        [[ $(_pg_pair_psql "$port" "SHOW transaction_read_only" 2>/dev/null) == off ]] && return 0
        sleep 0.1
    done
    cc_die "the promoted standby does not accept writes after 30 s"
}

pg_stop_primary() {
    _pg_pair_need
    local mode=${1:-fast} data=$CLAIMCHECK_PG_PAIR_DIR/primary/data
    [[ -f "$data/postmaster.pid" ]] || return 0
    # immediate: every server process quits at once, no shutdown checkpoint,
    # WAL not yet sent stays behind: as a crash.
    _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$data" -m "$mode" -w -t 30 stop >/dev/null
}

pg_destroy_pair() {
    local pair=${CLAIMCHECK_PG_PAIR_DIR:-} member
    [[ -n "$pair" && -d "$pair" ]] || return 0
    [[ -n "${PG_BINDIR:-}" ]] || pg_ensure_installed
    for member in primary standby; do
        [[ -f "$pair/$member/data/postmaster.pid" ]] || continue
        _pg_as_owner "$PG_BINDIR/pg_ctl" -D "$pair/$member/data" -m immediate -w -t 30 \
            stop >/dev/null 2>&1 || true
    done
    rm -rf "$pair"
    unset CLAIMCHECK_PG_PAIR_DIR
}

# Executed directly: a private cluster (or a pair) for fault tests.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    start-private)
        pg_ensure_installed
        pg_start_private
        printf 'CLAIMCHECK_PG_DIR=%s\nCLAIMCHECK_PG_PORT=%s\nDATABASE_URL=%s\n' \
            "$CLAIMCHECK_PG_DIR" "$CLAIMCHECK_PG_PORT" "$DATABASE_URL"
        ;;
    stop) pg_server_stop "${2:-fast}" ;;
    start) pg_server_start ;;
    destroy)
        pg_ensure_installed
        pg_stop_private
        ;;
    start-pair)
        pg_ensure_installed
        pg_start_pair
        for v in CLAIMCHECK_PG_PAIR_DIR CLAIMCHECK_PG_PRIMARY_PORT CLAIMCHECK_PG_STANDBY_PORT \
            CLAIMCHECK_PG_PRIMARY_URL CLAIMCHECK_PG_STANDBY_URL DATABASE_URL; do
            printf '%s=%s\n' "$v" "${!v}"
        done
        ;;
    promote-standby) pg_promote_standby ;;
    stop-primary) pg_stop_primary "${2:-fast}" ;;
    destroy-pair) pg_destroy_pair ;;
    *)
        echo "usage: $0 start-private | stop [fast|immediate] | start | destroy" >&2
        echo "       $0 start-pair | promote-standby | stop-primary [fast|immediate] | destroy-pair" >&2
        echo "(stop/start/destroy need CLAIMCHECK_PG_DIR and CLAIMCHECK_PG_PORT;" >&2
        echo " the pair's commands the variables start-pair printed)" >&2
        exit 2
        ;;
    esac
fi
