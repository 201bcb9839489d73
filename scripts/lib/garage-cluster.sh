# shellcheck shell=bash
# A 3-node Garage cluster on loopback, for fault tests that lose a node.
# Sourced by garage.sh (which it needs: garage_start, garage_stop, _garage_retry);
# its subcommands are garage.sh's start-cluster, kill-node, stop-node,
# start-node, node-status and cleanup-cluster.
#
#   garage_start_cluster     three nodes in one temp dir (node1/, node2/,
#                            node3/: config, metadata, data, pidfile, log,
#                            s3_endpoint), the same rpc_secret, replication_factor
#                            = 3 and the default consistency_mode (consistent:
#                            read and write quorums of 2 of 3); node 1 connects
#                            to the others (`garage node connect`), one layout
#                            (zones dc1, dc2, dc3) is assigned and applied once;
#                            then the key and bucket of garage_start_private.
#                            Exports CLAIMCHECK_GARAGE_CLUSTER_DIR,
#                            CLAIMCHECK_TEST_S3_* (endpoint: node 1) and
#                            CLAIMCHECK_TEST_S3_ENDPOINT_N, _GARAGE_CONFIG_N,
#                            _GARAGE_PIDFILE_N for N = 1..3.
#   garage_cluster_kill N    SIGKILL node N (crash injection).
#   garage_cluster_stop N    SIGTERM node N (SIGKILL after 10 s).
#   garage_cluster_start N   start node N again with its config and data; wait
#                            until it answers and sees the other two nodes.
#   garage_cluster_status N  "running (pid P)" (success) or "stopped" (failure).
#   garage_cluster_healthy N how many nodes node N sees connected, itself
#                            included (Garage notices a dead peer only when a
#                            write to it fails: seconds after a kill -9).
#   garage_cluster_cleanup   stop every node, delete the directory.
#
# The per-node functions need CLAIMCHECK_GARAGE_CLUSTER_DIR and
# CLAIMCHECK_TEST_GARAGE_BIN only: everything else is read from the node's dir.

CLAIMCHECK_GARAGE_CLUSTER_SIZE=3

# _garage_cluster_node_dir N: checks that node N exists in the cluster dir and
# prints its directory.
_garage_cluster_node_dir() {
    local n=${1:-} dir=${CLAIMCHECK_GARAGE_CLUSTER_DIR:-}
    [[ -n "$dir" && -d "$dir" ]] || cc_die "CLAIMCHECK_GARAGE_CLUSTER_DIR is not set or not a directory"
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > CLAIMCHECK_GARAGE_CLUSTER_SIZE)); then
        cc_die "node number: 1 to $CLAIMCHECK_GARAGE_CLUSTER_SIZE, not '$n'"
    fi
    [[ -r "$dir/node$n/garage.toml" ]] || cc_die "no node $n in $dir"
    [[ -n "${CLAIMCHECK_TEST_GARAGE_BIN:-}" ]] || garage_ensure_installed
    printf '%s\n' "$dir/node$n"
}

# _garage_on_node N CMD...: runs CMD with the single-node variables naming
# node N. They are locals, so the caller's own (a single-node Garage it may
# have started too) are untouched: bash scopes them dynamically into CMD.
_garage_on_node() {
    local node_dir
    node_dir=$(_garage_cluster_node_dir "$1") || exit 1
    shift
    # shellcheck disable=SC2034  # read by the garage.sh functions CMD calls
    local CLAIMCHECK_GARAGE_DIR=$node_dir
    local CLAIMCHECK_TEST_GARAGE_CONFIG=$node_dir/garage.toml
    # shellcheck disable=SC2034  # read by the garage.sh functions CMD calls
    local CLAIMCHECK_TEST_GARAGE_PIDFILE=$node_dir/garage.pid
    local CLAIMCHECK_TEST_S3_ENDPOINT
    CLAIMCHECK_TEST_S3_ENDPOINT=$(<"$node_dir/s3_endpoint")
    "$@"
}

