#include "pop3c_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pop3/pop3.h"

/*
 * Split "A B[ rest]" into two words; NUL-terminates in place. 0 or -1.
 * Writes into line, so line must be writable.
 */
static int
two_words(char *line, char **a_r, char **b_r)
{
	char *sp = strchr(line, ' '), *b, *sp2;

	if (sp == NULL)
		return -1;
	*sp = '\0';
	b = sp + 1;
	sp2 = strchr(b, ' ');
	if (sp2 != NULL)
		*sp2 = '\0';
	*a_r = line;
	*b_r = b;
	return 0;
}

int
pop3c_stat(struct pop3c *c, uint32_t *count_r, uint64_t *size_r)
{
	char text[POP3C_LINE_MAX + 1], *a, *b, clean[100];
	const char *t;

	if (pop3c_send_cmd(c, "STAT") < 0 || pop3c_simple_cmd(c, "STAT", &t) < 0)
		return -1;
	str_copy(text, sizeof(text), t);
	str_sanitize(clean, sizeof(clean), t, strlen(t));
	if (two_words(text, &a, &b) < 0 || str_parse_u32(a, count_r) < 0 ||
	    str_parse_u64(b, size_r) < 0)
		return pop3c_fail(c, POP3C_EPROTO, "bad STAT reply: \"+OK %s\"",
		    clean);
	return 0;
}

void
pop3c_msgs_free(struct pop3c_msg **msgs, size_t n)
{
	if (*msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*msgs)[i].uid);
	free(*msgs);
	*msgs = NULL;
}

/* Read to the final "." after a failure, so the session can go on. */
static void
drain(struct pop3c *c)
{
	char *line;
	size_t len;
	bool eol, bol = true;

	for (;;) {
		int rc = pop3c_get_line(c, POP3C_BUF_SIZE - 1, &line, &len, &eol);

		if (rc <= 0) {
			c->dead = true;
			return;
		}
		if (bol && eol && len == 1 && line[0] == '.')
			return;
		bol = eol;
	}
}

int
pop3c_list(struct pop3c *c, struct pop3c_msg **msgs_r, size_t *n_r)
{
	struct pop3c_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	char *line, *a, *b, clean[100];
	size_t len;
	int rc;

	*msgs_r = NULL;
	*n_r = 0;
	if (pop3c_send_cmd(c, "LIST") < 0 || pop3c_simple_cmd(c, "LIST", NULL) < 0)
		return -1;
	for (;;) {
		struct pop3c_msg m = { 0 };

		rc = pop3c_get_multi_line(c, "LIST", &line, &len);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			break;
		str_sanitize(clean, sizeof(clean), line, len);
		if (two_words(line, &a, &b) < 0 ||
		    str_parse_u32(a, &m.num) < 0 || m.num == 0 ||
		    str_parse_u64(b, &m.size) < 0) {
			pop3c_fail(c, POP3C_EPROTO, "bad LIST line: \"%s\"", clean);
			goto fail;
		}
		if (n > 0 && m.num <= msgs[n - 1].num) {
			pop3c_fail(c, POP3C_EPROTO, "LIST out of order at \"%s\"",
			    clean);
			goto fail;
		}
		if (n == POP3C_MESSAGES_MAX) {
			pop3c_fail(c, POP3C_EPROTO, "LIST has over %d messages",
			    POP3C_MESSAGES_MAX);
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			struct pop3c_msg *nm;

			nm = reallocarray(msgs, ncap, sizeof(*msgs));
			if (nm == NULL) {
				pop3c_fail(c, POP3C_ELOCAL, "out of memory");
				drain(c);
				goto fail;
			}
			msgs = nm;
			cap = ncap;
		}
		msgs[n++] = m;
	}
	*msgs_r = msgs;
	*n_r = n;
	return 0;
fail:
	free(msgs);
	return -1;
}

static int
cmp_num(const void *key, const void *elem)
{
	uint32_t k = *(const uint32_t *)key;
	const struct pop3c_msg *m = elem;

	return k < m->num ? -1 : k > m->num;
}

static int
cmp_uid(const void *a, const void *b)
{
	const struct pop3c_msg *x = *(const struct pop3c_msg *const *)a;
	const struct pop3c_msg *y = *(const struct pop3c_msg *const *)b;

	return strcmp(x->uid, y->uid);
}

