/*
 * passwd-file in Dovecot's format, so administrators can migrate:
 *	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
 * Schemes: the crypt(3) ones, {PLAIN} (also for APOP, CRAM-MD5 and SCRAM
 * with keys derived per exchange) and {SCRAM-SHA-256}iter,salt,stored,server
 * (SASL SCRAM without a plaintext-equivalent secret; USER/PASS re-derives).
 * Fields after the password may be missing or empty. The file is kept in
 * memory, sorted by user name (lookups are a binary search), and re-read
 * when its inode, size, mtime or ctime changes, so an administrator's edit
 * needs no restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../lib/log.h"
#include "auth.h"
#include "auth_hash.h"
#include "crypto.h"

/* A passwd-file larger than this is a mistake, not a user list. */
#define PASSWD_FILE_MAX	(256u * 1024 * 1024)
/* Name, hash, two ids, a home of PATH_MAX and room for gecos and extras. */
#define PASSWD_LINE_MAX	(AUTH_USER_MAX + AUTH_HASH_MAX + AUTH_HOME_MAX + 4096)
#define PASSWD_FIELDS	8
/*
 * Distinct (scheme, cost) pairs counted to pick the dummy hash; a file
 * with more kinds than this is counted by its first ones.
 */
#define DUMMY_METHODS	16

struct entry {
	const char	*name;
	const char	*secret;	/* after the {SCHEME} prefix */
	enum auth_scheme scheme;
	bool		 has_uid, has_gid;
	uid_t		 uid;
	gid_t		 gid;
	const char	*home;
	struct auth_quota quota;
	bool		 bad_quota;	/* lookups fail temporarily */
	unsigned int	 lineno;	/* ties between duplicate names */
};

struct auth_db {
	char		 path[PATH_MAX];
	struct stat	 st;		/* of the file text was read from */
	char		*text;		/* the file, fields cut in place */
	size_t		 textlen;
	struct entry	*entries;	/* sorted by name, no duplicates */
	size_t		 count;
	/*
	 * Hashed for unknown and locked users and for {PLAIN} ones, so all
	 * cost what a real user's check costs: a hash of the scheme and cost
	 * most users have (a crypt(3) setting or SCRAM-SHA-256 iterations),
	 * else yescrypt.
	 */
	struct auth_dummy dummy;
};

static void
free_entries(struct auth_db *db)
{
	if (db->text != NULL) {
		explicit_bzero(db->text, db->textlen);
		free(db->text);
	}
	free(db->entries);
	db->text = NULL;
	db->textlen = 0;
	db->entries = NULL;
	db->count = 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
	    ((const struct entry *)b)->name);
}

/* qsort is not stable: the line number keeps the first line of a name first. */
static int
entry_cmp_line(const void *a, const void *b)
{
	const struct entry *ea = a, *eb = b;
	int c = strcmp(ea->name, eb->name);

	if (c != 0)
		return c;
	return (ea->lineno > eb->lineno) - (ea->lineno < eb->lineno);
}

static void
log_line(const struct auth_db *db, unsigned int lineno, const char *name,
    const char *what)
{
	char safe[AUTH_USER_MAX * 4 + 1];

	str_sanitize(safe, sizeof(safe), name, strnlen(name, AUTH_USER_MAX));
	log_warnx("%s:%u: user \"%s\": %s", db->path, lineno, safe, what);
}

/* The scheme of a password field; *secret_r is what follows the prefix. */
static enum auth_scheme
parse_secret(const struct auth_db *db, unsigned int lineno, const char *name,
    const char *field, const char **secret_r)
{
	const char *why;
	enum auth_scheme sch = auth_hash_scheme(field, secret_r, &why);

	if (why != NULL)
		log_line(db, lineno, name, why);
	return sch;
}

/*
 * The extra field: space-separated key=value items (Dovecot's), of which
 * quota_bytes and quota_messages (strict decimal, each at most once) are
 * ours, and Dovecot's userdb_quota_rule (the same limits, for sites moving
 * from Dovecot); other items are left to other programs. NULL, or why not.
 */
