#!/usr/bin/env bash
# tests/install/run.sh: wsgw as a user installs it. As root, on this very machine:
#
#   make deb, lintian; dpkg -i the four packages; the wsgw user and group; man pages;
#   systemd-analyze verify on both units; the installed /usr/sbin/wsgw started the way
#   wsgw.service starts it (as user wsgw, RUNTIME_DIRECTORY, NOTIFY_SOCKET, UMask 0007) from
#   the installed /etc/wsgw/wsgw.conf with its listen port edited to one this test picked;
#   READY/RELOADING/STOPPING through sd_notify; the installed wsgw-echo, a C worker built
#   outside the tree with only pkg-config, the installed Python package's echo example and
#   the packed Node library each attach and serve a real WebSocket client; who may attach
#   (a real member of group wsgw can, a real user outside it cannot); the lock (a second
#   gateway on the runtime directory exits 1, the first keeps serving); reinstalling keeps
#   the edited config; dpkg -r and dpkg -P leave none of the packages' files behind;
#   make rpm with rpm -qlp of each package (and rpmlint's verdict, for information);
#   npm pack's contents.
#
# Every wait is bounded; whatever it installs, starts or creates (packages, users, processes,
# directories) is removed at exit. Refuses to run when wsgw packages are installed already,
# since it would remove them. Ends with "N passed, M failed".
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/install
PY=/usr/bin/python3
PKGS="wsgw libwsgw1 libwsgw-dev python3-wsgw"
IN_USER=wsgwt-in	# a member of group wsgw
OUT_USER=wsgwt-out	# not a member

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check DESCRIPTION CMD...: runs CMD, counts the result.
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
log() { echo "# $*"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

[ "$(id -u)" = 0 ] || { echo "tests/install/run.sh needs root (dpkg -i, useradd)" >&2; not_ok "run as root"; finish; }
for p in $PKGS; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed\|config-files'; then
		echo "$p is installed already; this test would remove it: dpkg -P $PKGS first" >&2
		not_ok "no wsgw package installed before the test"
		finish
	fi
done

T=$(mktemp -d /tmp/wsgw-install.XXXXXX)
chmod 0755 "$T"	# the test users run programs and sockets from here
RUNDIR=/run/wsgw-itest.$$
pids=()
had_user=0
getent passwd wsgw >/dev/null && had_user=1
had_group=0
getent group wsgw >/dev/null && had_group=1

cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "${GWPID:-}" ] && rm -f /dev/shm/wsgw-"$GWPID"-*
	local installed=
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed\|config-files' &&
			installed="$installed $p"
	done
	[ -n "$installed" ] && dpkg -P $installed >/dev/null 2>&1
	for u in "$IN_USER" "$OUT_USER"; do getent passwd "$u" >/dev/null && userdel "$u" 2>/dev/null; done
	getent group "$OUT_USER" >/dev/null && groupdel "$OUT_USER" 2>/dev/null
	[ "$had_user" = 0 ] && getent passwd wsgw >/dev/null && userdel wsgw 2>/dev/null
	[ "$had_group" = 0 ] && getent group wsgw >/dev/null && groupdel wsgw 2>/dev/null
	rm -rf "$T" "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for SECONDS FILE NEEDLE: 0 once FILE contains NEEDLE.
wait_for() {
	local until=$((SECONDS + $1))
	while [ "$SECONDS" -le "$until" ]; do
		grep -qF -- "$3" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "# timed out after $1 s waiting for '$3' in $2" >&2
	return 1
}
# as USER CMD...: CMD as USER with its groups, the way systemd's User= runs it.
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}
# bg_as USER CMD... &: the same in the background; exec, so that $! is CMD's own pid (the
# one the gateway logs, and the one to kill).
bg_as() {
	local u=$1
	shift
	exec setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}
