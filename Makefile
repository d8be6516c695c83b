# Postino: one GNU Makefile, no configure step.
#   make            build postinod, postino-passwd, postino (build/)
#   make server     only postinod and postino-passwd (no GMime needed)
#   make SAN=1      the same with AddressSanitizer + UBSan (build/asan/)
#   make V=1        show the full compiler commands
#   make run        install what is missing, build, serve a demo on port 1110
#                   (DEMO_PORT=, DEMO_TLS_PORT= for others)
#   make check      install test dependencies, build both ways, run every test
#   make unit       cmocka unit tests only (SAN=1 for the sanitizer build)
#   make fuzz       libFuzzer targets for the parsers (clang), FUZZ_SECONDS each
#   make layers     fail if a lower layer's archive uses an upper layer's symbol

CC	?= cc
PYTHON	:= /usr/bin/python3

WARN	 = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla
CFLAGS	 = -std=c17 -D_GNU_SOURCE $(WARN) -g -fstack-protector-strong -fPIE -MMD -MP
LDFLAGS	 = -pie -Wl,-z,relro,-z,now
LDLIBS	 = -lssl -lcrypto -lcrypt

# GMime 3 (MIME decoding for `postino read`), for the client layer only.
# Recursive variables: pkg-config runs when a client object is compiled,
# i.e. after `make run` or `tests/deps.sh` has installed it, never when the
# Makefile is read. Its headers are system headers so GLib's own warnings
# stay out of -Werror.
GMIME_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags gmime-3.0 2>/dev/null))
GMIME_LIBS   = $(shell pkg-config --libs gmime-3.0 2>/dev/null)

# libpq for passdb = pgsql (src/auth/auth_pgsql.c), linked into postinod
# (and the tests) only: postino-passwd and postino never use it.
# Debian's libpq-dev puts libpq-fe.h here; no pkg-config, which the
# server's build does not need (tests/deps.sh server).
PQ_CFLAGS = -isystem /usr/include/postgresql
PQ_LIBS	  = -lpq

ifeq ($(SAN),1)
BUILD	 = build/asan
CFLAGS	+= -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The black-box tests' kill hooks (POSTINO_TEST_*): only in this build,
# never in the release binaries (`make no-test-hooks` checks postino and
# postinod).
CFLAGS	+= -DPOSTINO_TEST_HOOKS
LDFLAGS	+= -fsanitize=address,undefined
else
BUILD	 = build
CFLAGS	+= -O2 -D_FORTIFY_SOURCE=2
endif

# One short line per step unless V=1.
ifeq ($(V),1)
quiet	 =
else
quiet	 = @printf '  %-6s %s\n' '$(1)' '$(2)';
endif

