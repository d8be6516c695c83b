"""mailbox = pgsql: DELE, QUIT and the end of the client's stream (a FIN,
over STLS close_notify then a FIN) in one burst while the session's
PostgreSQL steps are still pending: the QUIT was sent, so the deletion is
committed (RFC 1939 sec. 6) and QUIT answered, however long the database
takes (the session's peer_closed logic, src/server/session.c). The
database is made to wait by a trigger that sleeps on DELETE (the commit
is pending when the FIN is read) or by another transaction holding the
table (the RETR before them is pending too). Loopback only, every wait
bounded."""

import socket
import ssl
import threading
import time

import pytest

import conftest
from test_attack_io import BioTls
from test_pgsql_store import USER, PASS, db, insert, rows, server  # noqa
from test_tls import client_ctx

HOLD_S = 2      # how long the database keeps the session waiting


def login(srv, certs, mode):
    """A logged-in session over mode: the object to send and read on."""
    sock = socket.create_connection((srv.host, srv.port), timeout=20)
    p = conftest.Raw.__new__(conftest.Raw)
    p.sock, p.buf, p.eof = sock, b"", False
    p.expect(b"+OK")
    if mode == "plain":
        assert p.login(USER, PASS).startswith(b"+OK Logged in")
        return p
    assert p.cmd(b"STLS").startswith(b"+OK")
    r = BioTls(sock, client_ctx(certs))
    assert r.cmd(b"USER " + USER.encode()).startswith(b"+OK")
    assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK Logged")
    return r


def burst_then_close(r, mode, burst):
    if mode == "plain":
        r.send(burst)
        r.sock.shutdown(socket.SHUT_WR)
    else:
        r.send_then_close(burst)


def slow_delete(pg):
    pg.psql("CREATE FUNCTION postino_test_slow() RETURNS trigger AS "
            "$$ BEGIN PERFORM pg_sleep(%d); RETURN OLD; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER postino_test_slow BEFORE "
            "DELETE ON postino_message FOR EACH ROW EXECUTE FUNCTION "
            "postino_test_slow()" % HOLD_S)


def hold_table(pg):
    """Another transaction holds the table HOLD_S seconds; returns once
    it has it (the thread, to join)."""
    t = threading.Thread(target=pg.psql, args=(
        "BEGIN; LOCK TABLE postino_message IN ACCESS EXCLUSIVE MODE; "
        "SELECT pg_sleep(%d); COMMIT" % HOLD_S,), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while pg.psql("SELECT count(*) FROM pg_locks WHERE relation = "
                  "'postino_message'::regclass AND mode = "
                  "'AccessExclusiveLock' AND granted").strip() != "1":
        assert time.monotonic() < deadline, "the lock was not taken"
        time.sleep(0.02)
    return t


@pytest.mark.parametrize("mode", ["plain", "stls"])
@pytest.mark.parametrize("pending", ["commit", "retr"])
def test_dele_quit_half_close_commits_while_pgsql_is_pending(
        db, postinod, certs, mode, pending):
    uidls = [insert(db, USER, b"Subject: m%d\n\nbody %d\n" % (i, i))
             for i in range(2)]
    srv = server(postinod, db, tls_cert=certs["cert"],
                 tls_key=certs["key"])
    holder = None
    try:
        if pending == "commit":
            slow_delete(db)
        r = login(srv, certs, mode)
        if pending == "retr":
            holder = hold_table(db)
            burst = b"RETR 2\r\nDELE 1\r\nQUIT\r\n"
        else:
            burst = b"DELE 1\r\nQUIT\r\n"
        t0 = time.monotonic()
        burst_then_close(r, mode, burst)
        replies = []
        try:
            for _ in range(20):
                replies.append(r.line())
                if replies[-1].startswith((b"+OK Bye", b"-ERR")):
                    break
        except (conftest.Closed, ssl.SSLError):
            pass
        r.sock.close()
        assert replies and replies[0].startswith(b"+OK"), replies
        # QUIT answered: the session waited for its commit, though the
        # client's stream had ended (it used to close, unanswered).
        assert replies[-1].startswith(b"+OK Bye, 1 deleted"), replies
        # The database really was holding the session up.
        assert time.monotonic() - t0 >= HOLD_S - 0.5
        assert rows(db) == [uidls[1]]
        # A QUIT whose UPDATE waited on the database ends as a QUIT, not
        # as an error (it logged reason=error after its +OK Bye).
        srv.wait_log("event=disconnect reason=quit")
        assert "event=disconnect reason=error" not in srv.log()
    finally:
        if holder is not None:
            holder.join(20)
        db.psql("DROP FUNCTION IF EXISTS postino_test_slow() CASCADE")
