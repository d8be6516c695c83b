#include "store_path.h"

#include <string.h>

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool
has_dot_component(const char *path)
{
	for (const char *c = path; *c != '\0';) {
		size_t n = strcspn(c, "/");

		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return true;
		c += n + (c[n] == '/');
	}
	return false;
}

int
store_path_expand(const char *tmpl, const char *user, const char *home,
    char *out, size_t size, char *err)
{
	const char *at = strchr(user, '@');
	size_t o = 0;

	if (size == 0) {
		str_copy(err, ERR_LEN, "mailbox path too long");
		return -1;
	}
	if (user[0] == '\0' || user[0] == '.' || strchr(user, '/') != NULL ||
	    has_control(user) ||
	    (at != NULL && (at[1] == '.' || at[1] == '\0'))) {
		str_copy(err, ERR_LEN, "user name not usable in a path");
		return -1;
	}
	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *add = p;
		size_t addlen = 1;

		if (p == tmpl && *p == '~') {
			if (home == NULL || home[0] == '\0') {
				str_copy(err, ERR_LEN, "mailbox uses ~ but the "
				    "user has no home");
				return -1;
			}
			add = home;
			addlen = strlen(home);
		} else if (*p == '%' && (p[1] == 'u' || p[1] == 'n' ||
		    p[1] == 'd' || p[1] == '%')) {
			p++;
			if (*p == 'u' || *p == 'n') {
				add = user;
				addlen = *p == 'n' && at != NULL ?
				    (size_t)(at - user) : strlen(user);
			} else if (*p == 'd') {
				add = at != NULL ? at + 1 : "";
				addlen = strlen(add);
			}
			/* %%: add is the second '%', one byte. */
		}
		if (addlen >= size - o) {
			str_copy(err, ERR_LEN, "mailbox path too long");
			return -1;
		}
		memcpy(out + o, add, addlen);
		o += addlen;
	}
	out[o] = '\0';
	if (has_control(out)) {
		str_copy(err, ERR_LEN, "control character in the mailbox path");
		return -1;
	}
	if (has_dot_component(out)) {
		str_copy(err, ERR_LEN, "'.' or '..' in the mailbox path");
		return -1;
	}
	return 0;
}

int
store_path_resolve(const char *spec, const char *user, const char *home,
    char *out, size_t size, const struct store_ops **ops_r, char *err)
{
	const char *colon = strchr(spec, ':');
	char backend[16];

	*ops_r = NULL;
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(backend)) {
		str_copy(err, ERR_LEN, "bad mailbox setting");
		return -1;
	}
	memcpy(backend, spec, (size_t)(colon - spec));
	backend[colon - spec] = '\0';
	if ((*ops_r = store_lookup(backend)) == NULL) {
		str_fmt(err, ERR_LEN, "unknown mailbox format '%s'", backend);
		return -1;
	}
	/* "pgsql:" alone: the mailbox is named after the user. */
	if (colon[1] == '\0' && strcmp(backend, "pgsql") == 0)
		return store_path_expand("%u", user, home, out, size, err);
	return store_path_expand(colon + 1, user, home, out, size, err);
}
