#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define SANDBOX_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_ARCH	AUDIT_ARCH_AARCH64
#endif

/* Instructions at most: a few per allowed call, plus the fixed ones. */
#define SANDBOX_PROG_MAX	512

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer stops the world at exit: a ptrace'ing clone, /proc reads. */
static const int san_extra[] = {
	SYS_clone, SYS_ptrace, SYS_wait4, SYS_waitid, SYS_sched_yield,
	SYS_sigaltstack, SYS_rt_sigaction, SYS_tgkill, SYS_kill, SYS_gettid,
	SYS_prctl, SYS_mprotect, SYS_munmap, SYS_madvise, SYS_getdents64,
	SYS_readlinkat, SYS_lseek, SYS_getppid, SYS_sched_getaffinity,
	SYS_nanosleep, SYS_clock_nanosleep, SYS_uname, SYS_geteuid,
	SYS_getuid, SYS_dup, SYS_dup3, SYS_pipe2, SYS_exit, SYS_mmap,
	SYS_set_robust_list, SYS_ioctl,
#ifdef SYS_readlink
	SYS_readlink,
#endif
#ifdef SYS_getdents
	SYS_getdents,
#endif
#ifdef SYS_clone3
	SYS_clone3,
#endif
};
#endif

/*
 * The auth role once it serves (issue 10, finding 8): its event loop and
 * channels, reading the passwd-file again (read-only), hashing (memory,
 * random numbers, OpenSSL's lazy start: its config file and locks),
 * logging (stderr, or syslog's Unix socket, reconnected after syslogd
 * restarts). No network socket, no exec, no file written, no ptrace, no
 * privilege change.
 */
static const int auth_syscalls[] = {
	SYS_read, SYS_writev, SYS_close, SYS_lseek, SYS_fcntl,
	SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl, SYS_ppoll,
	SYS_recvmsg, SYS_sendmsg, SYS_sendto, SYS_connect,
	SYS_newfstatat, SYS_fstat, SYS_statx,
	SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_futex,
	SYS_getrandom, SYS_getpid, SYS_clock_gettime, SYS_gettimeofday,
	SYS_rt_sigprocmask, SYS_exit, SYS_getuid, SYS_getgid, SYS_geteuid,
	SYS_getegid,
#ifdef SYS_poll
	SYS_poll,
#endif
#ifdef SYS_stat
	SYS_stat,
#endif
};

/*
 * The login role once it serves, chrooted: accept and serve clients in
 * its epoll loop (signalfd reads, timers as epoll timeouts), TLS (OpenSSL
 * started before the filter; random numbers from getrandom; a new
 * certificate comes as a memfd from the master, read with pread), the
 * hand-off of a client's socket (sendmsg with SCM_RIGHTS), the TLS relay's
 * socketpair, the shared connection table (mmap of the master's memfd),
 * SIOCOUTQ, logging (stderr, or the syslog socket opened before the
 * chroot). No open, no socket, no connect, no exec, no privilege change.
 */
static const int login_syscalls[] = {
	SYS_read, SYS_readv, SYS_writev, SYS_pread64, SYS_close, SYS_fcntl,
	SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl, SYS_ppoll,
	SYS_accept4, SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg,
	SYS_setsockopt, SYS_getsockopt, SYS_getsockname, SYS_getpeername,
	SYS_shutdown, SYS_socketpair,
	SYS_newfstatat, SYS_fstat, SYS_statx,
	SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_futex,
	SYS_getrandom, SYS_getpid, SYS_gettid, SYS_clock_gettime,
	SYS_gettimeofday, SYS_rt_sigprocmask, SYS_restart_syscall, SYS_exit,
	SYS_getuid, SYS_getgid, SYS_geteuid, SYS_getegid,
#ifdef SYS_poll
	SYS_poll,
#endif
#ifdef SYS_time
	SYS_time,
#endif
};

/* Async-signal-safe: no stdio, only write(2) of a number built here. */
static void
on_sigsys(int signo, siginfo_t *si, void *ctx)
{
	static const char head[] = "postinod: seccomp refused system call ";
	char num[16], *p = num + sizeof(num);
	unsigned int nr = (unsigned int)si->si_syscall;

	(void)signo;
	(void)ctx;
	*--p = '\n';
	do
		*--p = (char)('0' + nr % 10);
	while ((nr /= 10) != 0 && p > num);
	(void)!write(STDERR_FILENO, head, sizeof(head) - 1);
	(void)!write(STDERR_FILENO, p, (size_t)(num + sizeof(num) - p));
	_exit(128 + SIGSYS);
}

#ifdef SANDBOX_ARCH
static int
emit(struct sock_filter *prog, size_t *len, struct sock_filter ins)
{
	if (*len >= SANDBOX_PROG_MAX)
		return -1;
	prog[(*len)++] = ins;
	return 0;
}

#define STMT(c, k)		((struct sock_filter)BPF_STMT((c), (k)))
#define JUMP(c, k, t, f) \
	((struct sock_filter)BPF_JUMP((c), (k), (t), (f)))
#define ARG_LO(i)	(offsetof(struct seccomp_data, args[i]))
#define NR		(offsetof(struct seccomp_data, nr))

/*
 * If nr: load args[arg] (low 32 bits), then test, whose true and false
 * jumps skip to the trap (1) or fall through to the allow (0).
 */
