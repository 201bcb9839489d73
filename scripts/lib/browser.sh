# shellcheck shell=bash
# What the browser tests (tests/tests/suite/browser/) need: Debian's
# Chromium and the pinned packages of the Node scripts that drive it
# (tests/browser/: playwright-core, tus-js-client). Source it.
#
#   browser_ensure_installed
#       chromium: $CLAIMCHECK_TEST_CHROMIUM, else `chromium` on PATH, else
#       Debian's package with apt-get (about a minute, once);
#       the harness: `npm ci` of tests/browser/package-lock.json into the
#       tools cache, once per lock (scripts/lib/web.sh's web_npm_ci_cached);
#       node 18 or later (apt-get nodejs npm when missing).
#       Exports CLAIMCHECK_TEST_CHROMIUM, CLAIMCHECK_TEST_BROWSER_MODULES
#       (a node_modules directory) and CLAIMCHECK_TEST_NODE.

[[ -n "${_CC_BROWSER_SH:-}" ]] && return 0
_CC_BROWSER_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/lib/web.sh
source "$(dirname "${BASH_SOURCE[0]}")/web.sh"

_CC_BROWSER_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/browser" && pwd)

_browser_ensure_chromium() {
    local bin=${CLAIMCHECK_TEST_CHROMIUM:-}
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        bin=$(command -v chromium 2>/dev/null) || bin=
    fi
    if [[ -z "$bin" ]]; then
        # Debian's build: playwright's own browser download is not an option
        # (a prebuilt binary from outside the package registries).
        cc_apt_install chromium
        bin=$(command -v chromium 2>/dev/null) || cc_die "chromium installed but not on PATH"
    fi
    # Debian's wrapper script prints a harmless shell error on some
    # machines; only the version line matters.
    "$bin" --version 2>/dev/null | grep -qi chromium ||
        cc_die "$bin --version does not say Chromium"
    CLAIMCHECK_TEST_CHROMIUM=$bin
    export CLAIMCHECK_TEST_CHROMIUM
}

browser_ensure_installed() {
    web_ensure_node
    _browser_ensure_chromium
    local dir
    dir=$(web_npm_ci_cached browser-harness "$_CC_BROWSER_HARNESS")
    CLAIMCHECK_TEST_BROWSER_MODULES=$dir/node_modules
    export CLAIMCHECK_TEST_BROWSER_MODULES
}
