# Postino: one GNU Makefile, no configure step.
#   make            build postinod, postino-passwd, postino (build/)
#   make SAN=1      the same with AddressSanitizer + UBSan (build/asan/)
#   make run        build, make a demo mail root and serve it on port 1110
#   make check      install test dependencies, build both ways, run every test
#   make unit       cmocka unit tests only (SAN=1 for the sanitizer build)

CC	?= cc
PYTHON	:= /usr/bin/python3

WARN	 = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla
CFLAGS	 = -std=c17 -D_GNU_SOURCE $(WARN) -g -fstack-protector-strong -fPIE -MMD -MP
LDFLAGS	 = -pie -Wl,-z,relro,-z,now
LDLIBS	 = -lssl -lcrypto -lcrypt

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
	   $(filter-out src/server/main.c,$(wildcard src/server/*.c)) \
	   $(filter-out src/client/main.c,$(wildcard src/client/*.c))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PROGS	 = $(BUILD)/postinod $(BUILD)/postino-passwd $(BUILD)/postino

.PHONY: all run check unit blackbox deps clean demo
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

$(BUILD)/postino: $(BUILD)/src/client/main.o $(BUILD)/libpostino.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libpostino.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

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

check: deps
	$(MAKE) all unit
	$(MAKE) SAN=1 all unit
	$(MAKE) SAN=1 blackbox

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
