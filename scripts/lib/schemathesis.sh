# shellcheck shell=bash
# Schemathesis (PyPI), the HTTP fuzzer of the fault suite. Source it.
#
#   st_ensure_installed   find schemathesis's `st` ($CLAIMCHECK_SCHEMATHESIS,
#                         PATH, then the venv in the tools cache), else create
#                         that venv and `pip install schemathesis` into it
#                         (about a minute, once); exports CLAIMCHECK_SCHEMATHESIS.

[[ -n "${_CC_SCHEMATHESIS_SH:-}" ]] && return 0
_CC_SCHEMATHESIS_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${CLAIMCHECK_TOOLS_DIR:=${HOME:-/root}/.cache/claimcheck-tools}"
# The version checked with claimcheck (Python 3.11).
: "${CLAIMCHECK_SCHEMATHESIS_VERSION:=4.32.5}"

st_ensure_installed() {
    local st venv=$CLAIMCHECK_TOOLS_DIR/schemathesis-venv
    if [[ -n "${CLAIMCHECK_SCHEMATHESIS:-}" && -x "$CLAIMCHECK_SCHEMATHESIS" ]]; then
        st=$CLAIMCHECK_SCHEMATHESIS
    elif st=$(command -v st 2>/dev/null) && "$st" --version 2>/dev/null | grep -qi schemathesis; then
        :
    elif [[ -x "$venv/bin/st" ]]; then
        st=$venv/bin/st
    else
        if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
            cc_apt_install python3 python3-venv
        fi
        cc_log "installing schemathesis $CLAIMCHECK_SCHEMATHESIS_VERSION into $venv"
        mkdir -p "$CLAIMCHECK_TOOLS_DIR"
        # Built in place (a venv cannot be moved); `st` appears last, so a
        # half-done install is redone next time.
        rm -rf "$venv"
        if ! { python3 -m venv "$venv" &&
            "$venv/bin/pip" install -q "schemathesis==$CLAIMCHECK_SCHEMATHESIS_VERSION"; }; then
            rm -rf "$venv"
            cc_die "pip install schemathesis failed"
        fi
        st=$venv/bin/st
    fi
    CLAIMCHECK_SCHEMATHESIS=$st
    export CLAIMCHECK_SCHEMATHESIS
}
