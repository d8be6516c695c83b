#include "maildir_uidlist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/str.h"

/* A number token: at most 20 digits (a u64), checked by str_parse_*. */
#define NUM_MAX		24

struct ul_ent {
	char	*base;		/* base name (before ':'), with a NUL */
	size_t	 baselen;
	size_t	 ord;		/* order read: the later one wins */
	bool	 dup;		/* its UIDL is not unique: unusable */
	char	 uidl[STORE_UIDL_MAX + 1];
};

struct maildir_uidlist {
	struct ul_ent	*ents;
	size_t		 count, cap;
	size_t		 next_ord;
};

/* A line of buf, without its LF; false at the end. */
struct ul_lines {
	const char	*p, *end;
};

static bool
next_line(struct ul_lines *it, const char **line_r, size_t *len_r)
{
	const char *nl;

	if (it->p >= it->end)
		return false;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	*line_r = it->p;
	*len_r = nl != NULL ? (size_t)(nl - it->p) : (size_t)(it->end - it->p);
	it->p = nl != NULL ? nl + 1 : it->end;
	return true;
}

/* The token of s[0..len) up to sep (or the end) as a u32: 0, or -1. */
static int
parse_u32(const char *s, size_t len, uint32_t *v)
{
	char num[NUM_MAX];

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	return str_parse_u32(num, v);
}

static int
parse_u64(const char *s, size_t len, uint64_t *v)
{
	char num[NUM_MAX];

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	return str_parse_u64(num, v);
}

