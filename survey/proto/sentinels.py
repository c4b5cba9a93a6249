"""The marker values every sans-IO parser here returns, like h11's NEED_DATA.

One set for all parsers, so network code can test ``event is NEED_DATA``
whatever protocol it drives.
"""

from __future__ import annotations

from typing import Final


class Sentinel:
    """A named marker value; compares by identity."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = Sentinel("NEED_DATA")  # feed more bytes, then ask again
CLOSED: Final = Sentinel("CLOSED")        # the stream ended cleanly between messages
