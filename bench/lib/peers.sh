# shellcheck shell=bash
# Benchmark `peers` of bench/run (issue 18, item 3): claimcheck's `/v1/tus`
# against the other tus servers, in the same run, by the same clients:
#   - claimcheck on its filesystem store against rustus (crates.io, file
#     store, --force-fsync): both keep the bytes on the local disk, synced;
#   - claimcheck on its S3 store against tus-node-server (@tus/server with
#     @tus/s3-store, bench/tus/server.mjs): both on the same Garage bucket.
# Two measures: one file uploaded in one PATCH after a creation POST (curl,
# for every server), and tus creations at BENCH_INIT_CONCURRENCY clients
# (claimcheck-bench tus-create, for every server).
#
# Sourced by bench/run, whose helpers it uses (out, val, rate, start_api,
# start_tus_node, tus_setup, fs_env, s3_env, ...). Its sizes are set here,
# before bench/run records the BENCH_ variables of the run.

# shellcheck source=scripts/lib/rustus.sh
source scripts/lib/rustus.sh

: "${BENCH_PEERS_SIZE_MIB:=1024}" "${BENCH_PEERS_REPS:=2}" "${BENCH_PEERS_CREATE_MIB:=1}"
: "${BENCH_PEERS_OWNERS:=1 ${BENCH_INIT_CONCURRENCY:-64}}" "${BENCH_PEERS_RUSTUS:=install}"
# A directory: each claimcheck run is also profiled there (perf record -g of
# the API process, one perf-*.data per run), to see what stands in the way.
: "${BENCH_PEERS_PERF:=}"

# What a 201 creation of tus carries in every request here: the version,
# and `filename peers.bin` (base64), which every server takes.
PEERS_TUS_HEADERS=(-H 'Tus-Resumable: 1.0.0' -H 'Upload-Metadata: filename cGVlcnMuYmlu')

# peers_setup: Node and bench/tus (stamp.mjs, tus-node-server), and rustus:
# built when missing (BENCH_PEERS_RUSTUS=install), or only when cached
# (=if-cached: the smoke's choice on a machine without it; the rustus rows
# are then left out and the block says so).
peers_setup() {
    tus_setup
    case "$BENCH_PEERS_RUSTUS" in
    install) rustus_ensure_installed ;;
    if-cached) rustus_cached || CLAIMCHECK_RUSTUS_BIN="" ;;
    *) cc_die "BENCH_PEERS_RUSTUS is install or if-cached, not $BENCH_PEERS_RUSTUS" ;;
    esac
}