static bool
uidl_ok(const char *s, size_t len)
{
	if (len < 1 || len > STORE_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* A file name as the uidlist gives it: 1..NAME_MAX octets, no '/', no NUL. */
static bool
name_ok(const char *s, size_t len)
{
	return len >= 1 && len <= NAME_MAX && memchr(s, '/', len) == NULL &&
	    memchr(s, '\0', len) == NULL;
}

static struct maildir_uidlist *
ul_new(struct maildir_uidlist *ul)
{
	return ul != NULL ? ul : calloc(1, sizeof(*ul));
}

/* Add name's base -> uidl (uidl already checked). -1 when out of memory. */
static int
ul_add(struct maildir_uidlist *ul, const char *name, size_t namelen,
    const char *uidl, size_t uidllen)
{
	const char *colon = memchr(name, ':', namelen);
	size_t baselen = colon != NULL ? (size_t)(colon - name) : namelen;
	struct ul_ent *e;

	if (baselen == 0)
		return 0;
	if (ul->count == ul->cap) {
		size_t cap = ul->cap ? ul->cap * 2 : 64;
		struct ul_ent *n = reallocarray(ul->ents, cap, sizeof(*n));

		if (n == NULL)
			return -1;
		ul->ents = n;
		ul->cap = cap;
	}
	e = &ul->ents[ul->count];
	if ((e->base = strndup(name, baselen)) == NULL)
		return -1;
	e->baselen = baselen;
	e->ord = ul->next_ord++;
	e->dup = false;
	memcpy(e->uidl, uidl, uidllen);
	e->uidl[uidllen] = '\0';
	ul->count++;
	return 0;
}

static int
cmp_base(const struct ul_ent *x, const char *base, size_t baselen)
{
	size_t n = x->baselen < baselen ? x->baselen : baselen;
	int c = memcmp(x->base, base, n);

	if (c != 0)
		return c;
	return x->baselen < baselen ? -1 : x->baselen > baselen;
}

static int
cmp_base_ord(const void *a, const void *b)
{
	const struct ul_ent *x = a, *y = b;
	int c = cmp_base(x, y->base, y->baselen);

	if (c != 0)
		return c;
	/* Newest first. */
	return x->ord < y->ord ? 1 : x->ord > y->ord ? -1 : 0;
}

static int
cmp_uidl(const void *a, const void *b)
{
	const struct ul_ent *const *x = a, *const *y = b;

	return strcmp((*x)->uidl, (*y)->uidl);
}

/*
 * One entry per base name (the last one read), sorted by base name; UIDLs
 * that two names share are marked unusable. -1 when out of memory (the
 * list is then left sorted but with its duplicates unmarked: emptied).
 */
static int
ul_finish(struct maildir_uidlist *ul)
{
	struct ul_ent **byuidl;
	size_t out = 0;

	if (ul->count == 0)
		return 0;
	qsort(ul->ents, ul->count, sizeof(*ul->ents), cmp_base_ord);
	for (size_t i = 0; i < ul->count; i++) {
		if (out > 0 && cmp_base(&ul->ents[out - 1], ul->ents[i].base,
		    ul->ents[i].baselen) == 0) {
			free(ul->ents[i].base);
			continue;
		}
		ul->ents[out] = ul->ents[i];
		ul->ents[out++].dup = false;
	}
	ul->count = out;
	if ((byuidl = calloc(ul->count, sizeof(*byuidl))) == NULL) {
		for (size_t i = 0; i < ul->count; i++)
			ul->ents[i].dup = true;
		return -1;
	}
	for (size_t i = 0; i < ul->count; i++)
		byuidl[i] = &ul->ents[i];
	qsort(byuidl, ul->count, sizeof(*byuidl), cmp_uidl);
	for (size_t i = 1; i < ul->count; i++)
		if (strcmp(byuidl[i - 1]->uidl, byuidl[i]->uidl) == 0)
			byuidl[i - 1]->dup = byuidl[i]->dup = true;
	free(byuidl);
	return 0;
}

static struct maildir_uidlist *
ul_done(struct maildir_uidlist *ul)
{
	if (ul == NULL)
		return NULL;
	if (ul_finish(ul) < 0 || ul->count == 0) {
		maildir_uidlist_free(&ul);
		return NULL;
	}
	return ul;
}

/* "3 V<uidvalidity> N<nextuid> ..." or "1 <uidvalidity> <nextuid>". */
static int
dovecot_header(const char *s, size_t len, unsigned int *version,
    uint32_t *uidv)
{
	const char *end = s + len, *sp;
	uint32_t next = 0;

	*uidv = 0;
	if (len < 3 || s[1] != ' ' || (s[0] != '1' && s[0] != '3'))
		return -1;
	*version = (unsigned int)(s[0] - '0');
	s += 2;
	if (*version == 1) {
		sp = memchr(s, ' ', (size_t)(end - s));
		if (sp == NULL || parse_u32(s, (size_t)(sp - s), uidv) < 0 ||
		    parse_u32(sp + 1, (size_t)(end - sp - 1), &next) < 0)
			return -1;
	} else {
		while (s < end) {
			size_t n;

			sp = memchr(s, ' ', (size_t)(end - s));
			n = sp != NULL ? (size_t)(sp - s) : (size_t)(end - s);
			if (n >= 2 && s[0] == 'V' &&
			    parse_u32(s + 1, n - 1, uidv) < 0)
				return -1;
			if (n >= 2 && s[0] == 'N' &&
			    parse_u32(s + 1, n - 1, &next) < 0)
				return -1;
			s += n;
			while (s < end && *s == ' ')
				s++;
		}
	}
	return *uidv != 0 && next != 0 ? 0 : -1;
}

/*
 * "<uid> [<KEY><value> ...] :<name>" (version 3) or "<uid> <name>": the
 * uid, the name and the "P" value (NULL when absent). -1 for a bad line.
 */
static int
dovecot_record(const char *s, size_t len, unsigned int version,
    uint32_t *uid, const char **name, size_t *namelen, const char **pop3,
    size_t *pop3len)
{
	const char *end = s + len, *sp = memchr(s, ' ', len);

	*pop3 = NULL;
	*pop3len = 0;
	if (sp == NULL || parse_u32(s, (size_t)(sp - s), uid) < 0 || *uid == 0)
		return -1;
	s = sp + 1;
	if (version == 3) {
		while (s < end && *s != ':') {
			size_t n;

			sp = memchr(s, ' ', (size_t)(end - s));
			n = sp != NULL ? (size_t)(sp - s) : (size_t)(end - s);
			if (*s < 'A' || *s > 'Z')
				return -1;
			if (*s == 'P') {
				*pop3 = s + 1;
				*pop3len = n - 1;
			}
			s += n;
			while (s < end && *s == ' ')
				s++;
		}
		if (s == end)
			return -1;
		s++;	/* ':' */
	}
	*name = s;
	*namelen = (size_t)(end - s);
	return name_ok(s, *namelen) ? 0 : -1;
}

/*
 * One conversion of pop3_uidl_format at *fmt (after the '%'): its width,
 * whether it is hex, and its variable ('u', 'v', 'f' or '%'). The octets
 * it takes, or 0 when it is not one this reader knows.
 */
static size_t
format_spec(const char *fmt, unsigned int *width, bool *zero, bool *hex,
    char *var)
{
	const char *p = fmt;

	*width = 0;
	*zero = *p == '0';
	*hex = false;
	if (*p == '%') {
		*var = '%';
		return 1;
	}
	while (*p >= '0' && *p <= '9') {
		*width = *width * 10 + (unsigned int)(*p - '0');
		if (*width > STORE_UIDL_MAX)
			return 0;
		p++;
	}
	if (*p == 'X') {
		*hex = true;
		p++;
	}
	if (*p != 'u' && *p != 'v' && (*p != 'f' || *hex))
		return 0;
	*var = *p;
	return (size_t)(p - fmt) + 1;
}

bool
maildir_uidlist_format_ok(const char *fmt)
{
	unsigned int width;
	bool zero, hex;
	char var;

	if (fmt[0] == '\0' || strlen(fmt) > MAILDIR_UIDLIST_FORMAT_MAX)
		return false;
	for (const char *p = fmt; *p != '\0'; p++) {
		size_t n;

		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return false;
		if (*p != '%')
			continue;
		if ((n = format_spec(p + 1, &width, &zero, &hex, &var)) == 0)
			return false;
		p += n;
	}
	return true;
}

/* The UIDL fmt makes of a record, in out; its length, 0 if none fits. */
static size_t
format_uidl(const char *fmt, uint32_t uid, uint32_t uidv, const char *name,
    size_t namelen, char *out)
{
	const char *colon = memchr(name, ':', namelen);
	size_t o = 0;
	size_t baselen = colon != NULL ? (size_t)(colon - name) : namelen;

	for (const char *p = fmt; *p != '\0'; p++) {
		char piece[NAME_MAX + 1];
		const char *add = piece;
		unsigned int width;
		size_t n, len;
		bool zero, hex;
		char var;
		int w;

		if (*p != '%') {
			piece[0] = *p;
			len = 1;
		} else if ((n = format_spec(p + 1, &width, &zero, &hex,
		    &var)) == 0) {
			return 0;
		} else {
			p += n;
			if (var == '%') {
				piece[0] = '%';
				len = 1;
			} else if (var == 'f') {
				add = name;
				len = baselen;
			} else {
				w = snprintf(piece, sizeof(piece),
				    zero ? (hex ? "%0*x" : "%0*u") :
				    (hex ? "%*x" : "%*u"), (int)width,
				    (unsigned)(var == 'u' ? uid : uidv));
				if (w < 0 || (size_t)w >= sizeof(piece))
					return 0;
				len = (size_t)w;
			}
		}
		if (o + len > STORE_UIDL_MAX)
			return 0;
		memcpy(out + o, add, len);
		o += len;
	}
	return o;
}

struct maildir_uidlist *
maildir_uidlist_parse_dovecot(struct maildir_uidlist *ul, const char *buf,
    size_t len, const char *fmt)
{
	struct ul_lines it = { buf, buf + len };
	unsigned int version;
	uint32_t uidv, uid, prev = 0;
	const char *line, *name, *pop3;
	size_t n, namelen, pop3len;

	if (!next_line(&it, &line, &n) || n > MAILDIR_UIDLIST_LINE_MAX ||
	    dovecot_header(line, n, &version, &uidv) < 0)
		return ul_done(ul);
	if ((ul = ul_new(ul)) == NULL)
		return NULL;
	if (fmt == NULL)
		fmt = MAILDIR_UIDLIST_FORMAT_DEFAULT;
	if (!maildir_uidlist_format_ok(fmt))
		return ul_done(ul);
	while (next_line(&it, &line, &n)) {
		char made[STORE_UIDL_MAX + 1];
		size_t madelen;

		if (n > MAILDIR_UIDLIST_LINE_MAX || dovecot_record(line, n,
		    version, &uid, &name, &namelen, &pop3, &pop3len) < 0)
			continue;
		/* Dovecot reads the uids in order; a record out of order is
		 * one Dovecot itself would not have served this way. */
		if (uid <= prev)
			continue;
		prev = uid;
		if (pop3 != NULL) {
			if (!uidl_ok(pop3, pop3len))
				continue;
			if (ul_add(ul, name, namelen, pop3, pop3len) < 0)
				break;
			continue;
		}
		madelen = format_uidl(fmt, uid, uidv, name, namelen, made);
		if (!uidl_ok(made, madelen))
			continue;
		if (ul_add(ul, name, namelen, made, madelen) < 0)
			break;
	}
	return ul_done(ul);
}

/* Courier's UIDL for a message it numbered only by its file name. */
static size_t
courier_name_uidl(const char *name, size_t namelen, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *colon = memchr(name, ':', namelen);
	size_t o = 0;

	if (colon != NULL)
		namelen = (size_t)(colon - name);
	for (size_t i = 0; i < namelen; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '+') {
			if (o + 3 > STORE_UIDL_MAX)
				return 0;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			if (o + 1 > STORE_UIDL_MAX)
				return 0;
			out[o++] = (char)c;
		}
	}
	return o;
}

/* "<name> <size>[ <uid>[:<uidvalidity>[:<n>]]]": its UIDL in out. */
static size_t
courier_record(const char *s, size_t len, char *out)
{
	const char *end = s + len, *sp = memchr(s, ' ', len), *sz, *c1, *c2;
	uint32_t uid = 0, uidv = 0, extra;
	uint64_t size;
	size_t namelen;
	int n = 0;

	if (sp == NULL || !name_ok(s, (size_t)(sp - s)))
		return 0;
	namelen = (size_t)(sp - s);
	sz = sp + 1;
	sp = memchr(sz, ' ', (size_t)(end - sz));
	if (parse_u64(sz, (size_t)((sp != NULL ? sp : end) - sz), &size) < 0)
		return 0;
	if (sp != NULL) {
		const char *u = sp + 1;

		c1 = memchr(u, ':', (size_t)(end - u));
		if (parse_u32(u, (size_t)((c1 != NULL ? c1 : end) - u),
		    &uid) < 0)
			return 0;
		if (c1 != NULL) {
			c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
			if (parse_u32(c1 + 1, (size_t)((c2 != NULL ? c2 : end) -
			    c1 - 1), &uidv) < 0 || (c2 != NULL &&
			    parse_u32(c2 + 1, (size_t)(end - c2 - 1),
			    &extra) < 0))
				return 0;
		}
	}
	if (uid == 0)
		return courier_name_uidl(s, namelen, out);
	if (uidv != 0)
		n = snprintf(out, STORE_UIDL_MAX + 1, "UID%u-%u", (unsigned)uid,
		    (unsigned)uidv);
	else
		n = snprintf(out, STORE_UIDL_MAX + 1, "UID%u", (unsigned)uid);
	return n > 0 && n <= STORE_UIDL_MAX ? (size_t)n : 0;
}

struct maildir_uidlist *
maildir_uidlist_parse_courier(struct maildir_uidlist *ul, const char *buf,
    size_t len)
{
	struct ul_lines it = { buf, buf + len };
	const char *line;
	size_t n;
	bool first = true;

	if ((ul = ul_new(ul)) == NULL)
		return NULL;
	while (next_line(&it, &line, &n)) {
		char uidl[STORE_UIDL_MAX + 1];
		size_t ulen;

		if (n > MAILDIR_UIDLIST_LINE_MAX)
			continue;
		if (first && n > 0 && line[0] == '/') {
			/* "/1 next", "/2 next uidv", "/3 next uidv": the
			 * lines say their own uid and uidvalidity. */
			if (n < 3 || (line[1] < '1' || line[1] > '3') ||
			    line[2] != ' ')
				return ul_done(ul);	/* unknown version */
			first = false;
			continue;
		}
		first = false;
		if ((ulen = courier_record(line, n, uidl)) == 0 ||
		    !uidl_ok(uidl, ulen))
			continue;
		if (ul_add(ul, line, (size_t)((const char *)memchr(line, ' ',
		    n) - line), uidl, ulen) < 0)
			break;
	}
	return ul_done(ul);
}

/*
 * The whole of dirfd/name (at most MAILDIR_UIDLIST_FILE_MAX); NULL if
 * none, and then *missing says whether that is because it does not exist.
 */
static char *
read_file(int dirfd, const char *name, size_t *len_r, struct timespec *mtime,
    bool *missing)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK | O_NOCTTY);
	*missing = fd == -1 && errno == ENOENT;
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > MAILDIR_UIDLIST_FILE_MAX ||
	    (buf = malloc((size_t)st.st_size)) == NULL) {
		(void)close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	(void)close(fd);
	*len_r = got;
	*mtime = st.st_mtim;
	return buf;
}

