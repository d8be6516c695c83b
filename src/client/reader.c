/*
 * postino read, the controller: keys, prompts, search, attachments and
 * reconnecting, over the model (reader_model.c) and the view
 * (reader_view.c).
 */
#include "reader_int.h"

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/fdio.h"
#include "term.h"

#define KEY_CTRL_L	0x0c
#define KEY_ESC		0x1b

#define LINE_MAX_TYPED	1024

bool
reader_has_terminal(void)
{
	return term_is_tty();
}

static void
view_close(struct reader *r)
{
	reader_model_forget(r);
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	r->nrow = 0;
	r->mode = MODE_LIST;
}

static enum step
view_open(struct reader *r, size_t i)
{
	char why[ERR_LEN * 2];
	enum step s;

	r->cur = i;
	r->mode = MODE_VIEW;
	r->vtop = 0;
	s = reader_model_fetch(r, i, why, sizeof(why));
	if (s == STEP_SESSION)
		view_close(r);		/* nothing to show: the list */
	if (s != STEP_GO)
		return s;
	if ((why[0] != '\0' ? reader_view_note(r, why) :
	    reader_view_compose(r)) < 0 || reader_view_wrap(r) < 0)
		return STEP_LOCAL;
	return STEP_GO;
}

/* A key for a question, redrawing through resizes. */
static int
ask(struct reader *r)
{
	for (;;) {
		int k;

		if (reader_view_draw(r) < 0)
			return -1;
		k = term_key(-1);
		if (k != TERM_KEY_RESIZE)
			return k;
		term_size(&r->rows, &r->cols);
		if (r->mode == MODE_VIEW && reader_view_rewrap(r) < 0)
			return -1;
	}
}

/*
 * A line typed on the status row into buf (size > 1): 1 when Enter ended
 * it, 0 when Esc or ^G did, -1 on a terminal error. Backspace takes back
 * one character, ^U all. What is typed is shown as display text is:
 * controls never reach the screen (frame_text).
 */
static int
prompt_line(struct reader *r, const char *prompt, char *buf, size_t size)
{
	size_t len = strlen(buf);

	for (;;) {
		int k;

		(void)str_fmt(r->status, sizeof(r->status), "%s%s", prompt,
		    buf);
		k = ask(r);
		r->status[0] = '\0';
		if (k < 0 || k == TERM_KEY_EOF)
			return -1;
		if (k == '\r' || k == '\n')
			return 1;
		if (k == KEY_ESC || k == 0x07)
			return 0;
		if (k == 0x7f || k == 0x08) {
			while (len > 0 && ((unsigned char)buf[--len] & 0xc0) ==
			    0x80)
				;
			buf[len] = '\0';
		} else if (k == 0x15) {
			len = 0;
			buf[0] = '\0';
		} else if (k >= 0x20 && k <= 0xff && k != 0x7f &&
		    len + 1 < size) {
			buf[len++] = (char)k;
			buf[len] = '\0';
		}
	}
}

static bool
has_text(const char *s, const char *what)
{
	return s != NULL && strcasestr(s, what) != NULL;
}

/* The next row after the cursor (wrapping) with it in From or Subject. */
static enum step
search_list(struct reader *r)
{
	for (size_t k = 1; k <= r->n; k++) {
		size_t i = (r->cur + k) % r->n;
		enum step s;

		if (!r->e[i].loaded &&
		    (s = reader_model_load_entry(r, i)) != STEP_GO)
			return s;
		if (has_text(r->e[i].subject, r->search) ||
		    has_text(r->e[i].from, r->search)) {
			r->cur = i;
			if (k == r->n)
				(void)str_copy(r->status, sizeof(r->status),
				    "The only match.");
			return STEP_GO;
		}
	}
	(void)str_fmt(r->status, sizeof(r->status), "Not found: %s",
	    r->search);
	return STEP_GO;
}

