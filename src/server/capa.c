#include "capa.h"

void
capa_reply(struct session *s, const struct config *cf, unsigned int flags,
    const char *sasl)
{
	session_reply(s, "+OK Capability list follows");
	session_reply(s, "TOP");
	session_reply(s, "UIDL");
	session_reply(s, "RESP-CODES");
	session_reply(s, "AUTH-RESP-CODE");
	session_reply(s, "PIPELINING");
	/* RFC 2449 sec. 6.7: we never delete mail on our own. */
	session_reply(s, "EXPIRE NEVER");
	if (cf->login_delay > 0)
		session_reply(s, "LOGIN-DELAY %u", cf->login_delay);
	if (flags & CAPA_USER)
		session_reply(s, "USER");
	if (flags & CAPA_STLS)
		session_reply(s, "STLS");
	if (sasl != NULL && sasl[0] != '\0')
		session_reply(s, "SASL %s", sasl);
	session_reply(s, "IMPLEMENTATION Postino");
	session_reply(s, ".");
}