static bool
older(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

struct maildir_uidlist *
maildir_uidlist_load(int dirfd, const char *fmt, bool *absent_r)
{
	struct timespec dt = { 0, 0 }, ct = { 0, 0 };
	size_t dlen = 0, clen = 0;
	bool dmiss, cmiss;
	char *dbuf = read_file(dirfd, MAILDIR_UIDLIST_DOVECOT, &dlen, &dt,
	    &dmiss);
	char *cbuf = read_file(dirfd, MAILDIR_UIDLIST_COURIER, &clen, &ct,
	    &cmiss);
	struct maildir_uidlist *ul = NULL;

	if (absent_r != NULL)
		*absent_r = dmiss && cmiss;

	/* The later parse wins a name both give: parse the newer file last. */
	if (dbuf != NULL && cbuf != NULL && older(&dt, &ct)) {
		ul = maildir_uidlist_parse_dovecot(ul, dbuf, dlen, fmt);
		ul = maildir_uidlist_parse_courier(ul, cbuf, clen);
	} else {
		if (cbuf != NULL)
			ul = maildir_uidlist_parse_courier(ul, cbuf, clen);
		if (dbuf != NULL)
			ul = maildir_uidlist_parse_dovecot(ul, dbuf, dlen, fmt);
	}
	free(dbuf);
	free(cbuf);
	return ul;
}

bool
maildir_uidlist_find(const struct maildir_uidlist *ul, const char *base,
    size_t baselen, char uidl[STORE_UIDL_MAX + 1])
{
	size_t lo = 0, hi;

	if (ul == NULL)
		return false;
	hi = ul->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_base(&ul->ents[mid], base, baselen);

		if (c == 0) {
			if (ul->ents[mid].dup)
				return false;
			memcpy(uidl, ul->ents[mid].uidl, STORE_UIDL_MAX + 1);
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

size_t
maildir_uidlist_count(const struct maildir_uidlist *ul)
{
	size_t n = 0;

	if (ul != NULL)
		for (size_t i = 0; i < ul->count; i++)
			n += !ul->ents[i].dup;
	return n;
}

void
maildir_uidlist_free(struct maildir_uidlist **ul)
{
	if (*ul == NULL)
		return;
	for (size_t i = 0; i < (*ul)->count; i++)
		free((*ul)->ents[i].base);
	free((*ul)->ents);
	free(*ul);
	*ul = NULL;
}
