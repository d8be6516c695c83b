/*
 * passwd-file in Dovecot's format:
 *	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
 * Fields after the password may be missing or empty. The file is kept in
 * memory, sorted by user name, and re-read when its inode, size or mtime
 * changes, so an administrator's edit needs no restart.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../lib/log.h"
#include "auth.h"

/* A passwd-file larger than this is a mistake, not a user list. */
#define PASSWD_FILE_MAX	(256u * 1024 * 1024)

enum scheme { SCHEME_CRYPT, SCHEME_PLAIN, SCHEME_LOCKED, SCHEME_UNKNOWN };

struct entry {
	const char	*name;
	const char	*secret;	/* after the {SCHEME} prefix */
	enum scheme	 scheme;
	bool		 has_uid, has_gid;
	uid_t		 uid;
	gid_t		 gid;
	const char	*home;
};

struct auth_db {
	char		 path[PATH_MAX];
	struct stat	 st;
	char		*text;		/* the file, fields cut in place */
	size_t		 textlen;
	struct entry	*entries;	/* sorted by name */
	size_t		 count;
	/* Hashed for unknown and locked users: the cost of a real check. */
	char		 dummy[CRYPT_OUTPUT_SIZE];
};

static const struct {
	const char	*prefix;
	enum scheme	 scheme;
} schemes[] = {
	{ "{CRYPT}", SCHEME_CRYPT },
	{ "{SHA512-CRYPT}", SCHEME_CRYPT },
	{ "{SHA256-CRYPT}", SCHEME_CRYPT },
	{ "{BLF-CRYPT}", SCHEME_CRYPT },
	{ "{YESCRYPT}", SCHEME_CRYPT },
	{ "{PLAIN}", SCHEME_PLAIN },
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
	db->entries = NULL;
	db->count = 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
	    ((const struct entry *)b)->name);
}

/* By name, then by place in the file: the first line of a name sorts first. */
static int
entry_cmp_stable(const void *a, const void *b)
{
	const struct entry *ea = a, *eb = b;
	int c = strcmp(ea->name, eb->name);

	if (c != 0)
		return c;
	return ea->name < eb->name ? -1 : ea->name > eb->name;
}

static bool
name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > AUTH_USER_MAX || name[0] == '.')
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x21 || *p == 0x7f || *p == ':' || *p == '/')
			return false;
	return true;
}

static enum scheme
parse_secret(const char *field, const char **secret_r)
{
	*secret_r = field;
	if (field[0] == '\0' || field[0] == '*' || field[0] == '!')
		return SCHEME_LOCKED;
	if (field[0] != '{')
		return SCHEME_CRYPT;	/* Dovecot's default_pass_scheme */
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].prefix);

		if (strncasecmp(field, schemes[i].prefix, n) == 0) {
			*secret_r = field + n;
			if (schemes[i].scheme == SCHEME_CRYPT &&
			    ((*secret_r)[0] == '\0' || (*secret_r)[0] == '*' ||
			    (*secret_r)[0] == '!'))
				return SCHEME_LOCKED;
			return schemes[i].scheme;
		}
	}
	return SCHEME_UNKNOWN;
}

static int
parse_id(const char *s, bool *has_r, unsigned int *id_r)
{
	uint32_t v;

	*has_r = false;
	if (s == NULL || *s == '\0')
		return 0;
	if (str_parse_u32(s, &v) < 0)
		return -1;
	*has_r = true;
	*id_r = v;
	return 0;
}

/* Cut one line into fields; false (and a warning) when it is malformed. */
static bool
parse_line(struct auth_db *db, char *line, unsigned int lineno,
    struct entry *e)
{
	char *field[8] = { 0 };
	unsigned int n = 0, uid = 0, gid = 0;
	char *p = line;

