/*
 * libFuzzer target for the POP3 grammar: command-line parsing, message
 * numbers, the RETR/TOP encoder (split at a fuzzer-chosen point, checked
 * against the one-shot encoding and lib/crlf's size) and client-side
 * status/response-code parsing. `make fuzz` builds it with clang. The
 * encoding at the CPU's widest block width (RETR's bulk loop) must equal
 * the line-by-line one (width 0) octet for octet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/crlf.h"
#include "../../src/pop3/pop3.h"

/* *size_r: the encoder's own count, UINT64_MAX when it has none. */
static size_t
encode(const uint8_t *data, size_t size, size_t split, bool top,
    uint64_t lines, char *out, uint64_t *size_r)
{
	struct pop3_encoder e;
	size_t o = 0;

	pop3_encoder_init(&e, top, lines);
	o += pop3_encoder_feed(&e, data, split, out, POP3_ENCODER_OUT_MAX(split));
	o += pop3_encoder_feed(&e, data + split, size - split, out + o,
	    POP3_ENCODER_OUT_MAX(size - split));
	o += pop3_encoder_finish(&e, out + o, POP3_ENCODER_FINISH_MAX);
	if (pop3_encoder_size(&e, size_r) == -1)
		*size_r = UINT64_MAX;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line, *out1, *out2, code[64];
	struct pop3_args a;
	unsigned int n;
	struct crlf_size cs;
	uint64_t want, got = 0, esize1, esize2, tsize;
	size_t o1, o2, split;
	bool ok;
	const char *text;

	if (size > 1 << 16)
		return 0;
	line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	(void)pop3_parse_line(line, size, &a);
	memcpy(line, data, size);
	(void)pop3_parse_msgnum(line, &n);
	if (pop3_parse_status(line, &ok, &text) == 0)
		(void)pop3_resp_code(text, code, sizeof(code));
	free(line);

	out1 = malloc(POP3_ENCODER_OUT_MAX(size) + POP3_ENCODER_FINISH_MAX + 1);
	out2 = malloc(POP3_ENCODER_OUT_MAX(size) + POP3_ENCODER_FINISH_MAX + 1);
	split = size > 0 ? data[0] % (size + 1) : 0;
	o1 = encode(data, size, size, false, 0, out1, &esize1);
	o2 = encode(data, size, split, false, 0, out2, &esize2);
	if (o1 != o2 || memcmp(out1, out2, o1) != 0)
		abort();
	(void)pop3_encoder_set_width(0);
	o2 = encode(data, size, split, false, 0, out2, &esize2);
	(void)pop3_encoder_set_width(SIZE_MAX);
	if (o1 != o2 || memcmp(out1, out2, o1) != 0)
		abort();
	/* Unstuffed length without ".\r\n" is the size LIST reports. */
	for (size_t i = 0; i + 3 <= o1; ) {
		char *lf = memchr(out1 + i, '\n', o1 - i);
		size_t len = (size_t)(lf - (out1 + i)) + 1;

		if (i + len == o1)
			break;
		got += len - (out1[i] == '.' ? 1 : 0);
		i += len;
	}
	crlf_size_init(&cs);
	crlf_size_feed(&cs, data, size);
	if (crlf_size_finish(&cs, &want) == 0 && want != got)
		abort();
	/* The size counted while encoding (RETR's size check) is the same. */
	if (esize1 != got || esize2 != got)
		abort();
	(void)encode(data, size, split, true, size > 1 ? data[1] % 4 : 0, out2,
	    &tsize);
	if (tsize != UINT64_MAX && tsize != got)
		abort();
	free(out1);
	free(out2);
	return 0;
}
