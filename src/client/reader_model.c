/*
 * postino read, the model: the session and what it holds (reader_int.h).
 * Every server reply is taken as hostile: headers and messages go through
 * mime.c before anything of them is kept.
 */
#include "reader_int.h"

#include <stdlib.h>
#include <string.h>

struct collect {
	char		*p;
	size_t		 len, cap, max;
	bool		 over;		/* more than max: stopped */
};

void
reader_model_size(char *dst, size_t size, uint64_t n)
{
	if (n < 1024)
		(void)str_fmt(dst, size, "%llu byte%s", (unsigned long long)n,
		    n == 1 ? "" : "s");
	else if (n < 1024 * 1024)
		(void)str_fmt(dst, size, "%.1f KiB", (double)n / 1024);
	else
		(void)str_fmt(dst, size, "%.1f MiB", (double)n / (1024 * 1024));
}

static int
collect_data(void *arg, const char *data, size_t len, bool eol)
{
	struct collect *x = arg;
	size_t need = len + (eol ? 1 : 0);

	if (x->over || need > x->max - x->len) {
		x->over = true;
		return -1;
	}
	if (x->len + need > x->cap) {
		size_t cap = x->cap < 8192 ? 8192 : x->cap;
		char *p;

		while (cap < x->len + need)
			cap *= 2;
		if (cap > x->max)
			cap = x->max;
		p = realloc(x->p, cap);
		if (p == NULL)
			return -1;
		x->p = p;
		x->cap = cap;
	}
	memcpy(x->p + x->len, data, len);
	x->len += len;
	if (eol)
		x->p[x->len++] = '\n';
	return 0;
}

static void
entry_clear(struct entry *e)
{
	free(e->from);
	free(e->subject);
	free(e->date);
	e->from = e->subject = e->date = NULL;
	e->loaded = false;
}

/* From our own ASCII text. -1 out of memory. */
static int
entry_note(struct entry *e, const char *subject)
{
	entry_clear(e);
	e->from = strdup("?");
	e->subject = strdup(subject);
	e->date = strdup("");
	e->loaded = true;
	return e->from && e->subject && e->date ? 0 : -1;
}

static int
entry_set(struct entry *e, const struct mime_msg *m)
{
	entry_clear(e);
	e->from = strdup(m->from_short);
	e->subject = strdup(m->subject);
	e->date = strdup(m->date_short);
	e->loaded = true;
	return e->from && e->subject && e->date ? 0 : -1;
}

/* From, Subject, Date of message i from TOP n 0. */
enum step
reader_model_load_entry(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];
	struct collect x = { .max = READER_HEADER_MAX };
	struct mime_msg *m = NULL;
	int rc;

	if (!r->has_top)
		return entry_note(e, "") < 0 ? STEP_LOCAL : STEP_GO;
	rc = pop3c_top(r->c, e->num, 0, 0, collect_data, &x, NULL);
	if (rc < 0) {
		free(x.p);
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		if (entry_note(e, x.over ? "(header too large)" :
		    "(no header: TOP failed)") < 0)
			goto oom;
		return STEP_GO;
	}
	rc = mime_parse(x.p != NULL ? x.p : "", x.len, r->codeset, &m, r->err);
	free(x.p);
	if (rc < 0)
		return STEP_LOCAL;
	rc = entry_set(e, m);
	mime_free(&m);
	if (rc < 0)
		goto oom;
	return STEP_GO;
oom:
	(void)str_copy(r->err, sizeof(r->err), "out of memory");
	return STEP_LOCAL;
}

/* The headers of rows from..from+count not loaded yet. */
enum step
reader_model_load_rows(struct reader *r, size_t from, size_t count)
{
	for (size_t i = from; i < r->n && i - from < count; i++) {
		enum step s;

		if (r->e[i].loaded)
			continue;
		s = reader_model_load_entry(r, i);
		if (s != STEP_GO)
			return s;
	}
	return STEP_GO;
}

/* The server refused a command: the session failed, or its word shows. */
static enum step
refused(struct reader *r)
{
	if (!pop3c_usable(r->c))
		return STEP_SESSION;
	(void)str_copy(r->status, sizeof(r->status), pop3c_errmsg(r->c));
	return STEP_GO;
}

enum step
reader_model_delete(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];

	if (e->deleted) {
		(void)str_fmt(r->status, sizeof(r->status), "Message %u is "
		    "already marked for deletion.", (unsigned int)e->num);
		return STEP_GO;
	}
	if (pop3c_dele(r->c, e->num) < 0)
		return refused(r);
	e->deleted = true;
	r->ndel++;
	(void)str_fmt(r->status, sizeof(r->status), "Message %u marked for "
	    "deletion (QUIT deletes it; u undoes it).", (unsigned int)e->num);
	return STEP_GO;
}