# The number of nodes `garage status` on the current node lists as healthy
# (connected: it can send them requests); 0 if it does not answer.
_garage_healthy_nodes() {
    _garage status 2>/dev/null |
        awk '/^==== / { healthy = ($0 ~ /HEALTHY/) } healthy && $1 ~ /^[0-9a-f]+$/ && length($1) == 16 { n++ } END { print n + 0 }'
}

# _garage_wait_for_peers COUNT: until the current node sees COUNT healthy
# nodes, itself included (60 s at most).
_garage_wait_for_peers() {
    local i
    for ((i = 0; i < 300; i++)); do
        (($(_garage_healthy_nodes) >= $1)) && return 0
        sleep 0.2
    done
    _garage status >&2 || true
    cc_die "garage node $(dirname "$CLAIMCHECK_TEST_GARAGE_CONFIG") does not see $1 healthy nodes within 60 s"
}

# Prints "running (pid P)" and succeeds, or "stopped" and fails.
_garage_status() {
    local pid
    if pid=$(_garage_pid) && _garage_alive "$pid"; then
        echo "running (pid $pid)"
        return 0
    fi
    echo "stopped"
    return 1
}

# The numbers of the nodes that run, one a line.
_garage_running_nodes() {
    local n
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        if _garage_on_node "$n" _garage_status >/dev/null; then
            echo "$n"
        fi
    done
}

# Starts node N again, then connects it and every running node to each
# other: a survivor would only retry its own connection to a node it lost
# after 30 s (CONN_RETRY_INTERVAL in Garage's peering), and writes meanwhile
# would skip the node. Waits until each running node sees all of them.
garage_cluster_start() {
    local n=$1 m
    _garage_on_node "$n" garage_start
    local -a running
    mapfile -t running < <(_garage_running_nodes)
    for m in "${running[@]}"; do
        ((m == n)) && continue
        _garage_on_node "$m" _garage_retry node connect "$(<"$CLAIMCHECK_GARAGE_CLUSTER_DIR/node$n/node_id")" >/dev/null
        _garage_on_node "$n" _garage_retry node connect "$(<"$CLAIMCHECK_GARAGE_CLUSTER_DIR/node$m/node_id")" >/dev/null
    done
    for m in "${running[@]}"; do
        _garage_on_node "$m" _garage_wait_for_peers "${#running[@]}"
    done
}

garage_cluster_status() { _garage_on_node "$1" _garage_status; }
garage_cluster_healthy() { _garage_on_node "$1" _garage_healthy_nodes; }
garage_cluster_kill() { _garage_on_node "$1" garage_stop KILL; }
garage_cluster_stop() { _garage_on_node "$1" garage_stop TERM; }

garage_start_cluster() {
    [[ -n "${CLAIMCHECK_TEST_GARAGE_BIN:-}" ]] || garage_ensure_installed
    CLAIMCHECK_GARAGE_CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/claimcheck-garage-cluster.XXXXXX")
    export CLAIMCHECK_GARAGE_CLUSTER_DIR
    local dir=$CLAIMCHECK_GARAGE_CLUSTER_DIR secret n
    local -a ports
    mapfile -t ports < <(cc_free_ports $((3 * CLAIMCHECK_GARAGE_CLUSTER_SIZE)))
    secret=$(_garage_secret)
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        local rpc=${ports[3 * n - 3]} s3=${ports[3 * n - 2]} admin=${ports[3 * n - 1]}
        _garage_write_config "$dir/node$n" 3 "$rpc" "$s3" "$admin" "$secret"
        printf 'http://127.0.0.1:%s\n' "$s3" >"$dir/node$n/s3_endpoint"
        printf -v "CLAIMCHECK_TEST_S3_ENDPOINT_$n" 'http://127.0.0.1:%s' "$s3"
        printf -v "CLAIMCHECK_TEST_GARAGE_CONFIG_$n" '%s' "$dir/node$n/garage.toml"
        printf -v "CLAIMCHECK_TEST_GARAGE_PIDFILE_$n" '%s' "$dir/node$n/garage.pid"
        export "CLAIMCHECK_TEST_S3_ENDPOINT_$n" "CLAIMCHECK_TEST_GARAGE_CONFIG_$n" \
            "CLAIMCHECK_TEST_GARAGE_PIDFILE_$n"
        cc_log "starting Garage node $n on 127.0.0.1:$s3 (S3), rpc $rpc, admin $admin"
        _garage_on_node "$n" garage_start
    done
    export CLAIMCHECK_TEST_S3_ENDPOINT
    CLAIMCHECK_TEST_S3_ENDPOINT=$(<"$dir/node1/s3_endpoint")
    export CLAIMCHECK_TEST_S3_BUCKET=$CLAIMCHECK_TEST_GARAGE_BUCKET
    export CLAIMCHECK_TEST_S3_REGION=garage
    _garage_on_node 1 _garage_form_cluster
}

