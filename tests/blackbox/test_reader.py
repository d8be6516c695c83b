"""`postino read`, the interactive reader, driven in tmux against postinod.

Each test runs postino in its own tmux server (its own socket, no user
config) in a 100x30 window, sends keys, and reads the screen with
capture-pane. Everything the program writes to the terminal is also
recorded (pipe-pane), so a test can prove that no escape sequence from
mail ever reached it. A wrapper script records the exit status and the
terminal's mode (stty -a) after postino ends, and then waits, so the test
can also ask tmux whether the alternate screen was left. Every wait is
bounded; loopback only.
"""

import os
import re
import shlex
import shutil
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import clients_helpers as ch
from conftest import BUILD, SANITIZER_MARKS

POSTINO = os.path.join(BUILD, "postino")
TMUX = shutil.which("tmux")
USER, PASSWORD = ch.USER, ch.PASSWORD
WAIT = 15           # seconds for anything to show up on the screen

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


def crlf(text):
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


PLAIN = crlf(b"From: Alice Example <alice@example.org>\n"
             b"To: Bob <bob@example.org>\n"
             b"Subject: Hello there\n"
             b"Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
             b"\n"
             b"First line of the plain message.\n"
             b"Second line.\n")

LATIN1 = crlf(b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\n"
              b"To: bob@example.org\n"
              b"Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\n"
              b"Date: Wed, 15 Nov 2023 08:00:00 +0100\n"
              b"MIME-Version: 1.0\n"
              b"Content-Type: text/plain; charset=ISO-8859-1\n"
              b"Content-Transfer-Encoding: quoted-printable\n"
              b"\n"
              b"Caf=E9 cr=E8me br=FBl=E9e\n")

# Escape sequences that would retitle the window, clear the screen, leave
# the alternate screen, colour text, ring the bell; raw and encoded, in
# headers and body, plus a C1 CSI (U+009B) in UTF-8 and a bidi override.
HOSTILE = crlf(b"From: \"Mallory\x1b[2J\" <m@example.org>\n"
               b"To: bob@example.org\n"
               b"Subject: =?utf-8?q?evil=1B]0;pwned=07?= \x1b[5mblink\n"
               b"Date: Thu, 16 Nov 2023 10:00:00 +0000\n"
               b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: quoted-printable\n"
               b"\n"
               b"Body =1B[31mRED=1B[0m and =1B[?1049l and =07 bell\n"
               b"C1 =C2=9B31m and =E2=80=AEreversed\n"
               b"raw \x1b]2;title2\x07 end\n")

ATTACH = crlf(b"From: carol@example.org\n"
              b"To: bob@example.org\n"
              b"Subject: The report\n"
              b"Date: Fri, 17 Nov 2023 12:00:00 +0000\n"
              b"MIME-Version: 1.0\n"
              b"Content-Type: multipart/mixed; boundary=\"mix\"\n"
              b"\n"
              b"--mix\n"
              b"Content-Type: text/plain; charset=us-ascii\n"
              b"\n"
              b"The report is attached.\n"
              b"--mix\n"
              b"Content-Type: application/pdf; name=\"report.pdf\"\n"
              b"Content-Disposition: attachment; filename=\"report.pdf\"\n"
              b"Content-Transfer-Encoding: base64\n"
              b"\n"
              b"AAECAwQFBgcICQ==\n"
              b"--mix--\n")

LONG = crlf(b"From: dave@example.org\n"
            b"To: bob@example.org\n"
            b"Subject: A long one\n"
            b"Date: Sat, 18 Nov 2023 12:00:00 +0000\n"
            b"\n"
            + b"".join(b"line %03d of the long message\n" % i
                       for i in range(1, 201))
            + b" ".join(b"word%02d" % i for i in range(1, 31)) + b"\n")

MESSAGES = [PLAIN, LATIN1, HOSTILE, ATTACH, LONG]
SUBJECTS = [b"Hello there", b"Caf", b"evil", b"The report", b"A long one"]

# The only escape sequences the reader itself sends: cursor moves, erase,
# attributes, the alternate screen and the cursor's visibility.
OUR_ESC = re.compile(rb"\x1b\[[0-9;?]*[HJKmhl]")


