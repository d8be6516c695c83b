/*
 * The mail role's commands: TRANSACTION (RFC 1939 sec. 5), its multi-line
 * replies streamed as the client reads them, and UPDATE at QUIT (sec. 6).
 * The role around them is mailbox.c (mailbox.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/str.h"
#include "capa.h"
#include "limits.h"
#include "mailbox.h"

static const struct config *cf;

void
mailbox_cmds_init(const struct config *config)
{
	cf = config;
}

void
mailbox_reply_store_error(struct session *s, enum store_result r, const char *err)
{
	switch (r) {
	case STORE_LOCKED:
	case STORE_BUSY:
		session_reply(s, "-ERR [IN-USE] %s", err);
		break;
	case STORE_PERMFAIL:
		session_reply(s, "-ERR [SYS/PERM] %s", err);
		break;
	default:
		session_reply(s, "-ERR [SYS/TEMP] %s", err);
		break;
	}
}

/* Message n (1-based) if it exists and is not deleted. */
static struct store_msg *
message(struct mail_conn *c, const char *arg)
{
	unsigned int n;

	if (pop3_parse_msgnum(arg, &n) < 0) {
		session_reply(&c->s, "-ERR Invalid message number.");
		return NULL;
	}
	if (n > c->idx.count) {
		session_reply(&c->s, "-ERR No such message.");
		return NULL;
	}
	if (c->idx.msgs[n - 1].deleted) {
		session_reply(&c->s, "-ERR Message %u is deleted.", n);
		return NULL;
	}
	return &c->idx.msgs[n - 1];
}

void
mailbox_live_totals(const struct mail_conn *c, unsigned int *count_r, uint64_t *size_r)
{
	unsigned int count = 0;
	uint64_t size = 0;

	for (unsigned int i = 0; i < c->idx.count; i++) {
		if (c->idx.msgs[i].deleted)
			continue;
		count++;
		size += c->idx.msgs[i].size;
	}
	*count_r = count;
	*size_r = size;
}

static enum cmd_result
cmd_stat(struct session *s, const struct pop3_args *a)
{
	unsigned int count;
	uint64_t size;

	(void)a;
	mailbox_live_totals(s->owner, &count, &size);
	session_reply(s, "+OK %u %llu", count, (unsigned long long)size);
	return CMD_OK;
}

static enum cmd_result
cmd_list_uidl(struct session *s, const struct pop3_args *a, bool uidl)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m;

	if (a->argc == 1) {
		if ((m = message(c, a->argv[0])) == NULL)
			return CMD_BAD;
		if (uidl)
			session_reply(s, "+OK %u %s",
			    (unsigned)(m - c->idx.msgs) + 1, m->uidl);
		else
			session_reply(s, "+OK %u %llu",
			    (unsigned)(m - c->idx.msgs) + 1,
			    (unsigned long long)m->size);
		return CMD_OK;
	}
	session_reply(s, uidl ? "+OK Unique-ID listing follows." :
	    "+OK Scan listing follows.");
	c->more_kind = uidl ? MORE_UIDL : MORE_LIST;
	c->cursor = 0;
	return CMD_MORE;
}

static enum cmd_result
cmd_list(struct session *s, const struct pop3_args *a)
{
	return cmd_list_uidl(s, a, false);
}

static enum cmd_result
cmd_uidl(struct session *s, const struct pop3_args *a)
{
	return cmd_list_uidl(s, a, true);
}

/* The end of a RETR/TOP, or of the session during one. */
static void
body_close(struct mail_conn *c)
{
	if (c->reader != NULL)
		c->sops->read_close(&c->reader);
	free(c->body_in);
	c->body_in = NULL;
	c->body_pos = c->body_len = 0;
}

static enum cmd_result
start_body(struct mail_conn *c, struct store_msg *m, bool top, uint64_t lines)
{
	char err[ERR_LEN];
	enum store_result r;

	/* Only while a message is sent: an idle session stays small. */
	if (c->body_in == NULL && (c->body_in = malloc(RETR_BLOCK)) == NULL) {
		log_warn("session=%s event=read-failed", c->s.id);
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_BAD;
	}
	c->body_pos = c->body_len = 0;
	r = c->sops->read_open(c->st, (unsigned)(m - c->idx.msgs) + 1,
	    &c->reader, err);
	if (r != STORE_OK) {
		log_warnx("session=%s event=read-failed msg=%u reason=\"%s\"",
		    c->s.id, (unsigned)(m - c->idx.msgs) + 1, err);
		mailbox_reply_store_error(&c->s, r, "Message is no longer available.");
		return CMD_BAD;
	}
	pop3_encoder_init(&c->enc, top, lines);
	if (top) {
		session_reply(&c->s, "+OK Top of message follows.");
	} else {
		session_reply(&c->s, "+OK %llu octets",
		    (unsigned long long)m->size);
		/* Fewer, larger writes: each costs a wake-up of the reader. */
		if (m->size > SESSION_OUT_MAX)
			(void)session_out_widen(&c->s);
		c->retrieved++;
		c->retrieved_bytes += m->size;
	}
	c->more_kind = MORE_BODY;
	return CMD_MORE;
}