static int
emit_arg_test(struct sock_filter *p, size_t *len, int nr, unsigned int arg,
    struct sock_filter test)
{
	return emit(p, len, JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0,
	    4)) || emit(p, len, STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg))) ||
	    emit(p, len, test) ||
	    emit(p, len, STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)) ||
	    emit(p, len, STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP)) ||
	    /* Reload nr for the tests after this one. */
	    emit(p, len, STMT(BPF_LD | BPF_W | BPF_ABS, NR)) ? -1 : 0;
}

/* If nr: allow when args[arg] & mask == 0 (low 32 bits), else trap. */
static int
emit_masked(struct sock_filter *p, size_t *len, int nr, unsigned int arg,
    uint32_t mask)
{
	return emit_arg_test(p, len, nr, arg,
	    JUMP(BPF_JMP | BPF_JSET | BPF_K, mask, 1, 0));
}

/* If nr: allow when args[arg] == value, else trap. */
static int
emit_equal(struct sock_filter *p, size_t *len, int nr, unsigned int arg,
    uint32_t value)
{
	return emit_arg_test(p, len, nr, arg,
	    JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1));
}

/* If nr: fail with errno e, without running it. */
static int
emit_errno(struct sock_filter *p, size_t *len, int nr, int e)
{
	return emit(p, len, JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0,
	    1)) || emit(p, len, STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO |
	    ((uint32_t)e & SECCOMP_RET_DATA))) ? -1 : 0;
}

static int
emit_allow(struct sock_filter *p, size_t *len, int nr)
{
	return emit(p, len, JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0,
	    1)) || emit(p, len, STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)) ?
	    -1 : 0;
}
#endif

int
sandbox_allow(const int *nrs, size_t n, unsigned int flags, char *err)
{
#ifdef SANDBOX_ARCH
	static struct sock_filter prog[SANDBOX_PROG_MAX];
	const uint32_t writing = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;
	struct sock_fprog fprog;
	struct sigaction sa;
	size_t len = 0;
	int bad = 0;

	/* A call made for another ABI (x32, i386) is refused outright. */
	bad |= emit(prog, &len, STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch)));
	bad |= emit(prog, &len, JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_ARCH,
	    1, 0));
	bad |= emit(prog, &len, STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_KILL_PROCESS));
	bad |= emit(prog, &len, STMT(BPF_LD | BPF_W | BPF_ABS, NR));
#if defined(__x86_64__)
	bad |= emit(prog, &len, JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u,
	    0, 1));
	bad |= emit(prog, &len, STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_KILL_PROCESS));
#endif
	if (flags & SANDBOX_OPEN_RDONLY) {
		bad |= emit_masked(prog, &len, SYS_openat, 2, writing);
#ifdef SYS_open
		bad |= emit_masked(prog, &len, SYS_open, 1, writing);
#endif
	}
	if (flags & SANDBOX_SOCKET_UNIX)
		bad |= emit_equal(prog, &len, SYS_socket, 0, AF_UNIX);
	if (flags & SANDBOX_NET_EACCES) {
		bad |= emit_errno(prog, &len, SYS_socket, EACCES);
		bad |= emit_errno(prog, &len, SYS_connect, EACCES);
	}
#if !defined(__SANITIZE_ADDRESS__)
	if (flags & SANDBOX_IOCTL_OUTQ)
		bad |= emit_equal(prog, &len, SYS_ioctl, 1, SIOCOUTQ);
#endif
	/* The handler's own way out, and the signal's return. */
	bad |= emit_allow(prog, &len, SYS_rt_sigreturn);
	bad |= emit_allow(prog, &len, SYS_exit_group);
	bad |= emit_allow(prog, &len, SYS_write);
	for (size_t i = 0; i < n; i++)
		bad |= emit_allow(prog, &len, nrs[i]);
#if defined(__SANITIZE_ADDRESS__)
	for (size_t i = 0; i < sizeof(san_extra) / sizeof(san_extra[0]); i++)
		bad |= emit_allow(prog, &len, san_extra[i]);
#endif
	bad |= emit(prog, &len, STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
	if (bad) {
		str_copy(err, ERR_LEN, "seccomp: filter too long");
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		str_fmt(err, ERR_LEN, "seccomp: %s", strerror(errno));
		return -1;
	}
	fprog.len = (unsigned short)len;
	fprog.filter = prog;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) {
		str_fmt(err, ERR_LEN, "seccomp: %s", strerror(errno));
		return -1;
	}
	return 0;
#else
	(void)nrs;
	(void)n;
	(void)flags;
	str_copy(err, ERR_LEN, "seccomp: this architecture is not supported");
	return -1;
#endif
}

int
sandbox_enter(enum sandbox_role role, char *err)
{
	unsigned int flags;

	switch (role) {
	case SANDBOX_ROLE_AUTH:
		return sandbox_allow(auth_syscalls, sizeof(auth_syscalls) /
		    sizeof(auth_syscalls[0]), SANDBOX_OPEN_RDONLY |
		    SANDBOX_SOCKET_UNIX, err);
	case SANDBOX_ROLE_LOGIN:
		flags = SANDBOX_NET_EACCES | SANDBOX_IOCTL_OUTQ;
#if defined(__SANITIZE_ADDRESS__)
		/* LeakSanitizer reads /proc at exit (none in the chroot). */
		flags |= SANDBOX_OPEN_RDONLY;
#endif
		return sandbox_allow(login_syscalls, sizeof(login_syscalls) /
		    sizeof(login_syscalls[0]), flags, err);
	}
	str_copy(err, ERR_LEN, "seccomp: no such role");
	return -1;
}
