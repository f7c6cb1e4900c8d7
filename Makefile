# wsgw — one Makefile, readable top to bottom.
#
#   make                 build everything into build/
#   make check           build and run every test (T=NAME: only the tests whose path has NAME)
#   make check SANITIZE=1  the same under ASan+UBSan (objects in build/san/)
#   make check-tsan      the concurrent tests under ThreadSanitizer (build/tsan/)
#   make check LOOPS=2   the same with every gateway running 2 event loops
#   make run             the gateway from a config file on 127.0.0.1:8080, admin on 127.0.0.1:9090,
#                        workers it runs itself (WORKERS=N, WORKER=c|broadcast|python|node),
#                        the chat on /chat, the demo page
#   make bench-ring      shared-memory ring benchmark
#   make install         programs, libwsgw, headers, wsgw.pc, man pages, config, units, Python
#                        package into $(DESTDIR)$(prefix) (prefix=/usr/local)
#   make deb, make rpm   Debian and RPM packages into build/deb/, build/rpm/RPMS/
#   make npm-pack        the Node worker library as build/wsgw-worker-VERSION.tgz
#   make V=1             show the commands
#   make NO_DEPS=1       do not look for (or install) the Debian packages below

CC      ?= cc
DESTDIR ?=
LISTEN  ?= 127.0.0.1:8080
VERSION := $(or $(shell sed -n 's/^\#define WSGW_VERSION "\(.*\)"/\1/p' gateway/config.c),0.0.0)

# GNU-style install directories; a package build sets prefix=/usr and the rest follows.
prefix      ?= /usr/local
exec_prefix ?= $(prefix)
bindir      ?= $(exec_prefix)/bin
sbindir     ?= $(exec_prefix)/sbin
libdir      ?= $(exec_prefix)/lib
includedir  ?= $(prefix)/include
datadir     ?= $(prefix)/share
mandir      ?= $(datadir)/man
pkgconfigdir ?= $(libdir)/pkgconfig
# /usr's configuration and units live outside it (FHS; systemd's search path on Debian 12).
sysconfdir  ?= $(if $(filter /usr,$(prefix)),/etc,$(prefix)/etc)
unitdir     ?= $(if $(filter /usr,$(prefix)),/lib/systemd/system,$(prefix)/lib/systemd/system)
# Where Debian's /usr/bin/python3 looks: dist-packages, version-less only under /usr.
PY_VERSION   = $(shell /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)
pythondir   ?= $(if $(filter /usr,$(prefix)),$(prefix)/lib/python3/dist-packages,$(prefix)/lib/python$(PY_VERSION)/dist-packages)

# Debian packages the build and the tests need; installed when missing (tools/need-debs).
DEPS_PKGS := libzmq3-dev liburcu-dev node-llhttp libinih-dev check libsubunit-dev \
             pkg-config zlib1g-dev libssl-dev libsystemd-dev scdoc openssl python3-websockets \
             libhiredis-dev
# Only the tests need a Redis server (tests/cluster/ start their own on a loopback port).
TEST_PKGS := redis-server