	while (n < 8) {
		field[n++] = p;
		p = strchr(p, ':');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	if (n < 2 || !name_ok(field[0])) {
		log_warnx("%s:%u: malformed line skipped", db->path, lineno);
		return false;
	}
	memset(e, 0, sizeof(*e));
	e->name = field[0];
	e->scheme = parse_secret(field[1], &e->secret);
	if (e->scheme == SCHEME_UNKNOWN)
		log_warnx("%s:%u: unknown password scheme; user %s cannot "
		    "log in", db->path, lineno, e->name);
	if (parse_id(field[2], &e->has_uid, &uid) < 0 ||
	    parse_id(field[3], &e->has_gid, &gid) < 0) {
		log_warnx("%s:%u: bad uid or gid; line skipped", db->path, lineno);
		return false;
	}
	e->uid = uid;
	e->gid = gid;
	if (e->has_uid && e->uid == 0) {
		log_warnx("%s:%u: uid 0 is refused for mail; user %s cannot "
		    "log in", db->path, lineno, e->name);
		e->scheme = SCHEME_LOCKED;
	}
	e->home = field[5] != NULL ? field[5] : "";
	if (strlen(e->home) >= AUTH_HOME_MAX) {
		log_warnx("%s:%u: home too long; line skipped", db->path, lineno);
		return false;
	}
	return true;
}

static int
load(struct auth_db *db)
{
	struct stat st;
	char *text = NULL, *line, *next;
	size_t cap = 0, count = 0, lines = 0;
	struct entry *entries = NULL;
	unsigned int lineno = 0;
	ssize_t n;
	int fd;

	fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > PASSWD_FILE_MAX) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		close(fd);
		return -1;
	}
	for (size_t got = 0; got < (size_t)st.st_size; got += (size_t)n) {
		n = read(fd, text + got, (size_t)st.st_size - got);
		if (n <= 0) {
			st.st_size = (off_t)got;
			break;
		}
	}
	close(fd);
	text[st.st_size] = '\0';
	for (size_t i = 0; i < (size_t)st.st_size; i++)
		lines += text[i] == '\n';
	cap = lines + 1;
	entries = calloc(cap, sizeof(*entries));
	if (entries == NULL) {
		explicit_bzero(text, (size_t)st.st_size);
		free(text);
		return -1;
	}
	for (line = text; line != NULL && line < text + st.st_size; line = next) {
		size_t len;

		next = memchr(line, '\n', (size_t)(text + st.st_size - line));
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		len = strlen(line);
		if (next != NULL && line + len != next - 1) {
			log_warnx("%s:%u: NUL byte; line skipped", db->path, lineno);
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (count < cap && parse_line(db, line, lineno, &entries[count]))
			count++;
	}
	qsort(entries, count, sizeof(*entries), entry_cmp_stable);
	if (count > 1) {
		size_t kept = 1;

		for (size_t i = 1; i < count; i++) {
			if (strcmp(entries[kept - 1].name, entries[i].name) == 0) {
				log_warnx("%s: user %s appears twice; the first "
				    "line counts", db->path, entries[i].name);
				continue;
			}
			entries[kept++] = entries[i];
		}
		count = kept;
	}
	free_entries(db);
	db->text = text;
	db->textlen = (size_t)st.st_size;
	db->entries = entries;
	db->count = count;
	db->st = st;
	/* The dummy costs what a real user's check costs: take a real setting. */
	for (size_t i = 0; i < count; i++) {
		if (entries[i].scheme == SCHEME_CRYPT &&
		    strlen(entries[i].secret) < sizeof(db->dummy)) {
			str_copy(db->dummy, sizeof(db->dummy), entries[i].secret);
			break;
		}
	}
	return 0;
}

/* Re-read the file when it changed; -1 when it cannot be read now. */
static int
refresh(struct auth_db *db)
{
	struct stat st;

	if (stat(db->path, &st) < 0)
		return -1;
	if (db->text != NULL && st.st_ino == db->st.st_ino &&
	    st.st_dev == db->st.st_dev && st.st_size == db->st.st_size &&
	    st.st_mtim.tv_sec == db->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == db->st.st_mtim.tv_nsec)
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
	struct auth_db *db = calloc(1, sizeof(*db));
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (db == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	if (str_copy(db->path, sizeof(db->path), path) < 0) {
		str_copy(err, ERR_LEN, "path too long");
		free(db);
		return -1;
	}
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) ==
	    NULL)
		str_copy(setting, sizeof(setting), "$6$postinodummysalt");
	str_copy(db->dummy, sizeof(db->dummy), setting);
	if (load(db) < 0) {
		str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		free(db);
		return -1;
	}
	*db_r = db;
	return 0;
}

