/*
 * libFuzzer target for the old servers' UIDL files (dovecot-uidlist,
 * courierpop3dsizelist): any input parses without reading out of bounds,
 * and every UIDL found is 1..70 octets of 0x21..0x7E.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/store/maildir_uidlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct maildir_uidlist *ul;
	char uidl[STORE_UIDL_MAX + 1];
	const char *nl;

	ul = maildir_uidlist_parse_dovecot(NULL, buf, size,
	    size > 0 && data[0] == 'f' ? "%f" : NULL);
	ul = maildir_uidlist_parse_courier(ul, buf, size);
	/* Look up the names the input itself gives after ':' or first. */
	for (const char *p = buf; p < buf + size; p = nl + 1) {
		const char *start, *end;

		nl = memchr(p, '\n', (size_t)(buf + size - p));
		if (nl == NULL)
			nl = buf + size;
		start = memchr(p, ':', (size_t)(nl - p));
		start = start != NULL ? start + 1 : p;
		end = memchr(start, ' ', (size_t)(nl - start));
		if (end == NULL)
			end = nl;
		if (maildir_uidlist_find(ul, start, (size_t)(end - start),
		    uidl)) {
			size_t n = strlen(uidl);

			if (n < 1 || n > STORE_UIDL_MAX)
				abort();
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)uidl[i] < 0x21 ||
				    (unsigned char)uidl[i] > 0x7e)
					abort();
		}
	}
	maildir_uidlist_free(&ul);
	return 0;
}