# Layers, one archive each (DESIGN.md: lib <- pop3 <- server/client; store
# and auth use only lib). A program links its own layer's archive, then the
# shared one, and nothing else: postinod and postino-passwd never see GMime.
# To add a layer FOO: FOO_SRC = ..., add FOO to LAYERS, link
# $(BUILD)/libpostino-FOO.a before $(LIB_SHARED), and name what it may use
# in the `layers` target below.
shared_SRC = $(wildcard src/lib/*.c src/pop3/*.c src/store/*.c src/auth/*.c)
# src/deliver/: the LMTP and deliver roles of postinod (and postino-deliver).
server_SRC = $(filter-out src/server/main.c,$(wildcard src/server/*.c)) \
	     $(filter-out src/deliver/postino-deliver.c src/deliver/postino-migrate.c,\
		$(wildcard src/deliver/*.c))
client_SRC = $(filter-out src/client/main.c,$(wildcard src/client/*.c))
LAYERS	   = shared server client

LIB_SHARED = $(BUILD)/libpostino-shared.a
LIB_SERVER = $(BUILD)/libpostino-server.a
LIB_CLIENT = $(BUILD)/libpostino-client.a
LIBS	   = $(LAYERS:%=$(BUILD)/libpostino-%.a)
objs	   = $(addprefix $(BUILD)/,$(1:.c=.o))

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SERVER_PROGS = $(BUILD)/postinod $(BUILD)/postino-passwd $(BUILD)/postino-deliver \
	       $(BUILD)/postino-migrate
PROGS	 = $(SERVER_PROGS) $(BUILD)/postino
VERSION	:= $(shell sed -n 's/^\#define POSTINO_VERSION[^"]*"\(.*\)"/\1/p' src/lib/version.h)
# Manual pages: doc/*.[1-8] as written, postinod.conf(5) made from the
# commented etc/postinod.conf (doc/conf2man.awk).
MAN_SRC	 = $(wildcard doc/*.[1-8])
MAN_GEN	 = $(BUILD)/doc/postinod.conf.5

.PHONY: all server run check unit blackbox deps deps-build deps-check \
	deps-check-server clean demo fuzz layers
all: $(PROGS) $(MAN_GEN)
server: $(SERVER_PROGS) $(MAN_GEN)

$(BUILD)/doc/postinod.conf.5: etc/postinod.conf doc/conf2man.awk src/lib/version.h
	@mkdir -p $(@D)
	$(call quiet,GEN,$@)awk -v version=$(VERSION) -f doc/conf2man.awk \
	    etc/postinod.conf > $@.tmp && mv $@.tmp $@

# Before compiling anything, name the missing Debian packages (with the
# apt-get line) instead of failing on a missing header. Order-only, so it
# runs once per make and never forces a rebuild.
deps-check:
	@sh tests/deps.sh check build
deps-check-server:
	@sh tests/deps.sh check server

$(BUILD)/src/auth/auth_pgsql.o: CFLAGS += $(PQ_CFLAGS)
$(BUILD)/src/store/store_pgsql.o: CFLAGS += $(PQ_CFLAGS)
# The schema texts are assembled in (.incbin), which -MMD does not see.
PGSQL_SQL = src/store/pgsql_schema.sql $(wildcard src/store/pgsql_upgrade_*.sql)
$(BUILD)/src/store/pgsql_schema.o: $(PGSQL_SQL)
$(BUILD)/src/client/%.o: CFLAGS += $(GMIME_CFLAGS)
$(BUILD)/src/client/%.o: src/client/%.c | deps-check
	@mkdir -p $(@D)
	$(call quiet,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c | deps-check-server
	@mkdir -p $(@D)
	$(call quiet,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

# Objects are kept (not intermediate), so a second make rebuilds nothing.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/libpostino-%.a: $$(call objs,$$($$*_SRC))
	$(call quiet,AR,$@)rm -f $@ && ar rcs $@ $^

$(BUILD)/postinod: $(BUILD)/src/server/main.o $(LIB_SERVER) $(LIB_SHARED)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PQ_LIBS)

$(BUILD)/postino-passwd: $(BUILD)/src/tools/postino-passwd.o $(LIB_SHARED)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/postino-deliver: $(BUILD)/src/deliver/postino-deliver.o $(LIB_SERVER) $(LIB_SHARED)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PQ_LIBS)

$(BUILD)/postino-migrate: $(BUILD)/src/deliver/postino-migrate.o $(LIB_SERVER) $(LIB_SHARED)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PQ_LIBS)

$(BUILD)/postino: $(BUILD)/src/client/main.o $(LIB_CLIENT) $(LIB_SHARED)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(GMIME_LIBS)

# tests/unit/testutil.c: helpers every test program may use.
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/tests/unit/testutil.o \
    $(LIB_CLIENT) $(LIB_SERVER) $(LIB_SHARED)
	@mkdir -p $(@D)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(GMIME_LIBS) \
	    $(PQ_LIBS) -lcmocka

# A symbol a lower layer uses but only an upper (or sibling) layer defines
# is a dependency in the wrong direction.
layers: $(LIBS)
	@sh tests/layers.sh $(LIB_SHARED) $(LIB_SERVER) $(LIB_CLIENT)
	@sh tests/layers.sh $(LIB_SERVER) $(LIB_CLIENT)
	@sh tests/layers.sh $(LIB_CLIENT) $(LIB_SERVER)
	@# Functions of at most 80 lines (STYLE.md), everywhere in src/.
	@sh tests/funclen.sh 80 $(wildcard src/*/*.c)
	@sh tests/filemap.sh DESIGN.md

# The release binaries carry no test hook (they are in build/asan only).
.PHONY: no-test-hooks
no-test-hooks: $(BUILD)/postino $(BUILD)/postinod
	@for b in $^; do if strings $$b | grep POSTINO_TEST; then \
	    echo "no-test-hooks: $$b has test hooks" >&2; \
	    exit 1; fi; done

unit: $(UNIT_BIN) $(PROGS)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

blackbox: $(PROGS)
	POSTINO_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest -q tests/blackbox

deps:
	@sh tests/deps.sh

deps-build:
	@sh tests/deps.sh build

