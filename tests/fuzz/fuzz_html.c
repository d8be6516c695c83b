/*
 * libFuzzer target for the built-in HTML converter: it never reads out of
 * bounds, always terminates, and its output stays within a small
 * multiple of its input (no quadratic blow-up from nesting, attributes
 * or unterminated markup).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/client/html.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size > 65536)
		return 0;
	text = html_to_text((const char *)data, size);
	if (text == NULL)
		abort();
	/*
	 * Each input octet gives at most 4 (U+FFFD for a bad one, "[N]" for
	 * "<a>"); a link's URL is listed once more, with its number.
	 */
	if (strlen(text) > 8 * size + 64)
		abort();
	free(text);
	return 0;
}