# echo_ok DESC PATH MESSAGE EXPECTED
echo_ok() { check "$1" timeout 15 "$PY" "$HERE/ws_echo.py" "ws://127.0.0.1:$PORT$2" "$3" "$4"; }
# attached POOL PID: the gateway logged that PID attached to POOL.
attached() { wait_for 10 "$T/gw.log" "attached to pool $1 (pid $2,"; }
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
# stop_worker POOL PID: stops it, and waits until the gateway dropped it, so that the next
# echo can only come from the next worker.
stop_worker() {
	stop_pid "$2"
	check "worker pid $2 stopped and the gateway let it go" wait_for 10 "$T/gw.log" "(pool $1, pid $2) gone"
}

log "tools"
"$ROOT/tools/need-debs" debhelper dh-python python3-all dpkg-dev fakeroot lintian rpm \
	python3-zmq python3-websockets libzmq3-dev pkg-config gcc scdoc util-linux adduser man-db \
	rpmlint ||
	{ not_ok "the test's tools are installed"; finish; }

log "make deb"
if (cd "$ROOT" && timeout 600 make deb) >"$T/deb.log" 2>&1; then
	ok "make deb"
else
	tail -30 "$T/deb.log"
	not_ok "make deb"
	finish
fi
DEBS=()
for p in $PKGS; do DEBS+=("$(ls "$ROOT"/build/deb/"$p"_*.deb)"); done
timeout 300 lintian --fail-on error --display-info "$ROOT"/build/deb/wsgw_*.changes >"$T/lintian.txt" 2>&1
check "lintian finds no error" test $? = 0
sed 's/^/# lintian: /' "$T/lintian.txt"

log "dpkg -i"
if timeout 300 dpkg -i "${DEBS[@]}" >"$T/dpkg-i.log" 2>&1; then
	ok "dpkg -i ${PKGS}"
else
	cat "$T/dpkg-i.log"
	not_ok "dpkg -i ${PKGS}"
	finish
fi
for p in $PKGS; do dpkg -L "$p"; done | grep -vx '/\.' | sort -u >"$T/files.all"
# Paths that are the packages' own: files and links (directories may be shared; /lib is
# usrmerge's link to a directory).
while read -r f; do [ -d "$f" ] || echo "$f"; done <"$T/files.all" >"$T/files"
check "the packages own files ($(wc -l <"$T/files"))" test -s "$T/files"
check "postinst made the system user wsgw" bash -c "getent passwd wsgw >/dev/null"
check "postinst made the group wsgw" bash -c "getent group wsgw >/dev/null"
check "/etc/wsgw/wsgw.conf is a conffile" grep -qx /etc/wsgw/wsgw.conf /var/lib/dpkg/info/wsgw.conffiles
for f in /usr/sbin/wsgw /usr/bin/wsgw-echo /usr/bin/wsgw-bench /etc/wsgw/wsgw.conf \
	/lib/systemd/system/wsgw.service /lib/systemd/system/wsgw-worker@.service \
	/usr/include/wsgw/worker.h /usr/lib/python3/dist-packages/wsgw/__init__.py \
	/usr/share/wsgw/www/index.html /usr/share/wsgw/www/chat.js; do
	check "installed $f" test -e "$f"
done
for d in OPERATIONS PROTOCOL UPGRADE SCALING RELIABILITY ARCHITECTURE; do
	check "installed /usr/share/doc/wsgw/$d.md" bash -c "ls /usr/share/doc/wsgw/$d.md* >/dev/null"
done
for m in wsgw.8 wsgw.conf.5 wsgw-bench.1 wsgw-echo.1 libwsgw.3; do
	page=$(man -w "${m##*.}" "${m%.*}" 2>/dev/null) || page=
	check "man ${m##*.} ${m%.*} is installed" test -n "$page"
	[ -n "$page" ] && check "man --warnings ${m%.*}(${m##*.}) is silent" \
		test -z "$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)"
done
out=$(timeout 60 systemd-analyze verify /lib/systemd/system/wsgw.service \
	/lib/systemd/system/wsgw-worker@.service 2>&1)
rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/# systemd-analyze: /'
check "systemd-analyze verify wsgw.service wsgw-worker@.service" test "$rc" = 0 -a -z "$out"