# The demo's ports (make run DEMO_PORT=2110 DEMO_TLS_PORT=2995 when 1110
# or 1995 is taken; `make clean` first if the demo exists).
DEMO_PORT ?= 1110
DEMO_TLS_PORT ?= 1995
demo: $(PROGS)
	@DEMO_PORT=$(DEMO_PORT) DEMO_TLS_PORT=$(DEMO_TLS_PORT) \
	    sh demo/make-demo.sh $(BUILD)

# Install first, then a new make reads the Makefile again: pkg-config and
# every check see the installed packages.
run:
	@sh tests/deps.sh build
	@$(MAKE) --no-print-directory all demo
	@sh demo/run.sh $(BUILD)

# make install [PREFIX=/usr/local] [DESTDIR=...]: FHS paths. The
# configuration is installed only where none exists; sysusers.d/tmpfiles.d
# make the login user and the chroot (systemd-sysusers, systemd-tmpfiles
# --create, or the Debian package's postinst).
PREFIX	 ?= /usr/local
SBINDIR	 ?= $(PREFIX)/sbin
BINDIR	 ?= $(PREFIX)/bin
MANDIR	 ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LIBDIR_SYSTEMD ?= $(PREFIX)/lib/systemd
UNIT_GEN = $(BUILD)/systemd/postinod.service $(BUILD)/systemd/postino-fetch@.service
INSTALL	 ?= install

# Always made again: the paths depend on the PREFIX of this make.
$(BUILD)/systemd/%: etc/systemd/%.in FORCE
	@mkdir -p $(@D)
	$(call quiet,GEN,$@)sed -e 's|@SBINDIR@|$(SBINDIR)|g' \
	    -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    $< > $@.tmp && mv $@.tmp $@

.PHONY: install install-server install-client FORCE
FORCE:
install: install-server install-client

