"""Adopting a Dovecot site (issue 14): the real Dovecot serves a Maildir
(its default pop3_uidl_format, %08Xu%08Xv), clients read and delete some
mail, then postinod serves the same Maildir: every message Dovecot listed
keeps its UIDL; mail delivered after the switch gets postinod's own."""
import hashlib
import os
import poplib
import re
import signal

import pytest

from conftest import IS_ROOT, make_hash  # noqa: F401
# The Dovecot harness of the client tests (a config in a temporary dir).
from test_client import USER, PASSWORD, dovecot  # noqa: F401


def uidls_by_content(host, port, user, password):
    """{sha256 of the message: UIDL} and the UIDL list in order."""
    p = poplib.POP3(host, port, timeout=20)
    try:
        p.user(user)
        p.pass_(password)
        order = [l.split()[1].decode() for l in p.uidl()[1]]
        out = {}
        for n, uidl in enumerate(order, 1):
            body = b"\n".join(p.retr(n)[1])
            out[hashlib.sha256(body).hexdigest()] = uidl
        p.quit()
    finally:
        p.close()
    return out, order


def message(i):
    return (b"From: sender%d@example.org\nSubject: message %d\n"
            b"Message-ID: <%d@example.org>\n\nbody of message %d\n"
            % (i, i, i, i))


@pytest.mark.parametrize("fmt", ["%08Xu%08Xv", "%v.%u", "%f"])
def test_dovecot_uidls_survive_the_switch(mailroot, postinod, dovecot, fmt):
    d = dovecot()
    with open(d.conf) as f:
        conf = f.read()
    assert "pop3_uidl_format = %08Xu%08Xv\n" in conf
    with open(d.conf, "w") as f:
        f.write(conf.replace("pop3_uidl_format = %08Xu%08Xv\n",
                             "pop3_uidl_format = %s\n" % fmt))
    for i in range(6):
        d.deliver(message(i))
    d.start()
    # A client reads everything and deletes message 2: Dovecot renames
    # the files into cur/ with flags and writes its uidlist.
    p = poplib.POP3("127.0.0.1", d.port, timeout=20)
    p.user(USER)
    p.pass_(PASSWORD)
    for n in range(1, 7):
        p.retr(n)
    p.dele(2)
    p.quit()
    d.deliver(message(6))	# seen by Dovecot in the next session
    before, order_before = uidls_by_content("127.0.0.1", d.port, USER,
                                            PASSWORD)
    assert len(before) == 6
    # Dovecot's default format: 16 hex digits (lower-case, as Dovecot
    # writes %X).
    shape = {"%08Xu%08Xv": r"[0-9a-f]{16}", "%v.%u": r"\d+\.\d+",
             "%f": r"\d+\.M\d+P\d+\.test"}[fmt]
    assert all(re.fullmatch(shape, u) for u in before.values()), before
    os.killpg(d.proc.pid, signal.SIGTERM)
    d.proc.wait(15)
    assert os.path.exists(os.path.join(d.maildir, "dovecot-uidlist"))

    # Mail that arrives after the switch.
    d.deliver(message(7))
    d.deliver(message(8))
    with open(mailroot.passwd_file, "a") as f:
        f.write("%s:%s::::%s::\n" % (USER, make_hash(PASSWORD),
                                     os.path.join(d.home, USER)))
    srv = postinod(mailbox="maildir:~/Maildir", pop3_uidl_format=fmt)
    after, order_after = uidls_by_content(srv.host, srv.port, USER, PASSWORD)
    assert len(after) == 8
    for digest, uidl in before.items():
        assert after[digest] == uidl
    new = {k: v for k, v in after.items() if k not in before}
    assert len(new) == 2
    for uidl in new.values():
        assert uidl not in before.values()
        assert ".M" in uidl	# postinod's own: the file's base name
    if fmt == "%f":
        return		# the base name too: no way to tell whose it is
    assert len(set(order_after)) == 8
    # The same messages keep Dovecot's order, new mail after them.
    assert [u for u in order_after if u in order_before] == order_before
    log = srv.log()
    assert "event=mailbox-open result=ok" in log
