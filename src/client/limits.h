/*
 * Every fixed limit and period of postino, the client, each with its
 * reason, in one place (popa3d's params.h; the server's are in
 * src/server/limits.h). What a user tunes is an option or an account key
 * instead (--timeout, max-size, max-messages), each with its own bound.
 *
 * Not here, on purpose: sizes a protocol or a format fixes stay beside the
 * code that speaks it, where a reader checks them against the RFC: a host
 * name, a user name and a password (account.h: RFC 1035, RFC 2449), the
 * written form of a TLS fingerprint and the longest --auth name
 * (account.h), the "AUTH MECH IR" line (pop3c_login.c: RFC 5034), SCRAM's
 * nonce octets and the channel-binding size (sasl_client.h), LMTP's reply
 * line and its waits (deliver_lmtp.h: RFC 5321), the MDA record and the
 * state file's format (fetch.h, state.h), a SHA-256 digest (pop3c_tls.h),
 * HTML entity names (html.c).
 */
#ifndef POSTINO_CLIENT_LIMITS_H
#define POSTINO_CLIENT_LIMITS_H

/* --- accounts and options (account.c, main.c) ------------------------- */

/*
 * An OAuth 2.0 bearer token from token-command, so also the largest
 * secret an account yields and the largest token a SASL response carries
 * (one constant: a token the account takes always fits the response).
 * RFC 6750 sets no bound; Google's tokens are ~250 octets, Microsoft
 * Entra ID's 1.5-4 KB (more with group claims); twice the largest seen
 * leaves room and still bounds what a token command can make us send.
 */
#define OAUTH_TOKEN_MAX		8192
/* An account's name: a word a person types on the command line. */
#define ACCOUNT_NAME_MAX	64
/* Commands (password-command, mda) and config lines. */
#define ACCOUNT_CMD_MAX		1024
/* A .netrc or config file larger than this is not one we should parse. */
#define ACCOUNT_FILE_MAX	(1024 * 1024)
/* Accounts in one configuration file. */
#define ACCOUNT_MAX_ACCOUNTS	256
/* keep-days: about 27 years, so the seconds never overflow. */
#define ACCOUNT_KEEP_DAYS_MAX	10000
/* Seconds to wait for a connection or for the server to say anything. */
#define DEFAULT_TIMEOUT		60
#define MAX_TIMEOUT		3600

/* --- the POP3 client (pop3c*.c) --------------------------------------- */

/*
 * RFC 2449 sec. 4 caps a response line at 512 octets with its CRLF. Real
 * servers send longer greetings, CAPA IMPLEMENTATION and SASL lines, so we
 * accept eight times that; beyond it the server is broken or hostile.
 */
#define POP3C_LINE_MAX		4096
/*
 * Input buffer. Message lines longer than this are passed to the callback
 * in pieces, so an unwrapped 1 MB line is fetched, in bounded memory.
 */
#define POP3C_BUF_SIZE		16384
/*
 * RFC 1939 sec. 7: a unique-id is 1 to 70 octets 0x21-0x7e. We accept up
 * to 255 for servers that stretch it; the state file stores them as lines.
 */
#define POP3C_UID_MAX		255
/* Messages in one LIST: postinod's default max_messages, Dovecot's order. */
#define POP3C_MESSAGES_MAX	1000000
/* RFC 1939 sec. 7: the APOP timestamp is a msg-id; bounded like a line. */
#define POP3C_TIMESTAMP_MAX	512
/*
 * Commands in flight with PIPELINING (RFC 2449 sec. 6.6). Enough to keep
 * the server busy while we store a message; a few hundred octets of
 * commands, so neither side can block writing while the other does too.
 */
#define POP3C_PIPELINE_MAX	16
/*
 * The slowest server we wait for, octets per second: a multi-line reply
 * (RETR, TOP, LIST, UIDL, CAPA) may take the timeout plus one second per
 * this many octets of it, so one that trickles (an octet a little within
 * every timeout) cannot hold us for ever. 1 KiB/s is about a 9.6 kbit/s
 * GSM data call (1.2 KB/s) and a fifth of a 56k modem (~5 KiB/s), the
 * slowest links still carrying mail; a 10 MB message may take 2.7 hours.
 * Only the time spent waiting on the server counts, not ours storing.
 */
#define POP3C_MIN_RATE		1024
/* RFC 2449 sec. 8 response codes we know are at most 11 octets. */
#define POP3C_CODE_MAX		64
/*
 * A greeting later than this gets a CAPA probe (pop3c_probe_capa): a
 * server waiting for a TLS handshake fails at once instead of at the
 * timeout. Real greetings take milliseconds.
 */
#define GREETING_PROBE_MS	2000
/* Most challenges of one exchange: SCRAM has two, LOGIN two. */
#define AUTH_ROUNDS_MAX		4

/* --- SASL (sasl_client.c) --------------------------------------------- */

/*
 * Octets of one response before base64: an OAUTHBEARER response with an
 * OAUTH_TOKEN_MAX token, a 255-octet name escaped (=2C, three octets
 * each), a 255-octet host and a port. SCRAM and PLAIN need far less.
 */
