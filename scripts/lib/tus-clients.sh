# shellcheck shell=bash
# The third-party tus clients the tus suite drives (tests/tests/suite/tus/clients.rs):
# tuspy (PyPI) and tus-js-client (npm), at the exact versions the repo pins.
# Source it.
#
#   tus_clients_ensure_installed
#       tuspy: a venv in the tools cache with tests/clients/py/requirements.txt
#       (every package pinned), rebuilt when that file changes;
#       tus-js-client: `npm ci` of tests/clients/js/package-lock.json into a
#       tools cache directory named after the lock's hash (older ones removed).
#       Installs python3-venv / nodejs and npm with apt-get when missing.
#       Exports CLAIMCHECK_TUSPY_PYTHON (the venv's python),
#       CLAIMCHECK_TUS_JS_DIR (holds node_modules/tus-js-client),
#       and CLAIMCHECK_NODE (node, 18 or later).

[[ -n "${_CC_TUS_CLIENTS_SH:-}" ]] && return 0
_CC_TUS_CLIENTS_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${CLAIMCHECK_TOOLS_DIR:=${HOME:-/root}/.cache/claimcheck-tools}"
_CC_TUS_CLIENTS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/clients" && pwd)

# _tus_hash FILE...: a short content hash, to name or stamp what was built from them.
_tus_hash() { cat "$@" | sha256sum | cut -c1-16; }

_tus_ensure_tuspy() {
    local venv=$CLAIMCHECK_TOOLS_DIR/tuspy-venv
    local requirements=$_CC_TUS_CLIENTS_SRC/py/requirements.txt
    local want stamp=$venv/.claimcheck-requirements
    want=$(_tus_hash "$requirements")
    if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        CLAIMCHECK_TUSPY_PYTHON=$venv/bin/python
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
        cc_apt_install python3 python3-venv
    fi
    cc_log "installing tuspy ($(grep -m1 '^tuspy==' "$requirements")) into $venv"
    mkdir -p "$CLAIMCHECK_TOOLS_DIR"
    # Built in place (a venv cannot be moved); the stamp is written last, so
    # a half-done install is redone next time.
    rm -rf "$venv"
    if ! { python3 -m venv "$venv" &&
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" &&
        "$venv/bin/python" -c 'import tusclient.client'; }; then
        rm -rf "$venv"
        cc_die "pip install of tuspy ($requirements) failed"
    fi
    printf '%s\n' "$want" >"$stamp"
    CLAIMCHECK_TUSPY_PYTHON=$venv/bin/python
}

# Node 18 or later (tus-js-client's engines field), with npm.
_tus_ensure_node() {
    local major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        cc_apt_install nodejs npm
    fi
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) ||
        cc_die "node does not run"
    ((major >= 18)) || cc_die "node $(node --version) is too old for tus-js-client: install Node 18 or later"
    CLAIMCHECK_NODE=$(command -v node)
}

_tus_ensure_tus_js() {
    local project=$_CC_TUS_CLIENTS_SRC/js hash dir
    hash=$(_tus_hash "$project/package.json" "$project/package-lock.json")
    dir=$CLAIMCHECK_TOOLS_DIR/tus-js-client-$hash
    if [[ ! -f "$dir/.installed" ]]; then
        cc_log "installing tus-js-client ($(grep -o '"tus-js-client": *"[^"]*"' "$project/package.json")) with npm ci into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        cp "$project/package.json" "$project/package-lock.json" "$dir/"
        # `npm ci` installs exactly the lock and fails if it disagrees with
        # package.json; the marker is written last, so a half-done install is
        # redone next time.
        if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
            rm -rf "$dir"
            cc_die "npm ci of tus-js-client ($project/package-lock.json) failed"
        fi
        touch "$dir/.installed"
        # Installs of earlier locks are never used again.
        local old
        for old in "$CLAIMCHECK_TOOLS_DIR"/tus-js-client-*; do
            [[ "$old" == "$dir" || ! -d "$old" ]] || rm -rf "$old"
        done
    fi
    CLAIMCHECK_TUS_JS_DIR=$dir
}

tus_clients_ensure_installed() {
    _tus_ensure_tuspy
    _tus_ensure_node
    _tus_ensure_tus_js
    export CLAIMCHECK_TUSPY_PYTHON CLAIMCHECK_TUS_JS_DIR CLAIMCHECK_NODE
}
