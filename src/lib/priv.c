#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
static bool chrooted;

/*
 * Sanitizer builds only: LeakSanitizer needs /proc, which a chroot hides;
 * a chrooted role is leak-checked in the tests that run unprivileged.
 */
int __lsan_is_turned_off(void);
int
__lsan_is_turned_off(void)
{
	return chrooted;
}
#endif

/* A change of effective ids makes the process undumpable again. */
static void
sanitizer_dumpable(void)
{
#if defined(__SANITIZE_ADDRESS__)
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
}

#if defined(__SANITIZE_ADDRESS__)
static void
sanitizer_forget_saved_gid(void)
{
	gid_t r, e, s;

	if (getresgid(&r, &e, &s) == 0 && setresgid(r, r, r) == 0)
		sanitizer_dumpable();
}
#endif

bool
priv_is_root(void)
{
	return geteuid() == 0;
}

int
priv_user(const char *name, uid_t *uid_r, gid_t *gid_r)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL)
		return -1;
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int
priv_group(const char *name, gid_t *gid_r)
{
	struct group *gr = getgrnam(name);

	if (gr == NULL)
		return -1;
	*gid_r = gr->gr_gid;
	return 0;
}

int
priv_drop(uid_t uid, gid_t gid, gid_t extra_gid, const char *chroot_dir,
    char *err)
{
	gid_t saved = extra_gid == (gid_t)-1 ? gid : extra_gid;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (!priv_is_root())
		return 0;
	/* Group root owns much of the system (/etc, /var/log, devices). */
	if (uid == 0 || gid == 0 || extra_gid == 0) {
		str_copy(err, ERR_LEN, "refusing to run as uid or gid 0");
		return -1;
	}
	if (chroot_dir != NULL) {
		if (chroot(chroot_dir) < 0 || chdir("/") < 0) {
			str_fmt(err, ERR_LEN, "chroot %s: %s", chroot_dir,
			    strerror(errno));
			return -1;
		}
#if defined(__SANITIZE_ADDRESS__)
		chrooted = true;
#endif
	}
	/*
	 * extra_gid is only the saved group, not a supplementary one: made
	 * effective by priv_group_raise() for what needs it, it opens nothing
	 * else (with Debian's /var/mail, not another user's spool).
	 */
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, saved) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		str_fmt(err, ERR_LEN, "dropping to uid %u gid %u: %s",
		    (unsigned)uid, (unsigned)gid, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid ||
	    sg != saved || setuid(0) == 0) {
		str_copy(err, ERR_LEN, "privileges were not dropped");
		return -1;
	}
#if defined(__SANITIZE_ADDRESS__)
	/*
	 * Sanitizer builds only (tests): LeakSanitizer inspects the process
	 * with ptrace, which the kernel refuses once setuid made it undumpable,
	 * and while a saved gid differs from the others.
	 */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (saved != gid)
		atexit(sanitizer_forget_saved_gid);
#endif
	return 0;
}


void
priv_group_raise(void)
{
	gid_t r, e, s;

	if (getresgid(&r, &e, &s) < 0 || s == r || e == s)
		return;
	if (setresgid((gid_t)-1, s, (gid_t)-1) < 0)
		log_warn("raising the privileged group");
	sanitizer_dumpable();
}

void
priv_group_lower(void)
{
	gid_t r, e, s;

	if (getresgid(&r, &e, &s) < 0 || e == r)
		return;
	if (setresgid((gid_t)-1, r, (gid_t)-1) < 0)
		fatal("dropping the privileged group");
	sanitizer_dumpable();
}
