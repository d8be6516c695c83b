"""The release binaries carry no test hook (issue 9): the kill hooks the
black-box tests use (POSTINO_TEST_*) are compiled into the sanitizer build
(build/asan, -DPOSTINO_TEST_HOOKS) only, in the client and in postinod's
deliver role alike. `make check` builds the release binaries first; `make
no-test-hooks` checks the same.
"""
import os
import subprocess

import pytest

from conftest import REPO

RELEASE = os.environ.get("POSTINO_RELEASE_BUILD", os.path.join(REPO, "build"))


@pytest.mark.parametrize("program", ["postino", "postinod"])
def test_release_binary_has_no_test_hooks(program):
    binary = os.path.join(RELEASE, program)
    if not os.path.exists(binary):
        pytest.skip("no release build at %s (make)" % binary)
    with open(binary, "rb") as f:
        data = f.read()
    assert b"POSTINO_TEST" not in data
