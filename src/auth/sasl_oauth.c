/*
 * OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's and Microsoft's): a bearer
 * token, here a JWT checked by jwt_verify(), for a user. The client may
 * send its response with AUTH or after an empty challenge (the two-step
 * form Microsoft 365 clients use); both end in one verification.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sasl_private.h"

enum oauth_state { OAUTH_START, OAUTH_PENDING, OAUTH_REFUSED };

/* RFC 7628 sec. 3.2.2: what we tell a client whose token we refused. */
static const char refusal[] =
    "{\"status\":\"invalid_token\",\"schemes\":\"bearer\"}";

/* What a response carries. */
struct oauth_msg {
	char		 user[AUTH_USER_MAX + 1];	/* "" none */
	const char	*token;				/* into the response */
	size_t		 tokenlen;
};

/* RFC 5801 sec. 4 saslname: "=2C" is ',', "=3D" is '='; nothing else. */
static bool
saslname(char *dst, size_t size, const unsigned char *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == '=') {
			if (len - i < 3)
				return false;
			if (memcmp(p + i, "=2C", 3) == 0)
				c = ',';
			else if (memcmp(p + i, "=3D", 3) == 0)
				c = '=';
			else
				return false;
			i += 2;
		}
		if (c == '\0' || c == ',' || c == 0x01 || n + 1 >= size)
			return false;
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return true;
}

/*
 * The kvpairs after the gs2 header (OAUTHBEARER) or from the start
 * (XOAUTH2): key=value 0x01 ... 0x01, the last 0x01 ending the message
 * (RFC 7628 sec. 3.1). auth= must be "Bearer <token>" (the scheme is case
 * insensitive, RFC 7235 sec. 2.1); user= is XOAUTH2's name; host, port and
 * anything else are ignored, as the RFC asks.
 */
static bool
kvpairs(const unsigned char *p, size_t len, bool xoauth2, struct oauth_msg *m)
{
	static const char bearer[] = "Bearer ";
	bool have_user = false;

	for (;;) {
		const unsigned char *sep = memchr(p, 0x01, len), *eq;
		size_t kvlen, vlen;

		if (sep == NULL)
			return false;
		kvlen = (size_t)(sep - p);
		if (kvlen == 0)		/* the final kvsep */
			break;
		eq = memchr(p, '=', kvlen);
		if (eq == NULL || eq == p || memchr(p, '\0', kvlen) != NULL)
			return false;
		vlen = kvlen - (size_t)(eq + 1 - p);
		if ((size_t)(eq - p) == 4 && memcmp(p, "auth", 4) == 0) {
			if (m->token != NULL || vlen <= sizeof(bearer) - 1 ||
			    strncasecmp((const char *)eq + 1, bearer,
			    sizeof(bearer) - 1) != 0)
				return false;
			m->token = (const char *)eq + sizeof(bearer);
			m->tokenlen = vlen - (sizeof(bearer) - 1);
		} else if (xoauth2 && (size_t)(eq - p) == 4 &&
		    memcmp(p, "user", 4) == 0) {
			if (have_user || vlen == 0 || vlen > AUTH_USER_MAX)
				return false;
			memcpy(m->user, eq + 1, vlen);
			m->user[vlen] = '\0';
			have_user = true;
		}
		len -= kvlen + 1;
		p = sep + 1;
	}
	/* Nothing after the final kvsep; a token and, for XOAUTH2, a user. */
	return len == 1 && m->token != NULL && (!xoauth2 || have_user);
}

/* RFC 7628 sec. 3.1: gs2-header ("n," or "y,", [a=saslname], ","), 0x01. */
static bool
parse_oauthbearer(const unsigned char *in, size_t len, struct oauth_msg *m)
{
	const unsigned char *comma;
	size_t alen;

	/* No channel binding in OAUTHBEARER: "p=" is not ours to accept. */
	if (len < 3 || (in[0] != 'n' && in[0] != 'y') || in[1] != ',')
		return false;
	in += 2;
	len -= 2;
	comma = memchr(in, ',', len);
	if (comma == NULL)
		return false;
	alen = (size_t)(comma - in);
	if (alen > 0 && (alen < 3 || memcmp(in, "a=", 2) != 0 ||
	    !saslname(m->user, sizeof(m->user), in + 2, alen - 2) ||
	    m->user[0] == '\0'))
		return false;
	len -= alen + 1;
	in = comma + 1;
	if (len < 1 || in[0] != 0x01)
		return false;
	return kvpairs(in + 1, len - 1, false, m);
}

