/*
 * Strict base64 (RFC 4648 sec. 4, the standard alphabet, always padded) for
 * SASL (RFC 5034 sec. 4) and the {SCRAM-SHA-256} secrets of the passwd-file.
 * Input comes from the network: the decoder accepts exactly one spelling of
 * each octet string and rejects everything else.
 */
#ifndef POSTINO_BASE64_H
#define POSTINO_BASE64_H

#include <stddef.h>

/* Characters base64 takes for len octets, without the NUL. */
#define BASE64_ENCODED_LEN(len)	(((len) + 2) / 3 * 4)
/* Octets at most decoded from len characters. */
#define BASE64_DECODED_MAX(len)	((len) / 4 * 3)

/*
 * Encode len octets of src into dst as NUL-terminated text. 0, or -1 when
 * dstsize is below BASE64_ENCODED_LEN(len) + 1 (dst is then "" if it has
 * room for that).
 */
int base64_encode(char *dst, size_t dstsize, const void *src, size_t len);

/*
 * Decode srclen characters of src into dst (dstsize octets). Refused (-1):
 * a length that is not a multiple of 4, any character outside the alphabet
 * (whitespace, NUL and '-' '_' included), '=' anywhere but as the last one
 * or two characters, pad bits that are not zero (a second spelling of the
 * same octets, RFC 4648 sec. 3.5), and a result longer than dstsize.
 * "" decodes to zero octets. 0 with *len_r set; on -1 dst is wiped and
 * *len_r is 0.
 */
int base64_decode(void *dst, size_t dstsize, size_t *len_r, const char *src,
    size_t srclen);

#endif
