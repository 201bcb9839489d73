# shellcheck shell=bash
# Shared helpers for the claimcheck scripts. Source it; do not execute it.
#
# Provides: cc_log, cc_warn, cc_die, cc_now, cc_fmt_secs, cc_free_ports,
# cc_apt_install, cc_ensure_cargo_on_path.

[[ -n "${_CC_COMMON_SH:-}" ]] && return 0
_CC_COMMON_SH=1

cc_log() { printf '==> %s\n' "$*" >&2; }
cc_warn() { printf '==> WARNING: %s\n' "$*" >&2; }
cc_die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch (bash 5 has EPOCHSECONDS; fall back to date).
cc_now() { printf '%s\n' "${EPOCHSECONDS:-$(date +%s)}"; }

# cc_fmt_secs SECONDS -> "1m05s" / "42s"
cc_fmt_secs() {
    local s=$1
    if ((s >= 60)); then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

# cc_free_ports N: print N distinct TCP ports on 127.0.0.1 that are free right
# now, one per line. All N sockets are held open together so the ports differ.
cc_free_ports() {
    local n=${1:-1}
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
PY
        return
    fi
    # Fallback: random high ports that nothing answers on.
    local -a picked=()
    local p tries=0
    while ((${#picked[@]} < n)); do
        ((tries++ < 1000)) || cc_die "could not find $n free TCP ports"
        p=$((20000 + RANDOM % 40000))
        [[ " ${picked[*]} " == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            picked+=("$p")
        fi
    done
    printf '%s\n' "${picked[@]}"
}

# cc_apt_install PKG...: install Debian packages; runs `apt-get update` at
# most once per process.
cc_apt_install() {
    local -a sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 ||
            cc_die "need root (or sudo) to install: $*"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 ||
        cc_die "apt-get not found; install these yourself: $*"
    if [[ -z "${_CC_APT_UPDATED:-}" ]]; then
        cc_log "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            cc_die "apt-get update failed"
        _CC_APT_UPDATED=1
    fi
    cc_log "apt-get install $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" ||
        cc_die "apt-get install $* failed"
}

# Make sure `cargo` is reachable (CI shells may not source ~/.cargo/env).
cc_ensure_cargo_on_path() {
    if ! command -v cargo >/dev/null 2>&1; then
        local home=${CARGO_HOME:-${HOME:-/root}/.cargo}
        if [[ -x "$home/bin/cargo" ]]; then
            export PATH="$home/bin:$PATH"
        else
            cc_die "cargo not found on PATH (nor in $home/bin)"
        fi
    fi
}
