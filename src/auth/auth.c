#include "auth.h"

#include <string.h>

#include "../lib/str.h"

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

static const char *
quota_put(struct auth_quota *q, enum auth_quota_kind kind, uint64_t n)
{
	if (kind == AUTH_QUOTA_BYTES) {
		if (q->has_bytes)
			return "quota_bytes given twice";
		q->has_bytes = true;
		q->bytes = n;
		return NULL;
	}
	if (q->has_messages)
		return "quota_messages given twice";
	if (n > AUTH_QUOTA_MESSAGES_MAX)
		return "quota_messages above 10000000";
	q->has_messages = true;
	q->messages = (uint32_t)n;
	return NULL;
}

int
auth_id_parse(const char *s, bool *has_r, uint32_t *id_r)
{
	*has_r = false;
	*id_r = 0;
	if (s == NULL || *s == '\0')
		return 0;
	if (str_parse_u32(s, id_r) < 0 || *id_r == UINT32_MAX)
		return -1;
	*has_r = true;
	return 0;
}

const char *
auth_quota_set(struct auth_quota *q, enum auth_quota_kind kind,
    const char *val)
{
	uint64_t n;

	if (val[0] == '\0')
		return kind == AUTH_QUOTA_BYTES ? "empty quota_bytes" :
		    "empty quota_messages";
	/* 2^64-1 has 20 digits: longer is padding no one writes by hand. */
	if (strnlen(val, 21) > 20)
		return "quota value too long";
	if (str_parse_u64(val, &n) < 0)
		return "quota value is not a decimal number";
	return quota_put(q, kind, n);
}

/*
 * One limit of a Dovecot rule, "storage=1G" (KiB unless suffixed),
 * "bytes=N" or "messages=N"; len octets at p.
 */
static const char *
quota_rule_limit(struct auth_quota *q, const char *p, size_t len)
{
	static const char units[] = "BKMGT";
	char val[24];
	const char *eq = memchr(p, '=', len), *u;
	size_t klen = eq != NULL ? (size_t)(eq - p) : len, vlen;
	uint64_t n, mult = 1;
	bool storage = klen == 7 && strncmp(p, "storage", 7) == 0;

	if (eq == NULL || (vlen = len - klen - 1) == 0 || vlen >= sizeof(val))
		return "quota_rule: a limit is not name=number";
	memcpy(val, eq + 1, vlen);
	val[vlen] = '\0';
	if (klen == 8 && strncmp(p, "messages", 8) == 0)
		return str_parse_u64(val, &n) < 0 ? "quota_rule: messages is "
		    "not a decimal number" : quota_put(q, AUTH_QUOTA_MESSAGES, n);
	if (!storage && !(klen == 5 && strncmp(p, "bytes", 5) == 0))
		return "quota_rule: only storage, bytes and messages are known";
	if (storage)
		mult = 1024;
	/* Dovecot's size suffixes, either case, powers of 1024. */
	if (val[vlen - 1] < '0' || val[vlen - 1] > '9') {
		char c = (char)(val[vlen - 1] & ~0x20);

		u = c != '\0' ? strchr(units, c) : NULL;
		if (u == NULL)
			return "quota_rule: unknown size suffix";
		mult = 1;
		for (const char *k = units; k < u; k++)
			mult *= 1024;
		val[--vlen] = '\0';
	}
	if (str_parse_u64(val, &n) < 0 || __builtin_mul_overflow(n, mult, &n))
		return "quota_rule: size is not a decimal number below 2^64";
	return quota_put(q, AUTH_QUOTA_BYTES, n);
}

const char *
auth_quota_rule(struct auth_quota *q, const char *rule, size_t len)
{
	const char *end = rule + len, *why;

	if (len < 2 || rule[0] != '*' || rule[1] != ':')
		return "quota_rule: only the \"*\" (whole mailbox) rule is known";
	for (const char *p = rule + 2; p <= end; ) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		size_t n = c != NULL ? (size_t)(c - p) : (size_t)(end - p);

		if ((why = quota_rule_limit(q, p, n)) != NULL)
			return why;
		p += n + 1;
	}
	return NULL;
}
