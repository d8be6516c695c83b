/* RFC 2449 CAPA: what the server does in the session's current state. */
#ifndef POSTINO_CAPA_H
#define POSTINO_CAPA_H

#include <stdbool.h>

#include "config.h"
#include "session.h"

#define CAPA_AUTHORIZATION	0x1	/* before login */
#define CAPA_STLS		0x2	/* STLS is possible now */
#define CAPA_USER		0x4	/* USER/PASS is allowed now */

/* sasl: the mechanisms usable now, space-separated ("" or NULL: none). */
void capa_reply(struct session *s, const struct config *cf, unsigned int flags,
    const char *sasl);

#endif
