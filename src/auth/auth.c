#include "auth.h"

#include <string.h>

extern const struct auth_ops auth_passwdfile_ops;

static const struct auth_ops *const auth_backends[] = {
	&auth_passwdfile_ops,
	NULL
};

const struct auth_ops *
auth_lookup(const char *name)
{
	for (size_t i = 0; auth_backends[i] != NULL; i++)
		if (strcmp(auth_backends[i]->name, name) == 0)
			return auth_backends[i];
	return NULL;
}

bool
auth_name_valid(const char *name)
{
	size_t len = strnlen(name, AUTH_USER_MAX + 1);

	if (len == 0 || len > AUTH_USER_MAX || name[0] == '.')
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == ':' || *p == '/')
			return false;
	return true;
}