static const char *
parse_extra(const char *extra, struct entry *e)
{
	static const char kb[] = "quota_bytes=", km[] = "quota_messages=";
	static const char kr[] = "userdb_quota_rule=";
	const char *p = extra, *why = NULL;

	while (p != NULL && *p != '\0' && why == NULL) {
		size_t len = strcspn(p, " \t");
		bool bytes = strncmp(p, kb, sizeof(kb) - 1) == 0;
		bool msgs = strncmp(p, km, sizeof(km) - 1) == 0;
		size_t klen = bytes ? sizeof(kb) - 1 : sizeof(km) - 1;
		char val[24];

		if (strncmp(p, kr, sizeof(kr) - 1) == 0) {
			why = auth_quota_rule(&e->quota, p + sizeof(kr) - 1,
			    len - (sizeof(kr) - 1));
		} else if (bytes || msgs) {
			if (len - klen >= sizeof(val))
				return "quota value too long";
			memcpy(val, p + klen, len - klen);
			val[len - klen] = '\0';
			why = auth_quota_set(&e->quota, bytes ? AUTH_QUOTA_BYTES :
			    AUTH_QUOTA_MESSAGES, val);
		}
		p += len;
		p += strspn(p, " \t");
	}
	return why;
}

/* Cut one line into e; false (and a warning) when it is malformed. */
static bool
parse_line(struct auth_db *db, char *line, unsigned int lineno,
    struct entry *e)
{
	char *field[PASSWD_FIELDS] = { 0 };
	unsigned int n = 0;
	uint32_t uid, gid;
	const char *why;
	char *p = line;

	/* The last field (extra) keeps any further ':'. */
	while (n < PASSWD_FIELDS) {
		field[n++] = p;
		if (n == PASSWD_FIELDS || (p = strchr(p, ':')) == NULL)
			break;
		*p++ = '\0';
	}
	if (!auth_name_valid(field[0])) {
		log_warnx("%s:%u: bad user name; line skipped", db->path,
		    lineno);
		return false;
	}
	if (n < 2) {
		log_line(db, lineno, field[0], "no password field; line "
		    "skipped");
		return false;
	}
	memset(e, 0, sizeof(*e));
	e->name = field[0];
	e->lineno = lineno;
	if (auth_id_parse(field[2], &e->has_uid, &uid) < 0 ||
	    auth_id_parse(field[3], &e->has_gid, &gid) < 0) {
		log_line(db, lineno, e->name, "uid or gid is not a number "
		    "below 4294967295; line skipped");
		return false;
	}
	e->uid = uid;
	e->gid = gid;
	e->home = field[5] != NULL ? field[5] : "";
	if (strlen(e->home) >= AUTH_HOME_MAX ||
	    (e->home[0] != '\0' && e->home[0] != '/')) {
		log_line(db, lineno, e->name, "home is not an absolute path "
		    "shorter than PATH_MAX; line skipped");
		return false;
	}
	e->scheme = parse_secret(db, lineno, e->name, field[1], &e->secret);
	/* Never unlimited by mistake: the user's lookups fail until fixed. */
	if ((why = parse_extra(field[7], e)) != NULL) {
		char msg[128];

		str_fmt(msg, sizeof(msg), "extra field: %s; deliveries and "
		    "logins fail temporarily", why);
		log_line(db, lineno, e->name, msg);
		e->bad_quota = true;
	}
	/* Mail is never read as root [qmail, popa3d]. */
	if ((e->has_uid && uid == 0) || (e->has_gid && gid == 0)) {
		log_line(db, lineno, e->name, "uid or gid 0 is refused for "
		    "mail; the user cannot log in");
		e->scheme = AUTH_SCHEME_LOCKED;
	}
	return true;
}

/*
 * The cost-bearing prefix of a crypt(3) hash, everything but salt and
 * digest: "$6$" or "$6$rounds=50000$", "$y$j9T$", "$2b$12$"; 0 for DES.
 * Two hashes with the same prefix cost the same to check.
 */