/* The next occurrence after the top row, as less(1) does (wrapping). */
static void
search_view(struct reader *r)
{
	size_t from = r->vtop < r->nrow ? r->row[r->vtop].off +
	    r->row[r->vtop].len : 0;
	const char *hit = NULL;

	if (r->text != NULL && from <= r->text_len)
		hit = strcasestr(r->text + from, r->search);
	if (hit == NULL && r->text != NULL)
		hit = strcasestr(r->text, r->search);
	if (hit == NULL) {
		(void)str_fmt(r->status, sizeof(r->status), "Not found: %s",
		    r->search);
		return;
	}
	for (r->vtop = 0; r->vtop + 1 < r->nrow &&
	    r->row[r->vtop + 1].off <= (size_t)(hit - r->text); r->vtop++)
		;
	if (r->vtop > reader_view_max_top(r)) {
		(void)str_fmt(r->status, sizeof(r->status), "Found on line "
		    "%zu.", r->vtop + 1);
		r->vtop = reader_view_max_top(r);
	}
}

/* `/` asks for the text (Enter alone: the last one), `N` searches again. */
static enum step
do_search(struct reader *r, bool ask_text)
{
	char text[READER_SEARCH_MAX + 1] = "";
	int rc;

	if (ask_text) {
		rc = prompt_line(r, "Search for: ", text, sizeof(text));
		if (rc < 0) {
			(void)str_fmt(r->err, sizeof(r->err), "terminal: %s",
			    strerror(errno));
			return STEP_LOCAL;
		}
		if (rc == 0)
			return STEP_GO;
		if (text[0] != '\0')
			(void)str_copy(r->search, sizeof(r->search), text);
	}
	if (r->search[0] == '\0') {
		(void)str_copy(r->status, sizeof(r->status),
		    "No search yet: / searches.");
		return STEP_GO;
	}
	if (r->mode == MODE_LIST)
		return r->n > 0 ? search_list(r) : STEP_GO;
	search_view(r);
	return STEP_GO;
}

/* Which attachment: the only one, else the one asked for; -1 none. */
static long
pick_attachment(struct reader *r, const char *what)
{
	char num[16] = "", prompt[64];
	uint32_t n;

	if (r->msg == NULL || r->msg->n_att == 0) {
		(void)str_copy(r->status, sizeof(r->status),
		    "This message has no attachment.");
		return -1;
	}
	if (r->msg->n_att == 1)
		return 0;
	(void)str_fmt(prompt, sizeof(prompt), "%s attachment (1-%zu): ",
	    what, r->msg->n_att);
	if (prompt_line(r, prompt, num, sizeof(num)) <= 0)
		return -1;
	if (str_parse_u32(num, &n) < 0 || n == 0 || n > r->msg->n_att) {
		(void)str_copy(r->status, sizeof(r->status),
		    "No such attachment.");
		return -1;
	}
	return (long)n - 1;
}

/*
 * The name the mail suggests, made a plain file name here: no directory
 * part, no control octet, no leading dot, dash or space (no "..", no
 * hidden file, no option), display text, at most SAVE_NAME_MAX octets;
 * "attachment-N" when nothing is left.
 */
static void
safe_name(const struct reader *r, const char *name, long i, char *out,
    size_t size)
{
	char tmp[SAVE_NAME_MAX + 1];
	const char *base = name;
	size_t n = 0;
	char *d;

	for (const char *p = name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	for (const char *p = base; *p != '\0' && n < SAVE_NAME_MAX; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f || (n == 0 && (c == '.' ||
		    c == '-' || c == ' ')))
			continue;
		tmp[n++] = (char)c;
	}
	d = mime_display(tmp, n, r->codeset, true, NULL);
	if (d == NULL || d[0] == '\0')
		(void)str_fmt(out, size, "attachment-%ld", i + 1);
	else
		(void)str_copy(out, size, d);
	free(d);
}

/*
 * Create path with the user's umask, never through a symbolic link;
 * an existing file only after a yes. The fd, or -1 (status set).
 */
