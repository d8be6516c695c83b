/*
 * Every fixed limit and period of postinod's roles, each with its reason,
 * in one place (popa3d's params.h). Limits a site tunes are configuration
 * keys instead (etc/postinod.conf, each with its own bound).
 *
 * Not here, on purpose: sizes a protocol or a format fixes stay beside the
 * code that defines that protocol, where a reader checks them against the
 * RFC: POP3's line and UIDL lengths (pop3.h, RFC 1939 and 2449), LMTP's
 * line, path and recipient counts (lmtp_cmds.h, RFC 5321), the format of
 * the messages between roles (rolemsg.h: ticket, addresses), text sizes of
 * an address or a network (session.h, penalty.h) and the backends' own
 * bounds (auth.h, store.h, sasl.h).
 */
#ifndef POSTINO_SERVER_LIMITS_H
#define POSTINO_SERVER_LIMITS_H

/* --- master ------------------------------------------------------------ */

/* Mail and deliver workers at once: one per uid with sessions; 1024 uids. */
#define MAIL_WORKERS_MAX	1024
/* A role that dies this soon after its start is restarted after a pause. */
#define RESTART_PAUSE_MS	1000
/* Roles still running this long after SIGTERM are killed: UPDATE is short. */
#define SHUTDOWN_WAIT_MS	10000
/* Bound a certificate chain or key file: a mistake, not a certificate. */
#define TLS_FILE_MAX		(1024 * 1024)

/* --- every POP3 session (session.c) ------------------------------------ */

/* Input: two full command lines; more pipelined input waits in the kernel. */
#define SESSION_IN_MAX		1024
/* Output buffer; multi-line replies are refilled below the low-water mark. */
#define SESSION_OUT_MAX		(64 * 1024)
#define SESSION_OUT_LOW		(16 * 1024)
/*
 * A RETR of a message larger than SESSION_OUT_MAX may widen the buffer to
 * this while the message goes out: a 1 MB RETR on loopback took 16 sends
 * of ~62 KB and 16 wake-ups of the reader (0.63-0.69 ms of server CPU per
 * MB); 4 sends of ~240 KB took 0.53-0.65 (DESIGN.md, "Where RETR's CPU
 * goes"). At most SESSION_OUT_WIDE sessions of a process at a time (16 MB):
 * the others send as before.
 */
#define SESSION_OUT_BODY	(256 * 1024)
#define SESSION_OUT_WIDE	64
/* Stop taking commands while more than this is unsent (Dovecot: 4096). */
#define SESSION_OUT_HIGH	4096
/* Idle time and bad commands of a session whose role set none (tests). */
#define SESSION_IDLE_DEFAULT_MS	(600 * 1000)
#define SESSION_BAD_DEFAULT	20

/* --- login ------------------------------------------------------------- */

/*
 * Failed logins one connection may make before it is closed (Dovecot's
 * login processes close after 3 too): with the failure delay, it bounds
 * how fast one connection can guess passwords.
 */
#define LOGIN_FAILURES_MAX	3
/*
 * Refused connections logged per second and worker: enough for fail2ban,
 * too few for a flood to fill the disk; the rest are counted in one line.
 */
#define REFUSAL_LOGS_PER_SEC	10
/* Out of descriptors: stop accepting for a moment instead of spinning. */
#define ACCEPT_PAUSE_MS		100
/*
 * HAProxy sends the header with its first segment, so a trusted proxy that
 * has not sent it within this time is broken; Dovecot's haproxy_timeout
 * is 3 s for the same reason.
 */
#define PROXY_HEADER_TIMEOUT_MS	3000
/* Largest certificate chain plus key the master sends (two files of 1 MiB). */
#define TLS_MATERIAL_MAX	(2 * TLS_FILE_MAX + 2)
/* The TLS relay's buffer: one TLS record's worth each way. */
#define PROXY_BUF		(16 * 1024)
/*
 * Once the mail worker has closed, what is left for the client must move
 * within this time, or the relay ends: a client that stopped reading must
 * not keep a max_sessions slot after its session is over.
 */
#define PROXY_DRAIN_MS		10000

/* --- auth -------------------------------------------------------------- */

/* A ticket is redeemed within milliseconds; a minute covers a loaded host. */
#define TICKET_TTL_MS		60000
/* Tickets at once: a login burst of 4096 within TICKET_TTL_MS. */
#define TICKETS_MAX		4096
/*
 * Unredeemed tickets per user and per client address. A ticket lives
 * from the verdict to its redemption, milliseconds; more than this many
 * at once is a script logging in and dropping the connection, and it
 * must not use up the table for everyone else (issue 10, finding 3).
 */
#define TICKETS_PER_USER	8
#define TICKETS_PER_ADDR	32
/* Hash chains: the table is found by hash, never scanned per request. */
#define TICKET_BUCKETS		4096
/*
 * Requests one auth worker holds: at about 5 ms per SHA512-CRYPT check,
 * 1024 are five seconds of work; more would only wait past the client.
 */
#define AUTH_QUEUE_MAX		1024
/*
 * Requests of one network (penalty_net()) waiting at once are capped by
 * auth_queue_per_network (etc/postinod.conf): an office behind one NAT
 * logging in at nine fits; a flood from one network does not, and the
 * rest of it is refused with [SYS/TEMP] before any work. A trusted
 * front-end (login_trusted_networks, proxy_trusted_networks) speaks for
 * many clients from one address, so only AUTH_QUEUE_MAX bounds it.
 */
/*
 * The longest a request waits for its penalty and its turn: twice the
 * largest penalty step, so a patient client always gets its check, and
 * far below login_timeout (180 s by default).
 */
