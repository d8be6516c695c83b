/*
 * UIDLs of a Maildir that Dovecot or Courier served before, so a site that
 * moves to postinod keeps every UIDL and no client that leaves mail on the
 * server downloads anything twice.
 *
 * Dovecot: <maildir>/dovecot-uidlist, version 3 ("3 V<uidvalidity>
 * N<nextuid> ...", then "<uid> [<key><value> ...] :<file name>") or
 * version 1 ("1 <uidvalidity> <nextuid>", then "<uid> <file name>"). A
 * message's UIDL is its "P" (POP3 UIDL) extension when present, else
 * Dovecot's pop3_uidl_format made from the record: by default %08Xu%08Xv,
 * the uid and the uidvalidity as 8 hex digits each (lower-case: Dovecot's
 * %X modifier writes them so). Supported: %u (uid), %v (uidvalidity), %f
 * (the file's base name), each optionally with a width ("%08u": zero
 * padded, "%8u": space padded) and X (hex) before u or v, and %%.
 *
 * Courier: <maildir>/courierpop3dsizelist, a header "/2 <nextuid>
 * <uidvalidity>" (or /3, /1 <nextuid>, or none: version 0), then "<file
 * name> <size> <uid>:<uidvalidity>" (or "<uid>", or nothing). The UIDL is
 * "UID<uid>-<uidvalidity>", "UID<uid>", or, with no uid, the file name with
 * octets outside 0x21..0x7E and ' " + written as +XX.
 *
 * Both files may be shaped by whoever can write the Maildir: every length
 * and number is bounded and checked, a bad line is skipped, a UIDL that is
 * not 1..70 octets of 0x21..0x7E or appears twice is not used, and the
 * message then gets postinod's own UIDL. Messages the file does not name
 * (delivered since) get postinod's own UIDL too.
 */
#ifndef POSTINO_MAILDIR_UIDLIST_H
#define POSTINO_MAILDIR_UIDLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define MAILDIR_UIDLIST_DOVECOT	"dovecot-uidlist"
#define MAILDIR_UIDLIST_COURIER	"courierpop3dsizelist"
/* Bigger files are not read: 64 MiB is over 500,000 messages. */
#define MAILDIR_UIDLIST_FILE_MAX	(64 * 1024 * 1024)
/* A line: uid, extensions and a file name of at most NAME_MAX octets. */
#define MAILDIR_UIDLIST_LINE_MAX	4096
/* Dovecot's default pop3_uidl_format, and the longest one accepted. */
#define MAILDIR_UIDLIST_FORMAT_DEFAULT	"%08Xu%08Xv"
#define MAILDIR_UIDLIST_FORMAT_MAX	63

struct maildir_uidlist;

/* Whether fmt is a pop3_uidl_format this reader can apply (see above). */
bool maildir_uidlist_format_ok(const char *fmt);

/*
 * Read the files in the maildir directory dirfd, Dovecot's records with
 * the pop3_uidl_format fmt (NULL: the default). NULL when there is none,
 * or nothing usable in them (this is never an error: the messages get
 * postinod's own UIDLs). When both exist, the newer file's UIDL wins.
 * *absent_r (absent_r may be NULL): true only when neither file exists,
 * not when one could not be read.
 */
struct maildir_uidlist *maildir_uidlist_load(int dirfd, const char *fmt,
    bool *absent_r);

/*
 * Parse one file's contents (len octets, need not be NUL-terminated) into
 * ul (NULL: a new list). Returns the list, or NULL when it is still empty.
 * For the loader, the unit tests and the fuzzer.
 */
struct maildir_uidlist *maildir_uidlist_parse_dovecot(
    struct maildir_uidlist *ul, const char *buf, size_t len,
    const char *fmt);
struct maildir_uidlist *maildir_uidlist_parse_courier(
    struct maildir_uidlist *ul, const char *buf, size_t len);

/*
 * The old UIDL of the message whose base name (before ':') is the baselen
 * octets at base: true with uidl filled (NUL-terminated), false when there
 * is none. ul may be NULL.
 */
bool maildir_uidlist_find(const struct maildir_uidlist *ul, const char *base,
    size_t baselen, char uidl[STORE_UIDL_MAX + 1]);

/* Number of usable entries (tests). */
size_t maildir_uidlist_count(const struct maildir_uidlist *ul);

void maildir_uidlist_free(struct maildir_uidlist **ul);

#endif
