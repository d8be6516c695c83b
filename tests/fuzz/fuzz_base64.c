/*
 * libFuzzer target for strict base64 and SASL response decoding: decoding
 * never overflows, and whatever decodes re-encodes to the same text (one
 * spelling per octet string).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/base64.h"
#include "../../src/auth/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char out[SASL_RESPONSE_MAX];
	char *text, *again;
	size_t len = 0;

	if (size > 8192)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (base64_decode(out, sizeof(out), &len, text, size) == 0) {
		again = malloc(BASE64_ENCODED_LEN(len) + 1);
		if (base64_encode(again, BASE64_ENCODED_LEN(len) + 1, out,
		    len) != 0 || strlen(again) != size ||
		    memcmp(again, text, size) != 0)
			abort();
		free(again);
	}
	(void)sasl_decode_response(text, size, true, out, sizeof(out), &len);
	(void)sasl_decode_response(text, size, false, out, sizeof(out), &len);
	free(text);
	return 0;
}