static enum cmd_result
cmd_retr(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);

	if (m == NULL)
		return CMD_BAD;
	return start_body(c, m, false, 0);
}

static enum cmd_result
cmd_top(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);
	uint64_t lines;

	if (m == NULL)
		return CMD_BAD;
	if (str_parse_u64(a->argv[1], &lines) < 0) {
		session_reply(s, "-ERR Invalid number of lines.");
		return CMD_BAD;
	}
	return start_body(c, m, true, lines);
}

static enum cmd_result
cmd_dele(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);

	if (m == NULL)
		return CMD_BAD;
	m->deleted = true;
	session_reply(s, "+OK Message %u deleted.", (unsigned)(m - c->idx.msgs) + 1);
	return CMD_OK;
}

static enum cmd_result
cmd_noop(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK");
	return CMD_OK;
}

static enum cmd_result
cmd_rset(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	for (unsigned int i = 0; i < c->idx.count; i++)
		c->idx.msgs[i].deleted = false;
	session_reply(s, "+OK %u messages (%llu octets).", c->idx.count,
	    (unsigned long long)c->idx.total_size);
	return CMD_OK;
}

static enum cmd_result
cmd_capa(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	/* RFC 2449 sec. 5: what AUTHORIZATION offered is announced here too. */
	capa_reply(s, cf, c->capa & (CAPA_USER | CAPA_STLS), c->sasl);
	return CMD_OK;
}

/* QUIT from TRANSACTION; the role's lock timer calls it again. */
bool
mailbox_update(struct mail_conn *c)
{
	struct session *s = &c->s;
	unsigned int deleted = 0, left;
	uint64_t size;
	char err[ERR_LEN];
	enum store_result r = STORE_OK;

	for (unsigned int i = 0; i < c->idx.count; i++)
		deleted += c->idx.msgs[i].deleted;
	mailbox_live_totals(c, &left, &size);
	if (deleted > 0 || c->sops->wait != NULL)
		r = c->sops->commit(c->st, &c->idx, err);
	if (r == STORE_BUSY && mailbox_lock_retry_later(c))
		return false;
	if (r == STORE_PENDING) {
		c->sops->wait(c->st, mailbox_store_ready, c);
		return false;
	}
	/*
	 * UPDATE is over: give the mailbox back before the reply can reach
	 * the client, or a client that logs in again at once (to another
	 * mail worker of the pool) could find it still locked: [IN-USE].
	 */
	body_close(c);
	c->sops->close(&c->st, &c->idx);
	/* Here too when UPDATE waited on the store and no CMD_CLOSE follows. */
	session_set_end(s, "quit");
	if (r != STORE_OK) {
		log_warnx("session=%s event=update-failed reason=\"%s\"", s->id, err);
		session_reply(s, "-ERR [SYS/TEMP] Some deleted messages were "
		    "not removed.");
	} else {
		session_reply(s, "+OK Bye, %u deleted, %u left.", deleted, left);
	}
	log_info("session=%s event=logout user=\"%s\" retrieved=%u "
	    "retrieved_bytes=%llu deleted=%u left=%u result=%s", s->id,
	    c->user, c->retrieved, (unsigned long long)c->retrieved_bytes,
	    deleted, left, r == STORE_OK ? "ok" : "update-failed");
	return true;
}

static enum cmd_result
cmd_quit(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	c->quitting = true;
	if (mailbox_update(c))
		return CMD_CLOSE;
	session_suspend(s);
	return CMD_ASYNC;
}

const struct session_cmd mailbox_commands[] = {
	{ "STAT", 0, 0, false, 0, cmd_stat },
	{ "LIST", 0, 1, false, 0, cmd_list },
	{ "UIDL", 0, 1, false, 0, cmd_uidl },
	{ "RETR", 1, 1, false, 0, cmd_retr },
	{ "TOP",  2, 2, false, 0, cmd_top },
	{ "DELE", 1, 1, false, 0, cmd_dele },
	{ "NOOP", 0, 0, false, 0, cmd_noop },
	{ "RSET", 0, 0, false, 0, cmd_rset },
	{ "CAPA", 0, 0, false, 0, cmd_capa },
	{ "QUIT", 0, 0, false, 0, cmd_quit },
	{ NULL, 0, 0, false, 0, NULL },
};