bool
pop3c_valid_uid(const char *s, size_t len)
{
	if (len == 0 || len > POP3C_UID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* Every message got a uid and no two share one; else -1. */
static int
check_uids(struct pop3c *c, struct pop3c_msg *msgs, size_t n)
{
	struct pop3c_msg **v;
	char clean[100];
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (msgs[i].uid == NULL)
			return pop3c_fail(c, POP3C_EPROTO,
			    "UIDL lacks message %u", (unsigned int)msgs[i].num);
	if (n < 2)
		return 0;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		return pop3c_fail(c, POP3C_ELOCAL, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = &msgs[i];
	qsort(v, n, sizeof(*v), cmp_uid);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1]->uid, v[i]->uid) == 0) {
			str_sanitize(clean, sizeof(clean), v[i]->uid,
			    strlen(v[i]->uid));
			rc = pop3c_fail(c, POP3C_EPROTO,
			    "UIDL gives two messages the id \"%s\"", clean);
			break;
		}
	}
	free(v);
	return rc;
}

int
pop3c_uidl(struct pop3c *c, struct pop3c_msg *msgs, size_t n)
{
	char *line, *a, *b, clean[100];
	size_t len;
	int rc;

	if (pop3c_send_cmd(c, "UIDL") < 0)
		return -1;
	rc = pop3c_read_status(c, "UIDL", NULL);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		if (c->err != POP3C_ESERVER)
			return -1;
		c->err = POP3C_OK;
		return 1;
	}
	for (size_t i = 0; i <= POP3C_MESSAGES_MAX; i++) {
		struct pop3c_msg *m;
		uint32_t num;

		rc = pop3c_get_multi_line(c, "UIDL", &line, &len);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return check_uids(c, msgs, n);
		str_sanitize(clean, sizeof(clean), line, len);
		if (two_words(line, &a, &b) < 0 ||
		    str_parse_u32(a, &num) < 0 ||
		    !pop3c_valid_uid(b, strlen(b)))
			return pop3c_fail(c, POP3C_EPROTO, "bad UIDL line: \"%s\"",
			    clean);
		m = n > 0 ? bsearch(&num, msgs, n, sizeof(*msgs), cmp_num) :
		    NULL;
		if (m == NULL || m->uid != NULL)
			return pop3c_fail(c, POP3C_EPROTO,
			    "UIDL line for %s message: \"%s\"",
			    m == NULL ? "an unlisted" : "a repeated", clean);
		m->uid = strdup(b);
		if (m->uid == NULL) {
			pop3c_fail(c, POP3C_ELOCAL, "out of memory");
			drain(c);
			return -1;
		}
	}
	return pop3c_fail(c, POP3C_EPROTO, "UIDL reply too long");
}

/*
 * Stream a multi-line message reply into fn. Lines arrive whole or in
 * pieces; only the first piece of a line is unstuffed, and only a whole
 * line can be the terminator.
 */
static int
stream_data(struct pop3c *c, const char *what, uint64_t max_octets,
    pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	uint64_t octets = 0;
	bool bol = true, failed = false;

	for (;;) {
		char *line;
		size_t len;
		bool eol;
		int rc = pop3c_get_line(c, POP3C_BUF_SIZE - 1, &line, &len, &eol);

		if (rc < 0)
			return -1;
		if (rc == 0)
			return pop3c_fail(c, POP3C_ENET,
			    "%s reply cut short: connection closed before "
			    "the final \".\"", what);
		if (bol && pop3_unstuff_line(line, &len)) {
			if (!eol)
				return pop3c_fail(c, POP3C_EPROTO,
				    "bad stuffing in the %s reply", what);
			break;
		}
		if (__builtin_add_overflow(octets, (uint64_t)len, &octets) ||
		    (eol && __builtin_add_overflow(octets, 2, &octets)) ||
		    (max_octets > 0 && octets > max_octets))
			return pop3c_fail(c, POP3C_EPROTO,
			    "%s reply exceeds %llu octets", what,
			    (unsigned long long)max_octets);
		if (!failed && fn(arg, line, len, eol) < 0)
			failed = true;
		bol = eol;
	}
	if (octets_r != NULL)
		*octets_r = octets;
	if (failed) {
		c->err = POP3C_ELOCAL;
		(void)str_fmt(c->errmsg, sizeof(c->errmsg),
		    "%s: local failure", what);
		return -1;
	}
	return 0;
}

