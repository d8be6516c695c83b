/*
 * The one mbox lock: dotlock with the owner's pid, dead-owner and stale
 * detection, fcntl, a try that never sleeps, and nothing left behind by
 * a holder killed with SIGKILL. Every test works in its own directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/store/mbox_lock.h"

static char dir[PATH_MAX], mbox[PATH_MAX], dotlock[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	if (tu_tmpdir_make(dir, sizeof(dir), "mbox_lock") < 0 ||
	    str_fmt(mbox, sizeof(mbox), "%s/box", dir) < 0 ||
	    str_fmt(dotlock, sizeof(dotlock), "%s/box.lock", dir) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	(void)chmod(dir, 0700);
	return tu_tmpdir_remove(dir);
}

static int
open_mbox(void)
{
	int fd = open(mbox, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	return fd;
}

static void
write_lock(const char *text, time_t age)
{
	FILE *f = fopen(dotlock, "w");
	struct timespec ts[2];

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	if (age > 0) {
		ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		assert_int_equal(utimensat(AT_FDCWD, dotlock, ts, 0), 0);
	}
}

/* Entries of dir other than the mbox itself. */
static int
others(char *first, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "box") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			(void)str_copy(first, size, e->d_name);
	}
	closedir(d);
	return n;
}

/* A pid that existed and is gone: a reaped child's. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void
test_lock_writes_pid_and_release_leaves_nothing(void **state)
{
	struct mbox_lock lk;
	char err[ERR_LEN], buf[64], name[256];
	int fd = open_mbox();
	FILE *f;

	(void)state;
	assert_int_equal(mbox_lock_init(&lk, mbox, 0, err), 0);
	assert_int_equal(lk.stale, MBOX_LOCK_STALE_DEFAULT);
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_OK);
	f = fopen(dotlock, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(atol(buf), (long)getpid());
	/* The lock and nothing else: no temporary names. */
	assert_int_equal(others(name, sizeof(name)), 1);
	assert_string_equal(name, "box.lock");
	/* Taking it twice is a caller's bug, reported, not a deadlock. */
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_ERROR);
	mbox_lock_release(&lk);
	assert_int_equal(others(NULL, 0), 0);
	/* Released twice: harmless. */
	mbox_lock_release(&lk);
	close(fd);
}

static void
test_fresh_lock_of_dead_owner_is_taken_at_once(void **state)
{
	struct mbox_lock lk;
	char err[ERR_LEN], text[32];
	int fd = open_mbox();

	(void)state;
	(void)snprintf(text, sizeof(text), "%ld\n", (long)dead_pid());
	write_lock(text, 0);
	assert_int_equal(mbox_lock_init(&lk, mbox, 3600, err), 0);
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_OK);
	mbox_lock_release(&lk);
	assert_int_equal(others(NULL, 0), 0);
	close(fd);
}

static void
test_live_owner_or_empty_lock_is_busy_until_stale(void **state)
{
	static const char *const texts[] = { NULL, "", "junk\n",
	    "99999999999\n" };
	struct mbox_lock lk;
	struct timespec t0, t1;
	char err[ERR_LEN], text[32];
	int fd = open_mbox();
	long ms;

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		/* NULL: our parent's pid, alive. */
		(void)snprintf(text, sizeof(text), "%ld\n", (long)getppid());
		write_lock(texts[i] != NULL ? texts[i] : text, 0);
		assert_int_equal(mbox_lock_init(&lk, mbox, 60, err), 0);
		assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_BUSY);
		assert_int_equal(access(dotlock, F_OK), 0);
		/* Older than the stale time: removed and taken. */
		write_lock(texts[i] != NULL ? texts[i] : text, 120);
		assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_OK);
		mbox_lock_release(&lk);
		assert_int_equal(others(NULL, 0), 0);
	}
	/* wait: polls for the given time, then says who is in the way. */
	(void)snprintf(text, sizeof(text), "%ld\n", (long)getppid());
	write_lock(text, 0);
	assert_int_equal(mbox_lock_init(&lk, mbox, 60, err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mbox_lock_wait(&lk, fd, 1, err), MBOX_LOCK_BUSY);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 1000 && ms < 5000);
	assert_non_null(strstr(err, "locked by another program"));
	assert_int_equal(unlink(dotlock), 0);
	close(fd);
}

