/*
 * Address ranges in CIDR notation ("10.0.0.0/8 ::1/128 127.0.0.1"), for
 * the few places that trust peers by address (proxy_trusted_networks).
 */
#ifndef POSTINO_CIDR_H
#define POSTINO_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "str.h"

/* Ranges one list may hold: a site has a handful of proxies, not hundreds. */
#define CIDR_LIST_MAX	32

struct cidr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned int	bits;		/* 0..32 or 0..128 */
	uint8_t		addr[16];	/* network order, host bits zero */
};

struct cidr_list {
	unsigned int	n;
	struct cidr	c[CIDR_LIST_MAX];
};

/*
 * Parse a list of ranges separated by spaces, tabs or commas; an address
 * without "/bits" is one host. Host bits set below the prefix are an error
 * (a typo such as 10.0.0.1/8 is more likely than intent). 0, or -1 with err.
 */
int cidr_parse_list(struct cidr_list *l, const char *s, char *err);

/* Whether sa (IPv4, IPv6, or IPv4-mapped IPv6) lies in one of l's ranges. */
bool cidr_match(const struct cidr_list *l, const struct sockaddr *sa);

#endif
