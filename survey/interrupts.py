"""How a command ends when the user presses Ctrl-C, or an error arrives inside a task group.

trio (and ``asyncio.TaskGroup``) wrap what a task raised in a
``BaseExceptionGroup``, so ``except KeyboardInterrupt`` around ``trio.run``
never sees a Ctrl-C that arrived while tasks ran, nor ``except ScanError`` a
scan error raised inside a nursery. ``leaf`` finds the first exception of the
given types anywhere in such a group; ``interrupted`` says whether the
exception is a Ctrl-C however deeply it was wrapped. ``ctrl_c_deferred`` holds a
Ctrl-C back until start-up work is whole.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

INTERRUPTED = 130        # 128 + SIGINT, what a shell reports for a Ctrl-C'd command


def leaf(exc: BaseException, types: type[BaseException] | tuple[type[BaseException], ...],
         ) -> BaseException | None:
    """The first exception of ``types`` in ``exc`` or, depth first, in its groups."""
    if isinstance(exc, types):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = leaf(inner, types)
            if found is not None:
                return found
    return None


def interrupted(exc: BaseException) -> bool:
    """A Ctrl-C (KeyboardInterrupt), bare or inside exception groups."""
    return leaf(exc, KeyboardInterrupt) is not None


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """A Ctrl-C inside is raised when the block ends, not in the middle of it.

    For start-up work that must not be cut in half: imports and reading the
    configuration. A KeyboardInterrupt raised inside library code can come out as
    something else (one came out of dnspython's zone reader as a syntax error of the
    trust anchors: exit 2 instead of 130), and one raised inside the ``exec`` by
    which ``dataclasses`` builds a class's methods makes CPython end the program with
    SIGINT (exit -2) even after the command caught it and returned 130 (Python 3.11,
    ``_Py_UnhandledKeyboardInterrupt``). Both were seen with a Ctrl-C 0.1-0.5 s after
    ``survey scan`` started, about one in twelve. Start-up takes well under a second,
    so the user does not wait for the deferred Ctrl-C. Only Python's own Ctrl-C
    handler is replaced, and only in the main thread (the only one that may): a
    program started with Ctrl-C ignored, or with a handler of its caller's, runs the
    block unchanged.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