# On node 1: connect the others, one layout over three zones, wait until
# every node has it, then the key and the bucket.
_garage_form_cluster() {
    local n id
    local -a ids
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        # `node id` prints ID@ADDRESS, what `node connect` takes.
        id=$(_garage_on_node "$n" _garage_retry node id -q | tr -d '[:space:]')
        [[ "$id" == *@* ]] || cc_die "could not read the id of garage node $n: '$id'"
        printf '%s\n' "$id" >"$CLAIMCHECK_GARAGE_CLUSTER_DIR/node$n/node_id"
        ids+=("$id")
        ((n == 1)) || _garage_retry node connect "$id" >/dev/null
    done
    _garage_wait_for_peers "$CLAIMCHECK_GARAGE_CLUSTER_SIZE"
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        _garage_retry layout assign -z "dc$n" -c 1G "${ids[n - 1]%%@*}" >/dev/null
    done
    _garage_retry layout apply --version 1 >/dev/null
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        _garage_on_node "$n" _garage_wait_for_layout 1
    done
    _garage_key_and_bucket
}

# _garage_wait_for_layout VERSION: until the current node applies it (30 s).
_garage_wait_for_layout() {
    local i
    for ((i = 0; i < 150; i++)); do
        _garage layout show 2>/dev/null | grep -q "Current cluster layout version: $1\$" && return 0
        sleep 0.2
    done
    cc_die "garage node $(dirname "$CLAIMCHECK_TEST_GARAGE_CONFIG") did not apply layout version $1 within 30 s"
}

garage_cluster_cleanup() {
    local dir=${CLAIMCHECK_GARAGE_CLUSTER_DIR:-} n
    [[ -n "$dir" && -d "$dir" ]] || return 0
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        [[ -r "$dir/node$n/garage.toml" ]] && _garage_on_node "$n" garage_stop TERM
    done
    rm -rf "$dir"
    unset CLAIMCHECK_GARAGE_CLUSTER_DIR
}

# The lines `garage.sh start-cluster` prints for the caller to pass back.
garage_cluster_env() {
    local v n
    for v in CLAIMCHECK_GARAGE_CLUSTER_DIR CLAIMCHECK_TEST_GARAGE_BIN CLAIMCHECK_TEST_S3_ENDPOINT \
        CLAIMCHECK_TEST_S3_BUCKET CLAIMCHECK_TEST_S3_REGION CLAIMCHECK_TEST_S3_ACCESS_KEY \
        CLAIMCHECK_TEST_S3_SECRET_KEY; do
        printf '%s=%s\n' "$v" "${!v}"
    done
    for ((n = 1; n <= CLAIMCHECK_GARAGE_CLUSTER_SIZE; n++)); do
        for v in "CLAIMCHECK_TEST_S3_ENDPOINT_$n" "CLAIMCHECK_TEST_GARAGE_CONFIG_$n" \
            "CLAIMCHECK_TEST_GARAGE_PIDFILE_$n"; do
            printf '%s=%s\n' "$v" "${!v}"
        done
    done
}