static enum sasl_step owner_step(struct sasl_session *s, const char *claimed,
    unsigned char *out, size_t *outlen_r, struct auth_user *user_r);

static enum sasl_step
refuse(struct sasl_session *s, unsigned char *out, size_t *outlen_r)
{
	memcpy(out, refusal, sizeof(refusal) - 1);
	*outlen_r = sizeof(refusal) - 1;
	s->state = OAUTH_REFUSED;
	return SASL_CONTINUE;
}

enum sasl_step
sasl_oauth_step(struct sasl_session *s, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	bool xoauth2 = s->mech->id == SASL_MECH_XOAUTH2;
	struct jwt_policy pol = s->srv->oauth_policy;
	char claimed[JWT_CLAIM_MAX + 1], why[ERR_LEN];
	struct oauth_msg m;
	enum jwt_result jr;

	(void)outsize;
	/* RFC 7628 sec. 3.2.3: whatever the client says now, it failed. */
	if (s->state == OAUTH_REFUSED)
		return SASL_FAIL;
	if (s->state == OAUTH_PENDING)
		return SASL_BAD;
	/* No initial response: an empty challenge asks for it. */
	if (in == NULL)
		return SASL_CONTINUE;
	memset(&m, 0, sizeof(m));
	if (!(xoauth2 ? kvpairs(in, inlen, true, &m) :
	    parse_oauthbearer(in, inlen, &m)))
		return SASL_BAD;
	(void)str_copy(s->user, sizeof(s->user), m.user);
	if (s->srv->flags & SASL_OAUTH_EXTERNAL) {
		/* Kept for sasl_oauth_pending(); wiped by sasl_free(). */
		if (m.tokenlen > sizeof(s->first))
			return SASL_BAD;
		memcpy(s->first, m.token, m.tokenlen);
		s->firstlen = m.tokenlen;
		s->state = OAUTH_PENDING;
		s->pending = true;
		return SASL_PENDING;
	}
	pol.now = (int64_t)time(NULL);
	jr = jwt_verify(s->srv->oauth_key, &pol, m.token, m.tokenlen, claimed,
	    sizeof(claimed), why);
	if (jr == JWT_ERROR)
		return SASL_TEMPFAIL;
	if (jr != JWT_OK)
		return refuse(s, out, outlen_r);
	return owner_step(s, claimed, out, outlen_r, user_r);
}

void
sasl_oauth_pending(const struct sasl_session *s, const char **token_r,
    size_t *len_r, const char **user_r)
{
	*token_r = s->first;
	*len_r = s->pending ? s->firstlen : 0;
	*user_r = s->user;
}

enum sasl_step
sasl_oauth_resume(struct sasl_session *s, enum auth_result verdict,
    const char *owner, unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	enum sasl_step r;

	memset(user_r, 0, sizeof(*user_r));
	*outlen_r = 0;
	if (!s->pending || s->done || outsize < SASL_CHALLENGE_MAX)
		return SASL_BAD;
	s->pending = false;
	explicit_bzero(s->first, s->firstlen);
	s->firstlen = 0;
	if (verdict == AUTH_TEMPFAIL)
		r = SASL_TEMPFAIL;
	else if (verdict != AUTH_OK || owner == NULL || owner[0] == '\0')
		r = refuse(s, out, outlen_r);
	else
		r = owner_step(s, owner, out, outlen_r, user_r);
	if (r != SASL_CONTINUE) {
		s->done = true;
		*outlen_r = 0;
		if (r != SASL_OK)
			memset(user_r, 0, sizeof(*user_r));
	}
	return r;
}

/* The token is good and belongs to claimed: is that our user? */
static enum sasl_step
owner_step(struct sasl_session *s, const char *claimed, unsigned char *out,
    size_t *outlen_r, struct auth_user *user_r)
{
	enum auth_result ar;

	/* OAUTHBEARER's authzid may be left out: the token names the user. */
	if (s->user[0] == '\0')
		(void)str_copy(s->user, sizeof(s->user), claimed);
	/* The token must be this user's: no acting as another. */
	if (strcmp(claimed, s->user) != 0 || !auth_name_valid(s->user))
		return refuse(s, out, outlen_r);
	ar = s->srv->ops->lookup(s->srv->db, s->user, user_r);
	if (ar == AUTH_TEMPFAIL)
		return SASL_TEMPFAIL;
	if (ar != AUTH_OK)
		return refuse(s, out, outlen_r);
	return SASL_OK;
}