/* Queue a command whose reply is read later (RFC 2449 sec. 6.6). */
static int
queue_cmd(struct pop3c *c, bool data, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
queue_cmd(struct pop3c *c, bool data, const char *fmt, ...)
{
	char line[POP3_LINE_MAX + 1];
	unsigned int slot;
	va_list ap;
	int n;

	if (c->dead)
		return pop3c_fail(c, POP3C_ENET, "connection already failed");
	/*
	 * Without PIPELINING a server may read the next command only after
	 * its reply: one at a time. The window also bounds what we write
	 * while not reading, far below any socket buffer, so neither side
	 * can block on a full one.
	 */
	if (c->qlen >= POP3C_PIPELINE_MAX ||
	    (c->qlen > 0 && !(c->caps & POP3C_CAP_PIPELINING))) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "too many pipelined commands");
		return -1;
	}
	va_start(ap, fmt);
	n = pop3c_format_cmd(c, line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > iobuf_room(&c->out) && pop3c_flush_out(c) < 0)
		return -1;
	if (iobuf_add(&c->out, line, (size_t)n) != (size_t)n)
		return pop3c_fail(c, POP3C_ELOCAL, "command queue full");
	slot = (c->qhead + c->qlen) % POP3C_PIPELINE_MAX;
	c->q[slot].data = data;
	(void)str_fmt(c->q[slot].what, sizeof(c->q[slot].what), "%.*s",
	    n - 2, line);
	c->qlen++;
	return 0;
}

int
pop3c_send_retr(struct pop3c *c, uint32_t num)
{
	return queue_cmd(c, true, "RETR %u", (unsigned int)num);
}

int
pop3c_send_top(struct pop3c *c, uint32_t num, uint32_t lines)
{
	return queue_cmd(c, true, "TOP %u %u", (unsigned int)num,
	    (unsigned int)lines);
}

int
pop3c_send_dele(struct pop3c *c, uint32_t num)
{
	return queue_cmd(c, false, "DELE %u", (unsigned int)num);
}

unsigned int
pop3c_outstanding(const struct pop3c *c)
{
	return c->qlen;
}

/* Take the oldest outstanding command, which must be of kind data. */
static int
dequeue(struct pop3c *c, bool data, char *what, size_t size)
{
	if (c->qlen == 0 || c->q[c->qhead].data != data) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "no such pipelined command");
		return -1;
	}
	(void)str_copy(what, size, c->q[c->qhead].what);
	c->qhead = (c->qhead + 1) % POP3C_PIPELINE_MAX;
	c->qlen--;
	return 0;
}

int
pop3c_recv_data(struct pop3c *c, uint64_t max_octets, pop3c_data_fn *fn,
    void *arg, uint64_t *octets_r)
{
	char what[48];

	if (dequeue(c, true, what, sizeof(what)) < 0 ||
	    pop3c_simple_cmd(c, what, NULL) < 0)
		return -1;
	return stream_data(c, what, max_octets, fn, arg, octets_r);
}

int
pop3c_recv_status(struct pop3c *c)
{
	char what[48];

	if (dequeue(c, false, what, sizeof(what)) < 0 ||
	    pop3c_simple_cmd(c, what, NULL) < 0)
		return -1;
	return 0;
}

static int
drop_data(void *arg, const char *data, size_t len, bool eol)
{
	(void)arg;
	(void)data;
	(void)len;
	(void)eol;
	return 0;
}

int
pop3c_drain_replies(struct pop3c *c)
{
	enum pop3c_error err = c->err;
	char msg[ERR_LEN];
	int rc = 0;

	/* Keep the failure that made the caller stop, not ours. */
	(void)str_copy(msg, sizeof(msg), c->errmsg);
	while (c->qlen > 0 && rc == 0) {
		bool data = c->q[c->qhead].data;

		if ((data ? pop3c_recv_data(c, 0, drop_data, NULL, NULL) :
		    pop3c_recv_status(c)) < 0 && !pop3c_usable(c))
			rc = -1;
	}
	if (rc == 0) {
		c->err = err;
		(void)str_copy(c->errmsg, sizeof(c->errmsg), msg);
	}
	return rc;
}

int
pop3c_retr(struct pop3c *c, uint32_t num, uint64_t max_octets,
    pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	if (pop3c_send_retr(c, num) < 0)
		return -1;
	return pop3c_recv_data(c, max_octets, fn, arg, octets_r);
}

int
pop3c_top(struct pop3c *c, uint32_t num, uint32_t lines,
    uint64_t max_octets, pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	if (pop3c_send_top(c, num, lines) < 0)
		return -1;
	return pop3c_recv_data(c, max_octets, fn, arg, octets_r);
}

int
pop3c_dele(struct pop3c *c, uint32_t num)
{
	if (pop3c_send_dele(c, num) < 0)
		return -1;
	return pop3c_recv_status(c);
}

int
pop3c_rset(struct pop3c *c)
{
	if (pop3c_send_cmd(c, "RSET") < 0 || pop3c_simple_cmd(c, "RSET", NULL) < 0)
		return -1;
	return 0;
}

int
pop3c_quit(struct pop3c *c)
{
	if (pop3c_send_cmd(c, "QUIT") < 0 || pop3c_simple_cmd(c, "QUIT", NULL) < 0)
		return -1;
	return 0;
}
