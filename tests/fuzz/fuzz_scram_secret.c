/*
 * libFuzzer target for the {SCRAM-SHA-256} secret parser (passwd-file
 * field "iter,salt,storedkey,serverkey"): never overflows, accepts only
 * iterations within bounds and keys of the right length, and what it
 * accepts formats back to the same text (one spelling per secret).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/auth/auth_hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[AUTH_SCRAM_TEXT_MAX + 64], again[AUTH_SCRAM_TEXT_MAX + 1];
	struct auth_scram k, k2;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (auth_scram_parse(text, &k) < 0)
		return 0;
	if (k.iter < AUTH_SCRAM_ITER_MIN || k.iter > AUTH_SCRAM_ITER_MAX ||
	    k.saltlen == 0 || k.saltlen > AUTH_SCRAM_SALT_MAX)
		abort();
	if (auth_scram_format(&k, again, sizeof(again)) < 0 ||
	    auth_scram_parse(again, &k2) < 0 || k2.iter != k.iter ||
	    k2.saltlen != k.saltlen || memcmp(&k2.salt, &k.salt, k.saltlen) ||
	    memcmp(k2.stored_key, k.stored_key, sizeof(k.stored_key)) ||
	    memcmp(k2.server_key, k.server_key, sizeof(k.server_key)))
		abort();
	/* A leading zero or a '+' sign would be a second spelling. */
	if (strcmp(again, text) != 0)
		abort();
	return 0;
}
