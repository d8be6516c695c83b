"""postino-deliver: one message on stdin for -d USER, the same delivery as
LMTP, sysexits codes and a one-line reason on stderr."""

import os
import re
import subprocess

import pytest

from conftest import BUILD

DELIVER = os.path.join(BUILD, "postino-deliver")
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER = 0, 64, 65, 67
EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 73, 75, 78


def run(conf, args, data=b"Subject: x\r\n\r\nbody\r\n", env=None):
    e = dict(os.environ)
    for k in ("SENDER", "ORIGINAL_RECIPIENT"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([DELIVER, "-c", conf] + args, input=data,
                       capture_output=True, timeout=30, env=e)
    assert b"AddressSanitizer" not in p.stderr, p.stderr.decode()
    return p.returncode, p.stderr.decode()


@pytest.fixture
def conf(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    return postinod(start=False, lmtp_max_message_size=4096).conf


def test_delivers_with_headers_and_lf(mailroot, conf):
    rc, err = run(conf, ["-d", "alice", "-f", "bob@example.org", "-a",
                         "alice@example.org"],
                  b"From bob@example.org  Thu Jan  1 00:00:00 2026\n"
                  b"Subject: x\r\n\r\nbody\r\n.dot\r\nbare\rcr\r\n")
    assert (rc, err) == (EX_OK, "")
    ((path, data),) = mailroot.maildir_files("alice").values()
    assert data == (b"Return-Path: <bob@example.org>\n"
                    b"Delivered-To: alice@example.org\n"
                    b"Subject: x\n\nbody\n.dot\nbare\rcr\n")
    m = re.search(r",S=(\d+),W=(\d+)", os.path.basename(path))
    assert int(m.group(1)) == len(data)
    assert int(m.group(2)) == len(data.replace(b"\n", b"\r\n"))


def test_envelope_from_the_environment(mailroot, conf):
    rc, _ = run(conf, ["-d", "alice"], env={"SENDER": "",
                "ORIGINAL_RECIPIENT": "alice+x@example.org"})
    assert rc == EX_OK
    ((_, data),) = mailroot.maildir_files("alice").values()
    assert data.startswith(b"Return-Path: <>\nDelivered-To: "
                           b"alice+x@example.org\n")


@pytest.mark.parametrize("args,code", [
    (["-d", "nosuchuser"], EX_NOUSER),
    (["-d", "../alice"], EX_NOUSER),
    (["-d", ""], EX_NOUSER),
    ([], EX_USAGE),
    (["-d", "alice", "extra"], EX_USAGE),
    (["-d", "alice", "-f", "a\nb"], EX_USAGE),
    (["-d", "alice", "-x"], EX_USAGE),
])
def test_refusals(mailroot, conf, args, code):
    rc, err = run(conf, args)
    assert rc == code
    assert err.count("\n") == 1 and err.startswith("postino-deliver: ")
    assert mailroot.maildir_files("alice") == {}


def test_too_big_is_a_data_error(mailroot, conf):
    rc, err = run(conf, ["-d", "alice"], b"x" * 5000)
    assert rc == EX_DATAERR and "larger than 4096" in err
    assert mailroot.maildir_files("alice") == {}


def test_broken_configuration_and_passwd_file(mailroot, conf, tmp_path):
    rc, _ = run(str(tmp_path / "missing.conf"), ["-d", "alice"])
    assert rc == EX_CONFIG
    bad = tmp_path / "p.conf"
    with open(conf) as f:
        text = f.read()
    bad.write_text(re.sub(r"passwd_file = .*", "passwd_file = %s" %
                          (tmp_path / "gone"), text))
    rc, err = run(str(bad), ["-d", "alice"])
    assert rc == EX_TEMPFAIL and "passwd_file" in err


def test_mailbox_that_cannot_be_created(mailroot, conf):
    md = mailroot.maildir("alice")
    for sub in ("new", "cur", "tmp"):
        os.rmdir(os.path.join(md, sub))
    os.rmdir(md)
    with open(md, "w") as f:
        f.write("not a maildir")
    rc, err = run(conf, ["-d", "alice"])
    assert rc == EX_CANTCREAT and "alice" in err


def test_help_and_version():
    for opt in ("-h", "--help"):
        p = subprocess.run([DELIVER, opt], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0 and p.stderr == ""
        assert p.stdout.startswith("usage: postino-deliver")
    p = subprocess.run([DELIVER, "--version"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and re.match(r"postino-deliver \d", p.stdout)


def test_per_user_quota_from_the_extra_field(mailroot, postinod):
    """quota_bytes in alice's passwd-file line bounds postino-deliver as it
    bounds LMTP: within it delivered, over it 73 (75 with
    lmtp_quota_temporary), an unreadable quota 75 and nothing stored."""
    from test_lmtp import set_extra
    mailroot.add_user("alice", "secret")
    mailroot.add_user("bob", "secret")
    set_extra(mailroot, "alice", "quota_bytes=300")
    set_extra(mailroot, "bob", "quota_bytes=3O0")
    conf = postinod(start=False).conf
    body = b"Subject: x\r\n\r\n" + b"y" * 100 + b"\r\n"
    assert run(conf, ["-d", "alice"], body) == (EX_OK, "")
    rc, err = run(conf, ["-d", "alice"], body + b"z" * 200 + b"\r\n")
    assert rc == EX_CANTCREAT and err == "postino-deliver: alice: " \
        "mailbox full\n"
    assert run(conf, ["-d", "alice"], body) == (EX_OK, "")
    tconf = postinod(start=False, lmtp_quota_temporary=True).conf
    rc, err = run(tconf, ["-d", "alice"], body)
    assert rc == EX_TEMPFAIL and "mailbox full" in err
    assert len(mailroot.maildir_files("alice")) == 2
    rc, err = run(conf, ["-d", "bob"], body)
    assert rc == EX_TEMPFAIL and err.count("\n") == 1, err
    assert mailroot.maildir_files("bob") == {}