static void
test_busy_fcntl_gives_the_dotlock_back(void **state)
{
	struct mbox_lock lk;
	char err[ERR_LEN], c;
	int fd = open_mbox(), go[2], done[2];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int cfd = open(mbox, O_RDWR);

		if (cfd < 0 || fcntl(cfd, F_SETLK, &fl) < 0 ||
		    write(go[1], "x", 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(go[0], &c, 1), 1);
	assert_int_equal(mbox_lock_init(&lk, mbox, 0, err), 0);
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_BUSY);
	/* No dotlock held while we are not the owner of both. */
	assert_int_equal(others(NULL, 0), 0);
	assert_int_equal(write(done[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_OK);
	mbox_lock_release(&lk);
	close(fd);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

static void
test_holder_killed_leaves_no_obstacle(void **state)
{
	struct mbox_lock lk;
	struct timespec t0, t1;
	char err[ERR_LEN];
	int fd = open_mbox(), status;
	pid_t pid;
	long ms;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mbox_lock clk;
		char cerr[ERR_LEN];
		int cfd = open(mbox, O_RDWR);

		if (cfd < 0 || mbox_lock_init(&clk, mbox, 0, cerr) < 0 ||
		    mbox_lock_try(&clk, cfd, cerr) != MBOX_LOCK_OK)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(access(dotlock, F_OK), 0);
	assert_int_equal(mbox_lock_init(&lk, mbox, 0, err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mbox_lock_wait(&lk, fd, 30, err), MBOX_LOCK_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 1000);
	mbox_lock_release(&lk);
	assert_int_equal(others(NULL, 0), 0);
	close(fd);
}

static void
test_release_spares_a_lock_someone_took_over(void **state)
{
	struct mbox_lock lk;
	char err[ERR_LEN];
	int fd = open_mbox();

	(void)state;
	assert_int_equal(mbox_lock_init(&lk, mbox, 0, err), 0);
	assert_int_equal(mbox_lock_try(&lk, fd, err), MBOX_LOCK_OK);
	/* Judged stale by another program, which now holds a new lock. */
	assert_int_equal(unlink(dotlock), 0);
	write_lock("1\n", 0);
	mbox_lock_release(&lk);
	assert_int_equal(access(dotlock, F_OK), 0);
	close(fd);
}

/* In a child: as root, first become nobody, whom the mode binds. */
static void
test_unwritable_directory_uses_fcntl_alone(void **state)
{
	int fd = open_mbox(), status;
	pid_t pid;

	(void)state;
	close(fd);
	if (geteuid() == 0)
		assert_int_equal(chown(mbox, 65534, 65534), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mbox_lock lk;
		char err[ERR_LEN];

		if (geteuid() == 0 && (setgroups(0, NULL) < 0 ||
		    setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0))
			_exit(1);
		if ((fd = open(mbox, O_RDWR)) < 0 ||
		    mbox_lock_init(&lk, mbox, 0, err) < 0 ||
		    mbox_lock_try(&lk, fd, err) != MBOX_LOCK_OK)
			_exit(2);
		if (!lk.no_dotlock || !lk.fcntl_locked)
			_exit(3);
		mbox_lock_release(&lk);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(others(NULL, 0), 0);
}

static void
test_same_file_sees_a_replaced_mbox(void **state)
{
	char tmp[PATH_MAX], err[ERR_LEN];
	struct mbox_lock lk;
	int fd = open_mbox(), nfd;

	(void)state;
	assert_true(mbox_lock_same_file(fd, mbox));
	assert_int_equal(str_fmt(tmp, sizeof(tmp), "%s/new", dir), 0);
	nfd = open(tmp, O_RDWR | O_CREAT, 0600);
	assert_true(nfd >= 0);
	assert_int_equal(rename(tmp, mbox), 0);
	assert_false(mbox_lock_same_file(fd, mbox));
	assert_true(mbox_lock_same_file(nfd, mbox));
	/* A path too long for the dotlock name is refused up front. */
	memset(tmp, 'a', sizeof(tmp) - 1);
	tmp[sizeof(tmp) - 1] = '\0';
	assert_int_equal(mbox_lock_init(&lk, tmp, 0, err), -1);
	close(fd);
	close(nfd);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lock_writes_pid_and_release_leaves_nothing),
		T(test_fresh_lock_of_dead_owner_is_taken_at_once),
		T(test_live_owner_or_empty_lock_is_busy_until_stale),
		T(test_busy_fcntl_gives_the_dotlock_back),
		T(test_holder_killed_leaves_no_obstacle),
		T(test_release_spares_a_lock_someone_took_over),
		T(test_unwritable_directory_uses_fcntl_alone),
		T(test_same_file_sees_a_replaced_mbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