log "test users"
for u in "$IN_USER" "$OUT_USER"; do getent passwd "$u" >/dev/null && userdel "$u"; done
getent group "$OUT_USER" >/dev/null && groupdel "$OUT_USER"
useradd --system --no-create-home --shell /usr/sbin/nologin --groups wsgw --gid nogroup "$IN_USER"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$OUT_USER"
check "$IN_USER is in group wsgw" bash -c "id -nG $IN_USER | grep -qw wsgw"
check "$OUT_USER is not" bash -c "! id -nG $OUT_USER | grep -qw wsgw"

log "the installed gateway, from the installed config"
PORT=$(/usr/bin/wsgw-bench --free-port)
sed -i "s/^address = 127.0.0.1:8080$/address = 127.0.0.1:$PORT/" /etc/wsgw/wsgw.conf
check "edited the listen port of /etc/wsgw/wsgw.conf to $PORT" grep -qx "address = 127.0.0.1:$PORT" /etc/wsgw/wsgw.conf
# The demo page the package ships, where the config's commented line says it is.
sed -i "s|^#static = /usr/share/wsgw/www$|static = /usr/share/wsgw/www|" /etc/wsgw/wsgw.conf
check "turned on static = /usr/share/wsgw/www" grep -qx "static = /usr/share/wsgw/www" /etc/wsgw/wsgw.conf
# What systemd does for RuntimeDirectory=wsgw RuntimeDirectoryMode=0750 User=wsgw.
install -d -o wsgw -g wsgw -m 0750 "$RUNDIR"
mkdir -m 0755 "$T/n"
"$PY" "$HERE/notify_listen.py" "$T/n/notify" "$T/notify.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$T/n/notify" ] && break; sleep 0.1; done
start_gateway() { # LOG: the gateway the way wsgw.service runs it, in the background
	(umask 0007 && exec env -i PATH=/usr/bin:/bin RUNTIME_DIRECTORY="$RUNDIR" \
		NOTIFY_SOCKET="$T/n/notify" WATCHDOG_USEC=4000000 \
		setpriv --reuid=wsgw --regid=wsgw --init-groups -- \
		/usr/sbin/wsgw --config /etc/wsgw/wsgw.conf) 2>>"$1" &
}
start_gateway "$T/gw.log"
GWPID=$!
pids+=("$GWPID")
check "wsgw said READY=1 through sd_notify" wait_for 10 "$T/notify.log" "READY=1"
check "READY=1 names the main pid" grep -q "MAINPID=$GWPID" "$T/notify.log"
check "wsgw runs as user wsgw" test "$(ps -o user= -p "$GWPID")" = wsgw
check "the control socket is mode 0660, group wsgw" \
	test "$(stat -c '%a %G' "$RUNDIR/control" 2>/dev/null)" = "660 wsgw"
check "the lock file names the gateway" test "$(cat "$RUNDIR/wsgw.lock" 2>/dev/null)" = "$GWPID"
CONTROL="ipc://$RUNDIR/control"
echo_ok "the built-in echo route of the packaged config" /echo hello hello
check "a plain GET / gets the installed demo page" "$PY" -c '
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/")
r = c.getresponse()
body = r.read()
sys.exit(0 if r.status == 200 and body == open("/usr/share/wsgw/www/index.html", "rb").read() else 1)
' "$PORT"

bg_as "$IN_USER" /usr/bin/wsgw-echo --control "$CONTROL" --pool app 2>>"$T/echo.log" &
ECHOPID=$!
pids+=("$ECHOPID")
check "the installed wsgw-echo, run by a member of group wsgw, attaches" attached app "$ECHOPID"
echo_ok "a WebSocket client gets its echo through wsgw-echo" / "hello app" "hello app"
check "the attach socket is mode 0660, group wsgw" \
	test "$(stat -c '%a %G' "$RUNDIR/control.fds" 2>/dev/null)" = "660 wsgw"
check "no segment has a name in /dev/shm" test -z "$(ls /dev/shm/wsgw-"$GWPID"-* 2>/dev/null)"
check "wsgw-bench: 20 connections echo for 1 s, no mismatch" \
	bash -c "timeout 30 /usr/bin/wsgw-bench --target 127.0.0.1:$PORT/ --mode echo -c 20 -d 1 -q >$T/bench.json"

