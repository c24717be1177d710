# shannot: one binary, Lua sources embedded.  See README.md and DESIGN.md.
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKG_CONFIG ?= pkg-config
LUA ?= lua5.4

PKGS := lua5.4 lua5.4-cjson
WARN := -std=c11 -Wall -Wextra -Wshadow -Wundef -Wwrite-strings \
	-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition -Wvla \
	-Wformat=2 -Werror=format-security -Werror=implicit-function-declaration \
	-fno-common -Werror
OPT ?= -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
ASAN_OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
# Lua and cjson are linked in statically (one self-contained binary, and
# 0.1 ms less start-up); -E exports Lua's API to C modules the specs load.
# libcrypto is not linked: store.c loads it on first use (0.7 ms of every
# start-up otherwise).
PKG_LIBS = -Wl,-E -Wl,-Bstatic $(shell $(PKG_CONFIG) --libs-only-l $(PKGS)) \
	-Wl,-Bdynamic -lz -lm -ldl

# stage.c is the remote helper's alone (build/shannot-enter)
SRCS := $(filter-out src/stage.c,$(wildcard src/*.c))
HDRS := src/shannot.h
LUA_SRCS := $(shell find lua -name '*.lua' | sort)
PROFILES := $(wildcard profiles/*.json)
BUSTED := scripts/busted.lua

.PHONY: all demo test check asan lint deps deps-test install uninstall man deb clean format-check client client-check
# On another system than Linux, the client build (no local sandbox).
ifeq ($(shell uname -s),Linux)
all: build/shannot build/shannot-enter
else
all: client
endif

deps:
	@vendor/install-deps build run

deps-test:
	@vendor/install-deps build run test man deb

build/embedded_lua.c: $(LUA_SRCS) $(PROFILES) scripts/embed.lua | build
	$(LUA) scripts/embed.lua $@ $(LUA_SRCS) $(PROFILES)

build build/asan:
	@mkdir -p $@

build/%.o: src/%.c $(HDRS) | build
	$(CC) $(WARN) $(OPT) $(PKG_CFLAGS) -Isrc -c -o $@ $<

build/embedded_lua.o: build/embedded_lua.c $(HDRS)
	$(CC) $(OPT) -Isrc $(PKG_CFLAGS) -c -o $@ $<

build/shannot: $(SRCS:src/%.c=build/%.o) build/embedded_lua.o
	$(CC) $(OPT) -o $@ $^ $(PKG_LIBS)

# The sandbox's first program alone, static: a remote sandbox gets it for
# its run (Landlock there too), as nothing of shannot is installed there.
build/shannot-enter: src/enter.c src/stage.c $(HDRS) | build
	$(CC) $(WARN) -Os -static -s -DSH_ENTER_MAIN $(PKG_CFLAGS) -Isrc -o $@ src/enter.c src/stage.c

build/asan/shannot-enter: build/shannot-enter | build/asan
	cp $< $@

build/asan/%.o: src/%.c $(HDRS) | build/asan
	$(CC) $(WARN) $(ASAN_OPT) $(PKG_CFLAGS) -Isrc -c -o $@ $<

build/asan/shannot: $(SRCS:src/%.c=build/asan/%.o) build/embedded_lua.c
	$(CC) $(ASAN_OPT) -Isrc $(PKG_CFLAGS) -o $@ $(filter %.o,$^) \
		build/embedded_lua.c $(PKG_LIBS)

# The client (issue 15.6; design note 79): shannot for a machine without
# the Linux sandbox (macOS, or any POSIX system), driving Linux hosts over
# SSH.  POSIX.1-2008 (with XSI) only: no _GNU_SOURCE, no Linux header
# (scripts/check-client-headers), no namespaces, seccomp or Landlock.
CLIENT_SRCS := main loader util sys data term diff tar store sha256 ssh fs proc
CLIENT_CFLAGS := -DSH_CLIENT -D_POSIX_C_SOURCE=200809L
# Linked dynamically: the static Lua of PKG_LIBS is a Debian layout.
CLIENT_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS)) -lz -lm -ldl

client: build/client/shannot

build/client:
	@mkdir -p $@

build/client/%.o: src/%.c $(HDRS) | build/client
	$(CC) $(WARN) $(OPT) $(CLIENT_CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

build/client/embedded_lua.o: build/embedded_lua.c $(HDRS) | build/client
	$(CC) $(OPT) $(CLIENT_CFLAGS) -Isrc $(PKG_CFLAGS) -c -o $@ $<

build/client/shannot: $(CLIENT_SRCS:%=build/client/%.o) build/client/embedded_lua.o scripts/check-client-headers
	scripts/check-client-headers $(CLIENT_SRCS:%=src/%.c) src/shannot.h
	$(CC) $(OPT) -o $@ $(filter %.o,$^) $(CLIENT_LIBS)

# Specs run inside the binary itself, so they exercise the embedded build.
TEST_ENV = SHANNOT_TEST_LUA_PATH="$$($(LUA) -e 'io.write(package.path)')" \
	SHANNOT_TEST_LUA_CPATH="$$($(LUA) -e 'io.write(package.cpath)')"

test: deps-test lint
	@$(MAKE) --no-print-directory build/shannot build/shannot-enter build/client/shannot
	@$(TEST_ENV) SHANNOT_BIN=build/shannot build/shannot lua $(BUSTED) $(BUSTED_ARGS)

# LSAN_OPTIONS: GCC 12's LeakSanitizer misreads glibc 2.36's dynamic TLS
# of libraries loaded at run time (libssh, libcrypto: dlopen) and its
# tracer crashes ("Tracer caught signal 11", "DTLS 5 at 0x7a-..."),
# depending on the memory layout (one checkout path and not the next);
# thread-local roots are left out of the leak scan instead.
asan: deps-test
	@$(MAKE) --no-print-directory build/asan/shannot build/asan/shannot-enter build/client/shannot
	@$(TEST_ENV) SHANNOT_BIN=build/asan/shannot \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=use_tls=0:print_suppressions=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		build/asan/shannot lua $(BUSTED) $(BUSTED_ARGS)

lint:
	luacheck -q lua spec scripts bench

# C formatting as .clang-format says (STYLE 22); clang-format -i src/*.[ch] fixes it
format-check:
	@vendor/install-deps check
	clang-format --dry-run -Werror src/*.c src/*.h

check: lint format-check test

demo: deps
	@$(MAKE) --no-print-directory build/shannot
	@scripts/demo

# Man pages, written by the binary from the text `shannot help` prints
# (scripts/man.lua), so the two cannot drift.
man: build/man/.stamp

# The pages are checked with groff when it is there (make install must not
# install packages; `make deb` brings groff along).
build/man/.stamp: build/shannot scripts/man.lua
	@rm -rf build/man && mkdir -p build/man
	build/shannot lua scripts/man.lua build/man
	@if command -v groff >/dev/null; then \
		for f in build/man/*.[15]; do groff -ww -z -man "$$f" || exit 1; done; \
	else echo "groff is missing: the man pages are not checked"; fi
	@touch $@

# The binary, the remote helper, profiles, man pages and completions, all
# below $(DESTDIR)$(PREFIX); uninstall removes what install listed.
install: build/shannot build/shannot-enter man
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install install

uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install uninstall

# build/shannot_VERSION_ARCH.deb: a DESTDIR install with PREFIX=/usr
deb: build/shannot build/shannot-enter
	@vendor/install-deps man deb
	@$(MAKE) --no-print-directory man
	scripts/deb

clean:
	rm -rf build