install-server: $(SERVER_PROGS) $(MAN_GEN) $(UNIT_GEN)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/postino \
	    $(DESTDIR)$(LIBDIR_SYSTEMD)/system \
	    $(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	$(INSTALL) -m 755 $(BUILD)/postinod $(DESTDIR)$(SBINDIR)/postinod
	$(INSTALL) -m 755 $(BUILD)/postino-passwd $(DESTDIR)$(BINDIR)/postino-passwd
	$(INSTALL) -m 755 $(BUILD)/postino-deliver $(DESTDIR)$(SBINDIR)/postino-deliver
	$(INSTALL) -m 755 $(BUILD)/postino-migrate $(DESTDIR)$(SBINDIR)/postino-migrate
	$(INSTALL) -m 644 doc/postinod.8 $(DESTDIR)$(MANDIR)/man8/postinod.8
	$(INSTALL) -m 644 doc/postino-passwd.1 $(DESTDIR)$(MANDIR)/man1/postino-passwd.1
	$(INSTALL) -m 644 doc/postino-deliver.8 $(DESTDIR)$(MANDIR)/man8/postino-deliver.8
	$(INSTALL) -m 644 doc/postino-migrate.8 $(DESTDIR)$(MANDIR)/man8/postino-migrate.8
	$(INSTALL) -m 644 $(MAN_GEN) $(DESTDIR)$(MANDIR)/man5/postinod.conf.5
	$(INSTALL) -m 644 $(BUILD)/systemd/postinod.service \
	    $(DESTDIR)$(LIBDIR_SYSTEMD)/system/postinod.service
	$(INSTALL) -m 644 etc/systemd/postino.sysusers \
	    $(DESTDIR)$(PREFIX)/lib/sysusers.d/postino.conf
	$(INSTALL) -m 644 etc/systemd/postino.tmpfiles \
	    $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/postino.conf
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/share/postino
	for f in $(PGSQL_SQL); do \
	    $(INSTALL) -m 644 $$f $(DESTDIR)$(PREFIX)/share/postino/ || exit 1; \
	done
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/postino/postinod.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/postino/postinod.conf"; \
	else \
	    $(INSTALL) -m 644 etc/postinod.conf $(DESTDIR)$(SYSCONFDIR)/postino/postinod.conf; \
	fi

install-client: $(BUILD)/postino $(UNIT_GEN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR_SYSTEMD)/user \
	    $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 755 $(BUILD)/postino $(DESTDIR)$(BINDIR)/postino
	$(INSTALL) -m 644 $(BUILD)/systemd/postino-fetch@.service \
	    $(DESTDIR)$(LIBDIR_SYSTEMD)/user/postino-fetch@.service
	$(INSTALL) -m 644 etc/systemd/postino-fetch@.timer \
	    $(DESTDIR)$(LIBDIR_SYSTEMD)/user/postino-fetch@.timer
	@if [ -e doc/postino.1 ]; then \
	    $(INSTALL) -m 644 doc/postino.1 $(DESTDIR)$(MANDIR)/man1/postino.1; fi
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	    $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
	$(INSTALL) -m 644 contrib/completion/postino.bash \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/postino
	$(INSTALL) -m 644 contrib/completion/_postino \
	    $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_postino

# make deb: the Debian packages postinod and postino (debian/, debhelper)
# in build/deb/, built from a copy of this tree (tracked and new files, as
# they are now) so the build directory here is left alone.
DEB_DIR	 = build/deb/postino-$(VERSION)
.PHONY: deb
deb:
	@sh tests/deps.sh check build
	rm -rf build/deb
	mkdir -p $(DEB_DIR)
	{ git ls-files -co --exclude-standard -z 2>/dev/null || \
	    find . -path ./build -prune -o -path ./.git -prune -o -type f \
	    -print0; } | tar --null -T - -cf - | tar -C $(DEB_DIR) -xf -
	cd $(DEB_DIR) && dpkg-buildpackage -b -us -uc -j2 >../build.log 2>&1 || \
	    { tail -n 30 ../build.log; exit 1; }
	@ls build/deb/*.deb

# Parsers of hostile input, each run for FUZZ_SECONDS (a smoke run in check;
# run longer by hand: make fuzz FUZZ_SECONDS=600).
FUZZ_SECONDS ?= 10
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRC = $(shared_SRC) src/deliver/lmtp_cmds.c src/server/config.c \
    src/client/html.c src/client/buf.c

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(@D)
	$(call quiet,FUZZ,$@)clang -std=c17 -D_GNU_SOURCE -g -O1 \
	    -fsanitize=fuzzer,address,undefined $(PQ_CFLAGS) -o $@ $< \
	    $(FUZZ_LIB_SRC) $(LDLIBS) $(PQ_LIBS)

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do echo "== $$f"; mkdir -p build/fuzz/corpus-$${f##*/}; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    build/fuzz/corpus-$${f##*/} 2>&1 | tail -n 1; done

check: deps
	$(MAKE) all unit layers no-test-hooks
	$(MAKE) SAN=1 all unit
	$(MAKE) fuzz
	$(MAKE) SAN=1 blackbox
	$(MAKE) SAN=1 bench-smoke

# The benchmark against Dovecot (bench/run.py, bench/loadgen.c):
# bench (< 30 min), bench-quick (< 3 min); bench-smoke: one tiny run
# against postinod only, for check. Results: build/bench/.
# bench-pgsql: two instances on pgsql behind HAProxy beside Maildir
# (bench/pgsql.py; migrates 800 MB into PostgreSQL: not in bench).
.PHONY: bench bench-quick bench-smoke bench-build bench-pgsql
$(BUILD)/loadgen: bench/loadgen.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lssl -lcrypto -lpthread

bench-build: $(BUILD)/loadgen $(BUILD)/postinod $(BUILD)/postino-passwd

bench-pgsql: bench-build $(BUILD)/postino-migrate
	$(PYTHON) bench/pgsql.py --build $(BUILD)

bench bench-quick bench-smoke: bench-build
	$(PYTHON) bench/run.py --build $(BUILD) \
	    $(if $(filter bench-quick,$@),--quick)$(if $(filter bench-smoke,$@),--smoke)

# The demo's mail, when it had to live outside build/ (demo/make-demo.sh).
# A test root left by a killed test still has the host's /dev and the
# shared apt archive mounted in it: unmount first, never delete through.
clean:
	@h=$$(cat build/demo/mail-home 2>/dev/null) || :; \
	case "$$h" in /var/tmp/postino-demo-*) rm -rf "$$h" ;; esac
	@for r in build/roots/*; do \
	    [ -d "$$r" ] && sh tests/root/fresh-root.sh leave "$$r"; done; :
	@if grep -q " $(CURDIR)/build/" /proc/self/mounts 2>/dev/null; then \
	    echo "clean: file systems still mounted under build/:" >&2; \
	    grep " $(CURDIR)/build/" /proc/self/mounts >&2; exit 1; fi
	rm -rf --one-file-system build

# Only this build's objects: build/ also holds packages and test roots.
-include $(shell find $(BUILD)/src $(BUILD)/tests -name '*.d' -type f 2>/dev/null)