static int
create_file(struct reader *r, const char *path)
{
	int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	mode_t old = umask(r->umask);
	struct stat st;
	int fd, k;

	fd = open(path, flags | O_CREAT | O_EXCL, 0666);
	(void)umask(old);
	if (fd < 0 && errno == EEXIST) {
		(void)str_fmt(r->status, sizeof(r->status), "%s exists: "
		    "replace it? y = replace, any other key = keep it", path);
		k = ask(r);
		r->status[0] = '\0';
		if (k != 'y' && k != 'Y') {
			(void)str_copy(r->status, sizeof(r->status),
			    "Not saved.");
			return -1;
		}
		fd = open(path, flags, 0);
		/* A FIFO or device is not replaced; a file is, on truncate. */
		if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    ftruncate(fd, 0) < 0)) {
			(void)close(fd);
			(void)str_fmt(r->status, sizeof(r->status), "%s: not "
			    "a regular file; not saved.", path);
			return -1;
		}
	}
	if (fd < 0) {
		(void)str_fmt(r->status, sizeof(r->status), "%s: %s", path,
		    errno == ELOOP ? "a symbolic link; not saved" :
		    strerror(errno));
		return -1;
	}
	(void)fcntl(fd, F_SETFL, 0);		/* blocking again */
	return fd;
}

/* A leading "~/" typed is $HOME's, as in a shell. 0, or -1 (status). */
static int
home_path(struct reader *r, char *path, size_t size)
{
	const char *home = getenv("HOME");
	char full[LINE_MAX_TYPED];

	if (strncmp(path, "~/", 2) != 0)
		return 0;
	if (home == NULL || home[0] == '\0' ||
	    str_fmt(full, sizeof(full), "%s%s", home, path + 1) < 0) {
		(void)str_copy(r->status, sizeof(r->status), "No $HOME for ~/; "
		    "not saved.");
		return -1;
	}
	return str_copy(path, size, full) < 0 ? -1 : 0;
}

/* s: save an attachment, decoded, to a file the user names. */
static enum step
do_save(struct reader *r)
{
	char path[LINE_MAX_TYPED] = "", *data, *name;
	long i = pick_attachment(r, "Save");
	size_t len;
	int fd;

	if (i < 0)
		return STEP_GO;
	if (mime_attachment(r->raw, r->raw_len, (size_t)i, &data, &len, &name,
	    r->err) < 0) {
		(void)str_copy(r->status, sizeof(r->status), r->err);
		return STEP_GO;
	}
	safe_name(r, name, i, path, sizeof(path));
	if (prompt_line(r, "Save to file: ", path, sizeof(path)) <= 0 ||
	    path[0] == '\0')
		(void)str_copy(r->status, sizeof(r->status), "Not saved.");
	else if (home_path(r, path, sizeof(path)) == 0 &&
	    (fd = create_file(r, path)) >= 0) {
		if (fd_write_all(fd, data, len) < 0 || close(fd) < 0)
			(void)str_fmt(r->status, sizeof(r->status), "%s: %s",
			    path, strerror(errno));
		else
			(void)str_fmt(r->status, sizeof(r->status), "Saved "
			    "%zu bytes to %s.", len, path);
	}
	free(data);
	free(name);
	return STEP_GO;
}

