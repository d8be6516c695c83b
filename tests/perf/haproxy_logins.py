#!/usr/bin/python3
"""Ad-hoc S1-style probe for issue 15 (not a benchmark: bench/ is).

Logins per second (connect + USER/PASS + QUIT, build/loadgen, 12 clients,
400 users, 10 s) against one postinod directly and through HAProxy
(send-proxy-v2) in front of two postinod instances serving the same mail
root, alternating, ROUNDS times. On one machine both set-ups share the
same cores, so this shows the cost of the extra hop and of the PROXY
header, not the gain of a second machine. Usage (after make build/loadgen):
  POSTINO_BUILD=build python3 tests/perf/haproxy_logins.py [ROUNDS]
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))

import test_haproxy as th  # noqa: E402
from conftest import BUILD, MailRoot, Server  # noqa: E402

CLIENTS, USERS, SECONDS = 12, 400, 10


def run(userfile, port, label):
    r = subprocess.run([os.path.join(BUILD, "loadgen"), "-p", str(port),
                        "-m", "plain", "-s", "login", "-u", userfile,
                        "-c", str(CLIENTS), "-d", str(SECONDS), "-l", label],
                       capture_output=True, text=True,
                       timeout=SECONDS * 10 + 60)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return "loadgen failed: " + r.stderr.strip()[-300:]
    d = json.loads(lines[-1])
    return "%7.1f sessions/s  (%d sessions, %d errors%s)" % (
        d.get("sessions_per_s", 0), d.get("sessions", 0), d.get("errors", 0),
        ", " + d["error"] if d.get("error") else "")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = MailRoot()
    servers, hp = [], None
    try:
        userfile = os.path.join(root.path, "users")
        with open(userfile, "w") as f:
            for i in range(USERS):
                f.write("%s pw\n" % root.add_user("u%03d" % i, "pw"))
        # One address stands for every client here.
        conf = dict(max_connections_per_ip=0, max_connections_per_net=0)
        direct = Server(root, "maildir:~/Maildir",
                        dict(listen=["127.0.0.1:0"], **conf)).start()
        servers.append(direct)
        for _ in range(2):
            servers.append(Server(root, "maildir:~/Maildir", dict(
                listen=["127.0.0.1:0 proxy"],
                proxy_trusted_networks="127.0.0.1", **conf)).start())
        hp = th.HAProxy(root.path, th.port_of(servers[1]),
                        th.port_of(servers[2]))
        for _ in range(rounds):
            print("one instance, direct:     ",
                  run(userfile, th.port_of(direct), "direct"))
            print("HAProxy + two instances:  ",
                  run(userfile, hp.ports["lb"], "haproxy"))
    finally:
        if hp is not None:
            hp.stop()
        for s in servers:
            s.stop()
        root.cleanup()


if __name__ == "__main__":
    main()
