"""A Ctrl-C held back during start-up (survey/interrupts.py, ``ctrl_c_deferred``).

The signal is real (``os.kill`` of this process); the end-to-end check, a Ctrl-C
at twenty moments of ``survey scan``'s start-up, is in tests/test_reliability.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from survey.interrupts import ctrl_c_deferred


def ctrl_c() -> None:
    """Send SIGINT to this process and give Python the moment it needs to run a handler."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)


def test_a_ctrl_c_inside_is_raised_when_the_block_ends():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finished = False
    with pytest.raises(KeyboardInterrupt), ctrl_c_deferred():
        ctrl_c()                # without the deferral: KeyboardInterrupt here
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_ctrl_c_ends_normally_and_restores_the_handler():
    with ctrl_c_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):      # and a Ctrl-C after it is not held back
        ctrl_c()


def test_a_program_that_ignores_ctrl_c_keeps_ignoring_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_deferred():
            ctrl_c()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