static size_t
setting_len(const char *hash)
{
	const char *last, *before = NULL;

	if (hash[0] != '$' || (last = strrchr(hash, '$')) == hash)
		return 0;
	/* bcrypt: "$2b$cost$" then salt and digest with no '$' between. */
	if (hash[1] == '2')
		return (size_t)(last - hash) + 1;
	for (const char *p = hash; p < last; p++)
		if (*p == '$')
			before = p;
	return before == NULL || before == hash ? 0 :
	    (size_t)(before - hash) + 1;
}

/* Same scheme, same cost: the same crypt(3) setting or SCRAM iterations. */
static bool
same_cost(const struct entry *a, const struct entry *b)
{
	size_t la, lb;

	if (a->scheme != b->scheme)
		return false;
	if (a->scheme == AUTH_SCHEME_SCRAM)
		return strtoul(a->secret, NULL, 10) == strtoul(b->secret, NULL,
		    10);
	la = setting_len(a->secret);
	lb = setting_len(b->secret);
	return la == lb && strncmp(a->secret, b->secret, la) == 0;
}

/*
 * Take as the dummy a hash of the scheme and cost most users have (a
 * crypt(3) setting, or SCRAM-SHA-256 iterations), so an unknown user
 * costs what most real users cost (issue 10, finding 11). Keep the old
 * one when the file has none.
 */
static void
pick_dummy(struct auth_db *db)
{
	const struct entry *first[DUMMY_METHODS];
	size_t seen[DUMMY_METHODS], kinds = 0, best = 0;

	for (size_t i = 0; i < db->count; i++) {
		const struct entry *e = &db->entries[i];
		size_t k;

		if (e->scheme != AUTH_SCHEME_CRYPT &&
		    e->scheme != AUTH_SCHEME_SCRAM)
			continue;
		for (k = 0; k < kinds; k++)
			if (same_cost(first[k], e))
				break;
		if (k == kinds) {
			if (kinds == DUMMY_METHODS)
				continue;
			first[kinds] = e;
			seen[kinds++] = 0;
		}
		seen[k]++;
	}
	for (size_t k = 1; k < kinds; k++)
		if (seen[k] > seen[best])
			best = k;
	if (kinds == 0)
		return;
	/* parse_secret() checked every SCRAM secret and bounded every hash. */
	auth_dummy_learn(&db->dummy, first[best]->scheme, first[best]->secret);
}

static int
read_all(int fd, char *buf, size_t size, size_t *len_r)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		/* Shrunk while read: the next stat() differs: re-read. */
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len_r = got;
	return 0;
}

/* Split text into entries; returns how many lines were kept. */
static size_t
parse_text(struct auth_db *db, char *text, size_t len, struct entry *entries)
{
	char *line = text, *end = text + len, *next;
	unsigned int lineno = 0;
	size_t count = 0;

	for (; line < end; line = next) {
		size_t linelen;

		next = memchr(line, '\n', (size_t)(end - line));
		linelen = next != NULL ? (size_t)(next - line) :
		    (size_t)(end - line);
		next = next != NULL ? next + 1 : end;
		line[linelen] = '\0';	/* the '\n', or text's final NUL */
		if (lineno < UINT_MAX)
			lineno++;
		if (memchr(line, '\0', linelen) != NULL) {
			log_warnx("%s:%u: NUL byte; line skipped", db->path,
			    lineno);
			continue;
		}
		if (linelen > 0 && line[linelen - 1] == '\r')
			line[--linelen] = '\0';
		if (linelen == 0 || line[0] == '#')
			continue;
		if (linelen > PASSWD_LINE_MAX) {
			log_warnx("%s:%u: line longer than %u octets; skipped",
			    db->path, lineno, (unsigned int)PASSWD_LINE_MAX);
			continue;
		}
		if (parse_line(db, line, lineno, &entries[count]))
			count++;
	}
	return count;
}

