#include "sasl_mechs.h"

#include <string.h>
#include <strings.h>

#include "../lib/str.h"

static const char *const names[SASL_MECH_COUNT] = {
	[SASL_MECH_SCRAM_PLUS] = "SCRAM-SHA-256-PLUS",
	[SASL_MECH_SCRAM] = "SCRAM-SHA-256",
	[SASL_MECH_CRAM_MD5] = "CRAM-MD5",
	[SASL_MECH_PLAIN] = "PLAIN",
	[SASL_MECH_LOGIN] = "LOGIN",
	[SASL_MECH_OAUTHBEARER] = "OAUTHBEARER",
	[SASL_MECH_XOAUTH2] = "XOAUTH2",
};

const char *
sasl_mechs_name(enum sasl_mech_id id)
{
	return (unsigned int)id < SASL_MECH_COUNT ? names[id] : "?";
}

int
sasl_mechs_lookup(const char *name, size_t len)
{
	for (int i = 0; i < SASL_MECH_COUNT; i++)
		if (strlen(names[i]) == len &&
		    strncasecmp(names[i], name, len) == 0)
			return i;
	return -1;
}

bool
sasl_mechs_sends_secret(int id)
{
	return id == SASL_MECH_PLAIN || id == SASL_MECH_LOGIN ||
	    id == SASL_MECH_OAUTHBEARER || id == SASL_MECH_XOAUTH2;
}

int
sasl_mechs_parse(const char *list, unsigned int *mask_r, char *err)
{
	const char *w = list;
	unsigned int mask = 0;
	int id;

	*mask_r = 0;
	while (*w != '\0') {
		size_t n = strcspn(w, " \t");

		if (n == 0) {
			w++;
			continue;
		}
		id = sasl_mechs_lookup(w, n);
		if (id < 0) {
			char all[128];

			if (sasl_mechs_all(all, sizeof(all)) < 0)
				all[0] = '\0';
			str_fmt(err, ERR_LEN, "unknown mechanism '%.*s' (%s)",
			    n > 32 ? 32 : (int)n, w, all);
			return -1;
		}
		mask |= SASL_MECH_BIT(id);
		w += n;
	}
	*mask_r = mask;
	return 0;
}

int
sasl_mechs_all(char *buf, size_t size)
{
	size_t len = 0;

	if (size == 0)
		return -1;
	buf[0] = '\0';
	for (int i = 0; i < SASL_MECH_COUNT; i++) {
		if (str_fmt(buf + len, size - len, "%s%s", i > 0 ? " " : "",
		    names[i]) < 0)
			return -1;
		len += strlen(buf + len);
	}
	return 0;
}
