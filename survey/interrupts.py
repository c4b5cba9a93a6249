"""How a command ends when the user presses Ctrl-C, or an error arrives inside a task group.

trio (and ``asyncio.TaskGroup``) wrap what a task raised in a
``BaseExceptionGroup``, so ``except KeyboardInterrupt`` around ``trio.run``
never sees a Ctrl-C that arrived while tasks ran, nor ``except ScanError`` a
scan error raised inside a nursery. ``leaf`` finds the first exception of the
given types anywhere in such a group; ``interrupted`` says whether the
exception is a Ctrl-C however deeply it was wrapped.
"""

from __future__ import annotations

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
