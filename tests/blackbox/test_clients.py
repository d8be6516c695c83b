"""Real POP3 clients as peers: fetchmail, mpop, getmail6, curl, Python
poplib and Perl Net::POP3 each download a seeded mailbox (Maildir, then
mbox) from postinod, keeping the messages on the server or deleting them,
and what each client delivered is compared byte for byte with the stored
originals, after the client's own documented transformation (see
clients_helpers.py: CRLF for poplib and curl, and for Net::POP3 over TLS;
LF line ends for the others).

Afterwards a fresh poplib session checks the server side: in KEEP mode the
mailbox is unchanged (same UIDLs and sizes, same files / spool bytes), in
DELETE mode it is empty (STAT 0 0, no files left, an empty spool).

Every client does this over each transport it has (ch.TRANSPORTS):
cleartext, STLS on the ``listen`` port and implicit TLS on the
``listen_tls`` port, trusting only the test CA of the ``certs`` fixture.
The server's log then shows that every session the client logged in had
negotiated TLS (``event=tls``; ``tls=implicit`` on connect for implicit
TLS) -- a client cannot have fallen back to cleartext unnoticed.  Then
each client meets a server whose certificate was issued by another CA
with the same name, and one whose certificate from the trusted CA names
another host: it must refuse both, say so, never send USER/PASS, and the
mailbox stays as it was.
"""

import os
import re
import shutil

import pytest

import clients_helpers as ch
from conftest import make_cert, openssl

STORES = ["maildir", "mbox"]
MODES = ["keep", "delete"]
TLS_TRANSPORTS = [t for t in ch.TRANSPORTS if t != "plain"]


def seed(mailroot, postinod, store, tls=None):
    """Create the user, store every seed message, start a server; with
    tls=(cert, key) it also offers STLS and listens for implicit TLS."""
    mailroot.add_user(ch.USER, ch.PASSWORD)
    msgs = list(ch.seeds(store).values())
    cfg = {}
    if tls is not None:
        cfg = dict(tls_cert=tls[0], tls_key=tls[1],
                   listen_tls="127.0.0.1:0")
    if store == "maildir":
        for m in msgs:
            mailroot.deliver_maildir(ch.USER, m)
        return postinod(mailbox="maildir:~/Maildir", **cfg)
    mailroot.write_mbox(ch.USER, ch.mbox_bytes(msgs))
    return postinod(mailbox=mailroot.mbox_spec, **cfg)


def conn_for(srv, transport, ca=None):
    port = srv.port_tls if transport == "implicit" else srv.port
    assert port is not None, "no listener for %s in %r" % (transport,
                                                           srv.addrs)
    return ch.Conn(srv.host, port, transport, ca)


_SESSION_RE = re.compile(r"session=([0-9a-f]+) (.*)$", re.M)


def sessions(log):
    """{session id: [its log lines' text after the id]} in log order."""
    out = {}
    for sid, rest in _SESSION_RE.findall(log):
        out.setdefault(sid, []).append(rest)
    return out


def client_sessions(srv, before):
    """The sessions that appeared in the log since `before` (a sessions()
    result) -- those of the client that just ran."""
    now = sessions(srv.log())
    return {sid: lines for sid, lines in now.items() if sid not in before}


def logged_in(lines):
    return any(l.startswith("event=login result=ok") for l in lines)


def check_transport(transport, new, log):
    """Every session of the client that logged in used `transport`."""
    used = {sid: lines for sid, lines in new.items() if logged_in(lines)}
    assert used, "the client logged in no session:\n" + log[-3000:]
    for sid, lines in used.items():
        implicit = "tls=implicit" in lines[0]
        tls = any(l.startswith("event=tls ") for l in lines)
        ok = {"plain": not tls and not implicit,
              "stls": tls and not implicit,
              "implicit": tls and implicit}[transport]
        assert ok, "session %s is not %s:\n%s" % (sid, transport,
                                                  "\n".join(lines))


def snapshot(srv):
    """(STAT, LIST, UIDL) of the mailbox, from a new poplib session."""
    p = srv.login(ch.USER, ch.PASSWORD, timeout=ch.TIMEOUT)
    try:
        stat = p.stat()
        listing = sorted(p.list()[1])
        uidl = sorted(p.uidl()[1])
        p.quit()
    finally:
        p.close()
    return stat, listing, uidl


def stored(mailroot, store):
    """What the mailbox holds on disk: message bytes by Maildir base name,
    or the spool's bytes."""
    if store == "maildir":
        return {k: v[1] for k, v in mailroot.maildir_files(ch.USER).items()}
    try:
        return mailroot.read_mbox(ch.USER)
    except FileNotFoundError:
        return b""


def download_params():
    """client x store x mode x transport, less what a client cannot do."""
    out = []
    for name, c in ch.CLIENTS.items():
        for transport in c.transports:
            for store in STORES:
                for mode in MODES:
                    out.append(pytest.param(
                        name, store, mode, transport,
                        id="-".join((name, store, mode, transport))))
    return out


