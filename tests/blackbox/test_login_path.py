"""What a login costs the roles beyond the password hash (issue 11, S1):
messages between roles that only bookkeep must not wake a role once per
session. A mail worker tells the master about ended sessions together
(MAIL_ENDED_BATCH_MS, MAIL_ENDED_LATE_MS in limits.h), so sessions that end at about the same time wake
the master about once, not once each; the master's count stays right, so
an idle worker still retires."""

import time

USERS = 24
PASS = "secret"


def voluntary_switches(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches for %d" % pid)


def test_sessions_ending_together_wake_the_master_about_once(mailroot,
                                                             postinod):
    names = [mailroot.add_user("u%02d" % i, PASS) for i in range(USERS)]
    srv = postinod(mail_workers=1)
    held = []
    for name in names:
        r = srv.raw(timeout=30)
        r.expect(b"+OK")
        assert r.cmd(b"USER " + name.encode()).startswith(b"+OK")
        assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK")
        held.append(r)
    time.sleep(0.5)     # every hand-off and its log line are done
    before = voluntary_switches(srv.proc.pid)
    for r in held:      # within ~40 ms, each alone: the master would
        r.send(b"QUIT\r\n")  # sleep between two ends told one by one
        time.sleep(0.0015)
    for r in held:
        assert r.line().startswith(b"+OK")
    time.sleep(1.5)     # past MAIL_ENDED_LATE_MS: every end is told
    woken = voluntary_switches(srv.proc.pid) - before
    # One message per session woke the master once per session (24 here).
    assert woken <= USERS // 4, woken
    # The master counted every end: with no session left the worker is
    # the one reused, and the next login works.
    p = srv.login(names[0], PASS)
    assert p.stat()[0] == 0
    p.quit()
    assert len(srv.pids("mail")) == 1