log "who may attach"
cat >"$T/probe.py" <<'EOF'
import os, socket, sys
what, path = sys.argv[1], sys.argv[2]
try:
    if what == "connect":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
    else:
        os.close(os.open(path, os.O_RDWR))
except PermissionError:
    sys.exit(13)
EOF
check "a member of group wsgw can connect to the control socket" as "$IN_USER" "$PY" "$T/probe.py" connect "$RUNDIR/control"
check "a member of group wsgw can connect to the attach socket" as "$IN_USER" "$PY" "$T/probe.py" connect "$RUNDIR/control.fds"
as "$OUT_USER" "$PY" "$T/probe.py" connect "$RUNDIR/control"
check "a user outside group wsgw cannot connect to the control socket (EACCES)" test $? = 13
as "$OUT_USER" "$PY" "$T/probe.py" connect "$RUNDIR/control.fds"
check "a user outside group wsgw cannot connect to the attach socket (EACCES)" test $? = 13
n_attached=$(grep -c "attached to pool app" "$T/gw.log")
as "$OUT_USER" timeout 4 /usr/bin/wsgw-echo --control "$CONTROL" --pool app >"$T/out-echo.log" 2>&1
rc=$?
check "wsgw-echo run by a user outside group wsgw does not attach (still waiting after 4 s: $rc)" \
	test "$rc" = 124 -a "$(grep -c "attached to pool app" "$T/gw.log")" = "$n_attached"
stop_worker app "$ECHOPID"

log "a C worker built outside the tree with pkg-config"
mkdir -m 0755 "$T/cw"
cp "$HERE/ext_worker.c" "$T/cw/"
flags=$(pkg-config --cflags --libs wsgw)
check "pkg-config --cflags --libs wsgw: $flags" test -n "$flags"
check "pkg-config --static --libs wsgw names -lzmq" bash -c "pkg-config --static --libs wsgw | grep -qw -- -lzmq"
# shellcheck disable=SC2086
check "cc ext_worker.c \$(pkg-config --cflags --libs wsgw) builds, warning-free" \
	bash -c "cd $T/cw && cc -Wall -Wextra -Werror -o ext_worker ext_worker.c $flags"
check "it links the installed libwsgw.so.1" \
	bash -c "ldd $T/cw/ext_worker | grep -q 'libwsgw.so.1 => /\(usr/\)\{0,1\}lib/x86_64-linux-gnu/libwsgw.so.1'"
bg_as "$IN_USER" "$T/cw/ext_worker" "$CONTROL" app 2>>"$T/ext.log" &
EXTPID=$!
pids+=("$EXTPID")
check "the external C worker attaches" attached app "$EXTPID"
echo_ok "a client gets the external C worker's answer" / hi ext:hi

log "the lock: one gateway per runtime directory"
ino=$(stat -c %i "$RUNDIR/control")
start_gateway "$T/gw2.log"
GW2=$!
rc=0
for _ in $(seq 100); do kill -0 "$GW2" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$GW2" 2>/dev/null; then
	kill -KILL "$GW2"
	rc=running
else
	wait "$GW2"
	rc=$?
fi
check "a second gateway on the same runtime directory exits 1 (got $rc)" test "$rc" = 1
check "with a message naming the first (pid $GWPID)" \
	grep -qF "another gateway (pid $GWPID) runs with runtime directory $RUNDIR" "$T/gw2.log"
sed 's/^/# second gateway: /' "$T/gw2.log"
check "the first gateway's control socket is untouched" test "$(stat -c %i "$RUNDIR/control" 2>/dev/null)" = "$ino"
check "the first gateway still runs" kill -0 "$GWPID"
echo_ok "and its worker still serves clients" / again ext:again
stop_worker app "$EXTPID"

log "the Python package"
out=$(cd / && "$PY" -c 'import wsgw; print(wsgw.__file__)' 2>&1)
check "python3 -c 'import wsgw' finds the installed package ($out)" \
	test "$out" = /usr/lib/python3/dist-packages/wsgw/__init__.py