#define SASL_CLIENT_OUT_MAX	(OAUTH_TOKEN_MAX + 1536)
/*
 * RFC 7677 sec. 4: the iteration count SHOULD be at least 4096; a server
 * (or a man in the middle of a plaintext session) asking for fewer would
 * make our proof cheap to attack offline: refused. An upper bound keeps a
 * hostile server from pinning the CPU; PBKDF2 at 10^6 rounds takes well
 * under a second.
 */
#define SASL_CLIENT_SCRAM_ITER_MIN	4096
#define SASL_CLIENT_SCRAM_ITER_MAX	1000000
/* Salt octets we accept; servers use 16 to 32. */
#define SASL_CLIENT_SCRAM_SALT_MAX	128
/* Nonces (ours injected by tests, or the server's whole one). */
#define SASL_CLIENT_NONCE_MAX	255
/* Protocol text of one SCRAM message we build or keep. */
#define SCRAM_MSG_MAX		2048

/* --- fetching and delivering (fetch*.c, deliver_*.c) ------------------ */

/* Write buffer per destination. */
#define FETCH_BUF_SIZE		65536
/* How long to wait for an mbox lock (seconds), and when a dotlock is stale. */
#define FETCH_LOCK_WAIT		30
#define FETCH_DOTLOCK_STALE	300
/* Seconds recovery waits for the MDA of an interrupted run to finish. */
#define FETCH_MDA_WAIT		300
/* An MDA command after %F and %T expansion (each value quoted). */
#define FETCH_MDA_CMD_MAX	4096
/* Return-Path addresses longer than this become MAILER-DAEMON. */
#define FETCH_SENDER_MAX	255
/* mbox and MDA: octets of a header line's start looked at for Return-Path. */
#define FETCH_HEAD_MAX		(FETCH_SENDER_MAX + 64)
/*
 * Deliveries made durable together (new/ and the state journal fsynced):
 * a power failure may deliver again at most one batch; a kill, nothing.
 * Or after FETCH_LOOP_SYNC_MS, whichever comes first.
 */
#define FETCH_LOOP_SYNC_MSGS	100
#define FETCH_LOOP_SYNC_MS	1000
/* Replies of more lines than this are a broken LMTP server. */
#define DELIVER_LMTP_REPLY_LINES	100
/* An LMTP address: "unix:PATH" or "HOST:PORT" ("[V6]:PORT"). */
#define DELIVER_LMTP_ADDR_MAX		1024
/* Octets received between two redraws of the progress bar. */
#define PROGRESS_REDRAW_BYTES	65536

/* --- the state file (state.c) ----------------------------------------- */

/* A pending token: printable ASCII, no line end. */
#define STATE_TOKEN_MAX		1024
/* Longest key we encode into a file name (3 octets per escaped byte). */
#define STATE_KEY_MAX		200
/* Dead records a journal may carry beyond twice its live ones. */
#define STATE_COMPACT_SLACK	1000

/* --- fetch --daemon (daemon.c) ---------------------------------------- */

/* The longest interval, and the longest back-off on failures (seconds). */
#define DAEMON_INTERVAL_MAX	86400
#define DAEMON_BACKOFF_MAX	3600
/* Sleep steps: how soon a signal is noticed (milliseconds). */
#define DAEMON_TICK_MS		100

/* --- the reader (reader*.c, mime.c, html.c, term.c) ------------------- */

/*
 * Largest message shown: it is held whole in memory, decoded, converted
 * and wrapped (several copies). A larger one gets a line saying so.
 */
#define READER_MSG_MAX		(32u * 1024 * 1024)
/* Largest header taken from TOP n 0 for a list row. */
#define READER_HEADER_MAX	(256u * 1024)
/*
 * Send STAT after this much idle time at the keyboard, so a reader
 * lingering over a message is not logged out by the server's RFC 1939
 * sec. 3 ten-minute autologout timer.
 */
#define READER_KEEPALIVE_MS	(4 * 60 * 1000)
/* Longest search text; a line of the status bar is enough. */
#define READER_SEARCH_MAX	200
/* Smallest window we draw in. */
#define READER_MIN_ROWS		3
#define READER_MIN_COLS		20
/* Longest file name offered from the mail; longest path or command typed. */
#define SAVE_NAME_MAX		200
/* After ESC, how long the rest of an escape sequence may take to come. */
#define TERM_ESC_WAIT_MS	50
/*
 * Multipart nesting we walk. GMime's parser limits nothing; a message of
 * parts nested thousands deep would otherwise take the stack.
 */
#define MIME_DEPTH_MAX		32
/* Attachments we list; the rest are counted in one line. */
#define MIME_ATTACH_MAX		1000
/* Links listed; the rest keep their text only (a page of 1000 is spam). */
#define HTML_LINKS_MAX		1000
/* A longer URL is listed cut, ending in "..." (no real link is this long). */
#define HTML_URL_MAX		2048
/*
 * The external converter's time and output. Measured: w3m 17 ms for a
 * small mail, 0.25 s for 670 KB of HTML (lynx 0.7 s); ten seconds is
 * only ever reached by a converter that hangs.
 */
#define HTML_CONVERT_MS		10000
#define HTML_CONVERT_OUT_MAX	(64u * 1024 * 1024)

#endif