# start_rustus NAME: rustus on a fresh directory of $WORK; sets RUSTUS_URL
# (its creation URL)
start_rustus() {
    local name=$1 port pid i dir=$WORK/$1
    port=$(cc_free_ports 1)
    mkdir -p "$dir"
    # --force-fsync takes a value (a bool with an env fallback; without one
    # rustus refuses to start): each PATCH's write is then fdatasync'ed.
    # --max-body-size: rustus reads a PATCH's whole body into memory before
    # it writes it (256 KiB by default), so one PATCH of the file needs room
    # for all of it. --log-level WARN: at INFO it logs a line per request,
    # which claimcheck (RUST_LOG=info) does not. Workers: actix's default,
    # one per core.
    "$CLAIMCHECK_RUSTUS_BIN" --host 127.0.0.1 --port "$port" --url /files \
        --storage file-storage --data-dir "$dir/data" --force-fsync true \
        --info-storage file-info-storage --info-dir "$dir/info" \
        --max-body-size $(((BENCH_PEERS_SIZE_MIB + 1) << 20)) --log-level WARN \
        >"$WORK/$name.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    RUSTUS_URL=http://127.0.0.1:$port/files
    for ((i = 0; i < 300; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$RUSTUS_URL") == 2* ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2
    cc_die "rustus ($name) did not start"
}

# peer_upload OUT ENDPOINT AUTH: new stamps in the file, then by curl a tus
# creation POST, one PATCH of the whole file, and a HEAD that must answer
# the file's size as Upload-Offset (AUTH=1: with the bench token). Writes
# secs= and mib_s= (creation + PATCH, curl's own timings) to OUT, or error=.
peer_upload() {
    local out=$1 endpoint=$2 size=$((BENCH_PEERS_SIZE_MIB << 20)) auth=() code post patch loc offset
    (($3)) && auth=(-H @"$WORK/auth.header")
    node "$TUS/stamp.mjs" "$PEERS_FILE"
    # Whatever the previous upload left in the page cache is written out
    # before this one starts, untimed.
    sync
    code=$(curl -sS -o "$WORK/peer.body" -D "$WORK/peer.headers" -w '%{http_code} %{time_total}' \
        -X POST "${auth[@]}" "${PEERS_TUS_HEADERS[@]}" -H "Upload-Length: $size" "$endpoint") || code="000 0"
    if [[ ${code%% *} != 201 ]]; then
        printf 'error=creation: HTTP %s: %s\n' "${code%% *}" "$(head -c 300 "$WORK/peer.body" | tr '\n' ' ')" >"$out"
        return 0
    fi
    post=${code#* }
    loc=$(sed -n 's/^[Ll]ocation: *//p' "$WORK/peer.headers" | tr -d '\r' | tail -n 1)
    # claimcheck answers a path, the others an absolute URL.
    [[ "$loc" == /* ]] && loc=$(sed -E 's#^(https?://[^/]+).*#\1#' <<<"$endpoint")$loc
    # -T: a PATCH with Content-Length, streamed from the file; no
    # `Expect: 100-continue` round trip.
    code=$(curl -sS -o "$WORK/peer.body" -w '%{http_code} %{time_total}' -X PATCH -T "$PEERS_FILE" \
        "${auth[@]}" "${PEERS_TUS_HEADERS[@]}" -H 'Upload-Offset: 0' -H 'Expect:' \
        -H 'Content-Type: application/offset+octet-stream' "$loc") || code="000 0"
    if [[ ${code%% *} != 204 ]]; then
        printf 'error=PATCH: HTTP %s: %s\n' "${code%% *}" "$(head -c 300 "$WORK/peer.body" | tr '\n' ' ')" >"$out"
        return 0
    fi
    patch=${code#* }
    offset=$(curl -sS -I "${auth[@]}" -H 'Tus-Resumable: 1.0.0' "$loc" |
        sed -n 's/^[Uu]pload-[Oo]ffset: *//p' | tr -d '\r') || offset=""
    if [[ "$offset" != "$size" ]]; then
        printf 'error=HEAD after the PATCH: Upload-Offset %s, not %s\n' "${offset:-none}" "$size" >"$out"
        return 0
    fi
    awk -v a="$post" -v b="$patch" -v m="$BENCH_PEERS_SIZE_MIB" \
        'BEGIN { printf "secs=%.2f\nmib_s=%.0f\n", a + b, m / (a + b) }' >"$out"
}

# peer_cell FILE: "secs, MiB/s" of an upload, or its failure
peer_cell() {
    if [[ -n $(val "$1" skipped) ]]; then
        echo "not run: $(val "$1" skipped)"
    elif [[ -z $(val "$1" mib_s) ]]; then
        echo "**failed**: \`$(val "$1" error)\`"
    else
        echo "$(val "$1" secs) s, **$(val "$1" mib_s) MiB/s**"
    fi
}

# peer_ratio A B NAME: A / B of the NAME values of two files, or "-"
peer_ratio() {
    local a b
    a=$(val "$1" "$3")
    b=$(val "$2" "$3")
    if [[ -n "$a" && -n "$b" ]] && awk -v b="$b" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    else
        echo "-"
    fi
}

# peer_goal LABEL RATIO PEER_FILE: adds LABEL to PEERS_MISSED unless RATIO
# > 1 (a peer not run is not judged)
peer_goal() {
    if [[ -n $(val "$3" skipped) ]]; then
        return 0
    elif [[ "$2" == - ]]; then
        PEERS_MISSED+="${PEERS_MISSED:+; }$1: a run failed"
    elif awk -v x="$2" 'BEGIN { exit !(x <= 1) }'; then
        PEERS_MISSED+="${PEERS_MISSED:+; }$1: $2x"
    fi
}

# peer_create OUT ENDPOINT AUTH_TOKENS: tus creations at
# BENCH_INIT_CONCURRENCY clients (AUTH_TOKENS: comma-separated tokens, or
# empty for none)
peer_create() {
    local out=$1 endpoint=$2 tokens=$3 auth=()
    [[ -z "$tokens" ]] || auth=(--auth)
    BENCH_TOKEN=$tokens "$BENCH" tus-create --endpoint "$endpoint" "${auth[@]}" \
        --length $((BENCH_PEERS_CREATE_MIB << 20)) --concurrency "$BENCH_INIT_CONCURRENCY" \
        --secs "$BENCH_INIT_SECS" >"$out" || {
        cc_warn "tus-create against $endpoint failed"
        echo "first_error=the client failed (see the run's output)" >>"$out"
    }
}

# create_row FILE LABEL: a table row of a tus-create run (one that created
# nothing is marked failed, which bench/smoke looks for)
create_row() {
    local f=$1 first
    first=$(val "$f" first_error)
    if [[ -n $(val "$f" skipped) ]]; then
        echo "| $2 | not run: $(val "$f" skipped) | | | | | |"
    elif [[ $(val "$f" ok) =~ ^[1-9] ]]; then
        echo "| $2 | **$(val "$f" rps)** | $(val "$f" p50_ms) ms | $(val "$f" p99_ms) ms | $(val "$f" max_ms) ms | $(val "$f" ok) | $(val "$f" errors)${first:+ (first: \`$first\`)} |"
    else
        echo "| $2 | **failed**: \`${first:-no creation answered}\` | | | | | |"
    fi
}

# profiled NAME PID COMMAND...: COMMAND, with `perf record -g -p PID` into
# $BENCH_PEERS_PERF/perf-NAME.data meanwhile when BENCH_PEERS_PERF is set
profiled() {
    local name=$1 pid=$2 perf rc=0
    shift 2
    if [[ -z "$BENCH_PEERS_PERF" ]]; then
        "$@"
        return
    fi
    mkdir -p "$BENCH_PEERS_PERF"
    perf record -g -q -p "$pid" -o "$BENCH_PEERS_PERF/perf-$name.data" >/dev/null 2>&1 &
    perf=$!
    "$@" || rc=$?
    kill -INT "$perf" 2>/dev/null || true
    wait "$perf" 2>/dev/null || true
    return "$rc"
}

# peer_pair fs|s3: sets OURS_URL, OURS_PID, PEER_URL (empty: not run), PEER_NAME, PAIR_LABEL
peer_pair() {
    if [[ $1 == fs ]]; then
        OURS_URL=$PEERS_FS_URL OURS_PID=$PEERS_FS_PID PEER_URL=${RUSTUS_URL:-} PEER_NAME=rustus
        PAIR_LABEL="filesystem: claimcheck fs store / rustus file store, --force-fsync"
    else
        OURS_URL=$PEERS_S3_URL OURS_PID=$PEERS_S3_PID PEER_URL=$TUS_NODE_URL PEER_NAME=tus-node-server
        PAIR_LABEL="S3 (Garage): claimcheck S3 store / tus-node-server, @tus/s3-store"
    fi
}

# peer_skip OUT: the peer is not run (rustus not cached)
peer_skip() { echo "skipped=rustus not cached (BENCH_PEERS_RUSTUS=if-cached)" >"$1"; }

bench_peers() {
    begin_block peers
    local r rows=$WORK/peers-rows.md creates=$WORK/peers-creates.md f a pair ours theirs owners tokens i
    local rustus=${CLAIMCHECK_RUSTUS_BIN:-}
    PEERS_MISSED="" RUSTUS_URL=""
    cc_log "peers: ${BENCH_PEERS_SIZE_MIB} MiB in one PATCH, claimcheck fs vs rustus$([[ -n $rustus ]] || echo " (not cached: left out)"), claimcheck S3 vs tus-node-server; then creations at $BENCH_INIT_CONCURRENCY clients"
    # Both claimcheck processes at once (the idle one costs nothing), with
    # the in-flight cap raised as in benchmark 4: the creation runs leave
    # thousands of pending uploads to one owner.
    start_api api-peers-fs fs_env CLAIMCHECK_MAX_PENDING_PER_OWNER=100000000
    PEERS_FS_URL=$API_URL/v1/tus PEERS_FS_PID=$API_PID
    start_api api-peers-s3 s3_env CLAIMCHECK_MAX_PENDING_PER_OWNER=100000000
    PEERS_S3_URL=$API_URL/v1/tus PEERS_S3_PID=$API_PID
    start_tus_node peers-tus-node
    [[ -z "$rustus" ]] || start_rustus peers-rustus
    printf 'Authorization: Bearer %s\n' "$BENCH_TOKEN" >"$WORK/auth.header"
    PEERS_FILE=$WORK/peers.bin
    head -c $((BENCH_PEERS_SIZE_MIB << 20)) /dev/urandom >"$PEERS_FILE"

    # Each pair back to back, the peer first in even rounds, so neither side
    # always comes second (after the other's disk writes).
    : >"$rows"
    for ((r = 1; r <= BENCH_PEERS_REPS; r++)); do
        for pair in fs s3; do
            peer_pair "$pair"
            ours=$WORK/peers-$pair-cc-$r.txt theirs=$WORK/peers-$pair-peer-$r.txt
            if [[ -z "$PEER_URL" ]]; then
                peer_skip "$theirs"
                profiled "upload-$pair-$r" "$OURS_PID" peer_upload "$ours" "$OURS_URL" 1
            elif ((r % 2)); then
                profiled "upload-$pair-$r" "$OURS_PID" peer_upload "$ours" "$OURS_URL" 1
                peer_upload "$theirs" "$PEER_URL" 0
            else
                peer_upload "$theirs" "$PEER_URL" 0
                profiled "upload-$pair-$r" "$OURS_PID" peer_upload "$ours" "$OURS_URL" 1
            fi
            for f in "$ours" "$theirs"; do
                [[ -z $(val "$f" error) ]] || cc_warn "peers upload failed: $(val "$f" error)"
            done
            a=$(peer_ratio "$ours" "$theirs" mib_s)
            peer_goal "${BENCH_PEERS_SIZE_MIB} MiB vs $PEER_NAME, round $r" "$a" "$theirs"
            printf '%s\n' "| $PAIR_LABEL | $r | $(peer_cell "$ours") | $(peer_cell "$theirs") | **$a** |" >>"$rows"
        done
    done
    rm -f "$PEERS_FILE"

    cc_log "peers: tus creations, $BENCH_INIT_CONCURRENCY clients, ${BENCH_INIT_SECS} s each"
    : >"$creates"
    : >"$creates.peers"
    for owners in $BENCH_PEERS_OWNERS; do
        tokens=$BENCH_TOKEN
        if ((owners > 1)); then
            tokens=""
            for ((i = 1; i <= owners; i++)); do
                tokens+=${tokens:+,}$("$PROFILE_DIR"/claimcheck-api token create --owner "peers-$i" --scopes upload | tail -n 1)
            done
        fi
        for pair in fs s3; do
            peer_pair "$pair"
            ours=$WORK/peers-create-$pair-$owners.txt theirs=$WORK/peers-create-$pair-peer.txt
            profiled "create-$pair-$owners" "$OURS_PID" peer_create "$ours" "$OURS_URL" "$tokens"
            # The peer has no owners: measured once, right after claimcheck's
            # first run on the same kind of store.
            if [[ ! -f "$theirs" ]]; then
                if [[ -z "$PEER_URL" ]]; then peer_skip "$theirs"; else peer_create "$theirs" "$PEER_URL" ""; fi
                printf '%s\n' "$(create_row "$theirs" "$PEER_NAME") |" >>"$creates.peers"
            fi
            a=$(peer_ratio "$ours" "$theirs" rps)
            peer_goal "creations vs $PEER_NAME, $owners owner$( ((owners > 1)) && echo s)" "$a" "$theirs"
            printf '%s\n' "$(create_row "$ours" "claimcheck \`/v1/tus\`, $pair store, $owners owner$( ((owners > 1)) && echo s)") **$a** |" >>"$creates"
        done
    done

    out "### Peers: claimcheck's \`/v1/tus\` against rustus and tus-node-server"
    out
    out "The same client for every server. **One ${BENCH_PEERS_SIZE_MIB} MiB file in one PATCH**: random bytes on disk (page-cached) with a fresh random stamp at the start of every MiB before each upload (Garage never deduplicates a block), and \`sync\` before each upload; then curl ($(curl --version | head -n 1 | cut -d' ' -f1-2)) sends the tus creation \`POST\` (Upload-Length, no body) and one \`PATCH\` of the whole file (\`-T file\`, Content-Length, streamed), and a \`HEAD\` must answer Upload-Offset = the size. Time: curl's \`time_total\` of the POST plus the PATCH. claimcheck and its peer back to back in each row, the peer first in even rounds; ratio = claimcheck / peer MiB/s."
    out
    out "- **claimcheck, fs store** (\`CLAIMCHECK_STORE=fs\`, part size default 16 MiB): the PATCH is cut into 16 MiB parts as it arrives; each part is written to a temp file, \`fsync\`ed (\`sync_all\`), renamed into the upload's session directory and the directory \`fsync\`ed, then recorded in PostgreSQL. The last part completes the upload: every part is copied (\`copy_file_range\`) into a new file, which is \`fsync\`ed, renamed to the object's path and its directory (and any directory created) \`fsync\`ed; the session directory is then renamed away (directory \`fsync\`ed) and removed."
    if [[ -n "$rustus" ]]; then
        out "- **rustus $CLAIMCHECK_RUSTUS_VERSION** (crates.io, \`cargo install --locked\`, default features; scripts/lib/rustus.sh): file store and file info store, \`--force-fsync true\`, \`--max-body-size\` of the file + 1 MiB (it reads a PATCH's whole body into memory before writing it), \`--log-level WARN\` (INFO logs each request), actix's default workers (one per core). A PATCH: the body appended to the data file in one write, then \`fdatasync\` (\`sync_data\`) of that file; its .info JSON (with the offset) rewritten without any sync. No directory is ever synced."
        out "- **Durability, fs row**: claimcheck syncs strictly more than rustus with \`--force-fsync\`: everything rustus syncs (the bytes) plus every directory entry (the object's, the parts', the session's), and it writes and syncs the bytes twice (parts, then the object). rustus can lose the upload's file entry, its .info and so its offset to a crash after it answered. claimcheck's offsets are PostgreSQL rows, and this run's PostgreSQL has fsync off (see the machine line), so here neither server makes its offset durable; in production claimcheck's commit is synced."
    else
        out "- **rustus left out of this run**: BENCH_PEERS_RUSTUS=if-cached and no rustus $CLAIMCHECK_RUSTUS_VERSION binary was cached (\`scripts/lib/rustus.sh install\` builds it); claimcheck's fs store still runs."
    fi
    out "- **claimcheck, S3 store** on Garage: 16 MiB parts uploaded (\`UploadPart\`) one after another as the PATCH arrives, each recorded in PostgreSQL, then CompleteMultipartUpload. **tus-node-server**: @tus/server $(npm_version @tus/server) with @tus/s3-store $(npm_version @tus/s3-store), bench/tus/server.mjs as in benchmark 7 (8 MiB parts staged in temporary files, up to 60 part uploads at once, MemoryLocker), the upload's info in a \`<id>.info\` object. Both on the same Garage bucket, so at equal durability (Garage's defaults: no fsync of data or metadata)."
    out
    out "| store | round | claimcheck | peer | claimcheck / peer |"
    out "| --- | --- | --- | --- | --- |"
    cat "$rows" >>"$RESULTS"
    out
    out "**Creations at $BENCH_INIT_CONCURRENCY clients**: claimcheck-bench tus-create (Rust, reqwest, keep-alive connections): each client sends tus creation \`POST\`s (Upload-Length $BENCH_PEERS_CREATE_MIB MiB, Upload-Metadata filename, no body) one after another for ${BENCH_INIT_SECS} s measured after a 2 s warm-up; a 201 with a Location counts, anything else is an error. claimcheck with CLAIMCHECK_MAX_PENDING_PER_OWNER=10^8 (as benchmark 4), first one owner's token for every client, then one owner per client (creating a claim holds the owner's lock for the in-flight cap); the peers have no owners and run once, right after claimcheck's first run on the same kind of store. Ratios: claimcheck / the peer of its store. What a creation does: **claimcheck** inserts the claim (one transaction with the owner's lock and quota checks), opens the store session (fs: a session directory with session.json \`fsync\`ed and two directory \`fsync\`s; S3: CreateMultipartUpload on Garage) and records its id (a second statement); **rustus** creates an empty data file and writes the .info JSON, nothing synced; **tus-node-server** sends CreateMultipartUpload and a PutObject of the \`<id>.info\` object to Garage."
    out
    out "| server | creations/s | p50 | p99 | max | requests | errors | claimcheck / peer |"
    out "| --- | --- | --- | --- | --- | --- | --- | --- |"
    cat "$creates.peers" "$creates" >>"$RESULTS"
    out
    local goal="Issue 18's goal (claimcheck ahead of both peers on every row, at equal durability)"
    [[ -n "$rustus" ]] || goal+=", rustus not run"
    if [[ -z "$PEERS_MISSED" ]]; then
        out "$goal: **met** in this run."
    else
        out "$goal: **not met**: $PEERS_MISSED."
    fi
    out
    stop_all
    reset_db
}