/* The command's wait status, or -1 (errno) when it could not start. */
static int
run_pipe(const struct reader *r, const char *cmd, const char *data,
    size_t len)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	int p[2], status = -1;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* As system(3): ^C and ^\ end the command, not the reader. */
	(void)sigaction(SIGINT, &ign, &old_int);
	(void)sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid == 0) {
		/* The user's own command, so the user's shell is right. */
		if (dup2(p[0], STDIN_FILENO) < 0)
			_exit(127);
		(void)signal(SIGINT, SIG_DFL);
		(void)signal(SIGQUIT, SIG_DFL);
		(void)signal(SIGPIPE, SIG_DFL);
		(void)umask(r->umask);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	(void)close(p[0]);
	if (pid > 0) {
		/* SIGPIPE is ignored: a command that stops reading: EPIPE. */
		(void)fd_write_all(p[1], data, len);
		(void)close(p[1]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	} else {
		(void)close(p[1]);
	}
	(void)sigaction(SIGINT, &old_int, NULL);
	(void)sigaction(SIGQUIT, &old_quit, NULL);
	return status;
}

/* After the command: its output stays on the screen until Enter. */
static void
wait_enter(const char *what)
{
	char line[256], c;

	(void)str_fmt(line, sizeof(line), "\n[%s; press Enter]", what);
	(void)term_write(line, strlen(line));
	for (size_t n = 0; n < 4096; n++)
		if (read(STDIN_FILENO, &c, 1) != 1 || c == '\n')
			break;
}

/* |: pipe an attachment, decoded, to a command the user types. */
static enum step
do_pipe(struct reader *r)
{
	char cmd[LINE_MAX_TYPED] = "", what[64], *data, *name;
	long i = pick_attachment(r, "Pipe");
	size_t len;
	int st;

	if (i < 0)
		return STEP_GO;
	if (prompt_line(r, "Pipe to command: ", cmd, sizeof(cmd)) <= 0 ||
	    cmd[0] == '\0') {
		(void)str_copy(r->status, sizeof(r->status), "Not piped.");
		return STEP_GO;
	}
	if (mime_attachment(r->raw, r->raw_len, (size_t)i, &data, &len, &name,
	    r->err) < 0) {
		(void)str_copy(r->status, sizeof(r->status), r->err);
		return STEP_GO;
	}
	term_pause();
	st = run_pipe(r, cmd, data, len);
	free(data);
	free(name);
	if (st < 0)
		(void)str_fmt(what, sizeof(what), "cannot run it: %s",
		    strerror(errno));
	else if (WIFEXITED(st))
		(void)str_fmt(what, sizeof(what), "exit status %d",
		    WEXITSTATUS(st));
	else
		(void)str_fmt(what, sizeof(what), "killed by signal %d",
		    WTERMSIG(st));
	wait_enter(what);
	if (term_resume(r->err) < 0)
		return STEP_LOCAL;
	term_size(&r->rows, &r->cols);
	if (reader_view_rewrap(r) < 0)
		return STEP_LOCAL;
	r->clear = true;
	(void)str_fmt(r->status, sizeof(r->status), "Command: %s.", what);
	return STEP_GO;
}

/* H: the header as received, or the short one. */
static enum step
toggle_headers(struct reader *r)
{
	if (r->msg == NULL)
		return STEP_GO;
	r->full_headers = !r->full_headers;
	if (reader_view_compose(r) < 0 || reader_view_wrap(r) < 0)
		return STEP_LOCAL;
	r->vtop = 0;
	return STEP_GO;
}

static enum step
do_quit(struct reader *r)
{
	if (r->ndel > 0) {
		int k;

		(void)str_fmt(r->status, sizeof(r->status), "Delete %zu "
		    "marked message%s on the server? y = delete and quit, "
		    "n = quit and keep them all, c/Esc = back", r->ndel,
		    r->ndel == 1 ? "" : "s");
		if (strlen(r->status) > (size_t)r->cols)	/* 80 columns */
			(void)str_fmt(r->status, sizeof(r->status), "Delete "
			    "%zu on the server? y = delete, quit  n = quit, "
			    "keep all  c/Esc = back", r->ndel);
		k = ask(r);
		r->status[0] = '\0';
		if (k == -1)
			return STEP_LOCAL;
		if (k != 'n' && k != 'N' && k != 'y' && k != 'Y') {
			(void)str_copy(r->status, sizeof(r->status),
			    "Not quitting.");
			return STEP_GO;
		}
		return reader_model_quit(r, k == 'n' || k == 'N');
	}
	return reader_model_quit(r, false);
}

static size_t
next_undeleted(const struct reader *r, size_t from, int dir)
{
	size_t i = from;

	while (dir > 0 ? i + 1 < r->n : i > 0) {
		i = dir > 0 ? i + 1 : i - 1;
		if (!r->e[i].deleted)
			return i;
	}
	return r->n;
}

static size_t
clamp_add(size_t pos, long delta, size_t n)
{
	if (n == 0)
		return 0;
	if (delta < 0)
		return (size_t)-delta > pos ? 0 : pos - (size_t)-delta;
	return pos + (size_t)delta >= n ? n - 1 : pos + (size_t)delta;
}

static enum step
list_key(struct reader *r, int k)
{
	long page = reader_view_page_rows(r);

	switch (k) {
	case 'j':
	case TERM_KEY_DOWN:
		r->cur = clamp_add(r->cur, 1, r->n);
		break;
	case 'k':
	case TERM_KEY_UP:
		r->cur = clamp_add(r->cur, -1, r->n);
		break;
	case ' ':
	case TERM_KEY_PGDN:
		r->cur = clamp_add(r->cur, page, r->n);
		break;
	case 'b':
	case TERM_KEY_PGUP:
		r->cur = clamp_add(r->cur, -page, r->n);
		break;
	case 'g':
	case TERM_KEY_HOME:
		r->cur = 0;
		break;
	case 'G':
	case TERM_KEY_END:
		r->cur = r->n > 0 ? r->n - 1 : 0;
		break;
	case '\r':
	case '\n':
	case 'l':
	case TERM_KEY_RIGHT:
		if (r->n > 0)
			return view_open(r, r->cur);
		break;
	case 'd':
		if (r->n > 0) {
			enum step s = reader_model_delete(r, r->cur);

			if (s != STEP_GO)
				return s;
			r->cur = clamp_add(r->cur, 1, r->n);
		}
		break;
	case 'u':
		return r->n > 0 ? reader_model_undelete_one(r, r->cur) :
		    STEP_GO;
	case 'U':
		return reader_model_undelete_all(r);
	case 'q':
	case 'Q':
		return do_quit(r);
	case 'x':
		return STEP_DONE;
	}
	return STEP_GO;
}

static enum step
view_key(struct reader *r, int k)
{
	long page = reader_view_page_rows(r);
	size_t max = reader_view_max_top(r), i;
	enum step s;

	switch (k) {
	case 'j':
	case TERM_KEY_DOWN:
	case '\r':
	case '\n':
		r->vtop = clamp_add(r->vtop, 1, max + 1);
		break;
	case 'k':
	case TERM_KEY_UP:
		r->vtop = clamp_add(r->vtop, -1, max + 1);
		break;
	case ' ':
	case TERM_KEY_PGDN:
		r->vtop = clamp_add(r->vtop, page, max + 1);
		break;
	case 'b':
	case TERM_KEY_PGUP:
		r->vtop = clamp_add(r->vtop, -page, max + 1);
		break;
	case 'g':
	case TERM_KEY_HOME:
		r->vtop = 0;
		break;
	case 'G':
	case TERM_KEY_END:
		r->vtop = max;
		break;
	case 'q':
	case 'h':
	case TERM_KEY_LEFT:
		view_close(r);
		break;
	case 'n':
	case 'p':
		i = next_undeleted(r, r->cur, k == 'n' ? 1 : -1);
		if (i == r->n) {
			(void)str_copy(r->status, sizeof(r->status), k == 'n' ?
			    "No next message." : "No previous message.");
			break;
		}
		return view_open(r, i);
	case 'd':
		return reader_model_delete(r, r->cur);
	case 'u':
		if (!r->e[r->cur].deleted)	/* it says so */
			return reader_model_undelete_one(r, r->cur);
		s = reader_model_undelete_one(r, r->cur);
		return s == STEP_GO ? view_open(r, r->cur) : s;
	case 'U':
		return reader_model_undelete_all(r);
	case 'H':
		return toggle_headers(r);
	case 's':
		return do_save(r);
	case '|':
		return do_pipe(r);
	case 'Q':
		return do_quit(r);
	case 'x':
		return STEP_DONE;
	}
	return STEP_GO;
}

static void
lost(struct reader *r)
{
	r->dropped = true;
	(void)str_fmt(r->status, sizeof(r->status), "Connection lost; a key "
	    "reconnects (marks kept), x leaves: %s",
	    r->c != NULL ? pop3c_errmsg(r->c) : "?");
}

/* Log in again through o->reconnect, with the terminal given back. */
static enum step
reconnect(struct reader *r)
{
	static const char msg[] = "postino: the connection was lost; "
	    "connecting again\n";
	struct pop3c *c;

	term_pause();
	(void)term_write(msg, sizeof(msg) - 1);
	r->c = NULL;		/* o->reconnect frees it */
	c = r->o->reconnect(r->o->arg);
	if (c == NULL)
		wait_enter("could not connect again");
	if (term_resume(r->err) < 0)
		return STEP_LOCAL;
	term_size(&r->rows, &r->cols);
	if (r->mode == MODE_VIEW && reader_view_rewrap(r) < 0)
		return STEP_LOCAL;
	r->clear = true;
	if (c == NULL) {
		(void)str_copy(r->status, sizeof(r->status), "Cannot "
		    "connect again. A key tries again (marks are kept); x "
		    "leaves, deleting nothing.");
		return STEP_GO;
	}
	r->c = c;
	r->dropped = false;
	if (r->mode == MODE_VIEW)
		view_close(r);		/* numbers may have moved */
	return reader_model_remap(r);
}

/* A key while the session is gone: x leaves, any other reconnects. */
static enum step
dropped_key(struct reader *r, int k)
{
	enum step s;

	if (k == 'x')
		return STEP_DONE;
	s = reconnect(r);
	if (s == STEP_SESSION) {
		lost(r);
		return STEP_GO;
	}
	return s;
}

static enum step
run(struct reader *r)
{
	for (;;) {
		enum step s;
		int k;

		s = STEP_GO;
		if (r->mode == MODE_LIST) {
			reader_view_keep_visible(r);
			if (!r->dropped)
				s = reader_model_load_rows(r, r->top,
				    (size_t)reader_view_page_rows(r));
		}
		if (s == STEP_SESSION && r->o->reconnect != NULL) {
			lost(r);
			s = STEP_GO;
		}
		if (s != STEP_GO)
			return s;
		if (reader_view_draw(r) < 0)
			return STEP_LOCAL;
		k = term_key(READER_KEEPALIVE_MS);
		if (k == TERM_KEY_TIMEOUT) {
			uint32_t n;
			uint64_t size;

			if (!r->dropped && pop3c_stat(r->c, &n, &size) < 0 &&
			    !pop3c_usable(r->c)) {
				if (r->o->reconnect == NULL)
					return STEP_SESSION;
				lost(r);
			}
			continue;
		}
		if (k == TERM_KEY_RESIZE) {
			term_size(&r->rows, &r->cols);
			if (r->mode == MODE_VIEW && reader_view_rewrap(r) < 0)
				return STEP_LOCAL;
			continue;
		}
		if (k == TERM_KEY_EOF)
			return STEP_DONE;	/* like x: no QUIT */
		if (k < 0) {
			(void)str_fmt(r->err, sizeof(r->err), "terminal: %s",
			    strerror(errno));
			return STEP_LOCAL;
		}
		r->status[0] = '\0';
		if (r->help) {
			r->help = false;	/* any key leaves the help */
			continue;
		}
		if (k == KEY_CTRL_L) {
			r->clear = true;
			continue;
		}
		if (k == '?') {
			r->help = true;
			continue;
		}
		if (r->dropped)
			s = dropped_key(r, k);
		else if (k == '/' || k == 'N')
			s = do_search(r, k == '/');
		else
			s = r->mode == MODE_LIST ? list_key(r, k) :
			    view_key(r, k);
		if (s == STEP_SESSION && r->o->reconnect != NULL) {
			lost(r);
			s = STEP_GO;
		}
		if (s != STEP_GO)
			return s;
	}
}

int
reader_main(struct pop3c *c, const struct reader_opts *o)
{
	struct reader r = { .c = c, .o = o, .mode = MODE_LIST,
	    .umask = o->umask };
	enum step s;

	if (!term_is_tty()) {
		fprintf(stderr, "postino: read needs a terminal\n");
		return 1;
	}
	(void)setlocale(LC_CTYPE, "");
	r.codeset = nl_langinfo(CODESET);
	mime_init();
	s = reader_model_start(&r, o);
	if (s == STEP_GO && term_open(r.err) < 0)
		s = STEP_LOCAL;
	if (s == STEP_GO) {
		term_size(&r.rows, &r.cols);
		s = run(&r);
	}
	term_close();
	reader_model_free_entries(&r.e, r.n);
	reader_model_forget(&r);
	free(r.text);
	free(r.row);
	free(r.f.p);
	free(r.title);
	mime_shutdown();
	switch (s) {
	case STEP_SESSION:
		return -1;
	case STEP_LOCAL:
		fprintf(stderr, "postino: %s\n", r.err);
		return 1;
	default:
		if (r.committed > 0)
			fprintf(stderr, "postino: %zu message%s deleted on "
			    "%s\n", r.committed, r.committed == 1 ? "" : "s",
			    o->where);
		return 0;
	}
}
