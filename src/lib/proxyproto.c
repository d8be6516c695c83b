#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Spec sec. 2.2: the twelve octets no other protocol starts with. */
static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1_sig[] = "PROXY ";

#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_UNSPEC	0x00
#define V2_FAM_TCP4	0x11
#define V2_FAM_TCP6	0x21
/* Address block sizes for TCP over IPv4 and IPv6 (spec sec. 2.2). */
#define V2_ADDR4_LEN	12
#define V2_ADDR6_LEN	36
#define V2_TLV_HDR	3

void
proxyproto_init(struct proxyproto *p)
{
	memset(p, 0, sizeof(*p));
	p->state = PROXYPROTO_MORE;
}

static enum proxyproto_state
bad(struct proxyproto *p, const char *why)
{
	p->state = PROXYPROTO_BAD;
	p->why = why;
	return p->state;
}

/* A v1 port: 1 to 5 digits, no leading zero (spec sec. 2.1), <= 65535. */
static int
v1_port(const char *s, uint16_t *port_r)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port_r = (uint16_t)v;
	return 0;
}

static int
v1_addr(int af, const char *ip, const char *port, struct sockaddr_storage *ss,
    socklen_t *len_r)
{
	uint16_t pn;

	memset(ss, 0, sizeof(*ss));
	if (v1_port(port, &pn) < 0)
		return -1;
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(pn);
		*len_r = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(pn);
		*len_r = sizeof(*sin6);
	}
	return 0;
}

