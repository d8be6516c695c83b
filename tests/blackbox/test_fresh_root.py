"""The newcomer's first command (issue 14, issue 9's first item): on a
brand-new Debian 12 root with only git and make, in a clone of this
repository under /root (mode 0700), the first `make run` installs what it
needs, builds, and serves the demo; a login works; stopping it works.

The demo's ports are free ones (DEMO_PORT, DEMO_TLS_PORT), so it never
meets a `make run` on this machine. It shares the cached root of
test_deb.py (tests/blackbox/roots.py). Timing on the 2-core CI machine:
about 2 to 3 minutes warm (apt unpacks the compiler and GMime, then a
serial build); the first run also downloads about 100 MB of packages."""
import os
import shutil
import socket
import subprocess

from conftest import REPO
from roots import Root, needs_root

NEWCOMER = r"""
set -u
cd /root/postino
start=$(date +%s)
# Its own process group, stopped as a whole like a terminal's Ctrl-C
# (with SIGTERM: a background job of a script ignores SIGINT).
setsid make run DEMO_PORT=$1 DEMO_TLS_PORT=$2 > /tmp/run.out 2>&1 &
pid=$!
i=0
until grep -q "Ctrl-C stops it" /tmp/run.out; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$i" -ge 12000 ]; then
		echo "make run ended without its banner" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "seconds to the banner: $(($(date +%s) - start))" > /tmp/timing
POSTINO_PASSWORD=demo build/postino list --cafile build/demo/cert.pem \
	"pop3s://demo@127.0.0.1:$2" > /tmp/list.out 2>&1
echo "list=$?" > /tmp/status
printf 'USER demo\r\nPASS demo\r\nRETR 1\r\nQUIT\r\n' |
	timeout 30 openssl s_client -quiet -starttls pop3 \
	-connect "127.0.0.1:$1" > /tmp/sclient.out 2>&1
kill -TERM "-$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
wait "$pid"
echo "run=$?" >> /tmp/status
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def clone_into(root):
    """git clone of this repository, with the working tree's changes."""
    dest = root / "root/postino"
    subprocess.run(["git", "clone", "-q", REPO, dest], check=True,
                   timeout=300, capture_output=True)
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"],
                          check=True, capture_output=True, text=True).stdout
    subprocess.run(["git", "-C", dest, "checkout", "-q", head.strip()],
                   check=True, timeout=60, capture_output=True)
    changed = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z", "-m", "-o",
         "--exclude-standard"], check=True, capture_output=True).stdout
    for rel in filter(None, changed.decode().split("\0")):
        src = os.path.join(REPO, rel)
        dst = os.path.join(dest, rel)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
        elif os.path.exists(dst):
            os.unlink(dst)


@needs_root
def test_first_make_run_on_a_fresh_root_works():
    root = Root("newcomer")
    try:
        # Only git and make: no compiler, no GMime, no curl, no telnet.
        for absent in ("usr/bin/gcc", "usr/bin/pkg-config", "usr/bin/curl",
                       "usr/bin/telnet", "usr/include/gmime-3.0"):
            assert not os.path.exists(root / absent), absent
        assert os.stat(root / "root").st_mode & 0o777 == 0o700
        clone_into(root)
        with open(root / "tmp/newcomer.sh", "w") as f:
            f.write(NEWCOMER)
        port, tport = free_ports(2)
        r = subprocess.run(
            ["chroot", root.path, "/bin/sh", "/tmp/newcomer.sh", str(port),
             str(tport)],
            capture_output=True, text=True, timeout=1800,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                 "LANG": "C.UTF-8"})
        out = open(root / "tmp/run.out").read()
        if os.path.exists(root / "tmp/timing"):
            print(open(root / "tmp/timing").read())
        assert r.returncode == 0, r.stderr + out[-4000:]
        status = open(root / "tmp/status").read().split()
        listing = open(root / "tmp/list.out").read()
        sclient = open(root / "tmp/sclient.out", errors="replace").read()
        # make itself dies of the signal (143); the server stopped
        # gracefully.
        assert status[0] == "list=0" and status[1] in ("run=0", "run=143"), \
            (status, listing, out[-3000:])
        assert "event=stopped" in out, out[-3000:]
        assert "port %d (plain, STLS) and %d" % (port, tport) in out
        assert len(listing.splitlines()) == 3, listing
        assert "+OK Bye" in sclient and "\n.\n" in sclient, sclient
        # What the newcomer saw: packages installed, short build lines,
        # no compiler error, the banner last, naming no missing tool.
        assert "deps: installing" in out
        assert "  CC     src/client/mime.c" in out
        assert "error" not in out.split("postinod: serving")[0].lower()
        assert "curl" not in out and "telnet" not in out
        assert out.index("LINK") < out.index("postinod: serving")
    finally:
        root.close()
