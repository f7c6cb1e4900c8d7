#!/usr/bin/env bash
# tests/browser/run.sh: Debian's chromium, headless, driven by playwright-core, against
# the real build/wsgw (or $WSGW_BUILD/wsgw): the demo page with build/wsgw-chat
# (chat.test.js), and ws:// and wss:// with a subprotocol and permessage-deflate, trusting
# the test CA of $WSGW_BUILD/tls (wss.test.js; make check makes it).
#
# Installs what is missing first: chromium, libnss3-tools (certutil), nodejs and npm from
# Debian (apt-get, as root or through sudo), and tests/browser/node_modules (npm ci:
# playwright-core only; it never downloads a browser of its own). Bounded: TEST_TIMEOUT
# seconds per test file (default 180).
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

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v certutil >/dev/null || missing+=(libnss3-tools)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] || "$ROOT/tools/need-debs" "${missing[@]}" || fail "could not install ${missing[*]}"
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing"
for b in wsgw wsgw-chat tls/ca.pem; do
	[ -e "$WSGW_BUILD/$b" ] || fail "$WSGW_BUILD/$b is missing: build it first (make check makes it)"
done
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
	log "npm ci in tests/browser (playwright-core)"
	# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but be sure.
	(cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
		fail "npm ci in tests/browser failed"
fi

passed=0 failed=0
for t in chat wss; do
	echo "== browser: $t.test.js in $("$CHROMIUM" --version 2>/dev/null | head -1)"
	out=$(cd "$ROOT" && timeout -k 5 "$TEST_TIMEOUT" node "$HERE/$t.test.js" 2>&1)
	rc=$?
	echo "$out"
	p=$(grep -c '^ok ' <<<"$out")
	f=$(grep -c '^not ok ' <<<"$out")
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		log "$t.test.js exited $rc without a result (crash or timeout after ${TEST_TIMEOUT} s)"
		f=1
	fi
	passed=$((passed + p)) failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
