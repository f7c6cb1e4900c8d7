#!/usr/bin/env bash
# tests/workers/lang_deps.sh: what the Python and Node workers need to run, installed when
# missing: python3-zmq and python3-websockets for Debian's /usr/bin/python3, nodejs and npm
# (only what is really missing: a nodesource nodejs ships its own npm, and Debian's npm
# package would conflict with it), and workers/node/node_modules (npm ci). Used by
# run_lang_tests.sh and, before the test programs, by `make check` (test_upgrade runs
# the real Python and Node workers). Says what failed and exits 1; 0 when all is there.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3
log() { echo "lang_deps: $*" >&2; }

missing=()
[ -x "$PY" ] && "$PY" -c 'import zmq' 2>/dev/null || missing+=(python3-zmq)
[ -x "$PY" ] && "$PY" -c 'import websockets' 2>/dev/null || missing+=(python3-websockets)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ] && ! "$ROOT/tools/need-debs" "${missing[@]}"; then
	log "installing ${missing[*]} failed"
	exit 1
fi
if [ ! -d "$ROOT/workers/node/node_modules/zeromq" ] || [ ! -d "$ROOT/workers/node/node_modules/ws" ]; then
	log "installing workers/node/node_modules (npm ci)"
	(cd "$ROOT/workers/node" && { npm ci --no-audit --no-fund >/dev/null 2>&1 ||
		npm install --no-audit --no-fund >/dev/null; }) || {
		log "npm could not install zeromq and ws"
		exit 1
	}
fi
