"""The build itself, as a newcomer meets it (issue 14, issue 9's first item).

A fresh Debian 12 lacks GMime when make reads the Makefile: nothing may ask
pkg-config then, a server-only build must not need it, and a missing
package is named with the apt-get line instead of a compiler error. The
whole first `make run` on a fresh root is tests/blackbox/test_fresh_root.py.
"""
import os
import subprocess

from conftest import REPO, POSTINOD, POSTINO_PASSWD


def fake_tools(tmp_path, missing=()):
    """A PATH directory with a pkg-config that records its calls and a
    dpkg-query that reports the packages in `missing` as absent."""
    d = tmp_path / "bin"
    d.mkdir()
    log = tmp_path / "pkg-config.calls"
    (d / "pkg-config").write_text(
        "#!/bin/sh\necho \"$*\" >> %s\nexec /usr/bin/pkg-config \"$@\"\n" % log)
    absent = " ".join(missing)
    (d / "dpkg-query").write_text(
        "#!/bin/sh\nfor a; do p=$a; done\n"
        "for m in %s; do [ \"$p\" = \"$m\" ] && exit 1; done\n"
        "exec /usr/bin/dpkg-query \"$@\"\n" % absent)
    for f in d.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (d, os.environ["PATH"]))
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return env, log


def make(args, env, timeout=120):
    return subprocess.run(["make", "--no-print-directory", "-C", REPO] + args,
                          env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_reading_the_makefile_runs_no_pkg_config(tmp_path):
    env, log = fake_tools(tmp_path)
    b = tmp_path / "b"
    r = make(["-n", "-B", "BUILD=%s" % b, str(b / "src/lib/str.o")], env)
    assert r.returncode == 0, r.stderr
    assert not log.exists(), "pkg-config ran when the Makefile was read"
    # A server-only build never asks for GMime.
    r = make(["-n", "-B", "server", "BUILD=%s" % b], env)
    assert r.returncode == 0, r.stderr
    assert not log.exists() or "gmime" not in log.read_text()
    assert "gmime" not in r.stdout


def test_missing_gmime_is_named_with_the_apt_get_line(tmp_path):
    env, _ = fake_tools(tmp_path, missing=("libgmime-3.0-dev",))
    r = make(["BUILD=%s" % (tmp_path / "b")], env)
    assert r.returncode != 0
    assert "apt-get install --no-install-recommends libgmime-3.0-dev" \
        in r.stderr
    assert "error:" not in r.stderr and "gmime.h" not in r.stderr
    assert not (tmp_path / "b" / "src").exists(), "compiled anyway"


def test_server_build_does_not_ask_for_gmime(tmp_path):
    env, _ = fake_tools(tmp_path, missing=("libgmime-3.0-dev", "pkg-config"))
    r = subprocess.run(["sh", "tests/deps.sh", "check", "server"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = make(["-n", "server", "BUILD=%s" % (tmp_path / "b")], env)
    assert "deps.sh check server" in r.stdout
    assert "deps.sh check build" not in r.stdout


def test_quiet_build_lines_and_v1(tmp_path):
    env, _ = fake_tools(tmp_path)
    obj = str(tmp_path / "b" / "src" / "lib" / "str.o")
    b = "BUILD=%s" % (tmp_path / "b")
    r = make([b, obj], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "  CC     src/lib/str.c\n"
    r = make(["-B", "V=1", b, obj], env)
    assert r.returncode == 0, r.stderr
    assert " -Werror " in r.stdout and "  CC " not in r.stdout


def test_server_programs_do_not_link_gmime():
    for prog in (POSTINOD, POSTINO_PASSWD):
        out = subprocess.run(["ldd", prog], capture_output=True, text=True,
                             timeout=30).stdout
        assert "gmime" not in out and "glib" not in out, prog


def test_layers_reject_a_symbol_from_an_upper_layer(tmp_path):
    src = tmp_path / "low.c"
    src.write_text("int config_load(void *, const char *, char *);\n"
                   "int f(void) { return config_load(0, 0, 0); }\n")
    subprocess.run(["cc", "-c", "-o", str(tmp_path / "low.o"), str(src)],
                   check=True, timeout=60)
    subprocess.run(["ar", "rcs", str(tmp_path / "low.a"),
                    str(tmp_path / "low.o")], check=True, timeout=60)
    server = os.path.join(os.path.dirname(POSTINOD), "libpostino-server.a")
    r = subprocess.run(["sh", os.path.join(REPO, "tests/layers.sh"),
                        str(tmp_path / "low.a"), server],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "config_load" in r.stderr