LLHTTP_SRC_DIR ?= /usr/share/llhttp
LLHTTP_INC_DIR ?= /usr/share/include/llhttp

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),thread)
BUILD    ?= build/tsan
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
BUILD    ?= build
SAN_FLAGS :=
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# pkg-config runs when a recipe needs it (recursive '='), after the packages exist.
PKG_LIBS   = liburcu liburcu-cds libzmq libssl libcrypto zlib libsystemd inih hiredis
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_LIBS))
PKG_LDLIBS = $(shell pkg-config --libs $(PKG_LIBS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LDLIBS = $(shell pkg-config --libs check)

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS = -std=gnu11 $(WARN) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) -MMD -MP -pthread \
             -D_GNU_SOURCE -D_LGPL_SOURCE -Iinclude -I. -I$(LLHTTP_INC_DIR) $(PKG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS) -pthread

GATEWAY_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
SHM_SRC     := $(wildcard shm/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TEST_SRC    := $(wildcard tests/*/test_*.c)
LIBWSGW_SRC := $(wildcard workers/libwsgw/*.c)
LLHTTP_SRC  := llhttp.c api.c http.c

GATEWAY_OBJ := $(GATEWAY_SRC:%.c=$(BUILD)/obj/%.o)
SHM_OBJ     := $(SHM_SRC:%.c=$(BUILD)/obj/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/obj/%.o)
LLHTTP_OBJ  := $(LLHTTP_SRC:%.c=$(BUILD)/obj/llhttp/%.o)
TEST_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

CORE_LIB := $(BUILD)/libwsgw-core.a
SHM_LIB  := $(BUILD)/libwsgw-shm.a
# libwsgw, the C worker library: the shm code and the worker API, static and shared.
LIBWSGW_OBJ := $(LIBWSGW_SRC:%.c=$(BUILD)/obj/%.o) $(SHM_OBJ)
LIBWSGW_A  := $(BUILD)/libwsgw.a
LIBWSGW_SO := $(BUILD)/libwsgw.so.1
LIBWSGW_SOVERSION := 1.0.0

PROGRAMS := $(BUILD)/wsgw $(BUILD)/wsgw-bench $(BUILD)/wsgw-echo $(BUILD)/wsgw-broadcast \
            $(BUILD)/wsgw-chat $(LIBWSGW_SO)
# Built with everything (so it keeps compiling), not installed: bench/cluster/run and
# bench/flood/run use them.
BENCH_CLUSTER := $(BUILD)/wsgw-bench-cluster
BENCH_FLOOD := $(BUILD)/bench-flood

.PHONY: all deps check check-tsan run bench-ring clean install uninstall man deb rpm npm-pack tls-certs
# Keep test objects: they are intermediate files to make, and rebuilding them is waste.
.SECONDARY:
all: $(PROGRAMS) $(BENCH_CLUSTER) $(BENCH_FLOOD) $(TEST_BIN)

# The Debian packages must be there before make reads any path they provide: a pattern
# rule's prerequisite such as /usr/share/llhttp/llhttp.c is looked up while make plans,
# before any recipe of the same run, so an install step inside the build comes too late.
# DEPS_MK is an included makefile: GNU make brings it up to date first and, when it had
# to, starts over with the packages in place. It is redone whenever dpkg's database
# changes (a package removed), which costs one dpkg-query per package.
DEPS_MK := build/.deps.mk
ifeq ($(NO_DEPS),)
ifneq ($(filter-out clean deps uninstall,$(or $(MAKECMDGOALS),all)),)
include $(DEPS_MK)
endif
endif
$(DEPS_MK): Makefile $(wildcard /var/lib/dpkg/status)
	@tools/need-debs $(DEPS_PKGS) $(TEST_PKGS)
	@mkdir -p $(@D) && echo '# Debian packages present: $(DEPS_PKGS) $(TEST_PKGS)' > $@
deps:
	@tools/need-debs $(DEPS_PKGS) $(TEST_PKGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# llhttp's own sources are compiled, not vendored; they are not -Wextra clean.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=gnu11 $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) -Wall -Wextra -Wno-unused-parameter \
	    -I$(LLHTTP_INC_DIR) -c -o $@ $<

$(CORE_LIB): $(GATEWAY_OBJ) $(LLHTTP_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHM_LIB): $(SHM_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# Objects that end up in libwsgw.so must be position-independent.
$(BUILD)/obj/shm/%.o $(BUILD)/obj/workers/libwsgw/%.o: ALL_CFLAGS += -fPIC

$(LIBWSGW_A): $(LIBWSGW_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# The version script pins what libwsgw exports: the wsgw_* API and nothing else.
$(LIBWSGW_SO): $(LIBWSGW_OBJ) workers/libwsgw/libwsgw.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libwsgw.so.1 \
	    -Wl,--version-script=workers/libwsgw/libwsgw.map -o $@ $(LIBWSGW_OBJ) -lzmq
	$(Q)ln -sf libwsgw.so.1 $(BUILD)/libwsgw.so

$(BUILD)/wsgw-echo: $(BUILD)/obj/workers/echo/echo.o $(LIBWSGW_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lzmq

$(BUILD)/wsgw-broadcast: $(BUILD)/obj/workers/broadcast/broadcast.o $(LIBWSGW_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lzmq

CHAT_OBJ := $(BUILD)/obj/workers/chat/chatmsg.o
$(BUILD)/wsgw-chat: $(BUILD)/obj/workers/chat/chat.o $(CHAT_OBJ) $(LIBWSGW_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lzmq

$(BUILD)/wsgw: $(BUILD)/obj/gateway/main.o $(CORE_LIB) $(SHM_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

# wss:// and permessage-deflate: OpenSSL and zlib, nothing else beyond libc.
$(BUILD)/wsgw-bench: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/loadgen/*.c))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell pkg-config --libs libssl libcrypto zlib) -lm

$(BENCH_CLUSTER): $(BUILD)/obj/bench/cluster/bench.o $(BUILD)/obj/bench/loadgen/hist.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lzmq -lm

$(BUILD)/bench-ring: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/ring/*.c)) $(SHM_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

# The flooder is the tests' shm peer: it links their library.
$(BENCH_FLOOD): $(BUILD)/obj/bench/flood/flood.o $(TESTLIB_OBJ) $(CORE_LIB) $(LIBWSGW_A) $(SHM_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LDLIBS) $(PKG_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJ) $(CORE_LIB) $(LIBWSGW_A) $(SHM_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LDLIBS) $(PKG_LDLIBS)

$(BUILD)/obj/tests/%.o: ALL_CFLAGS += $(CHECK_CFLAGS)
# The chat worker's message code, tested on its own.
$(BUILD)/tests/workers/test_chatmsg: $(CHAT_OBJ)

# Every test program runs, even after a failure; the target fails if any did.
# Tests find the programs under test through WSGW_BUILD. The conformance suite runs twice:
# against the built-in echo, and through a worker process (WT_GW_WORKER).
# T=NAME runs only the test programs whose path contains NAME (T=test_faults,
# T=gateway/), T=conformance-worker the other conformance runs, T=lang the language suites.
T ?=
comma := ,
CHECK_BIN := $(strip $(if $(T),$(foreach b,$(TEST_BIN),$(if $(findstring $(T),$(b)),$(b))),$(TEST_BIN)))
CHECK_CONF_WORKER := $(if $(T),$(filter conformance-worker,$(T)),yes)
CHECK_LANG := $(if $(T),$(filter lang,$(T)),yes)
CHECK_BROWSER := $(if $(T),$(filter browser,$(T)),yes)

# A test CA and two certificates it signed for 127.0.0.1 and localhost (CN localhost, and
# localhost2 for the reload test): the TLS tests trust the CA; `make run TLS=1` serves
# the first (a browser calls it untrusted unless the CA is imported).
TLS_DIR := $(BUILD)/tls
$(TLS_DIR)/cert.pem: | $(DEPS_MK)
	@mkdir -p $(@D)
	$(Q)openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
	  -subj "/CN=wsgw test CA" -keyout $(@D)/ca.key -out $(@D)/ca.pem 2>/dev/null
	$(Q)printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' > $(@D)/ext.cnf
	$(Q)for n in 2 ""; do \
	  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost$$n \
	    -keyout $(@D)/key$$n.pem -out $(@D)/cert$$n.csr 2>/dev/null && \
	  openssl x509 -req -in $(@D)/cert$$n.csr -CA $(@D)/ca.pem -CAkey $(@D)/ca.key \
	    -CAcreateserial -days 3650 -extfile $(@D)/ext.cnf -out $(@D)/cert$$n.pem.tmp 2>/dev/null && \
	  mv $(@D)/cert$$n.pem.tmp $(@D)/cert$$n.pem || exit 1; done
tls-certs: $(TLS_DIR)/cert.pem

# The tests check /metrics with Prometheus's promtool (tools/fetch-promtool says why it is
# unpacked here rather than installed). One copy serves every BUILD.
PROMTOOL := build/tools/promtool
$(PROMTOOL):
	tools/fetch-promtool $@

# The conformance suites (RFC 6455, permessage-deflate) run four ways: against the
# built-in echo, through a worker process (WT_GW_WORKER), and both over TLS (WT_TLS).
CONF_SUITES := $(BUILD)/tests/conformance/test_conformance $(BUILD)/tests/conformance/test_deflate
CONF_RUNS := worker:WT_GW_WORKER=$(abspath $(BUILD))/wsgw-echo tls:WT_TLS=1 \
	     tls-worker:WT_TLS=1:WT_GW_WORKER=$(abspath $(BUILD))/wsgw-echo

# make check LOOPS=N: every gateway the tests start runs N event loops ($$WSGW_LOOPS).
CHECK_LOOPS := $(if $(LOOPS),WSGW_LOOPS=$(LOOPS))
# Each run of make check says how long it took: $(CHECK_T0) before it, $(CHECK_SECS) after.
CHECK_T0 = t0=$$(date +%s)
CHECK_SECS = $$(( $$(date +%s) - t0 )) s

check: all $(TLS_DIR)/cert.pem $(PROMTOOL)
	@if [ -z "$(CHECK_BIN)$(CHECK_CONF_WORKER)$(CHECK_LANG)$(CHECK_BROWSER)" ]; then \
	  echo "make check: T=$(T) names no test (programs: $(TEST_BIN:$(BUILD)/tests/%=%), conformance-worker, lang, browser)"; \
	  exit 2; fi
	@$(if $(CHECK_LANG)$(filter %test_upgrade,$(CHECK_BIN)),tests/workers/lang_deps.sh || exit 1;) \
	failed=""; for t in $(CHECK_BIN); do \
	  echo "== $$t"; $(CHECK_T0); \
	  WSGW_BUILD=$(abspath $(BUILD)) WT_SANITIZE=$(SANITIZE) WT_PROMTOOL=$(abspath $(PROMTOOL)) $(CHECK_LOOPS) $$t \
	    || failed="$$failed $$t"; \
	  echo "-- $$t: $(CHECK_SECS)"; \
	done; \
	if [ -n "$(CHECK_CONF_WORKER)" ]; then \
	  for run in $(CONF_RUNS); do for t in $(CONF_SUITES); do \
	    echo "== $$t: $${run%%:*}"; $(CHECK_T0); \
	    env WSGW_BUILD=$(abspath $(BUILD)) $(CHECK_LOOPS) $$(echo "$${run#*:}" | tr : ' ') $$t \
	      || failed="$$failed $$t($${run%%:*})"; \
	    echo "-- $$t: $${run%%:*}: $(CHECK_SECS)"; \
	  done; done; \
	fi; \
	if [ -n "$(CHECK_LANG)" ]; then \
	  echo "== tests/workers/run_lang_tests.sh (Python and Node workers)"; \
	  $(CHECK_T0); \
	  WSGW_BUILD=$(abspath $(BUILD)) $(CHECK_LOOPS) tests/workers/run_lang_tests.sh || failed="$$failed run_lang_tests.sh"; \
	  echo "-- run_lang_tests.sh: $(CHECK_SECS)"; \
	fi; \
	if [ -n "$(CHECK_BROWSER)" ]; then \
	  echo "== tests/browser/run.sh (chromium: the demo page; ws:// and wss:// with deflate)"; \
	  $(CHECK_T0); \
	  WSGW_BUILD=$(abspath $(BUILD)) $(CHECK_LOOPS) tests/browser/run.sh || failed="$$failed browser"; \
	  echo "-- browser: $(CHECK_SECS)"; \
	fi; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "passed: $(words $(CHECK_BIN)) test programs$(if $(CHECK_CONF_WORKER),$(comma) the conformance suites through a worker and over TLS)$(if $(CHECK_LANG),$(comma) the language suites)$(if $(CHECK_BROWSER),$(comma) the browser test)"

# ThreadSanitizer sees threads, not processes: the ring's two-thread tests, and the worker
# tests with the gateway (loop, doorbell waker, RCU threads) and libwsgw built with it. A
# report makes the process exit 66, which fails the test.
TSAN_TESTS := $(wildcard tests/*/test_*threads*.c) tests/workers/test_workers.c tests/faults/test_faults.c \
	      tests/gateway/test_outq.c \
	      tests/integration/test_loops.c tests/integration/test_loop_workers.c
check-tsan:
	$(MAKE) SANITIZE=thread build/tsan/wsgw build/tsan/wsgw-echo build/tsan/tls/cert.pem \
	  $(patsubst tests/%.c,build/tsan/tests/%,$(TSAN_TESTS))
	@for t in $(patsubst tests/%.c,build/tsan/tests/%,$(TSAN_TESTS)); do \
	  echo "== $$t"; \
	  WSGW_BUILD=$(abspath build/tsan) TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp)" \
	    $$t || exit 1; \
	done

# The gateway on $(LISTEN) with $(WORKERS) echo workers in $(WORKER) (c, python, node;
# broadcast: wsgw-broadcast), a chat worker on /chat and the demo page (demo/, --static).
# workers/run-demo installs what a Python or Node worker needs, and stops when a worker
# does not attach.
# TLS=1 adds wss://127.0.0.1:8443 with the test certificate.
WORKERS ?= 1
WORKER  ?= c
run: $(BUILD)/wsgw $(BUILD)/wsgw-echo $(BUILD)/wsgw-broadcast $(BUILD)/wsgw-chat $(if $(TLS),$(TLS_DIR)/cert.pem)
	BUILD=$(BUILD) LISTEN=$(LISTEN) WORKERS=$(WORKERS) WORKER=$(WORKER) TLS=$(TLS) workers/run-demo

bench-ring: $(BUILD)/bench-ring
	$(BUILD)/bench-ring

# Man pages from scdoc sources (docs/man/NAME.SECTION.scd).
MAN_SRC := $(wildcard docs/man/*.scd)
MAN_OUT := $(patsubst docs/man/%.scd,build/man/%,$(MAN_SRC))
man: $(MAN_OUT)
build/man/%: docs/man/%.scd
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SCDOC   $<")
	$(Q)scdoc < $< > $@

# Files whose paths depend on the install directories.
SUBST = sed -e 's|@prefix@|$(prefix)|g' -e 's|@libdir@|$(libdir)|g' \
	-e 's|@includedir@|$(includedir)|g' -e 's|@bindir@|$(bindir)|g' \
	-e 's|@sbindir@|$(sbindir)|g' -e 's|@sysconfdir@|$(sysconfdir)|g' -e 's|@VERSION@|$(VERSION)|g'
GENERATED := build/gen/wsgw.pc build/gen/wsgw.service build/gen/wsgw-worker@.service
# The directories are part of what these files say: made again on every install (FORCE).
build/gen/wsgw.pc: packaging/wsgw.pc.in FORCE
build/gen/wsgw.service: packaging/systemd/wsgw.service.in FORCE
build/gen/wsgw-worker@.service: packaging/systemd/wsgw-worker@.service.in FORCE
$(GENERATED):
	@mkdir -p $(@D)
	$(Q)$(SUBST) $(filter %.in,$^) > $@
FORCE:

# The chat demo page, for [gateway] static = $(datadir)/wsgw/www.
DEMO_FILES := $(wildcard demo/*)

install: $(PROGRAMS) $(LIBWSGW_A) $(MAN_OUT) $(GENERATED)
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(sbindir) $(DESTDIR)$(libdir) \
	    $(DESTDIR)$(pkgconfigdir) $(DESTDIR)$(includedir)/wsgw $(DESTDIR)$(sysconfdir)/wsgw \
	    $(DESTDIR)$(unitdir) $(DESTDIR)$(pythondir)/wsgw $(DESTDIR)$(datadir)/wsgw/www \
	    $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8
	install -m 0755 $(BUILD)/wsgw $(DESTDIR)$(sbindir)/
	install -m 0755 $(BUILD)/wsgw-echo $(BUILD)/wsgw-broadcast $(BUILD)/wsgw-chat \
	    $(BUILD)/wsgw-bench $(DESTDIR)$(bindir)/
	install -m 0644 $(LIBWSGW_SO) $(DESTDIR)$(libdir)/libwsgw.so.$(LIBWSGW_SOVERSION)
	ln -sf libwsgw.so.$(LIBWSGW_SOVERSION) $(DESTDIR)$(libdir)/libwsgw.so.1
	ln -sf libwsgw.so.1 $(DESTDIR)$(libdir)/libwsgw.so
	install -m 0644 $(LIBWSGW_A) $(DESTDIR)$(libdir)/
	install -m 0644 include/wsgw/*.h $(DESTDIR)$(includedir)/wsgw/
	install -m 0644 build/gen/wsgw.pc $(DESTDIR)$(pkgconfigdir)/
	install -m 0644 build/gen/wsgw.service build/gen/wsgw-worker@.service $(DESTDIR)$(unitdir)/
	install -m 0644 workers/python/wsgw/*.py $(DESTDIR)$(pythondir)/wsgw/
	install -m 0644 $(DEMO_FILES) $(DESTDIR)$(datadir)/wsgw/www/
	for m in $(MAN_OUT); do install -m 0644 $$m $(DESTDIR)$(mandir)/man$${m##*.}/; done
	@# An edited configuration is never overwritten.
	@if [ -e $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf ]; then \
	  echo "keeping $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf (the default is packaging/wsgw.conf)"; \
	else install -m 0644 packaging/wsgw.conf $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf; fi

# Everything install wrote except the configuration, which may hold the admin's edits.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/wsgw $(DESTDIR)$(bindir)/wsgw-echo $(DESTDIR)$(bindir)/wsgw-bench \
	    $(DESTDIR)$(bindir)/wsgw-broadcast $(DESTDIR)$(bindir)/wsgw-chat \
	    $(DESTDIR)$(libdir)/libwsgw.so.$(LIBWSGW_SOVERSION) $(DESTDIR)$(libdir)/libwsgw.so.1 \
	    $(DESTDIR)$(libdir)/libwsgw.so $(DESTDIR)$(libdir)/libwsgw.a \
	    $(DESTDIR)$(pkgconfigdir)/wsgw.pc $(DESTDIR)$(unitdir)/wsgw.service \
	    $(DESTDIR)$(unitdir)/wsgw-worker@.service \
	    $(patsubst include/%,$(DESTDIR)$(includedir)/%,$(wildcard include/wsgw/*.h)) \
	    $(patsubst workers/python/%,$(DESTDIR)$(pythondir)/%,$(wildcard workers/python/wsgw/*.py)) \
	    $(patsubst demo/%,$(DESTDIR)$(datadir)/wsgw/www/%,$(DEMO_FILES)) \
	    $(foreach m,$(MAN_OUT),$(DESTDIR)$(mandir)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -rf $(DESTDIR)$(pythondir)/wsgw/__pycache__
	-rmdir $(DESTDIR)$(includedir)/wsgw $(DESTDIR)$(pythondir)/wsgw \
	    $(DESTDIR)$(datadir)/wsgw/www $(DESTDIR)$(datadir)/wsgw 2>/dev/null

# Packages are built from a copy of the tree, so the source tree stays as it was.
PKG_TREE_EXCLUDE := --exclude=./build --exclude=./.git --exclude=node_modules --exclude=.cache
DEB_TOOLS := debhelper dh-python python3-all dpkg-dev fakeroot
deb:
	@tools/need-debs $(DEB_TOOLS)
	rm -rf build/deb && mkdir -p build/deb/wsgw-$(VERSION)
	tar -cf - $(PKG_TREE_EXCLUDE) . | tar -xf - -C build/deb/wsgw-$(VERSION)
	cp -r packaging/debian build/deb/wsgw-$(VERSION)/debian
	cd build/deb/wsgw-$(VERSION) && dpkg-buildpackage -us -uc -b
	@ls -1 build/deb/*.deb

RPM_TOP := $(abspath build/rpm)
rpm:
	@tools/need-debs rpm
	rm -rf build/rpm && mkdir -p build/rpm/SOURCES build/rpm/SPECS
	tar -czf build/rpm/SOURCES/wsgw-$(VERSION).tar.gz $(PKG_TREE_EXCLUDE) \
	    --transform 's|^\.|wsgw-$(VERSION)|' .
	sed 's/@VERSION@/$(VERSION)/' packaging/rpm/wsgw.spec > build/rpm/SPECS/wsgw.spec
	@# Debian's rpm database knows none of the build dependencies: --nodeps.
	rpmbuild --nodeps --define '_topdir $(RPM_TOP)' -bb build/rpm/SPECS/wsgw.spec
	@find build/rpm/RPMS -name '*.rpm' | sort

npm-pack:
	@mkdir -p build
	cd workers/node && npm pack --pack-destination $(abspath build)

# ---- fuzzing (tests/fuzz/, docs/FUZZING.md) -----------------------------------------------
#   make fuzz FUZZ_SECONDS=N   build every libFuzzer target and run each for N seconds
#   make fuzz-build            only build them, into build/fuzz/
# Kept out of `all` and `check`: only these targets need clang and libclang-rt-14-dev, and
# install them when missing. Each run replays tests/fuzz/regressions/<target>/ first, then
# fuzzes a corpus copied into build/fuzz/corpus-<target> from tests/fuzz/corpus/<target>;
# the log is build/fuzz/fuzz_<target>.log, a failing input build/fuzz/<target>-crash-*
# (or -leak-, -timeout-, -oom-). FUZZ_TARGETS=frame runs only that target.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   ?= -timeout=5 -rss_limit_mb=1024
FUZZ_DIR     := build/fuzz
FUZZ_PKGS    := clang libclang-rt-14-dev
FUZZ_STAMP   := build/.fuzz-deps-installed
FUZZ_TARGETS := frame handshake config zmsg ring segment
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP \
                -D_GNU_SOURCE -D_LGPL_SOURCE -Iinclude -I. -I$(LLHTTP_INC_DIR)

# What each target links besides its harness: the code under test and its libraries.
fuzz_src_frame     := gateway/frame.c gateway/utf8.c
fuzz_src_handshake := gateway/handshake.c gateway/hsresp.c gateway/log.c
fuzz_src_config    := gateway/config.c gateway/cfg_keys.c gateway/cfg_values.c gateway/cfg_lists.c gateway/tbuf.c gateway/cfg_file.c gateway/log.c gateway/deflate.c
fuzz_src_zmsg      := gateway/zmsg.c gateway/log.c
fuzz_src_ring      := shm/ring.c shm/doorbell.c shm/spin.c
fuzz_src_segment   := shm/segment.c shm/ring.c shm/doorbell.c shm/spin.c
fuzz_obj_handshake := $(LLHTTP_SRC:%.c=$(FUZZ_DIR)/obj/llhttp/%.o)
fuzz_libs_handshake := -lcrypto
fuzz_libs_config   := -lm -linih -lz
fuzz_libs_zmsg     := -lzmq

FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-bins

$(FUZZ_STAMP):
	@missing=""; for p in $(FUZZ_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing missing packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(@D) && touch $@

# Two steps: the packages first, then a make that can see the files they installed
# (llhttp's sources are pattern-rule prerequisites).
fuzz-build:
	@$(MAKE) --no-print-directory $(DEPS_STAMP) $(FUZZ_STAMP)
	@$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -c -o $@ $<

$(FUZZ_DIR)/obj/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -Wall -Wextra -Wno-unused-parameter -c -o $@ $<

define FUZZ_LINK
$(FUZZ_DIR)/fuzz_$(1): $(FUZZ_DIR)/obj/tests/fuzz/fuzz_$(1).o $$(fuzz_src_$(1):%.c=$(FUZZ_DIR)/obj/%.o) $$(fuzz_obj_$(1))
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(fuzz_libs_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_LINK,$(t))))

# Every target runs, even after a crash; the make fails if any crashed.
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  bin=$(FUZZ_DIR)/fuzz_$$t; log=$(FUZZ_DIR)/fuzz_$$t.log; \
	  reg=$$(ls -d tests/fuzz/regressions/$$t/* 2>/dev/null); \
	  if [ -n "$$reg" ]; then \
	    echo "== fuzz_$$t: replaying $$(echo $$reg | wc -w) regression inputs"; \
	    $$bin $$reg > $$log.regressions 2>&1 || { failed="$$failed $$t(regression)"; tail -n 40 $$log.regressions; }; \
	  fi; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p $(FUZZ_DIR)/corpus-$$t && cp tests/fuzz/corpus/$$t/* $(FUZZ_DIR)/corpus-$$t/; \
	  if $$bin -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) -print_final_stats=1 \
	      -artifact_prefix=$(FUZZ_DIR)/$$t- $(FUZZ_DIR)/corpus-$$t > $$log 2>&1; then \
	    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' $$log | tail -n 1; \
	    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $$log | tr '\n' ' '; echo; \
	  else \
	    failed="$$failed $$t"; tail -n 60 $$log; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "FUZZ FAILED:$$failed (inputs: $(FUZZ_DIR)/<target>-crash-* and the like)"; exit 1; fi; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) targets, $(FUZZ_SECONDS) s each, no crash"

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
# ---- end of fuzzing ----------------------------------------------------------------------

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
