#!/usr/bin/env bash
# tests/workers/run_lang_tests.sh: the Python and Node worker libraries' test suites, run
# against the real build/wsgw (or $WSGW_BUILD/wsgw) and build/wsgw-echo.
#
# Installs what is missing first (tests/workers/lang_deps.sh).
# Prints each suite's output, then a last line exactly "N passed, M failed"; exits non-zero
# on any failure, including a suite that could not run at all.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export WSGW_BUILD=${WSGW_BUILD:-$ROOT/build}
PY=/usr/bin/python3	# Debian's: the one that sees python3-zmq (a pyenv python3 may not)
SUITE_TIMEOUT=${SUITE_TIMEOUT:-150}

passed=0
failed=0
log() { echo "run_lang_tests: $*" >&2; }

"$ROOT/tests/workers/lang_deps.sh" || log "installing what the workers need failed (above)"

for b in wsgw wsgw-echo; do
	[ -x "$WSGW_BUILD/$b" ] || log "$WSGW_BUILD/$b is missing: build it first (make $WSGW_BUILD/$b)"
done

# python_suite: unittest's summary gives the counts ("Ran N tests", "FAILED (failures=a,
# errors=b, skipped=c)").
python_suite() {
	local out rc n f e s
	echo "== Python worker tests"
	out=$(cd "$ROOT" && timeout -k 5 "$SUITE_TIMEOUT" "$PY" -m unittest discover \
		-s workers/python/tests -v 2>&1)
	rc=$?
	echo "$out"
	n=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' <<<"$out" | tail -1)
	f=$(grep -o 'failures=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
	e=$(grep -o 'errors=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
	s=$(grep -o 'skipped=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
	n=${n:-0} f=${f:-0} e=${e:-0} s=${s:-0}
	# A test that fails and then errors in tearDown is counted twice by unittest.
	f=$((f + e > n ? n : f + e))
	passed=$((passed + n - f - s))
	failed=$((failed + f))
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		log "the Python suite exited $rc without a result (crash or timeout)"
		failed=$((failed + 1))
	fi
}

# node_suite: the TAP summary gives the counts ("# pass N", "# fail M").
node_suite() {
	local out rc p f
	echo "== Node worker tests"
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		log "node or npm is missing"
		failed=$((failed + 1))
		return
	fi
	if [ ! -d "$ROOT/workers/node/node_modules/zeromq" ] || [ ! -d "$ROOT/workers/node/node_modules/ws" ]; then
		log "workers/node/node_modules is missing (lang_deps.sh said why)"
		failed=$((failed + 1))
		return
	fi
	out=$(cd "$ROOT" && timeout -k 5 "$SUITE_TIMEOUT" node --test --test-reporter=tap \
		workers/node/test/ 2>&1)
	rc=$?
	echo "$out"
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' <<<"$out" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' <<<"$out" | tail -1)
	p=${p:-0} f=${f:-0}
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		log "the Node suite exited $rc without a result (crash or timeout)"
		failed=$((failed + 1))
	fi
}

python_suite
node_suite
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
