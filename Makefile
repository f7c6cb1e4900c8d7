# wsgw — one Makefile, readable top to bottom.
#
#   make                 build everything into build/
#   make check           build and run every test (T=NAME: only the tests whose path has NAME)
#   make check SANITIZE=1  the same under ASan+UBSan (objects in build/san/)
#   make check-tsan      the concurrent tests under ThreadSanitizer (build/tsan/)
#   make run             the gateway on 127.0.0.1:8080 with an echo worker (WORKERS=N, WORKER=c|python|node)
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
DEPS_PKGS := libzmq3-dev liburcu-dev node-llhttp check libsubunit-dev \
             pkg-config zlib1g-dev libssl-dev libsystemd-dev scdoc libhiredis-dev
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
PKG_LIBS   = liburcu liburcu-cds libzmq libcrypto zlib libsystemd hiredis
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

PROGRAMS := $(BUILD)/wsgw $(BUILD)/wsgw-bench $(BUILD)/wsgw-echo $(LIBWSGW_SO)
# Built with everything (so it keeps compiling), not installed: bench/cluster/run uses it.
BENCH_CLUSTER := $(BUILD)/wsgw-bench-cluster

.PHONY: all deps check check-tsan run bench-ring clean install uninstall man deb rpm npm-pack
# Keep test objects: they are intermediate files to make, and rebuilding them is waste.
.SECONDARY:
all: $(PROGRAMS) $(BENCH_CLUSTER) $(TEST_BIN)

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

$(BUILD)/wsgw: $(BUILD)/obj/gateway/main.o $(CORE_LIB) $(SHM_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

$(BUILD)/wsgw-bench: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/loadgen/*.c))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm

$(BENCH_CLUSTER): $(BUILD)/obj/bench/cluster/bench.o $(BUILD)/obj/bench/loadgen/hist.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lzmq -lm

$(BUILD)/bench-ring: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/ring/*.c)) $(SHM_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJ) $(CORE_LIB) $(LIBWSGW_A) $(SHM_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LDLIBS) $(PKG_LDLIBS)

$(BUILD)/obj/tests/%.o: ALL_CFLAGS += $(CHECK_CFLAGS)

# Every test program runs, even after a failure; the target fails if any did.
# Tests find the programs under test through WSGW_BUILD. The conformance suite runs twice:
# against the built-in echo, and through a worker process (WT_GW_WORKER).
# T=NAME runs only the test programs whose path contains NAME (T=test_faults,
# T=gateway/), T=conformance-worker the second conformance run, T=lang the language suites.
T ?=
comma := ,
CHECK_BIN := $(strip $(if $(T),$(foreach b,$(TEST_BIN),$(if $(findstring $(T),$(b)),$(b))),$(TEST_BIN)))
CHECK_CONF_WORKER := $(if $(T),$(filter conformance-worker,$(T)),yes)
CHECK_LANG := $(if $(T),$(filter lang,$(T)),yes)

check: all
	@if [ -z "$(CHECK_BIN)$(CHECK_CONF_WORKER)$(CHECK_LANG)" ]; then \
	  echo "make check: T=$(T) names no test (programs: $(TEST_BIN:$(BUILD)/tests/%=%), conformance-worker, lang)"; \
	  exit 2; fi
	@failed=""; for t in $(CHECK_BIN); do \
	  echo "== $$t"; \
	  WSGW_BUILD=$(abspath $(BUILD)) WT_SANITIZE=$(SANITIZE) $$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$(CHECK_CONF_WORKER)" ]; then \
	  echo "== $(BUILD)/tests/conformance/test_conformance through build/wsgw-echo"; \
	  WSGW_BUILD=$(abspath $(BUILD)) WT_GW_WORKER=$(abspath $(BUILD))/wsgw-echo \
	    $(BUILD)/tests/conformance/test_conformance || failed="$$failed conformance-through-worker"; \
	fi; \
	if [ -n "$(CHECK_LANG)" ]; then \
	  echo "== tests/workers/run_lang_tests.sh (Python and Node workers)"; \
	  WSGW_BUILD=$(abspath $(BUILD)) tests/workers/run_lang_tests.sh || failed="$$failed run_lang_tests.sh"; \
	fi; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "passed: $(words $(CHECK_BIN)) test programs$(if $(CHECK_CONF_WORKER),$(comma) the worker conformance run)$(if $(CHECK_LANG),$(comma) the language suites)"

# ThreadSanitizer sees threads, not processes: the ring's two-thread tests, and the worker
# tests with the gateway (loop, doorbell waker, RCU threads) and libwsgw built with it. A
# report makes the process exit 66, which fails the test.
TSAN_TESTS := $(wildcard tests/*/test_*threads*.c) tests/workers/test_workers.c tests/faults/test_faults.c
check-tsan:
	$(MAKE) SANITIZE=thread build/tsan/wsgw build/tsan/wsgw-echo \
	  $(patsubst tests/%.c,build/tsan/tests/%,$(TSAN_TESTS))
	@for t in $(patsubst tests/%.c,build/tsan/tests/%,$(TSAN_TESTS)); do \
	  echo "== $$t"; \
	  WSGW_BUILD=$(abspath build/tsan) TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp)" \
	    $$t || exit 1; \
	done

