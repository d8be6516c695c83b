"""postino's manual page and shell completion (issue 13 finding 5): every
option of `postino --help` and every configuration key the parser knows
(read from src/client/account.c, so a new key without documentation
fails here) is in postino(1); every option is in both completions; the
bash completion offers them in a real bash.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO
from test_client import POSTINO

DOC = os.path.join(REPO, "doc", "postino.1")
BASH = os.path.join(REPO, "contrib", "completion", "postino.bash")
ZSH = os.path.join(REPO, "contrib", "completion", "_postino")


def help_options():
    cp = subprocess.run([POSTINO, "--help"], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 0
    opts = set(re.findall(r"(?<![\w-])(--?[a-zA-Z0-9][\w-]*)", cp.stdout))
    assert {"--daemon", "--keep-days", "--rebuild-state", "-4"} <= opts
    return opts


def config_keys():
    with open(os.path.join(REPO, "src", "client", "account.c")) as f:
        src = f.read()
    keys = set(re.findall(r'strcmp\(key, "([a-z-]+)"\)', src))
    assert {"url", "keep-days", "max-size", "default"} <= keys
    return keys


def page():
    with open(DOC) as f:
        return f.read().replace("\\-", "-")


def test_every_option_is_in_the_manual():
    text = page()
    for opt in help_options():
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text), opt


def test_every_config_key_is_in_the_manual():
    text = page()
    for key in config_keys():
        assert re.search(r"^\.(BI|BR|B) %s( |$)" % re.escape(key), text,
                         re.M), key


def test_manual_carries_the_version():
    with open(os.path.join(REPO, "src/lib/version.h")) as f:
        version = re.search(r'POSTINO_VERSION\s+"([^"]+)"', f.read()).group(1)
    with open(DOC) as f:
        th = [l for l in f if l.startswith(".TH ")][0]
    assert '"Postino %s"' % version in th


def test_every_option_is_in_both_completions():
    for path in (BASH, ZSH):
        with open(path) as f:
            text = f.read()
        for opt in help_options():
            assert opt in text, (path, opt)


def test_bash_completion_completes_options_and_accounts(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    cfg = tmp_path / "config"
    cfg.write_text("account work\n host a\naccount home\n host b\n")
    script = (
        'source %s\n'
        'COMP_WORDS=(postino fetch --keep-); COMP_CWORD=2; _postino\n'
        'echo "opts: ${COMPREPLY[*]}"\n'
        'COMP_WORDS=(postino fetch --config %s w); COMP_CWORD=4; _postino\n'
        'echo "accts: ${COMPREPLY[*]}"\n' % (BASH, cfg))
    cp = subprocess.run(["bash", "--norc", "-c", script], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert "opts: --keep-days" in cp.stdout
    assert "accts: work" in cp.stdout
