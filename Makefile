# wsgw — one Makefile, readable top to bottom.
#
#   make                 build everything into build/
#   make check           build and run every test (T=NAME: only the tests whose path has NAME)
#   make check SANITIZE=1  the same under ASan+UBSan (objects in build/san/)
#   make check-tsan      the concurrent tests under ThreadSanitizer (build/tsan/)
#   make run             the gateway on 127.0.0.1:8080 with an echo worker (WORKERS=N, WORKER=c|python|node)
#   make bench-ring      shared-memory ring benchmark
#   make V=1             show the commands

CC      ?= cc
prefix  ?= /usr/local
DESTDIR ?=
LISTEN  ?= 127.0.0.1:8080

# Debian packages the build and the tests need; installed when missing.
DEPS_PKGS := libzmq3-dev liburcu-dev node-llhttp check libsubunit-dev \
             pkg-config zlib1g-dev libssl-dev

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
PKG_LIBS   = liburcu liburcu-cds libzmq libcrypto zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_LIBS))
PKG_LDLIBS = $(shell pkg-config --libs $(PKG_LIBS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LDLIBS = $(shell pkg-config --libs check)

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SAN_FLAGS) -MMD -MP -pthread \
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
DEPS_STAMP := build/.deps-installed

PROGRAMS := $(BUILD)/wsgw $(BUILD)/wsgw-bench $(BUILD)/wsgw-echo $(LIBWSGW_SO)

.PHONY: all deps check check-tsan run bench-ring clean install
# Keep test objects: they are intermediate files to make, and rebuilding them is waste.
.SECONDARY:
all: $(PROGRAMS) $(TEST_BIN)

# Installs the Debian packages that are missing; a no-op once they are there.
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing missing packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(@D) && touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# llhttp's own sources are compiled, not vendored; they are not -Wextra clean.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=gnu11 $(CFLAGS) $(SAN_FLAGS) -Wall -Wextra -Wno-unused-parameter \
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
	  WSGW_BUILD=$(abspath $(BUILD)) $$t || failed="$$failed $$t"; \
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
WORKERS ?= 1
WORKER  ?= c
run: $(BUILD)/wsgw $(BUILD)/wsgw-echo
	BUILD=$(BUILD) LISTEN=$(LISTEN) WORKERS=$(WORKERS) WORKER=$(WORKER) workers/run-demo

bench-ring: $(BUILD)/bench-ring
	$(BUILD)/bench-ring

install: $(BUILD)/wsgw $(BUILD)/wsgw-bench
	install -d $(DESTDIR)$(prefix)/bin
	install -m 0755 $(BUILD)/wsgw $(BUILD)/wsgw-bench $(DESTDIR)$(prefix)/bin/

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
fuzz_src_config    := gateway/config.c gateway/log.c
fuzz_src_zmsg      := gateway/zmsg.c gateway/log.c
fuzz_src_ring      := shm/ring.c shm/doorbell.c
fuzz_src_segment   := shm/segment.c shm/ring.c shm/doorbell.c
fuzz_obj_handshake := $(LLHTTP_SRC:%.c=$(FUZZ_DIR)/obj/llhttp/%.o)
fuzz_libs_handshake := -lcrypto
fuzz_libs_config   := -lm
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
