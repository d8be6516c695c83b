/* RFC 2449 CAPA: what the server does in the session's current state. */
#ifndef POSTINO_CAPA_H
#define POSTINO_CAPA_H

#include <stdbool.h>

#include "config.h"
#include "session.h"

void capa_reply(struct session *s, const struct config *cf, bool authorization);

#endif