/* "n size" or "n uid", CRLF: number, space, the longer of the two, CRLF. */
#define LISTING_LINE_MAX	(POP3_U64_DIGITS + 1 + \
	    (STORE_UIDL_MAX > POP3_U64_DIGITS ? STORE_UIDL_MAX : POP3_U64_DIGITS) + 2)

/* Message n's scan or unique-id listing line at dst; returns its length. */
static size_t
listing_line(char *dst, unsigned int n, const struct store_msg *m, bool uidl)
{
	size_t o = pop3_put_u64(dst, n);

	dst[o++] = ' ';
	if (uidl) {
		size_t len = strnlen(m->uidl, STORE_UIDL_MAX);

		memcpy(dst + o, m->uidl, len);
		o += len;
	} else {
		o += pop3_put_u64(dst + o, m->size);
	}
	dst[o++] = '\r';
	dst[o++] = '\n';
	return o;
}

/*
 * Lines go straight into the output buffer, as many as fit; a transcript
 * takes them one by one through session_reply(), which logs each.
 */
static void
more_listing(struct mail_conn *c)
{
	bool uidl = c->more_kind == MORE_UIDL;
	char line[LISTING_LINE_MAX], *dst = NULL;
	size_t room = 0, o = 0;

	if (!c->s.transcript &&
	    (dst = session_out_tail(&c->s, &room)) == NULL)
		return;
	while (c->cursor < c->idx.count) {
		struct store_msg *m = &c->idx.msgs[c->cursor];
		size_t n;

		if (dst != NULL ? room - o < LISTING_LINE_MAX :
		    session_out_room(&c->s) <= 128)
			break;
		c->cursor++;
		if (m->deleted)
			continue;
		if (dst != NULL) {
			o += listing_line(dst + o, c->cursor, m, uidl);
			continue;
		}
		n = listing_line(line, c->cursor, m, uidl);
		session_reply(&c->s, "%.*s", (int)n - 2, line);
	}
	if (dst != NULL)
		session_out_commit(&c->s, o);
	if (c->cursor == c->idx.count) {
		session_reply(&c->s, ".");
		session_more_done(&c->s);
	}
}

/*
 * Encode straight into the session's output buffer. A block is read whole
 * (RETR_BLOCK) and encoded as far as the buffer has room, the rest on the
 * next call: reading at most half the free room (the encoder's worst case)
 * took three shrinking reads per refill, 52 read() calls per MB.
 */
static void
more_body(struct mail_conn *c)
{
	for (;;) {
		size_t room, used, o;
		char *dst = session_out_tail(&c->s, &room);
		ssize_t n = 0;

		if (dst == NULL || room < POP3_ENCODER_FINISH_MAX + RETR_MIN_READ)
			return;
		if (c->body_pos < c->body_len) {
			used = pop3_encoder_feed_some(&c->enc,
			    c->body_in + c->body_pos, c->body_len - c->body_pos,
			    dst, room, &o);
			c->body_pos += used;
			session_out_commit(&c->s, o);
			continue;
		}
		if (!pop3_encoder_full(&c->enc))
			n = c->sops->read(c->reader, c->body_in, RETR_BLOCK);
		if (n < 0 && errno == EAGAIN && c->sops->wait != NULL) {
			/* The database has the block: no writable wake-ups till then. */
			session_more_wait(&c->s);
			c->body_waiting = true;
			c->sops->wait(c->st, mailbox_store_ready, c);
			return;
		}
		if (n < 0) {
			/* +OK is out: the only honest end is to drop the line. */
			log_warn("session=%s event=read-failed", c->s.id);
			session_close(&c->s);
			return;
		}
		if (n == 0) {
			uint64_t size;

			o = pop3_encoder_finish(&c->enc, dst, room);
			session_out_commit(&c->s, o);
			if (c->sops->read_size != NULL &&
			    pop3_encoder_size(&c->enc, &size) == 0)
				c->sops->read_size(c->reader, size);
			body_close(c);
			session_more_done(&c->s);
			return;
		}
		c->body_pos = 0;
		c->body_len = (size_t)n;
	}
}

void
mailbox_more(struct session *s)
{
	struct mail_conn *c = s->owner;

	if (c->more_kind == MORE_BODY)
		more_body(c);
	else
		more_listing(c);
}

void
mailbox_release(struct mail_conn *c)
{
	body_close(c);
	if (c->st != NULL)
		c->sops->close(&c->st, &c->idx);
}