class Reader:
    """postino read in a private tmux server."""

    def __init__(self, port, lang="C.UTF-8", rows=30, cols=100,
                 extra_env=None):
        self.dir = tempfile.mkdtemp(prefix="postino-reader-")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "tmux.sock")
        self.f = {n: os.path.join(self.dir, n)
                  for n in ("go", "rc", "stty", "err", "out", "end", "cont")}
        env = {"POSTINO_PASSWORD": PASSWORD, "LANG": lang, "LC_ALL": lang,
               "HOME": self.dir, "XDG_CONFIG_HOME": self.dir,
               "XDG_STATE_HOME": self.dir,
               "ASAN_OPTIONS": "detect_leaks=1",
               "UBSAN_OPTIONS": "print_stacktrace=1"}
        env.update(extra_env or {})
        cmd = ["env"] + ["%s=%s" % kv for kv in env.items()] + [
            POSTINO, "read", "--tls=no", "--timeout=20",
            "%s@127.0.0.1:%d" % (USER, port)]
        q = {k: shlex.quote(v) for k, v in self.f.items()}
        script = os.path.join(self.dir, "run.sh")
        with open(script, "w") as f:
            # Job control, as in an interactive shell: postino runs in its
            # own process group in the foreground, so ^Z can stop it (the
            # kernel does not stop an orphaned group) and `fg` resumes it.
            # bash ends itself when its job dies of SIGINT unless INT is
            # trapped; a handler, unlike an ignore, is not inherited.
            f.write(
                "set -m\n"
                "trap : INT\n"
                "i=0\n"
                "while [ ! -e {go} ] && [ $i -lt 600 ]; do"
                " sleep 0.02; i=$((i+1)); done\n"
                "{cmd} 2>{err}\n"
                "st=$?\n"
                "while [ $st -eq 148 ]; do\n"
                "  i=0\n"
                "  while [ ! -e {cont} ] && [ $i -lt 600 ]; do"
                " sleep 0.05; i=$((i+1)); done\n"
                "  rm -f {cont}\n"
                "  fg >/dev/null\n"
                "  st=$?\n"
                "done\n"
                "echo $st > {rc}.tmp\n"
                "stty -a > {stty} 2>&1\n"
                "mv {rc}.tmp {rc}\n"
                "i=0\n"
                "while [ ! -e {end} ] && [ $i -lt 600 ]; do"
                " sleep 0.05; i=$((i+1)); done\n".format(
                    cmd=" ".join(shlex.quote(c) for c in cmd), **q))
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "r",
                  "-x", str(cols), "-y", str(rows), "bash " + script)
        self.tmux("set-option", "-t", "r", "status", "off")
        self.tmux("pipe-pane", "-t", "r", "-o",
                  "cat >> " + shlex.quote(self.f["out"]))
        self.pane_tty = self.tmux("display-message", "-p", "-t", "r",
                                  "#{pane_tty}").strip()
        open(self.f["go"], "w").close()

    def tmux(self, *args):
        cp = subprocess.run([TMUX, "-u", "-S", self.sock] + list(args),
                            capture_output=True, timeout=10)
        assert cp.returncode == 0, (args, cp.stderr)
        return cp.stdout.decode("utf-8", "replace")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "r")

    def lines(self):
        return self.screen().split("\n")

    def wait_for(self, text, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if text in s:
                return s
            if os.path.exists(self.f["rc"]):
                pytest.fail("postino ended (status %s) before showing %r;"
                            " stderr: %s" % (self.read("rc"), text,
                                             self.read("err")))
            if time.monotonic() > deadline:
                pytest.fail("%r not on the screen within %ds:\n%s"
                            % (text, timeout, s))
            time.sleep(0.05)

    def wait_gone(self, text, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if text not in s:
                return s
            if time.monotonic() > deadline:
                pytest.fail("%r still on the screen after %ds:\n%s"
                            % (text, timeout, s))
            time.sleep(0.05)

    def keys(self, *keys):
        """Each argument one key: a tmux key name (Enter, Down, NPage,
        C-c) or a literal string."""
        for k in keys:
            if len(k) == 1 or k in ("Enter", "Up", "Down", "Left", "Right",
                                    "NPage", "PPage", "Home", "End",
                                    "Space", "Escape", "C-c", "C-z", "C-l",
                                    "C-u"):
                self.tmux("send-keys", "-t", "r", k)
            else:
                self.tmux("send-keys", "-t", "r", "-l", k)

    def read(self, name):
        try:
            with open(self.f[name], "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    def raw_output(self):
        with open(self.f["out"], "rb") as f:
            return f.read()

    def exit_status(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.f["rc"]):
            if time.monotonic() > deadline:
                pytest.fail("postino did not exit:\n" + self.screen())
            time.sleep(0.05)
        return int(self.read("rc").strip())

    def alternate_on(self):
        return self.tmux("display-message", "-p", "-t", "r",
                         "#{alternate_on}").strip()

    def stty_now(self):
        cp = subprocess.run(["stty", "-F", self.pane_tty, "-a"],
                            capture_output=True, timeout=10)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.decode()

    def postino_pid(self):
        """The postino process: a child of the pane's shell."""
        sh = int(self.tmux("display-message", "-p", "-t", "r",
                           "#{pane_pid}").strip())
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                except OSError:
                    continue
                fields = st.rpartition(")")[2].split()
                if int(fields[1]) == sh and "postino" in st:
                    return int(d)
            time.sleep(0.05)
        pytest.fail("no postino process under the pane")

    def assert_clean_exit(self):
        """After postino ended: cooked mode, normal screen, no sanitizer
        report."""
        self.exit_status()
        stty = self.read("stty")
        assert re.search(r"(^|\s)icanon(\s|$)", stty), stty
        assert re.search(r"(^|\s)echo(\s|$)", stty), stty
        assert self.alternate_on() == "0"
        err = self.read("err") or ""
        for mark in SANITIZER_MARKS:
            assert mark not in err, err[-4000:]

    def close(self):
        if not os.path.isdir(self.dir):
            return
        try:
            open(self.f["end"], "w").close()
            subprocess.run([TMUX, "-S", self.sock, "kill-server"],
                           capture_output=True, timeout=10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server(mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    for i, m in enumerate(MESSAGES):
        mailroot.deliver_maildir(USER, m, name="17000000%02d.M%dP1.test"
                                 % (i, i))
    return postinod()


@pytest.fixture
def reader(server):
    made = []

    def start(**kw):
        r = Reader(server.port, **kw)
        made.append(r)
        return r

    yield start
    for r in made:
        r.close()


def stat(srv):
    p = srv.login(USER, PASSWORD)
    try:
        n, size = p.stat()
        p.quit()
    finally:
        p.close()
    return n, size


def subjects_left(mailroot):
    files = mailroot.maildir_files(USER)
    return sorted(s for s in SUBJECTS
                  if any(s in data for _, data in files.values()))


def row_of(screen, text):
    for line in screen.split("\n"):
        if text in line:
            return line
    return None


# ---------------------------------------------------------------------------


def test_read_needs_a_terminal():
    cp = subprocess.run([POSTINO, "read", "--tls=no", "alice@127.0.0.1:1"],
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=30, env=dict(os.environ,
                                             POSTINO_PASSWORD="x"))
    assert cp.returncode == 1
    assert b"postino: read needs a terminal" in cp.stderr


def test_list_shows_stat_and_headers(server, reader):
    n, size = stat(server)
    r = reader()
    s = r.wait_for("%d messages, %d octets" % (n, size))
    s = r.wait_for("A long one")
    lines = s.split("\n")
    first = row_of(s, "Hello there")
    assert first.startswith(">  1  2023-11-14 22:13  Alice Example"), s
    assert "Andr\u00e9" in row_of(s, "Caf\u00e9 au lait")
    assert row_of(s, "The report").startswith("   4  2023-11-17 12:00  "
                                              "carol@example.org")
    # Sizes as LIST gives them, right-aligned at the end of the row.
    assert row_of(s, "A long one").rstrip().endswith(" %d" % len(LONG))
    assert "q quit" in lines[-1] or "q quit" in s
    r.keys("q")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert stat(server) == (n, size)


def test_view_pages_and_moves(server, reader):
    r = reader()
    r.wait_for("Hello there")
    r.keys("Enter")
    s = r.wait_for("First line of the plain message.")
    assert "From: Alice Example <alice@example.org>" in s
    assert "To: Bob <bob@example.org>" in s
    assert "Date: Tue, 14 Nov 2023 22:13:20 +0000" in s
    assert "Subject: Hello there" in s
    r.keys("n")
    s = r.wait_for("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")
    assert "Subject: Caf\u00e9 au lait" in s
    assert "From: Andr\u00e9 <andre@example.org>" in s
    r.keys("n", "n")
    s = r.wait_for("[attachment 1] report.pdf (10 bytes, application/pdf)")
    assert "The report is attached." in s
    r.keys("n")
    s = r.wait_for("line 001 of the long message")
    assert "line 030 of" not in s
    r.keys("Space")
    s = r.wait_for("line 030 of the long message")
    assert "line 001 of" not in s
    r.keys("b")
    r.wait_for("line 001 of the long message")
    r.keys("NPage")
    r.wait_for("line 030 of the long message")
    r.keys("PPage")
    r.wait_for("line 001 of the long message")
    r.keys("G")
    s = r.wait_for("word30")
    assert "line 200 of the long message" in s
    assert "line 001 of" not in s
    r.keys("g")
    r.wait_for("Subject: A long one")
    r.keys("j")
    s = r.wait_gone("From: dave@example.org")
    r.keys("k")
    r.wait_for("From: dave@example.org")
    r.keys("n")
    r.wait_for("No next message.")
    r.keys("p")
    r.wait_for("The report is attached.")
    # Back to the list, where the cursor is on the message last shown.
    r.keys("q")
    s = r.wait_for("messages,")
    assert row_of(s, "The report").startswith(">"), s
    r.keys("Left")          # nothing in the list; still there
    r.keys("k", "Right")
    r.wait_for("evil")
    r.keys("Left")
    s = r.wait_for("messages,")
    r.keys("q")
    assert r.exit_status() == 0
    r.assert_clean_exit()


def test_mail_cannot_send_escape_sequences(server, reader):
    r = reader()
    s = r.wait_for("evil")
    row = row_of(s, "evil")
    assert "Mallory^[[2J" in row
    assert "evil^[]0;pwned^G ^[[5mblink" in row
    r.keys("j", "j", "Enter")
    s = r.wait_for("Body ^[[31mRED^[[0m and ^[[?1049l and ^G bell")
    assert "C1 ?31m and ?reversed" in s
    assert "raw ^[]2;title2^G end" in s
    assert 'From: "Mallory^[[2J" <m@example.org>' in s or \
        "From: Mallory^[[2J <m@example.org>" in s
    assert r.tmux("display-message", "-p", "-t", "r",
                  "#{pane_title}").strip() not in ("pwned", "title2")
    r.keys("q")
    r.wait_for("messages,")
    r.keys("x")
    r.assert_clean_exit()
    out = r.raw_output()
    assert b"pwned" in out                  # it was drawn, visibly
    assert b"\x07" not in out
    assert b"\xc2\x9b" not in out
    assert "\u202e".encode() not in out
    for m in re.finditer(rb"\x1b", out):
        assert OUR_ESC.match(out, m.start()), out[m.start():m.start() + 20]


def test_c_locale_gets_question_marks(server, reader):
    r = reader(lang="C")
    s = r.wait_for("Caf? au lait")
    assert "Andr? " in s
    r.keys("j", "Enter")
    s = r.wait_for("Caf? cr?me br?l?e")
    r.keys("x")
    r.assert_clean_exit()
    assert b"\xc3" not in r.raw_output()


def test_delete_asks_and_quit_commits(server, reader, mailroot):
    n, size = stat(server)
    r = reader()
    s = r.wait_for("Hello there")
    r.keys("d")
    s = r.wait_for("marked for deletion")
    assert row_of(s, "Hello there").startswith(" D 1"), s
    assert row_of(s, "Caf\u00e9").startswith(">  2"), s
    assert "5 messages, %d octets, 1 marked for deletion" % size in s
    r.keys("q")
    r.wait_for("Delete 1 marked message on the server? y = delete and quit")
    r.keys("y")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert "1 message deleted" in r.read("err")
    assert stat(server) == (n - 1, size - len(PLAIN))
    assert b"Hello there" not in subjects_left(mailroot)
    assert len(subjects_left(mailroot)) == 4


def test_delete_in_view_then_answer_no(server, reader, mailroot):
    r = reader()
    r.wait_for("Hello there")
    r.keys("G", "Enter")
    r.wait_for("line 001 of the long message")
    r.keys("d")
    s = r.wait_for("[marked for deletion]")
    r.keys("q")
    s = r.wait_for("1 marked for deletion")
    assert row_of(s, "A long one").startswith(">D 5"), s
    # Any other key at the question goes back to the list.
    r.keys("q")
    r.wait_for("Delete 1 marked message on the server?")
    r.keys("Escape")
    r.wait_for("Not quitting.")
    r.keys("q")
    r.wait_for("n = quit and keep them all, c/Esc = back")
    r.keys("n")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert len(subjects_left(mailroot)) == 5


def test_undelete_all_with_rset(server, reader, mailroot):
    r = reader()
    r.wait_for("Hello there")
    r.keys("d", "d")
    s = r.wait_for("2 marked for deletion")
    assert row_of(s, "Hello there").startswith(" D")
    r.keys("U")
    s = r.wait_for("(RSET)")
    assert "marked for deletion" not in s.split("\n")[0]
    assert not row_of(s, "Hello there").startswith(" D")
    # A deleted message cannot be shown; the view says why.
    r.keys("g", "d", "g", "Enter")
    r.wait_for("Message 1 is marked for deletion")
    r.keys("q", "U", "q")       # nothing marked: no question
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert len(subjects_left(mailroot)) == 5


def test_x_leaves_without_quit(server, reader, mailroot):
    n, size = stat(server)
    r = reader()
    r.wait_for("Hello there")
    r.keys("d", "d", "d")
    r.wait_for("3 marked for deletion")
    r.keys("x")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    # No QUIT, no UPDATE state: nothing deleted (RFC 1939 sec. 6).
    deadline = time.monotonic() + WAIT
    while True:
        try:
            got = stat(server)
            break
        except Exception:           # [IN-USE] until the server notices
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert got == (n, size)
    assert len(subjects_left(mailroot)) == 5


def test_resize_relayouts(server, reader):
    r = reader()
    r.wait_for("Hello there")
    r.keys("G", "Enter", "G")
    s = r.wait_for("word30")
    # 100 columns: the 30 words (209 characters) take three rows.
    wrapped = [ln for ln in s.split("\n") if ln.startswith("word")]
    assert len(wrapped) == 3, s
    assert all(len(ln) <= 100 for ln in s.split("\n"))
    r.tmux("resize-window", "-t", "r", "-x", "50", "-y", "20")
    # The row at the top stays at the top; the status line moves up.
    deadline = time.monotonic() + WAIT
    while True:
        s = r.screen()
        lines = s.rstrip("\n").split("\n")
        if len(lines) == 20 and lines[-1].startswith("-- more --"):
            break
        if time.monotonic() > deadline:
            pytest.fail("no re-layout at 50x20:\n" + s)
        time.sleep(0.05)
    assert lines[1] == "line 176 of the long message", s
    r.keys("G")
    deadline = time.monotonic() + WAIT
    while True:
        s = r.screen()
        lines = s.rstrip("\n").split("\n")
        wrapped = [ln for ln in lines if ln.startswith("word")]
        if len(wrapped) == 5:
            break
        if time.monotonic() > deadline:
            pytest.fail("no re-wrap at 50 columns:\n" + s)
        time.sleep(0.05)
    assert all(len(ln.rstrip()) <= 50 for ln in lines), s
    # Words are not cut.
    assert all(re.fullmatch(r"(word\d\d ?)+", ln.rstrip())
               for ln in wrapped), wrapped
    r.keys("q")
    s = r.wait_for("messages,")
    assert all(len(ln.rstrip()) <= 50 for ln in s.split("\n")), s
    r.keys("q")
    assert r.exit_status() == 0
    r.assert_clean_exit()


def test_sigterm_and_ctrl_c_restore_the_terminal(server, reader, mailroot):
    for how in ("SIGTERM", "C-c"):
        r = reader()
        r.wait_for("Hello there")
        r.keys("d")
        r.wait_for("1 marked for deletion")
        stty = r.stty_now()
        assert "-icanon" in stty and "-echo " in stty, stty
        assert r.alternate_on() == "1"
        if how == "SIGTERM":
            os.kill(r.postino_pid(), signal.SIGTERM)
        else:
            r.keys("C-c")
        status = r.exit_status()
        assert status == 128 + (signal.SIGTERM if how == "SIGTERM"
                                else signal.SIGINT), status
        r.assert_clean_exit()
        r.close()
    # Killed without QUIT: nothing deleted.
    deadline = time.monotonic() + WAIT
    while True:
        try:
            n, _ = stat(server)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert n == 5


def test_suspend_and_resume(server, reader):
    r = reader()
    r.wait_for("Hello there")
    pid = r.postino_pid()
    r.keys("C-z")
    deadline = time.monotonic() + WAIT
    while True:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
        if state == "T":
            break
        if time.monotonic() > deadline:
            pytest.fail("postino did not stop on ^Z (state %s)" % state)
        time.sleep(0.05)
    stty = r.stty_now()
    assert re.search(r"(^|\s)icanon(\s|$)", stty), stty
    assert r.alternate_on() == "0"
    assert "Hello there" not in r.screen()
    open(r.f["cont"], "w").close()        # the script runs fg
    r.wait_for("Hello there")
    deadline = time.monotonic() + WAIT
    while "-icanon" not in r.stty_now():
        if time.monotonic() > deadline:
            pytest.fail("raw mode not back after SIGCONT")
        time.sleep(0.05)
    assert r.alternate_on() == "1"
    r.keys("j", "Enter")
    r.wait_for("Caf\u00e9 cr\u00e8me")
    r.keys("Q")
    assert r.exit_status() == 0
    r.assert_clean_exit()


def test_empty_mailbox(mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    srv = postinod()
    r = Reader(srv.port)
    try:
        s = r.wait_for("0 messages, 0 octets")
        assert "(no messages)" in s
        r.keys("Enter", "d", "j", "q")
        assert r.exit_status() == 0
        r.assert_clean_exit()
    finally:
        r.close()


def test_message_over_the_limit_is_refused_not_loaded(mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    mailroot.deliver_maildir(USER, PLAIN)
    big = crlf(b"From: eve@example.org\nSubject: Huge\n\n") + \
        (b"x" * 998 + b"\r\n") * (33 * 1024 + 100)
    mailroot.deliver_maildir(USER, big)
    srv = postinod()
    r = Reader(srv.port)
    try:
        s = r.wait_for("Huge")
        assert row_of(s, "Huge").rstrip().endswith(" 33M"), s
        r.keys("j", "Enter")
        s = r.wait_for("too large to show here (the limit is 32 MiB)")
        r.keys("p")
        r.wait_for("First line of the plain message.")
        r.keys("q", "q")
        assert r.exit_status() == 0
        r.assert_clean_exit()
    finally:
        r.close()


# ---------------------------------------------------------------------------
# Issue 13, finding 8: HTML, attachments, headers, search, help, quit,
# undelete, reconnect.

HTML_ONLY = crlf(b"From: Shop <noreply@shop.example>\n"
                 b"To: bob@example.org\n"
                 b"Subject: Reset your password\n"
                 b"Date: Sun, 19 Nov 2023 12:00:00 +0000\n"
                 b"MIME-Version: 1.0\n"
                 b"Content-Type: text/html; charset=utf-8\n"
                 b"\n"
                 b"<html><head><style>p{}</style></head><body>"
                 b"<script>evil()</script>"
                 b"<p>To reset it <a href=\"https://shop.example/r?t=abc"
                 b"&amp;u=7\">click here</a>&hellip; &mdash; it&rsquo;s "
                 b"easy.</p><table><tr><td>Name</td><td>Value</td></tr>"
                 b"<tr><td>Order</td><td>42</td></tr></table>"
                 b"<p>esc &#27;]0;pwned&#7; &#x1b;[2J end</p>"
                 b"</body></html>\n")


def assert_only_our_escapes(r):
    out = r.raw_output()
    assert b"\x07" not in out
    for m in re.finditer(rb"\x1b", out):
        assert OUR_ESC.match(out, m.start()), out[m.start():m.start() + 20]


@pytest.fixture
def own(mailroot, postinod):
    """A reader on a mailbox of the test's own messages."""
    made = []

    def start(msgs, **kw):
        mailroot.add_user(USER, PASSWORD)
        for i, m in enumerate(msgs):
            mailroot.deliver_maildir(USER, m, name="17100000%02d.M%dP1.t"
                                     % (i, i))
        srv = postinod()
        r = Reader(srv.port, **kw)
        made.append(r)
        return r, srv

    yield start
    for r in made:
        r.close()


def test_html_builtin_keeps_links_cells_entities(own):
    r, _ = own([HTML_ONLY], extra_env={"POSTINO_HTML": "builtin"})
    r.wait_for("Reset your password")
    r.keys("Enter")
    s = r.wait_for("[HTML shown as text by built-in]")
    assert "To reset it click here [1]\u2026 \u2014 it\u2019s easy." in s, s
    assert "Name | Value" in s and "Order | 42" in s, s
    assert "[1] https://shop.example/r?t=abc&u=7" in s, s
    assert "evil()" not in s and "p{}" not in s
    assert "esc ^[]0;pwned^G ^[[2J end" in s, s
    r.keys("x")
    r.assert_clean_exit()
    assert_only_our_escapes(r)


@pytest.mark.skipif(shutil.which("w3m") is None, reason="no w3m")
def test_html_through_w3m_lists_links(own):
    r, _ = own([HTML_ONLY])
    r.wait_for("Reset your password")
    r.keys("Enter")
    s = r.wait_for("[HTML shown as text by w3m]")
    assert "[1]click here" in s, s
    assert "[1] https://shop.example/r?t=abc&u=7" in s, s
    assert "evil()" not in s
    assert "pwned" in s
    r.keys("x")
    r.assert_clean_exit()
    assert_only_our_escapes(r)


def test_quit_prompt_says_what_each_key_does(server, reader, mailroot):
    r = reader()
    r.wait_for("Hello there")
    r.keys("d", "d", "d")
    r.wait_for("3 marked for deletion")
    r.keys("q")
    s = r.wait_for("Delete 3 on the server? y = delete, quit  n = quit, "
                   "keep all  c/Esc = back")
    r.keys("c")
    r.wait_for("Not quitting.")
    r.tmux("resize-window", "-t", "r", "-x", "120", "-y", "30")
    r.wait_for("Not quitting.")
    r.keys("q")
    s = r.wait_for("Delete 3 marked messages on the server? y = delete and "
                   "quit, n = quit and keep them all, c/Esc = back")
    r.keys("c")
    r.wait_for("Not quitting.")
    r.keys("q")
    r.wait_for("c/Esc = back")
    r.keys("n")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert len(subjects_left(mailroot)) == 5


def test_undelete_one_keeps_the_other_marks(server, reader, mailroot):
    n, size = stat(server)
    r = reader()
    r.wait_for("Hello there")
    r.keys("d", "d", "d")
    r.wait_for("3 marked for deletion")
    r.keys("k", "u")                    # message 3 only
    s = r.wait_for("Message 3 is not marked for deletion now.")
    assert "2 marked for deletion" in s
    assert row_of(s, "Hello there").startswith(" D"), s
    assert row_of(s, "Caf\u00e9").startswith(" D"), s
    assert row_of(s, "evil").startswith(">  3"), s
    # In the view of a marked message, u unmarks it and shows it.
    r.keys("g", "Enter")
    r.wait_for("Message 1 is marked for deletion; u undeletes it.")
    r.keys("u")
    r.wait_for("First line of the plain message.")
    r.keys("q", "q")
    r.wait_for("Delete 1 marked message")
    r.keys("y")
    assert r.exit_status() == 0
    r.assert_clean_exit()
    assert stat(server) == (n - 1, size - len(LATIN1))


def test_help_screen_lists_the_keys(server, reader):
    r = reader()
    r.wait_for("Hello there")
    assert "? help" in r.screen()
    r.keys("?")
    s = r.wait_for("postino read: keys")
    for key in ("u                 unmark this message", "/", "N  the next "
                "match", "H ", "s ", "|", "x "):
        assert key in s, (key, s)
    r.keys("j")                         # any key leaves; j does not move
    s = r.wait_for("messages,")
    assert row_of(s, "Hello there").startswith(">"), s
    r.keys("Enter", "?")
    r.wait_for("postino read: keys")
    r.keys("Space")
    r.wait_for("First line of the plain message.")
    r.keys("x")
    r.assert_clean_exit()


def test_full_header_toggle(server, reader):
    r = reader()
    r.wait_for("Hello there")
    r.keys("j", "j", "Enter")
    s = r.wait_for("Body ^[[31mRED")
    assert "Content-Transfer-Encoding" not in s
    r.keys("H")
    s = r.wait_for("Content-Transfer-Encoding: quoted-printable")
    assert "MIME-Version: 1.0" in s
    # Raw, so the encoded word is shown as sent; the raw ESC made visible.
    assert "Subject: =?utf-8?q?evil=1B]0;pwned=07?= ^[[5mblink" in s, s
    assert "Body ^[[31mRED" in s
    r.keys("H")
    s = r.wait_gone("MIME-Version: 1.0")
    assert "Subject: evil" in s
    r.keys("x")
    r.assert_clean_exit()
    for m in re.finditer(rb"\x1b", r.raw_output()):
        assert OUR_ESC.match(r.raw_output(), m.start())


def wait_cursor(r, text):
    """Wait until the list's cursor is on the row with text."""
    deadline = time.monotonic() + WAIT
    while True:
        s = r.screen()
        row = row_of(s, text)
        if row is not None and row.startswith(">"):
            return s
        if time.monotonic() > deadline:
            pytest.fail("the cursor is not on %r:\n%s" % (text, s))
        time.sleep(0.05)


def wait_top(r, text):
    """Wait until the view's first text row is text."""
    deadline = time.monotonic() + WAIT
    while True:
        s = r.screen()
        if s.split("\n")[1] == text:
            return s
        if time.monotonic() > deadline:
            pytest.fail("%r not the top row:\n%s" % (text, s))
        time.sleep(0.05)


def test_search_list_and_view(server, reader):
    r = reader()
    r.wait_for("Hello there")
    r.keys("/")
    r.wait_for("Search for:")
    r.keys("REPORT", "Enter")               # case does not matter
    wait_cursor(r, "The report")
    r.keys("/", "alice", "Enter")           # the sender; wraps around
    wait_cursor(r, "Hello there")
    r.keys("/", "nowhere", "Enter")
    r.wait_for("Not found: nowhere")
    r.keys("/", "Escape")                   # cancelled: nothing changes
    s = r.wait_gone("Search for:")
    assert row_of(s, "Hello there").startswith(">"), s
    r.keys("G", "Enter")
    r.wait_for("line 001 of the long message")
    r.keys("/", "line 150", "Enter")
    wait_top(r, "line 150 of the long message")
    r.keys("/", "of the long", "Enter")     # the next after the top
    wait_top(r, "line 151 of the long message")
    r.keys("N")
    wait_top(r, "line 152 of the long message")
    # The matches are shown in reverse video.
    assert b"line 152 \x1b[7mof the long\x1b[m message" in r.raw_output()
    r.keys("x")
    r.assert_clean_exit()


HOSTILE_NAME = crlf(b"From: eve@example.org\n"
                    b"To: bob@example.org\n"
                    b"Subject: Two files\n"
                    b"MIME-Version: 1.0\n"
                    b"Content-Type: multipart/mixed; boundary=\"b\"\n"
                    b"\n"
                    b"--b\n"
                    b"Content-Type: text/plain\n"
                    b"\n"
                    b"Two files.\n"
                    b"--b\n"
                    b"Content-Type: text/plain\n"
                    b"Content-Disposition: attachment; filename=\"a.txt\"\n"
                    b"\n"
                    b"first\n"
                    b"--b\n"
                    b"Content-Type: application/octet-stream\n"
                    b"Content-Disposition: attachment;"
                    b" filename=\"../../.profile\"\n"
                    b"Content-Transfer-Encoding: base64\n"
                    b"\n"
                    b"ZWNobyBvd25lZAo=\n"
                    b"--b--\n")


def current_umask():
    m = os.umask(0o22)
    os.umask(m)
    return m


def test_save_attachment(server, reader):
    r = reader()
    r.wait_for("The report")
    r.keys("G", "k", "Enter")
    r.wait_for("[attachment 1] report.pdf")
    r.keys("s")
    r.wait_for("Save to file: report.pdf")      # the mail's name offered
    path = os.path.join(r.dir, "report.pdf")
    r.keys("C-u", path, "Enter")
    r.wait_for("Saved 10 bytes to " + path)
    with open(path, "rb") as f:
        assert f.read() == bytes(range(10))
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()
    # An existing file is replaced only after a yes.
    with open(path, "wb") as f:
        f.write(b"mine")
    r.keys("s", "C-u", path, "Enter")
    r.wait_for("exists: replace it? y = replace")
    r.keys("n")
    r.wait_for("Not saved.")
    with open(path, "rb") as f:
        assert f.read() == b"mine"
    r.keys("s", "C-u", path, "Enter")
    r.wait_for("exists: replace it?")
    r.keys("y")
    r.wait_for("Saved 10 bytes")
    with open(path, "rb") as f:
        assert f.read() == bytes(range(10))
    # Never through a symbolic link, even after a yes.
    target = os.path.join(r.dir, "target")
    link = os.path.join(r.dir, "link")
    os.symlink(target, link)
    r.keys("s", "C-u", link, "Enter")
    r.wait_for("exists: replace it?")
    r.keys("y")
    r.wait_for("a symbolic link; not saved")
    assert not os.path.exists(target)
    # ~/ is $HOME's.
    r.keys("s", "C-u", "~/home.pdf", "Enter")
    r.wait_for("Saved 10 bytes to %s/home.pdf" % r.dir)
    r.keys("x")
    r.assert_clean_exit()


def test_save_offers_no_path_from_the_mail(own, tmp_path):
    r, _ = own([HOSTILE_NAME])
    r.wait_for("Two files")
    r.keys("Enter")
    s = r.wait_for("[attachment 2] ../../.profile")
    r.keys("s")
    r.wait_for("Save attachment (1-2):")
    r.keys("2", "Enter")
    s = r.wait_for("Save to file: profile")
    r.keys("Escape")
    r.wait_for("Not saved.")
    r.keys("s", "7", "Enter")
    r.wait_for("No such attachment.")
    r.keys("x")
    r.assert_clean_exit()


def test_pipe_attachment(own):
    r, _ = own([HOSTILE_NAME])
    r.wait_for("Two files")
    r.keys("Enter")
    r.wait_for("[attachment 2]")
    out = os.path.join(r.dir, "piped")
    r.keys("|", "2", "Enter")
    r.wait_for("Pipe to command:")
    r.keys("cat > %s; echo done-by-sh; exit 3" % shlex.quote(out), "Enter")
    s = r.wait_for("[exit status 3; press Enter]")
    assert "done-by-sh" in s
    r.keys("Enter")
    r.wait_for("Command: exit status 3.")
    with open(out, "rb") as f:
        assert f.read() == b"echo owned\n"
    # A command that reads nothing: no SIGPIPE death, its status shown.
    r.keys("|", "1", "Enter", "true", "Enter")
    r.wait_for("[exit status 0; press Enter]")
    r.keys("Enter")
    r.wait_for("Command: exit status 0.")
    # ^C ends the command, not the reader.
    r.keys("|", "1", "Enter", "echo started; sleep 60", "Enter")
    r.wait_for("started")
    r.keys("C-c")
    r.wait_for("[killed by signal 2; press Enter]")
    r.keys("Enter")
    r.wait_for("Command: killed by signal 2.")
    r.keys("q")
    r.wait_for("messages,")
    r.keys("q")
    assert r.exit_status() == 0
    r.assert_clean_exit()


class CutProxy:
    """A loopback relay to postinod that can drop every connection it
    carries (cut) and refuse new ones (refuse), as a dying network does.
    Its threads end on close(); every wait in them is bounded."""

    def __init__(self, port):
        self.target = port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.pairs = []
        self.refuse = False
        self.done = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.done:
            try:
                c, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            if self.refuse:
                c.close()
                continue
            up = socket.create_connection(("127.0.0.1", self.target), 10)
            pair = [c, up]
            self.pairs.append(pair)
            t = threading.Thread(target=self._relay, args=(pair,),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _relay(self, pair):
        try:
            while not self.done:
                rd, _, _ = select.select(pair, [], [], 0.2)
                for sk in rd:
                    data = sk.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (pair[1] if sk is pair[0] else pair[0]).sendall(data)
        except (OSError, ValueError):
            pass
        for sk in pair:
            try:
                sk.close()
            except OSError:
                pass

    def cut(self):
        for pair in self.pairs:
            for sk in pair:
                try:
                    sk.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs = []

    def close(self):
        self.done = True
        self.cut()
        for t in self.threads:
            t.join(timeout=5)
        self.ls.close()


def last_line(s):
    lines = [ln for ln in s.split("\n") if ln.strip()]
    return lines[-1] if lines else ""


def wait_failed_or_back(r, timeout=WAIT):
    """The reader back on its screen after logging in again, or waiting
    for Enter after it could not: the last line of the normal screen
    (earlier attempts' lines stay above it)."""
    deadline = time.monotonic() + timeout
    while True:
        s = r.screen()
        if "Reconnected to" in s or last_line(s).endswith("press Enter]"):
            return s
        if os.path.exists(r.f["rc"]) or time.monotonic() > deadline:
            pytest.fail("no reconnect outcome (stderr %s):\n%s"
                        % (r.read("err"), s))
        time.sleep(0.05)


def reconnect(r, key="j"):
    """Press key until the reader is logged in again; the server may still
    hold the old session's lock ([IN-USE]) for a moment."""
    deadline = time.monotonic() + 4 * WAIT
    while True:
        r.keys(key)
        s = wait_failed_or_back(r)
        if "Reconnected to" in s:
            return s
        r.keys("Enter")
        r.wait_for("Cannot connect again.")
        if time.monotonic() > deadline:
            pytest.fail("no reconnect:\n" + s)
        time.sleep(0.3)


def test_reconnect_keeps_the_marks(server, mailroot):
    n, size = stat(server)
    proxy = CutProxy(server.port)
    r = Reader(proxy.port)
    try:
        r.wait_for("A long one")
        r.keys("d", "j", "d")               # 1 and 3 marked, cursor on 4
        s = r.wait_for("2 marked for deletion")
        assert row_of(s, "The report").startswith(">"), s
        proxy.cut()
        r.keys("Enter")                     # RETR finds the session gone
        s = r.wait_for("Connection lost")
        assert "x leaves" in s
        s = reconnect(r)
        assert "2 of 2 marks kept." in s, s
        assert "2 marked for deletion" in s, s
        assert row_of(s, "Hello there").startswith(" D"), s
        assert row_of(s, "evil").startswith(" D"), s
        assert row_of(s, "The report").startswith(">"), s
        # Gone again, and the server unreachable for a while.
        proxy.refuse = True
        proxy.cut()
        r.keys("Enter")
        r.wait_for("Connection lost")
        r.keys("j")
        s = wait_failed_or_back(r)
        assert last_line(s) == "[could not connect again; press Enter]", s
        r.keys("Enter")
        s = r.wait_for("Cannot connect again.")
        assert "2 marked for deletion" in s
        proxy.refuse = False
        reconnect(r)
        r.keys("q")
        r.wait_for("Delete 2 on the server?")
        r.keys("y")
        assert r.exit_status() == 0
        r.assert_clean_exit()
        assert "broken pipe" not in (r.read("err") or "").lower()
        assert stat(server) == (n - 2, size - len(PLAIN) - len(HOSTILE))
    finally:
        r.close()
        proxy.close()
