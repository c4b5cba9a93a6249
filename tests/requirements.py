"""What a test needs beyond Python: Debian programs, or root. One helper, one message.

``make test`` on a researcher's laptop (python3 and make, no root) runs every
test it can and skips the rest with a one-line reason that names what is
missing and the command that installs it. CI (``.ci/run``, as root, after
``tests/interop/setup.sh``) sets ``SURVEY_TEST_STRICT=1``, under which a missing
requirement fails the test instead: in CI nothing may be skipped.

Use it as a marker on a test, a module (``pytestmark``) or a class::

    @needs("openssl")
    async def test_s_client_agrees(...): ...

    pytestmark = needs("postfix", "unbound", "nginx", root=True)

The marker is checked in ``pytest_runtest_setup`` (tests/conftest.py), before
any fixture starts, so a skipped interop test never tries to start a daemon.
Fixtures and plain helpers can call ``require(...)`` directly. A program
counts as present when it is on ``PATH``, because that is how the tests run
it (``subprocess.run(["openssl", ...])``).
"""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = "SURVEY_TEST_STRICT"
INSTALL = "sudo bash tests/interop/setup.sh"
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def needs(*programs: str, root: bool = False) -> pytest.MarkDecorator:
    """Mark a test as needing ``programs`` on PATH (and root when ``root``)."""
    return pytest.mark.needs(*programs, root=root)


def missing(*programs: str, root: bool = False) -> str | None:
    """The one-line reason a test cannot run here, or None when it can."""
    absent = [p for p in programs if shutil.which(p) is None]
    uninstalled = [p for p in absent if shutil.which(p, path=os.pathsep.join(SBIN)) is None]
    no_root = root and os.geteuid() != 0
    if not absent and not no_root:
        return None
    what = []
    if absent:
        where = "" if uninstalled else " (in /usr/sbin, not on PATH)"
        what.append(", ".join(absent) + where)
    if no_root:
        what.append("root")
    hints = []
    if uninstalled:
        hints.append(f"install with `{INSTALL}`")
    if no_root:
        hints.append("run as root, as .ci/run does")
    elif absent and not uninstalled:
        hints.append("add /usr/sbin to PATH")
    return f"needs {' and '.join(what)}: " + "; ".join(hints)


def strict() -> bool:
    return os.environ.get(STRICT, "") not in ("", "0")


def require(*programs: str, root: bool = False) -> None:
    """Skip the running test (fail it under SURVEY_TEST_STRICT) unless its needs are met."""
    reason = missing(*programs, root=root)
    if reason is None:
        return
    if strict():
        pytest.fail(f"{STRICT} is set, so this cannot be skipped: {reason}", pytrace=False)
    # Reported at the test's own location, not at this line (as pytest's skipif marks do).
    raise pytest.skip.Exception(reason, _use_item_location=True)
