#!/usr/bin/env bash
# tests/browser/run.sh: the demo page in Debian's chromium, headless, driven by
# playwright-core (tests/browser/chat.test.js), against the real build/wsgw (or
# $WSGW_BUILD/wsgw) and build/wsgw-chat.
#
# Installs what is missing first: chromium, nodejs and npm from Debian (apt-get, as root or
# through sudo), and tests/browser/node_modules (npm ci: playwright-core only; it never
# downloads a browser of its own). Bounded: TEST_TIMEOUT seconds in all (default 180).
# Prints the test's lines, then exactly "N passed, M failed"; exits non-zero on a failure,
# including a test that could not run at all.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export WSGW_BUILD=${WSGW_BUILD:-$ROOT/build}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
log() { echo "browser: $*" >&2; }
fail() { log "$*"; echo "0 passed, 1 failed"; exit 1; }

apt_install() {
	local SUDO=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { log "cannot install $*: not root, no sudo"; return 1; }
		SUDO="sudo -n"
	fi
	log "installing $*"
	$SUDO apt-get update -qq >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		-o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing"
for b in wsgw wsgw-chat; do
	[ -x "$WSGW_BUILD/$b" ] || fail "$WSGW_BUILD/$b is missing: build it first"
done
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
	log "npm ci in tests/browser (playwright-core)"
	# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but be sure.
	(cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
		fail "npm ci in tests/browser failed"
fi

echo "== browser: the demo page in $("$CHROMIUM" --version 2>/dev/null | head -1)"
out=$(cd "$ROOT" && timeout -k 5 "$TEST_TIMEOUT" node "$HERE/chat.test.js" 2>&1)
rc=$?
echo "$out"
passed=$(grep -c '^ok ' <<<"$out")
failed=$(grep -c '^not ok ' <<<"$out")
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	log "chat.test.js exited $rc without a result (crash or timeout after ${TEST_TIMEOUT} s)"
	failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$rc" = 0 ]