#define AUTH_WAIT_MAX_MS	(2u * PENALTY_MAX_MS)
/*
 * Work starts only once no channel has unread messages, so a cancel that
 * follows a request is seen before the request is hashed; at most this
 * many turns in a row, so a stream of messages cannot starve the queue.
 */
#define AUTH_DRAIN_TURNS	64
/*
 * SASL exchanges under way, one per login connection at most. A stale
 * one (its client vanished without a cancel) goes after the TTL.
 */
#define SASL_EXCHANGES_MAX	4096
#define SASL_EXCHANGE_TTL_MS	(10u * 60 * 1000)
/*
 * The OAuth token command's answer (oauth_helper.c), within the 30-s cap
 * on a request: an introspection call over the network takes well under
 * a second; 10 s allows a slow one.
 */
#define OAUTH_CHECK_TIMEOUT_MS	10000
/* Clients: login and mail workers, a few dozen. Kept to free them at exit. */
#define CLIENTS_MAX		1024
/*
 * The verification cache (src/auth/auth_cache.h), per auth worker. An
 * entry is 80 octets with its share of the hash table, so the largest
 * cache is 80 MB per worker, touched only as users log in: a million
 * users logging in within one TTL is beyond what one machine serves.
 */
#define AUTH_CACHE_SIZE_MAX	1000000u
/*
 * A cached digest lives this long after the real check that made it. A
 * changed password is never served from the cache, so the TTL bounds
 * only how long a digest of a password sits in memory: at least a
 * second, at most a day (a day-old login has no business being fast).
 */
#define AUTH_CACHE_TTL_MIN	1u
#define AUTH_CACHE_TTL_MAX	86400u
/* Networks remembered at once per auth worker; beyond, the oldest goes. */
#define PENALTY_SLOTS		4096
/* Failures are forgotten after this long without a new one (Dovecot: 1h). */
#define PENALTY_FORGET_MS	(15u * 60 * 1000)
/*
 * The delay doubles per failure up to this bound (STYLE: 15 s); the login
 * role never waits longer than this whatever the verdict says.
 */
#define PENALTY_MAX_MS		15000u
/* Linear probing over a short window; the oldest slot in it is reused. */
#define PENALTY_PROBE		8
/* `postinod -t` checks at most this many passwd-file lines ... */
#define REACH_USERS_MAX		10000
/* ... and reports at most this many problems. */
#define REACH_REPORT_MAX	10

/* --- the shared connection counts (connlimit.c) ----------------------- */

/* Load factor at most 1/4 with two keys per connection. */
#define CONNLIMIT_ENTRIES_MIN	1024u
#define CONNLIMIT_ENTRIES_MAX	(1u << 21)	/* 16 MiB a region */
/* Entries a key may occupy from its home position: lookups stay cheap. */
#define CONNLIMIT_PROBE		16

/* --- mail -------------------------------------------------------------- */

/*
 * A message is read in blocks of RETR_BLOCK (heap, only during a RETR/TOP),
 * each encoded as far as the output buffer has room; with less than
 * RETR_MIN_READ free the buffer is sent first rather than filled in crumbs.
 */
#define RETR_BLOCK		(32 * 1024)
#define RETR_MIN_READ		(4 * 1024)
/*
 * Ended sessions a mail worker tells the master about together: with the
 * next end at least MAIL_ENDED_BATCH_MS after the first one untold, else
 * after MAIL_ENDED_LATE_MS (a timer: the only wakeup of its own, once per
 * quiet spell), and at once before it offers to retire. Under load one
 * message, and one wakeup of the master, covers several (S1: one of the
 * seven messages between roles per login). The master's count only steers
 * which worker gets the next session, so a late count costs nothing else.
 */
#define MAIL_ENDED_BATCH_MS	50
#define MAIL_ENDED_LATE_MS	1000
/* A worker without sessions this long offers to retire (DESIGN.md). */
#define MAIL_IDLE_MS		60000
/*
 * A worker without sessions this long gives its free heap back. At once,
 * a worker whose sessions come and go (S1: 50 clients on two workers)
 * walked its heap and gave pages back only to fault them in again.
 */
#define MAIL_TRIM_MS		1000
/* How often a lock held by another program is tried again. */
#define LOCK_RETRY_MS		50

/* --- lmtp and deliver -------------------------------------------------- */

/* Input: one command line, or a block of message data. */
#define LMTP_IN_MAX		(16 * 1024)
/*
 * Replies: after DATA one line (at most ~600 octets) per recipient, and
 * lmtp_max_recipients is at most 10,000; grown on demand from 1 KiB.
 */
#define LMTP_OUT_MAX		(8 * 1024 * 1024)
/*
 * The output buffer's first block, doubled up to LMTP_OUT_MAX: a few
 * replies fit; only many pipelined RCPTs need more.
 */
#define LMTP_OUT_FIRST		1024
/* Stop taking commands while this much is unsent (a client not reading). */
#define LMTP_OUT_HIGH		(32 * 1024)
/* RFC 5321 sec. 4.5.3.2.7: a server waits at least 5 minutes for a command. */
#define LMTP_TIMEOUT_MS		(300 * 1000)
/* Consecutive bad commands before the connection is dropped (Dovecot: 20). */
#define LMTP_MAX_BAD		20
/* Connections at once: an MTA opens a few dozen at most. */
#define LMTP_CONNS_MAX		1024
/*
 * Messages being received are held in memory (memfds) until stored: all
 * connections together hold at most this much, or one largest message,
 * whichever is more. Past it a message gets 452 4.3.1 and the MTA
 * retries, rather than the host running out of memory.
 */
#define LMTP_SPOOL_TOTAL_MAX	(1024ull * 1024 * 1024)
/* A deliver worker without deliveries this long offers to retire. */
#define DELIVER_IDLE_MS		60000

#endif
