/*
 * libFuzzer target for the PROXY protocol parser: fed whole and split at
 * an input-chosen point, it reaches the same verdict, never takes an octet
 * past the header, and a header it accepts has a family it can use.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../src/lib/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum proxyproto_state
run(const uint8_t *data, size_t size, size_t cut, size_t *used_r,
    struct proxyproto_result *r)
{
	static struct proxyproto p;
	enum proxyproto_state st;
	size_t u1 = 0, u2 = 0;

	proxyproto_init(&p);
	st = proxyproto_feed(&p, data, cut, &u1, r);
	if (u1 > cut || (st == PROXYPROTO_MORE && u1 != cut))
		abort();
	if (st == PROXYPROTO_MORE) {
		st = proxyproto_feed(&p, data + cut, size - cut, &u2, r);
		if (u2 > size - cut)
			abort();
	}
	*used_r = u1 + u2;
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_result r1, r2;
	enum proxyproto_state a, b;
	size_t used1, used2, cut;

	if (size < 1 || size > PROXYPROTO_MAX + 64)
		return 0;
	cut = data[0] % size;
	data++;
	size--;
	if (cut > size)
		cut = size;
	a = run(data, size, size, &used1, &r1);
	b = run(data, size, cut, &used2, &r2);
	if (a != b || (a != PROXYPROTO_MORE && used1 != used2))
		abort();
	if (a == PROXYPROTO_DONE && r1.has_addr &&
	    ((r1.src.ss_family != AF_INET && r1.src.ss_family != AF_INET6) ||
	    r1.src.ss_family != r1.dst.ss_family ||
	    memcmp(&r1.src, &r2.src, sizeof(r1.src)) != 0))
		abort();
	if (used1 > PROXYPROTO_MAX)
		abort();
	return 0;
}
