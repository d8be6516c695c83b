"""Dovecot's per-user quota spelling in the passwd-file's extra field
(userdb_quota_rule=*:storage=...:messages=...), for sites moving from
Dovecot: enforced by LMTP exactly as quota_bytes= / quota_messages=; a rule
postinod cannot honour exactly is refused (451 4.3.0), never ignored."""

from test_lmtp import MSG, deliver_one, raw, set_extra, stored, users  # noqa


def rcpt(srv, user):
    r = raw(srv)
    r.start(rcpts=())
    r.send(b"RCPT TO:<" + user + b">\r\n")
    code, lines = r.reply()
    r.close()
    return code, lines[0]


def test_dovecot_quota_rule_is_enforced(users, postinod):
    users.add_user("carol", "secret")
    set_extra(users, "alice", "userdb_quota_rule=*:messages=1")
    set_extra(users, "bob", "userdb_quota_rule=*:storage=1k")    # 1024 B
    set_extra(users, "carol", "userdb_quota_rule=Trash:storage=+10M")
    srv = postinod(lmtp_listen="127.0.0.1:0")
    assert deliver_one(srv)[0] == 250
    code, line = rcpt(srv, b"alice")                # full: refused at RCPT
    assert code == 552 and b"5.2.2" in line
    assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
    code, line = deliver_one(srv, rcpt=b"<bob>", body=MSG + b"x" * 1024 +
                             b"\r\n")
    assert code == 552 and b"5.2.2" in line
    code, line = rcpt(srv, b"carol")
    assert code == 451 and b"4.3.0" in line, line
    srv.wait_log('user "carol": extra field: quota_rule: ')
    assert len(stored(users, "alice")) == 1
    assert len(stored(users, "bob")) == 1
