# shellcheck shell=bash
# The upload page (web/): Uppy and esbuild from the npm registry, at the
# exact versions of web/package-lock.json, bundled into static files that
# claimcheck-api serves at / (dev; serve with CLAIMCHECK_WEB_DIR). Source it.
#
#   web_build            `npm ci` of web/package-lock.json into the tools
#                        cache (once per lock), then `node web/build.mjs`
#                        into web/dist (about a second, every call, so the
#                        build never lags the sources). Exports
#                        CLAIMCHECK_TEST_WEB_DIR (web/dist, for the browser
#                        tests).
#   web_ensure_node      node 18 or later and npm (apt-get nodejs npm when
#                        missing); exports CLAIMCHECK_TEST_NODE.
#   web_npm_ci_cached NAME DIR
#                        `npm ci` of DIR/package{,-lock}.json into
#                        $CLAIMCHECK_TOOLS_DIR/NAME-<hash of both>, unless
#                        done already; older NAME-* directories are removed.
#                        Prints the directory (it holds node_modules/).

[[ -n "${_CC_WEB_SH:-}" ]] && return 0
_CC_WEB_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${CLAIMCHECK_TOOLS_DIR:=${HOME:-/root}/.cache/claimcheck-tools}"
_CC_WEB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

web_ensure_node() {
    local major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        cc_apt_install nodejs npm
    fi
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) ||
        cc_die "node does not run"
    ((major >= 18)) || cc_die "node $(node --version) is too old: the page and the browser tests need Node 18 or later"
    CLAIMCHECK_TEST_NODE=$(command -v node)
    export CLAIMCHECK_TEST_NODE
}

web_npm_ci_cached() {
    local name=$1 project=$2 hash dir tmp old
    hash=$(cat "$project/package.json" "$project/package-lock.json" | sha256sum | cut -c1-16)
    dir=$CLAIMCHECK_TOOLS_DIR/$name-$hash
    if [[ ! -f "$dir/.installed" ]]; then
        cc_log "npm ci $project/package-lock.json into $dir"
        mkdir -p "$CLAIMCHECK_TOOLS_DIR"
        # Installed aside and renamed into place, so a concurrent run or an
        # interrupted install never leaves a half-filled directory here.
        tmp=$(mktemp -d "$CLAIMCHECK_TOOLS_DIR/.$name.XXXXXX")
        cp "$project/package.json" "$project/package-lock.json" "$tmp/"
        # `npm ci` installs exactly the lock (integrity hashes checked) and
        # fails when it disagrees with package.json.
        if ! (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2); then
            rm -rf "$tmp"
            cc_die "npm ci of $project/package-lock.json failed"
        fi
        touch "$tmp/.installed"
        rm -rf "$dir"
        mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
        for old in "$CLAIMCHECK_TOOLS_DIR/$name"-*; do
            [[ "$old" == "$dir" || ! -d "$old" ]] || rm -rf "$old"
        done
    fi
    printf '%s\n' "$dir"
}

web_build() {
    local modules
    web_ensure_node
    modules=$(web_npm_ci_cached web-modules "$_CC_WEB_ROOT/web")
    node "$_CC_WEB_ROOT/web/build.mjs" --modules "$modules/node_modules" \
        --out "$_CC_WEB_ROOT/web/dist" >&2 ||
        cc_die "building the upload page (web/build.mjs) failed"
    CLAIMCHECK_TEST_WEB_DIR=$_CC_WEB_ROOT/web/dist
    export CLAIMCHECK_TEST_WEB_DIR
}