bg_as "$IN_USER" "$PY" /usr/share/doc/python3-wsgw/examples/echo.py --control "$CONTROL" --pool app \
	2>>"$T/py.log" &
PYPID=$!
pids+=("$PYPID")
check "the installed Python echo example attaches" attached app "$PYPID"
echo_ok "a client gets its echo through the Python example" / "hello python" "hello python"
stop_worker app "$PYPID"

log "the Node package (npm pack)"
rm -f "$ROOT"/build/wsgw-worker-*.tgz
if (cd "$ROOT" && timeout 120 make npm-pack) >"$T/npm-pack.log" 2>&1; then
	ok "make npm-pack"
	TGZ=$(ls "$ROOT"/build/wsgw-worker-*.tgz)
	tar -tzf "$TGZ" | sort >"$T/npm.list"
	check "the npm package holds index.js, package.json and the examples, no tests" \
		bash -c "grep -qx package/index.js $T/npm.list && grep -qx package/package.json $T/npm.list &&
			grep -qx package/examples/echo.js $T/npm.list && ! grep -q 'test\|node_modules' $T/npm.list"
	mkdir -m 0755 "$T/nodeapp"
	echo '{"name":"app","version":"1.0.0","private":true}' >"$T/nodeapp/package.json"
	if command -v npm >/dev/null && (cd "$T/nodeapp" && timeout 300 npm install --no-audit --no-fund "$TGZ") \
		>"$T/npm-install.log" 2>&1; then
		ok "npm install ./wsgw-worker-*.tgz"
		chmod -R a+rX "$T/nodeapp"
		bg_as "$IN_USER" node "$T/nodeapp/node_modules/wsgw-worker/examples/echo.js" \
			--control "$CONTROL" --pool app 2>>"$T/node.log" &
		NODEPID=$!
		pids+=("$NODEPID")
		check "the packed Node library's echo example attaches" attached app "$NODEPID"
		echo_ok "a client gets its echo through it" / "hello node" "hello node"
		stop_worker app "$NODEPID"
	else
		tail -20 "$T/npm-install.log"
		not_ok "npm install ./wsgw-worker-*.tgz"
	fi
else
	tail -20 "$T/npm-pack.log"
	not_ok "make npm-pack"
fi

log "reload and stop, as systemctl reload/stop would"
kill -HUP "$GWPID"
check "SIGHUP: RELOADING=1 then READY=1" wait_for 10 "$T/notify.log" "READY=1 MAINPID=$GWPID STATUS=reloaded"
check "RELOADING=1 came first" grep -q "RELOADING=1" "$T/notify.log"
check "WATCHDOG=1 keep-alives (WatchdogSec=4s)" grep -qx "WATCHDOG=1" "$T/notify.log"
kill -TERM "$GWPID"
check "SIGTERM: STOPPING=1" wait_for 10 "$T/notify.log" "STOPPING=1"
rc=timeout
for _ in $(seq 100); do kill -0 "$GWPID" 2>/dev/null || { wait "$GWPID"; rc=$?; break; }; sleep 0.1; done
check "the gateway exits 0 after its drain (got $rc)" test "$rc" = 0
check "it removed its control socket" test ! -e "$RUNDIR/control"
check "it removed its sockets" test ! -e "$RUNDIR/control" -a ! -e "$RUNDIR/control.fds"

