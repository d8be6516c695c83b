#include "store.h"

#include <string.h>

static const struct store_ops *const store_backends[] = {
	&store_maildir_ops,
	&store_mbox_ops,
	&store_pgsql_ops,
	NULL
};

const struct store_ops *
store_lookup(const char *name)
{
	for (size_t i = 0; store_backends[i] != NULL; i++) {
		if (strcmp(store_backends[i]->name, name) == 0)
			return store_backends[i];
	}
	return NULL;
}