/*
 * One message unmarked. POP3 has no command for it: RSET unmarks all,
 * then DELE marks the others again.
 */
enum step
reader_model_undelete_one(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];

	if (!e->deleted) {
		(void)str_fmt(r->status, sizeof(r->status), "Message %u is "
		    "not marked for deletion.", (unsigned int)e->num);
		return STEP_GO;
	}
	if (pop3c_rset(r->c) < 0)
		return refused(r);
	e->deleted = false;
	r->ndel = 0;
	for (size_t j = 0; j < r->n; j++) {
		if (!r->e[j].deleted)
			continue;
		if (pop3c_dele(r->c, r->e[j].num) < 0) {
			if (!pop3c_usable(r->c))
				return STEP_SESSION;
			r->e[j].deleted = false;	/* the server says no */
			continue;
		}
		r->ndel++;
	}
	(void)str_fmt(r->status, sizeof(r->status), "Message %u is not "
	    "marked for deletion now.", (unsigned int)e->num);
	return STEP_GO;
}

enum step
reader_model_undelete_all(struct reader *r)
{
	if (pop3c_rset(r->c) < 0)
		return refused(r);
	for (size_t i = 0; i < r->n; i++)
		r->e[i].deleted = false;
	r->ndel = 0;
	(void)str_copy(r->status, sizeof(r->status),
	    "No message is marked for deletion now (RSET).");
	return STEP_GO;
}

/* The message behind the view, if one is shown. */
void
reader_model_forget(struct reader *r)
{
	free(r->raw);
	r->raw = NULL;
	r->raw_len = 0;
	mime_free(&r->msg);
}

/*
 * Message i, RETR'd and decoded into r->raw and r->msg; or, when it is
 * not to be shown (marked, too large, refused), why not in why.
 */
enum step
reader_model_fetch(struct reader *r, size_t i, char *why, size_t size)
{
	struct entry *e = &r->e[i];
	struct collect x = { .max = READER_MSG_MAX };
	char sz[32];

	why[0] = '\0';
	reader_model_forget(r);
	reader_model_size(sz, sizeof(sz), e->size);
	if (e->deleted) {
		(void)str_fmt(why, size, "Message %u is marked for deletion; "
		    "u undeletes it.", (unsigned int)e->num);
	} else if (e->size > READER_MSG_MAX) {
		(void)str_fmt(why, size, "Message %u is %s: too large to show "
		    "here (the limit is %u MiB).", (unsigned int)e->num, sz,
		    READER_MSG_MAX / (1024 * 1024));
	} else if (pop3c_retr(r->c, e->num, 0, collect_data, &x, NULL) < 0) {
		free(x.p);
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		if (x.over)
			(void)str_fmt(why, size, "Message %u is over %u MiB: "
			    "too large to show here.", (unsigned int)e->num,
			    READER_MSG_MAX / (1024 * 1024));
		else
			(void)str_fmt(why, size, "Message %u: %s",
			    (unsigned int)e->num, pop3c_errmsg(r->c));
	} else {
		if (mime_parse(x.p != NULL ? x.p : "", x.len, r->codeset,
		    &r->msg, r->err) < 0) {
			free(x.p);
			return STEP_LOCAL;
		}
		r->raw = x.p;
		r->raw_len = x.len;
		if (!e->loaded && entry_set(e, r->msg) < 0) {
			(void)str_copy(r->err, sizeof(r->err),
			    "out of memory");
			return STEP_LOCAL;
		}
	}
	return STEP_GO;
}

/* QUIT, after RSET when keep: the marks committed, or none. */
enum step
reader_model_quit(struct reader *r, bool keep)
{
	if (keep && r->ndel > 0) {
		if (pop3c_rset(r->c) < 0)
			return STEP_SESSION;
		for (size_t i = 0; i < r->n; i++)
			r->e[i].deleted = false;
		r->ndel = 0;
	}
	if (pop3c_quit(r->c) < 0)
		return STEP_SESSION;
	r->committed = r->ndel;
	return STEP_DONE;
}

void
reader_model_free_entries(struct entry **e, size_t n)
{
	for (size_t i = 0; *e != NULL && i < n; i++) {
		entry_clear(&(*e)[i]);
		free((*e)[i].uid);
	}
	free(*e);
	*e = NULL;
}

