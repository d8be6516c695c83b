"""QUIT gives the mailbox back before its +OK (issue 11): a client that
checks mail twice in a row, reconnecting as soon as QUIT is answered, must
never be refused with [IN-USE], whichever mail worker of the pool gets the
second session, for both backends."""

import fcntl
import os

import pytest

USER, PASS = "alice", "secret"
ROUNDS = 10
# Big enough that tearing the session down takes a while: the race window.
MESSAGES = 3000


def lock_is_free(path):
    """Try the session lock the way a second session would (a classic
    fcntl lock conflicts with the server's OFD lock), without waiting."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # releases our lock at once
    return True


def fill_maildir(mailroot):
    md = mailroot.maildir(USER)
    data = b"From: a@example.org\nSubject: s\n\nbody\n"
    for i in range(MESSAGES):
        # Written straight into cur/: the test needs a big mailbox, fast.
        with open(os.path.join(md, "cur", "%d.M%dP1.test:2," % (
                1700000000 + i, i)), "wb") as f:
            f.write(data)
    return os.path.join(md, "postino-session.lock")


def fill_mbox(mailroot):
    msg = (b"From a@example.org Mon Jan  1 00:00:00 2024\n"
           b"From: a@example.org\nSubject: s\n\nbody\n\n")
    mailroot.write_mbox(USER, msg * MESSAGES)
    d, name = os.path.split(mailroot.mbox(USER))
    return os.path.join(d, "." + name + ".postino-lock")


@pytest.mark.parametrize("backend", ["maildir", "mbox"])
def test_back_to_back_sessions_never_see_in_use(mailroot, postinod, backend):
    mailroot.add_user(USER, PASS)
    if backend == "maildir":
        lock = fill_maildir(mailroot)
        srv = postinod(mail_workers=2)
    else:
        lock = fill_mbox(mailroot)
        srv = postinod(mailbox=mailroot.mbox_spec, mail_workers=2)
    held_after_ok = 0
    r = srv.raw(timeout=30)
    r.expect(b"+OK")
    for i in range(ROUNDS):
        reply = r.login(USER, PASS)
        assert reply.startswith(b"+OK Logged in"), (i, reply)
        if i % 2 == 1:
            # An UPDATE that deletes, so the lock covers a commit too.
            assert r.cmd(b"DELE %d" % (i + 1)).startswith(b"+OK")
        assert r.cmd(b"QUIT").startswith(b"+OK")
        # The lock must already be free when +OK arrives.
        if not lock_is_free(lock):
            held_after_ok += 1
        r.close()
        # ... and the next session at once must get the mailbox.
        r = srv.raw(timeout=30)
        r.expect(b"+OK")
    r.close()
    assert held_after_ok == 0, "%d of %d QUIT replies came before the " \
        "lock was released" % (held_after_ok, ROUNDS)
