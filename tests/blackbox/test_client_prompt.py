"""The password prompt: asked on the terminal with echo off, and the echo
comes back when the user gives up with Ctrl-C."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import conftest

TMUX = shutil.which("tmux")
POSTINO = os.path.join(conftest.BUILD, "postino")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


def wait_for(fn, what, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if what in got:
            return got
        assert time.monotonic() < deadline, (what, got)
        time.sleep(0.05)


def test_prompt_hides_input_and_ctrl_c_restores_echo(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod()
    d = tempfile.mkdtemp(prefix="postino-prompt-")
    sock = os.path.join(d, "tmux.sock")
    out = os.path.join(d, "out")

    def tmux(*args):
        return subprocess.run([TMUX, "-S", sock, *args], check=True,
                              capture_output=True, timeout=10,
                              text=True).stdout

    # After postino, the shell prints the terminal's echo flag.
    # The shell survives Ctrl-C (a caught signal resets to default in postino).
    cmd = ("trap : INT; env -u POSTINO_PASSWORD HOME=%s %s stat --tls=no alice@127.0.0.1:%d;"
           " echo status=$? >> %s; stty -a >> %s; sleep 30"
           % (d, POSTINO, srv.port, out, out))
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "10",
             "sh", "-c", cmd)
        wait_for(lambda: tmux("capture-pane", "-p"), "assword")
        tmux("send-keys", "-l", "typed-not-shown")
        time.sleep(0.2)
        assert "typed-not-shown" not in tmux("capture-pane", "-p")
        tmux("send-keys", "C-c")
        wait_for(lambda: open(out).read() if os.path.exists(out) else "",
                 "echo")
        text = open(out).read()
        flags = text.split()
        assert "echo" in flags and "-echo" not in flags, flags
        # Killed by the SIGINT it got, after restoring the terminal.
        assert "status=130" in text, text
    finally:
        subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True,
                       timeout=10)
        shutil.rmtree(d, ignore_errors=True)
