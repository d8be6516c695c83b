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

enum oauth_state { OAUTH_START, OAUTH_REFUSED };

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
	enum auth_result ar;

	(void)outsize;
	/* RFC 7628 sec. 3.2.3: whatever the client says now, it failed. */
	if (s->state == OAUTH_REFUSED)
		return SASL_FAIL;
	/* No initial response: an empty challenge asks for it. */
	if (in == NULL)
		return SASL_CONTINUE;
	memset(&m, 0, sizeof(m));
	if (!(xoauth2 ? kvpairs(in, inlen, true, &m) :
	    parse_oauthbearer(in, inlen, &m)))
		return SASL_BAD;
	(void)str_copy(s->user, sizeof(s->user), m.user);
	pol.now = (int64_t)time(NULL);
	jr = jwt_verify(s->srv->oauth_key, &pol, m.token, m.tokenlen, claimed,
	    sizeof(claimed), why);
	if (jr == JWT_ERROR)
		return SASL_TEMPFAIL;
	if (jr != JWT_OK)
		return refuse(s, out, outlen_r);
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