static const struct entry *
find(struct auth_db *db, const char *user)
{
	struct entry key = { .name = user };

	if (!name_ok(user) || db->count == 0)
		return NULL;
	return bsearch(&key, db->entries, db->count, sizeof(key), entry_cmp);
}

static void
fill_user(const struct entry *e, struct auth_user *u)
{
	memset(u, 0, sizeof(*u));
	str_copy(u->name, sizeof(u->name), e->name);
	u->has_uid = e->has_uid;
	u->has_gid = e->has_gid;
	u->uid = e->uid;
	u->gid = e->gid;
	str_copy(u->home, sizeof(u->home), e->home);
}

static bool
crypt_matches(const char *pass, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	bool ok = false;
	char *out;

	if (cd == NULL)
		return false;
	out = crypt_rn(pass, hash, cd, sizeof(*cd));
	if (out != NULL && out[0] != '*' && strlen(out) == strlen(hash))
		ok = CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* Constant-time equality of two strings of any length. */
static bool
secret_equal(const char *a, const char *b)
{
	unsigned char da[32], db[32];
	unsigned int la = 0, lb = 0;

	if (!EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) ||
	    !EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL))
		return false;
	return la == lb && CRYPTO_memcmp(da, db, la) == 0;
}

static enum auth_result
pf_verify(struct auth_db *db, const char *user, const char *pass,
    struct auth_user *user_r)
{
	const struct entry *e;
	bool ok = false;

	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	if (strlen(pass) > AUTH_PASS_MAX) {
		crypt_matches("", db->dummy);
		return AUTH_PERMFAIL;
	}
	e = find(db, user);
	if (e == NULL || e->scheme == SCHEME_LOCKED ||
	    e->scheme == SCHEME_UNKNOWN) {
		crypt_matches(pass, db->dummy);
		return AUTH_PERMFAIL;
	}
	if (e->scheme == SCHEME_PLAIN) {
		/* A plaintext secret is cheap to check: pay the hash anyway. */
		crypt_matches(pass, db->dummy);
		ok = secret_equal(pass, e->secret);
	} else {
		ok = crypt_matches(pass, e->secret);
	}
	if (!ok)
		return AUTH_PERMFAIL;
	fill_user(e, user_r);
	return AUTH_OK;
}

static enum auth_result
pf_apop(struct auth_db *db, const char *user, const char *timestamp,
    const char *digest_hex, struct auth_user *user_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], want[33];
	unsigned int mdlen = 0;
	const struct entry *e;
	EVP_MD_CTX *ctx;
	bool ok;

	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	e = find(db, user);
	if (e == NULL || e->scheme != SCHEME_PLAIN || strlen(digest_hex) != 32)
		return AUTH_PERMFAIL;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return AUTH_TEMPFAIL;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) &&
	    EVP_DigestUpdate(ctx, e->secret, strlen(e->secret)) &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen != 16)
		return AUTH_TEMPFAIL;
	str_hex(hex, md, mdlen);
	for (int i = 0; i < 32; i++) {
		char c = digest_hex[i];

		want[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	want[32] = '\0';
	ok = CRYPTO_memcmp(hex, want, 32) == 0;
	explicit_bzero(md, sizeof(md));
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

	if (refresh(db) < 0)
		return AUTH_TEMPFAIL;
	e = find(db, user);
	if (e == NULL || e->scheme == SCHEME_LOCKED ||
	    e->scheme == SCHEME_UNKNOWN)
		return AUTH_PERMFAIL;
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
	.close = pf_close,
};
