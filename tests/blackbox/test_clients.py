"""Real POP3 clients as peers: fetchmail, mpop, getmail6, curl, Python
poplib and Perl Net::POP3 each download a seeded mailbox (Maildir, then
mbox) from postinod, keeping the messages on the server or deleting them,
and what each client delivered is compared byte for byte with the stored
originals, after the client's own documented transformation (see
clients_helpers.py: CRLF for poplib and curl, LF line ends for the others).

Afterwards a fresh poplib session checks the server side: in KEEP mode the
mailbox is unchanged (same UIDLs and sizes, same files / spool bytes), in
DELETE mode it is empty (STAT 0 0, no files left, an empty spool).
"""

import shutil

import pytest

import clients_helpers as ch

STORES = ["maildir", "mbox"]
MODES = ["keep", "delete"]


def seed(mailroot, postinod, store):
    """Create the user, store every seed message, start a server."""
    mailroot.add_user(ch.USER, ch.PASSWORD)
    msgs = list(ch.seeds(store).values())
    if store == "maildir":
        for m in msgs:
            mailroot.deliver_maildir(ch.USER, m)
        return postinod(mailbox="maildir:~/Maildir")
    mailroot.write_mbox(ch.USER, ch.mbox_bytes(msgs))
    return postinod(mailbox=mailroot.mbox_spec)


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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("client", list(ch.CLIENTS))
def test_client_downloads_mailbox(client, store, mode, mailroot, postinod):
    c = ch.CLIENTS[client]
    if not c.available():
        pytest.skip("%s is not installed" % c.binary)
    keep = mode == "keep"
    srv = seed(mailroot, postinod, store)
    nseeds = len(ch.seeds(store))

    before = snapshot(srv)
    assert before[0][0] == nseeds, "seeded %d messages, STAT says %r" % (
        nseeds, before[0])
    on_disk = stored(mailroot, store)

    work = ch.tempdir()
    try:
        got = c.fetch(srv.host, srv.port, keep, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    problems = ch.compare(c, store, got)
    assert not problems, "%s (%s, %s):\n%s" % (
        client, store, mode, "\n".join(problems))

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