/* STAT for the title; LIST, and UIDL when there is one, as entries. */
static enum step
listing(struct reader *r, struct entry **e_r, size_t *n_r)
{
	struct pop3c_msg *msgs = NULL;
	struct entry *e = NULL;
	size_t n = 0;
	int rc = 1;

	*e_r = NULL;
	*n_r = 0;
	if (pop3c_stat(r->c, &r->count, &r->octets) < 0 ||
	    pop3c_list(r->c, &msgs, &n) < 0)
		return STEP_SESSION;
	if (n > 0 && (!pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_UIDL)))
		rc = pop3c_uidl(r->c, msgs, n);
	if ((rc < 0 && !pop3c_usable(r->c)) ||
	    (n > 0 && (e = calloc(n, sizeof(*e))) == NULL)) {
		pop3c_msgs_free(&msgs, n);
		if (rc < 0 && !pop3c_usable(r->c))
			return STEP_SESSION;
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return STEP_LOCAL;
	}
	for (size_t i = 0; i < n; i++) {
		e[i].num = msgs[i].num;
		e[i].size = msgs[i].size;
		if (rc == 0) {		/* all or none: a mark needs its uid */
			e[i].uid = msgs[i].uid;
			msgs[i].uid = NULL;
		}
	}
	pop3c_msgs_free(&msgs, n);
	*e_r = e;
	*n_r = n;
	return STEP_GO;
}

/* The title; the messages. */
enum step
reader_model_start(struct reader *r, const struct reader_opts *o)
{
	char title[ERR_LEN];

	(void)str_fmt(title, sizeof(title), "%s@%s", o->user, o->where);
	r->title = mime_display(title, strlen(title), r->codeset, true, NULL);
	if (r->title == NULL) {
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return STEP_LOCAL;
	}
	r->has_top = !pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_TOP);
	return listing(r, &r->e, &r->n);
}

static int
entry_uid_cmp(const void *a, const void *b)
{
	return strcmp((*(struct entry *const *)a)->uid,
	    (*(struct entry *const *)b)->uid);
}

/*
 * The old entry that is new entry e: by UIDL (numbers may have moved);
 * without UIDL only when the listing is the very same (count and sizes).
 */
static struct entry *
old_entry(struct reader *r, struct entry **byuid, const struct entry *e,
    size_t i, bool same)
{
	struct entry key = { .uid = e->uid }, *kp = &key, **hit;

	if (byuid == NULL)
		return same ? &r->e[i] : NULL;
	if (e->uid == NULL)
		return NULL;
	hit = bsearch(&kp, byuid, r->n, sizeof(*byuid), entry_uid_cmp);
	return hit != NULL ? *hit : NULL;
}

/* Headers and marks carried from the old entries; the cursor follows. */
static size_t
carry(struct reader *r, struct entry *e, size_t n, struct entry **byuid)
{
	bool same = n == r->n;
	size_t cur = r->cur < n ? r->cur : n > 0 ? n - 1 : 0;

	for (size_t i = 0; same && i < n; i++)
		same = e[i].size == r->e[i].size;
	for (size_t i = 0; i < n; i++) {
		struct entry *o = old_entry(r, byuid, &e[i], i, same);

		if (o == NULL)
			continue;
		if (o->loaded) {
			e[i].from = o->from;
			e[i].subject = o->subject;
			e[i].date = o->date;
			e[i].loaded = true;
			o->from = o->subject = o->date = NULL;
			o->loaded = false;
		}
		e[i].deleted = o->deleted;
		if (o == &r->e[r->cur])
			cur = i;
	}
	return cur;
}

/*
 * After a new login: the new listing, the old marks carried over by UIDL
 * and marked again with DELE. A mark whose message is gone is dropped.
 */
enum step
reader_model_remap(struct reader *r)
{
	struct entry *e, **byuid = NULL;
	size_t n, before = r->ndel, cur;
	bool uids = r->n > 0;
	enum step s;

	r->has_top = !pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_TOP);
	s = listing(r, &e, &n);
	if (s != STEP_GO)
		return s;
	for (size_t i = 0; i < r->n; i++)
		uids = uids && r->e[i].uid != NULL;
	if (uids && (byuid = calloc(r->n, sizeof(*byuid))) != NULL) {
		for (size_t i = 0; i < r->n; i++)
			byuid[i] = &r->e[i];
		qsort(byuid, r->n, sizeof(*byuid), entry_uid_cmp);
	}
	cur = carry(r, e, n, byuid);
	free(byuid);
	reader_model_free_entries(&r->e, r->n);
	r->e = e;
	r->n = n;
	r->cur = cur;
	r->ndel = 0;
	for (size_t i = 0; i < n; i++)
		r->ndel += e[i].deleted;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].deleted)
			continue;
		if (pop3c_dele(r->c, e[i].num) < 0) {
			if (!pop3c_usable(r->c))
				return STEP_SESSION;	/* marks kept */
			e[i].deleted = false;
			r->ndel--;
		}
	}
	(void)str_fmt(r->status, sizeof(r->status), "Reconnected to %s; "
	    "%zu of %zu marks kept.", r->title, r->ndel, before);
	return STEP_GO;
}