@pytest.mark.parametrize("client,store,mode,transport", download_params())
def test_client_downloads_mailbox(client, store, mode, transport, mailroot,
                                  postinod, request):
    c = ch.CLIENTS[client]
    if not c.available(transport):
        pytest.skip("%s cannot do %s here (not installed?)" % (
            c.name, transport))
    keep = mode == "keep"
    ca = None
    if transport == "plain":
        srv = seed(mailroot, postinod, store)
    else:
        certs = request.getfixturevalue("certs")
        ca = certs["ca"]
        srv = seed(mailroot, postinod, store, (certs["cert"], certs["key"]))
    nseeds = len(ch.seeds(store))

    before = snapshot(srv)
    assert before[0][0] == nseeds, "seeded %d messages, STAT says %r" % (
        nseeds, before[0])
    on_disk = stored(mailroot, store)

    log_before = sessions(srv.log())
    work = ch.tempdir()
    try:
        got = c.fetch(conn_for(srv, transport, ca), keep, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check_transport(transport, client_sessions(srv, log_before), srv.log())

    problems = ch.compare(c, store, got, transport)
    assert not problems, "%s (%s, %s, %s):\n%s" % (
        client, store, mode, transport, "\n".join(problems))

    after = snapshot(srv)
    if keep:
        assert after == before, "KEEP mode changed the mailbox"
        assert stored(mailroot, store) == on_disk, \
            "KEEP mode changed the stored mail"
    else:
        assert after[0] == (0, 0), "DELETE mode left %r" % (after[0],)
        left = stored(mailroot, store)
        assert not left, "DELETE mode left mail on disk: %s" % (
            repr(left if store == "mbox" else sorted(left))[:300],)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("client", ["curl", "perl"])
def test_client_top(client, store, mailroot, postinod):
    """TOP n k through curl (-X 'TOP n k', byte-exact CRLF) and Net::POP3
    ->top (LF), for k = 0, 1, 3 and more lines than any body has; the
    mailbox is unchanged afterwards."""
    binary = "curl" if client == "curl" else "perl"
    if shutil.which(binary) is None:
        pytest.skip("%s is not installed" % binary)
    srv = seed(mailroot, postinod, store)
    before = snapshot(srv)
    nums = [int(e.split()[0]) for e in before[1]]
    work = ch.tempdir()
    try:
        if client == "curl":
            got = ch.curl_top(srv.host, srv.port, nums, ch.TOP_COUNTS, work)
        else:
            got = ch.perl_top(srv.host, srv.port, ch.TOP_COUNTS, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    want = {ch.msgid(m): (name, m) for name, m in ch.seeds(store).items()}
    problems = []
    seen = set()
    assert set(got) == {(n, k) for n in nums for k in ch.TOP_COUNTS}
    for (n, k), data in sorted(got.items()):
        mid = ch.msgid(data)
        if mid not in want:
            problems.append("TOP %d %d: no known Message-ID in %r" % (
                n, k, data[:200]))
            continue
        seen.add((mid, k))
        name, msg = want[mid]
        exp = ch.top_expected(msg, k)
        if client == "perl":
            exp = ch.lf(exp)
        if data != exp:
            problems.append(ch.describe_diff("%s TOP %d %d" % (name, n, k),
                                             exp, data))
    assert len(seen) == len(want) * len(ch.TOP_COUNTS), \
        "TOP did not return every message once per line count"
    assert not problems, "\n".join(problems)
    assert snapshot(srv) == before


def other_ca_cert(certs):
    """(cert, key) for localhost/127.0.0.1/::1 from another CA that has
    the same name as the test CA ("CN=Test CA") but its own key: a client
    must check the signature, not just the issuer's name."""
    d = os.path.join(certs["dir"], "rogue")
    os.mkdir(d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=Test CA",
            "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    return make_cert(d, "server")


def wrong_name_cert(certs):
    """(cert, key) from the trusted test CA for mail.example.net only (CN
    and the one DNS SAN): right chain, wrong host."""
    d = certs["dir"]
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
            "/CN=mail.example.net", "-keyout", "other.key", "-out",
            "other.csr", cwd=d)
    with open(os.path.join(d, "other.ext"), "w") as f:
        f.write("subjectAltName=DNS:mail.example.net\n")
    openssl("x509", "-req", "-in", "other.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            "other.ext", "-out", "other.pem", cwd=d)
    return os.path.join(d, "other.pem"), os.path.join(d, "other.key")


BAD_CERTS = {"other-ca": other_ca_cert, "wrong-name": wrong_name_cert}


def refusal_params():
    return [pytest.param(name, t, bad, id="%s-%s-%s" % (name, t, bad))
            for name, c in ch.CLIENTS.items()
            for t in c.transports if t in TLS_TRANSPORTS
            for bad in BAD_CERTS]


@pytest.mark.parametrize("client,transport,bad", refusal_params())
def test_client_refuses_a_certificate_it_cannot_verify(
        client, transport, bad, mailroot, postinod, certs):
    """The server's certificate is for the right host but signed by a CA
    the client does not trust (other-ca), or signed by the trusted CA but
    for another host (wrong-name): the client fails, says why, never logs
    in (the server logs no login at all, on any connection: USER/PASS never
    crossed, not even on a cleartext retry), and deletes nothing (it was
    told not to keep the mail)."""
    c = ch.CLIENTS[client]
    if not c.available(transport):
        pytest.skip("%s cannot do %s here (not installed?)" % (
            c.name, transport))
    store = "maildir"
    srv = seed(mailroot, postinod, store, BAD_CERTS[bad](certs))
    before = snapshot(srv)
    on_disk = stored(mailroot, store)
    log_before = sessions(srv.log())

    work = ch.tempdir()
    try:
        with pytest.raises(ch.ClientError) as ei:
            c.fetch(conn_for(srv, transport, certs["ca"]), False, work)
        delivered = ch.delivered(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assert re.search(c.refusal[bad], str(ei.value)), \
        "%s failed, but not for its certificate (%s):\n%s" % (
            client, bad, ei.value)
    assert not delivered, "%s delivered %d messages" % (client,
                                                        len(delivered))
    new = client_sessions(srv, log_before)
    logins = [l for lines in new.values() for l in lines
              if l.startswith("event=login")]
    assert not logins, "%s logged in anyway: %r" % (client, logins)
    assert snapshot(srv) == before
    assert stored(mailroot, store) == on_disk