static int
load(struct auth_db *db)
{
	struct entry *entries = NULL;
	size_t len, lines = 1, count;
	struct stat st;
	char *text;
	int fd, saved;

	fd = open(db->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > PASSWD_FILE_MAX) {
		close(fd);
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL || read_all(fd, text, (size_t)st.st_size, &len) < 0) {
		saved = errno;
		if (text != NULL)
			explicit_bzero(text, (size_t)st.st_size + 1);
		free(text);
		close(fd);
		errno = saved;
		return -1;
	}
	if (close(fd) < 0)
		log_warn("%s: close", db->path);
	text[len] = '\0';
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	entries = calloc(lines, sizeof(*entries));
	if (entries == NULL) {
		explicit_bzero(text, len + 1);
		free(text);
		errno = ENOMEM;
		return -1;
	}
	count = parse_text(db, text, len, entries);
	qsort(entries, count, sizeof(*entries), entry_cmp_line);
	if (count > 1) {
		size_t kept = 1;

		for (size_t i = 1; i < count; i++) {
			const struct entry *e = &entries[i];

			if (strcmp(entries[kept - 1].name, e->name) == 0) {
				log_line(db, e->lineno, e->name, "appears "
				    "again; the first line counts");
				continue;
			}
			entries[kept++] = entries[i];
		}
		count = kept;
	}
	free_entries(db);
	db->text = text;
	db->textlen = len + 1;
	db->entries = entries;
	db->count = count;
	db->st = st;
	pick_dummy(db);
	return 0;
}

/* Re-read the file when it changed; -1 when it cannot be read now. */
static int
refresh(struct auth_db *db)
{
	struct stat st;

	if (stat(db->path, &st) < 0) {
		log_warn("%s", db->path);
		return -1;
	}
	/* ctime too: a chmod that makes the file unreadable must be seen. */
	if (db->text != NULL && st.st_ino == db->st.st_ino &&
	    st.st_dev == db->st.st_dev && st.st_size == db->st.st_size &&
	    st.st_mtim.tv_sec == db->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == db->st.st_mtim.tv_nsec &&
	    st.st_ctim.tv_sec == db->st.st_ctim.tv_sec &&
	    st.st_ctim.tv_nsec == db->st.st_ctim.tv_nsec)
		return 0;
	if (load(db) < 0) {
		log_warn("%s", db->path);
		return -1;
	}
	return 0;
}

static int
pf_open(struct auth_db **db_r, const char *path, char *err)
{
	struct auth_db *db;

	*db_r = NULL;
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	if (str_copy(db->path, sizeof(db->path), path) < 0) {
		str_copy(err, ERR_LEN, "passwd-file path too long");
		free(db);
		return -1;
	}
	/* Until a file names a method, unknown users cost one yescrypt. */
	if (auth_dummy_init(&db->dummy, err) < 0) {
		free(db);
		return -1;
	}
	if (load(db) < 0) {
		if (str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno)) < 0)
			str_copy(err, ERR_LEN, strerror(errno));
		explicit_bzero(db, sizeof(*db));
		free(db);
		return -1;
	}
	*db_r = db;
	return 0;
}

/* NULL for an invalid or unknown name. */
static const struct entry *
find(const struct auth_db *db, const char *user)
{
	struct entry key = { .name = user };

	if (!auth_name_valid(user) || db->count == 0)
		return NULL;
	return bsearch(&key, db->entries, db->count, sizeof(key), entry_cmp);
}

static void
fill_user(const struct entry *e, struct auth_user *u)
{
	memset(u, 0, sizeof(*u));
	/* Both fit: parse_line() bounded the name and the home. */
	str_copy(u->name, sizeof(u->name), e->name);
	u->has_uid = e->has_uid;
	u->has_gid = e->has_gid;
	u->uid = e->uid;
	u->gid = e->gid;
	str_copy(u->home, sizeof(u->home), e->home);
	u->quota = e->quota;
}

static enum auth_result
pf_verify(struct auth_db *db, const char *user, const char *pass,
    struct auth_user *user_r)
{
	const struct entry *e;