log "upgrade keeps the edited config; remove and purge leave nothing"
timeout 300 dpkg -i "${DEBS[@]}" >"$T/dpkg-again.log" 2>&1
check "dpkg -i again (an upgrade to the same version)" test $? = 0
check "the edited /etc/wsgw/wsgw.conf was kept" grep -qx "address = 127.0.0.1:$PORT" /etc/wsgw/wsgw.conf
timeout 300 dpkg -r $PKGS >"$T/dpkg-r.log" 2>&1
check "dpkg -r $PKGS" test $? = 0
left=$(while read -r f; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done <"$T/files")
check "dpkg -r leaves only the conffile (left: $(echo $left))" test "$left" = /etc/wsgw/wsgw.conf
timeout 300 dpkg -P $PKGS >"$T/dpkg-p.log" 2>&1
check "dpkg -P $PKGS" test $? = 0
# A directory that is still there must belong to another package (/usr/bin, /lib/systemd/system).
left=$(while read -r f; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	[ -d "$f" ] && dpkg -S "$f" >/dev/null 2>&1 && continue
	echo "$f"
done <"$T/files.all")
check "dpkg -P leaves none of the packages' files or directories (left: $(echo $left))" test -z "$left"
check "no python bytecode left" test ! -e /usr/lib/python3/dist-packages/wsgw
check "no enablement symlink left" test ! -e /etc/systemd/system/multi-user.target.wants/wsgw.service
check "no deb-systemd-helper state left" \
	test -z "$(ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep wsgw)"

log "make rpm"
if (cd "$ROOT" && timeout 600 make rpm) >"$T/rpm.log" 2>&1; then
	ok "make rpm"
	rpmfile() { find "$ROOT/build/rpm/RPMS" -name "$1-[0-9]*.rpm" | head -1; }
	# expect PACKAGE FILE...: rpm -qlp PACKAGE lists every FILE.
	expect() {
		local p=$1 f list
		shift
		list=$(rpm -qlp "$(rpmfile "$p")" 2>/dev/null)
		for f in "$@"; do
			grep -qx -- "$f" <<<"$list" || { echo "# $p lacks $f" >&2; return 1; }
		done
	}
	check "wsgw.rpm: daemon, workers, conffile, units, man pages" expect wsgw /usr/sbin/wsgw \
		/usr/bin/wsgw-echo /usr/bin/wsgw-bench /etc/wsgw/wsgw.conf \
		/usr/lib/systemd/system/wsgw.service /usr/lib/systemd/system/wsgw-worker@.service \
		/usr/share/man/man8/wsgw.8.gz /usr/share/man/man5/wsgw.conf.5.gz \
		/usr/share/man/man1/wsgw-bench.1.gz /usr/share/man/man1/wsgw-echo.1.gz \
		/usr/share/wsgw/www/index.html
	check "wsgw.rpm: the operator's docs" bash -c \
		"rpm -qlp '$(rpmfile wsgw)' | grep -Eq '^/usr/share/doc/wsgw[^/]*/UPGRADE.md$'"
	check "wsgw-libs.rpm: libwsgw.so.1" expect wsgw-libs /usr/lib64/libwsgw.so.1 /usr/lib64/libwsgw.so.1.0.0
	check "wsgw-devel.rpm: headers, static library, wsgw.pc, libwsgw(3)" expect wsgw-devel \
		/usr/include/wsgw/worker.h /usr/include/wsgw/protocol.h /usr/lib64/libwsgw.so \
		/usr/lib64/libwsgw.a /usr/lib64/pkgconfig/wsgw.pc /usr/share/man/man3/libwsgw.3.gz
	check "python3-wsgw.rpm: the wsgw module" bash -c \
		"rpm -qlp '$(rpmfile python3-wsgw)' 2>/dev/null | grep -q '/site-packages/wsgw/__init__.py$'"
	check "the conffile is %config(noreplace)" bash -c \
		"rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$(rpmfile wsgw)' 2>/dev/null | grep -qx '/etc/wsgw/wsgw.conf cn'"
	check "the wsgw.rpm %pre creates the wsgw user" bash -c \
		"rpm -qp --scripts '$(rpmfile wsgw)' 2>/dev/null | grep -q 'useradd -r -g wsgw'"
	if command -v rpmlint >/dev/null; then
		# Without a distribution's configuration rpmlint flags what no local build has
		# (signature, Packager, URL): its summary is information, not a verdict.
		timeout 120 rpmlint "$ROOT"/build/rpm/RPMS/*/*.rpm >"$T/rpmlint.txt" 2>&1
		log "rpmlint: $(tail -1 "$T/rpmlint.txt")"
	fi
else
	tail -30 "$T/rpm.log"
	not_ok "make rpm"
fi

finish