/* buf holds the whole line, CRLF included (len octets). */
static enum proxyproto_state
v1_parse(struct proxyproto *p)
{
	char line[PROXYPROTO_V1_MAX + 1], *f[6], *save = NULL, *w;
	unsigned int nf = 0;
	int af;

	if (p->len < 2 || p->buf[p->len - 2] != '\r')
		return bad(p, "v1-bare-lf");
	memcpy(line, p->buf, p->len - 2);
	line[p->len - 2] = '\0';
	/* Fields are separated by exactly one space: no empty field. */
	for (size_t i = 0; i < p->len - 2; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch < 0x21 || ch > 0x7e) {
			if (ch != ' ' || line[i + 1] == ' ' ||
			    i + 1 == p->len - 2)
				return bad(p, "v1-syntax");
		}
	}
	for (w = strtok_r(line, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (nf == 6)
			return bad(p, "v1-syntax");
		f[nf++] = w;
	}
	if (nf < 2 || strcmp(f[0], "PROXY") != 0)
		return bad(p, "v1-syntax");
	p->res.version = 1;
	/* Spec: with UNKNOWN, the rest of the line is ignored. */
	if (strcmp(f[1], "UNKNOWN") == 0) {
		p->res.has_addr = false;
		p->state = PROXYPROTO_DONE;
		return p->state;
	}
	if (strcmp(f[1], "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		af = AF_INET6;
	else
		return bad(p, "v1-protocol");
	if (nf != 6)
		return bad(p, "v1-syntax");
	if (v1_addr(af, f[2], f[4], &p->res.src, &p->res.srclen) < 0 ||
	    v1_addr(af, f[3], f[5], &p->res.dst, &p->res.dstlen) < 0)
		return bad(p, "v1-address");
	p->res.has_addr = true;
	p->state = PROXYPROTO_DONE;
	return p->state;
}

/* The TLVs after the address block: skipped, but they must tile exactly. */
static int
v2_tlvs(const unsigned char *t, size_t len)
{
	while (len > 0) {
		size_t l;

		if (len < V2_TLV_HDR)
			return -1;
		l = ((size_t)t[1] << 8) | t[2];
		if (l > len - V2_TLV_HDR)
			return -1;
		t += V2_TLV_HDR + l;
		len -= V2_TLV_HDR + l;
	}
	return 0;
}

static enum proxyproto_state
v2_parse(struct proxyproto *p)
{
	const unsigned char *d = p->buf + PROXYPROTO_V2_FIXED;
	size_t dlen = p->len - PROXYPROTO_V2_FIXED, alen;
	unsigned int cmd = p->buf[12] & 0x0f, fam = p->buf[13];

	p->res.version = 2;
	if (cmd == V2_CMD_LOCAL) {
		/*
		 * Spec sec. 2.2: a LOCAL connection (the proxy's own health
		 * check) keeps its real addresses whatever the block says;
		 * the block is skipped unread.
		 */
		p->res.has_addr = false;
		p->state = PROXYPROTO_DONE;
		return p->state;
	}
	switch (fam) {
	case V2_FAM_UNSPEC:
		alen = 0;
		break;
	case V2_FAM_TCP4:
		alen = V2_ADDR4_LEN;
		break;
	case V2_FAM_TCP6:
		alen = V2_ADDR6_LEN;
		break;
	default:
		/* UDP or AF_UNIX cannot carry a POP3 client; others are bad. */
		return bad(p, "v2-family");
	}
	if (dlen < alen)
		return bad(p, "v2-short-address");
	if (v2_tlvs(d + alen, dlen - alen) < 0)
		return bad(p, "v2-tlv");
	if (fam == V2_FAM_UNSPEC) {
		p->res.has_addr = false;
	} else if (fam == V2_FAM_TCP4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&p->res.src;
		struct sockaddr_in *t = (struct sockaddr_in *)&p->res.dst;

		s->sin_family = t->sin_family = AF_INET;
		memcpy(&s->sin_addr, d, 4);
		memcpy(&t->sin_addr, d + 4, 4);
		memcpy(&s->sin_port, d + 8, 2);
		memcpy(&t->sin_port, d + 10, 2);
		p->res.srclen = p->res.dstlen = sizeof(*s);
		p->res.has_addr = true;
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->res.src;
		struct sockaddr_in6 *t = (struct sockaddr_in6 *)&p->res.dst;

		s->sin6_family = t->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, d, 16);
		memcpy(&t->sin6_addr, d + 16, 16);
		memcpy(&s->sin6_port, d + 32, 2);
		memcpy(&t->sin6_port, d + 34, 2);
		p->res.srclen = p->res.dstlen = sizeof(*s);
		p->res.has_addr = true;
	}
	p->state = PROXYPROTO_DONE;
	return p->state;
}

/* The fixed part is complete: check it and learn the total length. */
static enum proxyproto_state
v2_fixed(struct proxyproto *p)
{
	size_t dlen = ((size_t)p->buf[14] << 8) | p->buf[15];
	unsigned int cmd = p->buf[12] & 0x0f;

	if ((p->buf[12] >> 4) != 2)
		return bad(p, "v2-version");
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return bad(p, "v2-command");
	if (dlen > PROXYPROTO_V2_DATA_MAX)
		return bad(p, "v2-too-long");
	p->want = PROXYPROTO_V2_FIXED + dlen;
	return PROXYPROTO_MORE;
}

/* One octet; the state after it. */
static enum proxyproto_state
take(struct proxyproto *p, unsigned char ch)
{
	p->buf[p->len++] = ch;
	if (p->version == 0) {
		size_t i = p->len - 1;
		bool v1 = i < sizeof(v1_sig) - 1 &&
		    memcmp(p->buf, v1_sig, p->len) == 0;
		bool v2 = i < sizeof(v2_sig) &&
		    memcmp(p->buf, v2_sig, p->len) == 0;

		if (!v1 && !v2)
			return bad(p, "no-header");
		if (v1 && p->len == sizeof(v1_sig) - 1)
			p->version = 1;
		else if (v2 && p->len == sizeof(v2_sig))
			p->version = 2;
		return PROXYPROTO_MORE;
	}
	if (p->version == 1) {
		if (ch == '\n')
			return v1_parse(p);
		if (p->len == PROXYPROTO_V1_MAX)
			return bad(p, "v1-too-long");
		return PROXYPROTO_MORE;
	}
	if (p->len == PROXYPROTO_V2_FIXED)
		if (v2_fixed(p) == PROXYPROTO_BAD)
			return PROXYPROTO_BAD;
	if (p->want != 0 && p->len == p->want)
		return v2_parse(p);
	return PROXYPROTO_MORE;
}

enum proxyproto_state
proxyproto_feed(struct proxyproto *p, const unsigned char *data, size_t len,
    size_t *used_r, struct proxyproto_result *r)
{
	size_t i = 0;

	*used_r = 0;
	while (p->state == PROXYPROTO_MORE && i < len) {
		/* v2 bodies are copied in one go; everything else by octet. */
		if (p->version == 2 && p->want > p->len) {
			size_t n = p->want - p->len - 1;

			if (n > len - i - 1)
				n = len - i - 1;
			memcpy(p->buf + p->len, data + i, n);
			p->len += n;
			i += n;
		}
		p->state = take(p, data[i++]);
	}
	*used_r = i;
	if (p->state == PROXYPROTO_DONE && r != NULL)
		*r = p->res;
	return p->state;
}
