#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* "ffff:ffff:...:255.255.255.255/128" */
#define CIDR_TEXT_MAX	(INET6_ADDRSTRLEN + 4)

static int
cidr_parse_one(struct cidr *c, const char *s, size_t len, char *err)
{
	char text[CIDR_TEXT_MAX + 1], *slash;
	unsigned int max;
	uint32_t bits;

	if (len > CIDR_TEXT_MAX) {
		str_fmt(err, ERR_LEN, "'%.*s...': too long", 16, s);
		return -1;
	}
	memcpy(text, s, len);
	text[len] = '\0';
	slash = strchr(text, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, text, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		str_fmt(err, ERR_LEN, "'%s': not an IP address", text);
		return -1;
	}
	if (slash == NULL)
		bits = max;
	else if (str_parse_u32(slash, &bits) < 0 || bits > max) {
		str_fmt(err, ERR_LEN, "'%s/%s': bad prefix length", text,
		    slash);
		return -1;
	}
	c->bits = bits;
	for (unsigned int b = bits; b < max; b++)
		if (c->addr[b / 8] & (0x80 >> (b % 8))) {
			str_fmt(err, ERR_LEN, "'%s/%u': host bits set", text,
			    bits);
			return -1;
		}
	return 0;
}

int
cidr_parse_list(struct cidr_list *l, const char *s, char *err)
{
	static const char sep[] = " \t,";

	memset(l, 0, sizeof(*l));
	for (;;) {
		size_t n;

		s += strspn(s, sep);
		if (*s == '\0')
			return 0;
		n = strcspn(s, sep);
		if (l->n == CIDR_LIST_MAX) {
			str_fmt(err, ERR_LEN, "at most %d ranges",
			    CIDR_LIST_MAX);
			return -1;
		}
		if (cidr_parse_one(&l->c[l->n], s, n, err) < 0)
			return -1;
		l->n++;
		s += n;
	}
}

static bool
prefix_eq(const uint8_t *a, const uint8_t *net, unsigned int bits)
{
	unsigned int full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ net[full]) & (0xff00 >> rest)) == 0;
}

bool
cidr_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	uint8_t a[16];
	int family;

	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* A dual-stack socket's IPv4 peer is matched as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			memcpy(a, in6->s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, in6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return false;
	}
	for (unsigned int i = 0; i < l->n; i++)
		if (l->c[i].family == family &&
		    prefix_eq(a, l->c[i].addr, l->c[i].bits))
			return true;
	return false;
}