	memset(user_r, 0, sizeof(*user_r));
	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	if (strnlen(pass, AUTH_PASS_MAX + 1) > AUTH_PASS_MAX) {
		auth_dummy_pay(&db->dummy, "");
		return AUTH_PERMFAIL;
	}
	e = find(db, user);
	if (e == NULL) {
		auth_dummy_pay(&db->dummy, pass);
		return AUTH_PERMFAIL;
	}
	if (!auth_secret_verify(&db->dummy, e->name, e->scheme, e->secret,
	    pass))
		return AUTH_PERMFAIL;
	fill_user(e, user_r);
	return AUTH_OK;
}

static enum auth_result
pf_apop(struct auth_db *db, const char *user, const char *timestamp,
    const char *digest_hex, struct auth_user *user_r)
{
	char hex[CRYPTO_MD5_HEX_LEN + 1], want[CRYPTO_MD5_HEX_LEN + 1];
	const struct entry *e;
	bool ok, plain;

	memset(user_r, 0, sizeof(*user_r));
	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	if (!crypto_md5_hex_parse(digest_hex,
	    strnlen(digest_hex, CRYPTO_MD5_HEX_LEN + 1), want))
		return AUTH_PERMFAIL;
	e = find(db, user);
	plain = e != NULL && e->scheme == AUTH_SCHEME_PLAIN;
	/* Others get the same digest work, against an empty secret. */
	if (!crypto_apop_digest(timestamp, plain ? e->secret : "", hex))
		return AUTH_TEMPFAIL;
	ok = CRYPTO_memcmp(hex, want, CRYPTO_MD5_HEX_LEN) == 0 && plain;
	explicit_bzero(hex, sizeof(hex));
	if (!ok)
		return AUTH_PERMFAIL;
	fill_user(e, user_r);
	return AUTH_OK;
}

static enum auth_result
pf_lookup(struct auth_db *db, const char *user, struct auth_user *user_r)
{
	const struct entry *e;

	memset(user_r, 0, sizeof(*user_r));
	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	e = find(db, user);
	if (e == NULL || e->scheme == AUTH_SCHEME_LOCKED ||
	    e->scheme == AUTH_SCHEME_UNUSABLE)
		return AUTH_PERMFAIL;
	if (e->bad_quota) {
		log_line(db, e->lineno, e->name, "unusable quota in the extra "
		    "field: lookup fails temporarily");
		return AUTH_TEMPFAIL;
	}
	fill_user(e, user_r);
	return AUTH_OK;
}

static enum auth_result
pf_scram_lookup(struct auth_db *db, const char *user, struct auth_scram *keys_r,
    struct auth_user *user_r)
{
	const struct entry *e;

	memset(user_r, 0, sizeof(*user_r));
	memset(keys_r, 0, sizeof(*keys_r));
	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	e = find(db, user);
	if (e == NULL || e->scheme != AUTH_SCHEME_SCRAM ||
	    auth_scram_parse(e->secret, keys_r) < 0)
		return AUTH_PERMFAIL;
	fill_user(e, user_r);
	return AUTH_OK;
}

static enum auth_result
pf_plain_secret(struct auth_db *db, const char *user, char *buf,
    size_t bufsize, struct auth_user *user_r)
{
	const struct entry *e;

	memset(user_r, 0, sizeof(*user_r));
	if (bufsize > 0)
		buf[0] = '\0';
	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	e = find(db, user);
	if (e == NULL || e->scheme != AUTH_SCHEME_PLAIN)
		return AUTH_PERMFAIL;
	if (str_copy(buf, bufsize, e->secret) < 0) {
		explicit_bzero(buf, bufsize);
		return AUTH_PERMFAIL;
	}
	fill_user(e, user_r);
	return AUTH_OK;
}

static void
pf_close(struct auth_db **dbp)
{
	struct auth_db *db = *dbp;

	if (db == NULL)
		return;
	free_entries(db);
	explicit_bzero(db, sizeof(*db));
	free(db);
	*dbp = NULL;
}

const struct auth_ops auth_passwdfile_ops = {
	.name = "passwd-file",
	.open = pf_open,
	.verify = pf_verify,
	.apop = pf_apop,
	.lookup = pf_lookup,
	.scram_lookup = pf_scram_lookup,
	.plain_secret = pf_plain_secret,
	.close = pf_close,
};
