# Postino: one GNU Makefile, no configure step.
#   make            build postinod, postino-passwd, postino (build/)
#   make SAN=1      the same with AddressSanitizer + UBSan (build/asan/)
#   make run        build, make a demo mail root and serve it on port 1110
#   make check      install test dependencies, build both ways, run every test
#   make unit       cmocka unit tests only (SAN=1 for the sanitizer build)
#   make fuzz       libFuzzer targets for the parsers (clang), FUZZ_SECONDS each

CC	?= cc
PYTHON	:= /usr/bin/python3

WARN	 = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla
CFLAGS	 = -std=c17 -D_GNU_SOURCE $(WARN) -g -fstack-protector-strong -fPIE -MMD -MP
LDFLAGS	 = -pie -Wl,-z,relro,-z,now
LDLIBS	 = -lssl -lcrypto -lcrypt
# GMime 3 (MIME decoding for `postino read`): its headers for every object,
# as system headers so GLib's own warnings stay out of -Werror; its
# libraries only for postino and the unit tests, never for postinod.
GMIME_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags gmime-3.0 2>/dev/null))
GMIME_LIBS   := $(shell pkg-config --libs gmime-3.0 2>/dev/null)
CFLAGS	+= $(GMIME_CFLAGS)

ifeq ($(SAN),1)
BUILD	 = build/asan
CFLAGS	+= -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
else
BUILD	 = build
CFLAGS	+= -O2 -D_FORTIFY_SOURCE=2
endif

# Every module but the programs' main files goes into one archive that the
# programs and the unit tests link against.
CORE_SRC = $(wildcard src/lib/*.c src/pop3/*.c src/store/*.c src/auth/*.c) \
	   $(filter-out src/deliver/postino-deliver.c,$(wildcard src/deliver/*.c)) \
	   $(filter-out src/server/main.c,$(wildcard src/server/*.c)) \
	   $(filter-out src/client/main.c,$(wildcard src/client/*.c))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PROGS	 = $(BUILD)/postinod $(BUILD)/postino-passwd $(BUILD)/postino \
	   $(BUILD)/postino-deliver

.PHONY: all run check unit blackbox deps clean demo fuzz
all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libpostino.a: $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/postinod: $(BUILD)/src/server/main.o $(BUILD)/libpostino.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/postino-passwd: $(BUILD)/src/tools/postino-passwd.o $(BUILD)/libpostino.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/postino-deliver: $(BUILD)/src/deliver/postino-deliver.o $(BUILD)/libpostino.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/postino: $(BUILD)/src/client/main.o $(BUILD)/libpostino.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(GMIME_LIBS)

# tests/unit/testutil.c: helpers every test program may use.
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/tests/unit/testutil.o \
    $(BUILD)/libpostino.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(GMIME_LIBS) -lcmocka

unit: $(UNIT_BIN) $(PROGS)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

blackbox: $(PROGS)
	POSTINO_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest -q tests/blackbox

deps:
	@sh tests/deps.sh

demo: $(PROGS)
	@sh demo/make-demo.sh $(BUILD)

run: deps-build all demo
	@echo "postinod: serving user demo (password demo) on 127.0.0.1 and [::1]:"
	@echo "  port 1110 (plain, STLS) and 1995 (implicit TLS, self-signed certificate)"
	@echo "  curl:     curl -v pop3://demo:demo@127.0.0.1:1110/1"
	@echo "            curl --cacert $(BUILD)/demo/cert.pem pop3s://demo:demo@localhost:1995/1"
	@echo "  telnet:   telnet 127.0.0.1 1110   then: USER demo / PASS demo / LIST / RETR 1 / QUIT"
	@echo "  openssl:  openssl s_client -starttls pop3 -connect 127.0.0.1:1110"
	@echo "  a client: POP3 server localhost, port 995-style 1995 (SSL/TLS) or 1110,"
	@echo "            user demo, password demo (accept the self-signed certificate)"
	@echo "  Ctrl-C stops it; make clean resets the demo mailbox."
	$(BUILD)/postinod -f -c $(CURDIR)/$(BUILD)/demo/postinod.conf

deps-build:
	@sh tests/deps.sh build

# Parsers of hostile input, each run for FUZZ_SECONDS (a smoke run in check;
# run longer by hand: make fuzz FUZZ_SECONDS=600).
FUZZ_SECONDS ?= 10
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRC = $(wildcard src/lib/*.c src/pop3/*.c src/store/*.c src/auth/*.c) \
	       src/deliver/lmtp_cmds.c

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(@D)
	clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $@ $< $(FUZZ_LIB_SRC) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do echo "== $$f"; mkdir -p build/fuzz/corpus-$${f##*/}; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    build/fuzz/corpus-$${f##*/} 2>&1 | tail -n 1; done

check: deps
	$(MAKE) all unit
	$(MAKE) SAN=1 all unit
	$(MAKE) fuzz
	$(MAKE) SAN=1 blackbox

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
