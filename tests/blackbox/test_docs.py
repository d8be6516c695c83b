"""--help, --version and the manual pages (issue 14).

The configuration keys come from the running binary (`postinod
--config-keys` prints the live table of src/server/config.c), so a key
added there without a line in etc/postinod.conf, from which postinod.conf(5)
is generated, fails here.
"""
import glob
import os
import re
import subprocess

import pytest

from conftest import BUILD, REPO, POSTINOD, POSTINO_PASSWD

POSTINO_DELIVER = os.path.join(BUILD, "postino-deliver")

DOC = os.path.join(REPO, "doc")
ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env=ENV, **kw)


def version():
    with open(os.path.join(REPO, "src/lib/version.h")) as f:
        return re.search(r'#define POSTINO_VERSION\s+"([^"]+)"',
                         f.read()).group(1)


def conf_page(tmp_path):
    out = tmp_path / "postinod.conf.5"
    r = run(["awk", "-v", "version=" + version(), "-f",
             os.path.join(DOC, "conf2man.awk"),
             os.path.join(REPO, "etc/postinod.conf")])
    assert r.returncode == 0, r.stderr
    out.write_text(r.stdout)
    return out


def pages(tmp_path):
    return sorted(glob.glob(os.path.join(DOC, "*.[1-8]"))) + \
        [str(conf_page(tmp_path))]


def config_keys():
    r = run([POSTINOD, "--config-keys"])
    assert r.returncode == 0, r.stderr
    keys = r.stdout.split()
    assert len(keys) >= 30 and "listen" in keys and "mailbox" in keys
    return keys


@pytest.mark.parametrize("prog", [POSTINOD, POSTINO_PASSWD])
def test_help_and_version(prog):
    name = os.path.basename(prog)
    for opt in ("-h", "--help"):
        r = run([prog, opt])
        assert r.returncode == 0 and r.stderr == ""
        assert "-V, --version" in r.stdout or "--version" in r.stdout
    for opt in ("-V", "--version"):
        r = run([prog, opt])
        assert (r.returncode, r.stdout) == (0, "%s %s\n" % (name, version()))
    r = run([prog, "--no-such-option"])
    assert r.returncode == 2 and "usage:" in r.stderr and r.stdout == ""


def test_every_config_key_is_in_the_sample_file_and_the_manual(tmp_path):
    with open(os.path.join(REPO, "etc/postinod.conf")) as f:
        sample = f.read()
    page = conf_page(tmp_path).read_text()
    for key in config_keys():
        assert re.search(r"^#?%s =" % key, sample, re.M), \
            "%s is not in etc/postinod.conf" % key
        assert re.search(r"^\.(B|TQ\n\.B) %s$" % key, page, re.M), \
            "%s is not in postinod.conf(5)" % key


def test_every_option_of_postinod_is_in_its_manual():
    with open(os.path.join(DOC, "postinod.8")) as f:
        page = f.read().replace("\\-", "-")
    helptext = run([POSTINOD, "--help"]).stdout
    opts = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", helptext)
    assert "--config-keys" in opts and "-t" in opts
    for opt in set(opts):
        assert opt in page, opt


def test_every_option_of_postino_deliver_is_in_its_manual():
    """Every option of `postino-deliver --help` and every exit status it
    names is in postino-deliver(8), which make install installs."""
    with open(os.path.join(DOC, "postino-deliver.8")) as f:
        page = f.read().replace("\\-", "-")
    helptext = run([POSTINO_DELIVER, "--help"]).stdout
    opts = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", helptext)
    assert {"-c", "-d", "-f", "-a", "-h", "--help", "-V",
            "--version"} <= set(opts)
    for opt in set(opts):
        assert opt in page, opt
    codes = re.findall(r"\b(\d\d)\b", helptext.split("Exit status")[1])
    assert {"75", "67", "73", "65", "64", "78"} <= set(codes)
    section = page.split(".SH EXIT STATUS")[1].split(".SH ")[0]
    for code in set(codes) | {"0"}:
        assert re.search(r"^\.BR? %s\b" % code, section, re.M), code
    with open(os.path.join(REPO, "Makefile")) as f:
        assert "man8/postino-deliver.8" in f.read()
    with open(os.path.join(REPO, "debian/postinod.install")) as f:
        assert "usr/share/man/man8/postino-deliver.8" in f.read().split()


def test_every_option_of_postino_passwd_is_in_its_manual():
    with open(os.path.join(DOC, "postino-passwd.1")) as f:
        page = f.read().replace("\\-", "-")
    helptext = run([POSTINO_PASSWD, "--help"]).stdout
    opts = re.findall(r"^     (-\w)(?:, (--[\w-]+))?", helptext, re.M)
    assert len(opts) >= 5
    for short, long in opts:
        assert short in page
        if long:
            assert long in page


def test_manual_pages_format_without_warnings(tmp_path):
    for page in pages(tmp_path):
        r = run(["man", "--warnings", "-l", page])
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)
        assert len(r.stdout) > 500
        r = run(["groff", "-ww", "-man", "-Tutf8", "-z", page])
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)


def test_manual_pages_carry_the_version(tmp_path):
    for page in [os.path.join(DOC, "postinod.8"),
                 os.path.join(DOC, "postino-deliver.8"),
                 os.path.join(DOC, "postino-passwd.1"), conf_page(tmp_path)]:
        with open(page) as f:
            th = [l for l in f if l.startswith(".TH ")][0]
        assert '"Postino %s"' % version() in th, page
    changelog = os.path.join(REPO, "debian/changelog")
    if os.path.exists(changelog):
        with open(changelog) as f:
            first = f.readline()
        assert first.startswith("postino (%s" % version()), first