# The gateway on $(LISTEN) with $(WORKERS) echo workers in $(WORKER) (c, python, node).
# workers/run-demo installs what a Python or Node worker needs, and stops when a worker
# does not attach.
WORKERS ?= 1
WORKER  ?= c
run: $(BUILD)/wsgw $(BUILD)/wsgw-echo
	BUILD=$(BUILD) LISTEN=$(LISTEN) WORKERS=$(WORKERS) WORKER=$(WORKER) workers/run-demo

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

install: $(PROGRAMS) $(LIBWSGW_A) $(MAN_OUT) $(GENERATED)
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(sbindir) $(DESTDIR)$(libdir) \
	    $(DESTDIR)$(pkgconfigdir) $(DESTDIR)$(includedir)/wsgw $(DESTDIR)$(sysconfdir)/wsgw \
	    $(DESTDIR)$(unitdir) $(DESTDIR)$(pythondir)/wsgw \
	    $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8
	install -m 0755 $(BUILD)/wsgw $(DESTDIR)$(sbindir)/
	install -m 0755 $(BUILD)/wsgw-echo $(BUILD)/wsgw-bench $(DESTDIR)$(bindir)/
	install -m 0644 $(LIBWSGW_SO) $(DESTDIR)$(libdir)/libwsgw.so.$(LIBWSGW_SOVERSION)
	ln -sf libwsgw.so.$(LIBWSGW_SOVERSION) $(DESTDIR)$(libdir)/libwsgw.so.1
	ln -sf libwsgw.so.1 $(DESTDIR)$(libdir)/libwsgw.so
	install -m 0644 $(LIBWSGW_A) $(DESTDIR)$(libdir)/
	install -m 0644 include/wsgw/*.h $(DESTDIR)$(includedir)/wsgw/
	install -m 0644 build/gen/wsgw.pc $(DESTDIR)$(pkgconfigdir)/
	install -m 0644 build/gen/wsgw.service build/gen/wsgw-worker@.service $(DESTDIR)$(unitdir)/
	install -m 0644 workers/python/wsgw/*.py $(DESTDIR)$(pythondir)/wsgw/
	for m in $(MAN_OUT); do install -m 0644 $$m $(DESTDIR)$(mandir)/man$${m##*.}/; done
	@# An edited configuration is never overwritten.
	@if [ -e $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf ]; then \
	  echo "keeping $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf (the default is packaging/wsgw.conf)"; \
	else install -m 0644 packaging/wsgw.conf $(DESTDIR)$(sysconfdir)/wsgw/wsgw.conf; fi

# Everything install wrote except the configuration, which may hold the admin's edits.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/wsgw $(DESTDIR)$(bindir)/wsgw-echo $(DESTDIR)$(bindir)/wsgw-bench \
	    $(DESTDIR)$(libdir)/libwsgw.so.$(LIBWSGW_SOVERSION) $(DESTDIR)$(libdir)/libwsgw.so.1 \
	    $(DESTDIR)$(libdir)/libwsgw.so $(DESTDIR)$(libdir)/libwsgw.a \
	    $(DESTDIR)$(pkgconfigdir)/wsgw.pc $(DESTDIR)$(unitdir)/wsgw.service \
	    $(DESTDIR)$(unitdir)/wsgw-worker@.service \
	    $(patsubst include/%,$(DESTDIR)$(includedir)/%,$(wildcard include/wsgw/*.h)) \
	    $(patsubst workers/python/%,$(DESTDIR)$(pythondir)/%,$(wildcard workers/python/wsgw/*.py)) \
	    $(foreach m,$(MAN_OUT),$(DESTDIR)$(mandir)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -rf $(DESTDIR)$(pythondir)/wsgw/__pycache__
	-rmdir $(DESTDIR)$(includedir)/wsgw $(DESTDIR)$(pythondir)/wsgw 2>/dev/null

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

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
