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
