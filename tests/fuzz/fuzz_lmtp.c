/*
 * libFuzzer target for the LMTP grammar (src/deliver/lmtp_cmds.c): MAIL,
 * RCPT and BDAT arguments, recipient mapping, and the DATA/BDAT decoder.
 * Properties: no overflow; the decoder's output is never longer than its
 * input plus one held CR; feeding the same input in random splits gives
 * the same output and stops at the same end marker as feeding it whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/deliver/lmtp_cmds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
decode(const uint8_t *data, size_t size, bool dot, const uint8_t *splits,
    char *out, size_t *used_r)
{
	struct lmtp_data d;
	size_t o = 0, i = 0, k = 0;

	lmtp_data_init(&d, dot);
	while (i < size && !d.done) {
		size_t n = splits != NULL ? 1 + splits[k++ % 7] % 13 : size - i;
		size_t olen, used;

		if (n > size - i)
			n = size - i;
		used = lmtp_data_feed(&d, (const char *)data + i, n, out + o,
		    &olen);
		if (olen > n + 1 || used > n || (used < n && !d.done))
			abort();
		o += olen;
		i += used;
	}
	if (!dot)
		o += lmtp_data_finish(&d, out + o);
	*used_r = i;
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *a, *b, addr[LMTP_PATH_MAX + 1], user[512];
	struct lmtp_mail m;
	uint64_t n;
	bool last;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	(void)lmtp_parse_mail(text, 1000000, &m);
	(void)lmtp_parse_rcpt(text, size & 1, addr);
	(void)lmtp_parse_bdat(text, &n, &last);
	(void)lmtp_rcpt_user(text, "+-", "example.org local", user,
	    sizeof(user));
	(void)lmtp_utf8_valid(text, size);
	a = malloc(size + 2);
	b = malloc(size + 2);
	for (int dot = 0; dot < 2; dot++) {
		size_t ua, ub, la, lb;

		la = decode(data, size, dot, NULL, a, &ua);
		lb = decode(data, size, dot, data, b, &ub);
		if (la != lb || ua != ub || memcmp(a, b, la) != 0)
			abort();
	}
	free(a);
	free(b);
	free(text);
	return 0;
}
